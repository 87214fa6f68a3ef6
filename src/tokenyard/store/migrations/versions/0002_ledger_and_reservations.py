"""The ledger, reservations and the processes that own them.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("markup", sa.String(20), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("reserved_nano", sa.BigInteger, nullable=False, server_default="0")
        )
    op.create_table(
        "ledger",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("amount_nano", sa.BigInteger, nullable=False),
        sa.Column("reference", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(200), nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=True),
        sa.Column("cached_tokens", sa.BigInteger, nullable=True),
        sa.Column("output_tokens", sa.BigInteger, nullable=True),
        sa.Column("provider_cost_nano", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_ledger_account_day", "ledger", ["account_id", "day"])
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("amount_nano", sa.BigInteger, nullable=False),
        sa.Column("owner", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reservations_owner", "reservations", ["owner"])
    op.create_table(
        "processes",
        sa.Column("owner", sa.String(120), primary_key=True),
        sa.Column("host", sa.String(100), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("processes")
    op.drop_index("ix_reservations_owner", "reservations")
    op.drop_table("reservations")
    op.drop_index("ix_ledger_account_day", "ledger")
    op.drop_table("ledger")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("reserved_nano")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("markup")
