"""Table definitions (SQLAlchemy Core). Money is integer nano-units of the billing currency."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("balance_nano", BigInteger, nullable=False, default=0),
    Column("reserved_nano", BigInteger, nullable=False, default=0),
    Column("markup", String(20), nullable=True),  # a decimal string; None: billing.markup
    Column("regions", JSON, nullable=True),  # residency: a list of region tags; None: any
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True), nullable=True),  # set: no sign-in, no keys
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("models", JSON, nullable=True),
    Column("regions", JSON, nullable=True),  # residency; the account's applies as well
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("budget_nano", BigInteger, nullable=True),
    Column("spent_nano", BigInteger, nullable=False, default=0),
    Column("reserved_nano", BigInteger, nullable=False, default=0),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("log_prompts", Boolean, nullable=True),  # False: never store this key's text
)

ledger = Table(
    "ledger",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("kind", String(12), nullable=False),  # credit | charge | refund | adjustment
    Column("amount_nano", BigInteger, nullable=False),  # signed: credits > 0, charges < 0
    Column("reference", String(200), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("day", String(10), nullable=False),  # UTC date, YYYY-MM-DD: portable grouping
    Column("note", String(500), nullable=True),
    # For charges: what was used, so usage reports and invoices come from the ledger alone.
    Column("key_id", String(40), nullable=True),
    Column("model", String(200), nullable=True),
    Column("provider", String(200), nullable=True),
    Column("input_tokens", BigInteger, nullable=True),
    Column("cached_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    Column("provider_cost_nano", BigInteger, nullable=True),
)
Index("ix_ledger_account_day", ledger.c.account_id, ledger.c.day)

reservations = Table(
    "reservations",
    metadata,
    Column("id", String(64), primary_key=True),  # the request id
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("key_id", String(40), nullable=True),
    Column("amount_nano", BigInteger, nullable=False),
    Column("owner", String(120), nullable=False),  # indexed on PostgreSQL only (0007)
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_with_rowid=False,  # one B-tree, keyed by the request id (migration 0007)
)

processes = Table(
    "processes",
    metadata,
    Column("owner", String(120), primary_key=True),  # host:pid:random
    Column("host", String(100), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(40), primary_key=True),  # the request id (x-tokenyard-request-id)
    Column("started", DateTime(timezone=True), nullable=False),
    Column("account_id", String(40), nullable=True),  # None: the caller was not authenticated
    Column("key_id", String(40), nullable=True),
    Column("key_prefix", String(16), nullable=True),
    Column("requested_model", String(200), nullable=True),
    Column("model", String(200), nullable=True),  # the public model that answered
    Column("provider", String(200), nullable=True),
    Column("operation", String(20), nullable=False),  # chat | embeddings | messages
    Column("stream", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_nano", BigInteger, nullable=False),  # what was charged (0: nothing)
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("attempt_log", JSON, nullable=True),  # [{provider, model, key, outcome, ...}]
    Column("error_type", String(64), nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("prompt", Text, nullable=True),  # only with logging.prompts and no key opt-out
    Column("completion", Text, nullable=True),
)
Index("ix_requests_started", requests.c.started, requests.c.id)
Index("ix_requests_account_started", requests.c.account_id, requests.c.started)
Index("ix_requests_key_started", requests.c.key_id, requests.c.started)
Index("ix_requests_model_started", requests.c.model, requests.c.started)

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # stored lower-cased
    Column("password_hash", String(200), nullable=False),  # argon2id, never the password
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

invites = Table(
    "invites",
    metadata,
    Column("code_hash", String(64), primary_key=True),  # SHA-256 of the code, never the code
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("used_by", String(40), nullable=True),  # the user it created
)
