"""The request log (one row per client API request) and the per-key prompt opt-out.

``requests`` is written in batches after the responses (store/request_log.py) and purged
after ``logging.retention_days``. Its indexes serve the admin API's filters and its keyset
paging, newest first: ``(started, id)`` is read backwards.

``api_keys.log_prompts``: NULL follows ``logging.prompts``; false never stores that key's
prompt or completion text, whatever the config says.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=True),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("key_prefix", sa.String(16), nullable=True),
        sa.Column("requested_model", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(200), nullable=True),
        sa.Column("operation", sa.String(20), nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_nano", sa.BigInteger, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("attempt_log", sa.JSON, nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("completion", sa.Text, nullable=True),
    )
    op.create_index("ix_requests_started", "requests", ["started", "id"])
    op.create_index("ix_requests_account_started", "requests", ["account_id", "started"])
    op.create_index("ix_requests_key_started", "requests", ["key_id", "started"])
    op.create_index("ix_requests_model_started", "requests", ["model", "started"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("log_prompts", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("log_prompts")
    op.drop_table("requests")
