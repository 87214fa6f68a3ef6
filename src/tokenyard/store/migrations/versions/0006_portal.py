"""The self-serve portal: users who sign in with email and password, single-use invite
codes, and disabled accounts.

``users.email`` is stored lower-cased and unique, so one address is one user whatever its
case. ``password_hash`` is an argon2id hash (the password is never stored). ``invites``
keeps a SHA-256 of each code, so a database dump does not hand out invitations; a code is
used once (``used_at``). ``accounts.disabled_at`` set: its users cannot sign in and its keys
were revoked when it was set.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "users",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_users_account_id", "users", ["account_id"])
    op.create_table(
        "invites",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.String(40), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("invites")
    op.drop_index("ix_users_account_id", table_name="users")
    op.drop_table("users")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("disabled_at")
