"""Data residency: the regions an account's and a key's requests may be served in.

A JSON list of region tags (the providers' ``region``); NULL means unrestricted. A key is
served only in regions that both it and its account allow.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("regions", sa.JSON, nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("regions", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("regions")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("regions")
