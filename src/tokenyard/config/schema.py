"""Typed, frozen configuration objects. Unknown keys are rejected everywhere."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, IPvAnyNetwork

from tokenyard.config.base import Strict
from tokenyard.config.payments import PaymentsConfig

Api = Literal["openai", "anthropic", "gemini", "zhipu", "spark", "dashscope", "local", "simulator"]
Capability = Literal["tools", "json_mode", "vision", "reasoning"]
Tier = Literal["economy", "standard", "premium"]
NonNegative = Annotated[Decimal, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]

MIB = 1024 * 1024


class KeyConfig(Strict):
    key: str = Field(min_length=1, repr=False)
    weight: int = Field(default=1, ge=1)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class SimulatorConfig(Strict):
    """Latency shape of the built-in simulator provider."""

    ttft_ms: float = Field(default=150, ge=0)
    tokens_per_s: float = Field(default=60, gt=0)
    max_output_tokens: int = Field(default=120, ge=1)


class ImagesConfig(Strict):
    """Image URLs for an upstream that needs the bytes inline (``api: gemini``): the gateway
    downloads them itself, never from a loopback, private, link-local (cloud metadata),
    shared or otherwise non-public address. ``max_bytes`` and ``timeout_s`` bound all the
    image downloads of one request together."""

    fetch: bool = True
    max_bytes: int = Field(default=20 * MIB, ge=1)
    timeout_s: Positive = 10
    max_redirects: int = Field(default=3, ge=0)
    allow_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    """CIDRs the operator trusts although they are not public (an internal image host)."""


class ProviderConfig(Strict):
    api: Api
    base_url: str | None = None
    vendor: str | None = None  # an OpenAI-wire vendor spec name; inferred from base_url if unset
    region: str | None = None
    timeout_s: Positive = 600
    connect_timeout_s: Positive = 10
    first_byte_timeout_s: Positive | None = None  # default: timeout_s
    idle_timeout_s: Positive = 300  # longest silence between two stream chunks
    headers: dict[str, str] = Field(default_factory=dict)
    keys: list[KeyConfig] = Field(default_factory=list)
    simulator: SimulatorConfig | None = None
    images: ImagesConfig = Field(default_factory=ImagesConfig)  # only api: gemini (load.py)


class PriceConfig(Strict):
    """Provider prices per 1M tokens, in ``currency`` (default: the billing currency)."""

    input: NonNegative
    output: NonNegative = Decimal(0)
    cached_input: NonNegative | None = None
    currency: str | None = None


class DeploymentConfig(Strict):
    provider: str
    model: str = Field(min_length=1)
    price: PriceConfig
    region: str | None = None  # default: the provider's region
    weight: int = Field(default=1, ge=1)  # for the model's `weighted` policy


class ModelConfig(Strict):
    kind: Literal["chat", "embedding"] = "chat"
    context_window: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    capabilities: list[Capability] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)
    tier: Tier = "standard"
    description: str | None = None
    deployments: list[DeploymentConfig] = Field(min_length=1)
    policy: Literal["ordered", "weighted", "cheapest", "fastest"] = "ordered"
    """In which order the deployments are tried (the fallbacks follow)."""
    fallbacks: list[str] = Field(default_factory=list)
    hedge_after_ms: int | None = Field(default=None, ge=0)
    """When an attempt at this model has not answered (streams: no first chunk) after this
    long, the next attempt of the plan starts alongside it; the first to answer wins."""


class BillingConfig(Strict):
    currency: str = Field(default="USD", min_length=3, max_length=3)
    markup: NonNegative = Decimal(0)
    fx: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(default_factory=dict)
    default_max_output_tokens: int = Field(default=4096, ge=1)
    """Held for a request that names no max_tokens, on a model that declares none."""
    reaper_interval_s: Positive = 5
    """How often a process heartbeats and releases the reservations of dead processes."""
    stale_after_s: Positive = 60
    """A process silent this long is dead (on another host; same-host pids are checked)."""
    signup_credit: NonNegative = Decimal(0)
    """Credited once to every account created through the self-serve portal (``portal``)."""


class LoggingConfig(Strict):
    prompts: bool = False
    """Store prompt and completion text in the request log (a key's ``log_prompts: false``
    still wins)."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    retention_days: int | None = Field(default=30, ge=1)
    """Request log rows older than this are purged; null keeps them forever."""


class HealthConfig(Strict):
    """When a deployment's circuit opens, and for how long (routing/health.py)."""

    consecutive_failures: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    min_requests: int = Field(default=10, ge=1)
    window_s: Positive = 60
    open_s: Positive = 30
    max_open_s: Positive = 300


class ClassifierConfig(Strict):
    """`auto`'s second opinion: a request the rules find no task in is compared with
    labelled examples by meaning, with one of the catalogue's embedding models."""

    embedding_model: str
    examples: dict[str, list[Annotated[str, Field(min_length=1)]]] = Field(min_length=1)
    """Task name → example requests of that task."""
    min_similarity: float = Field(default=0.5, gt=0, le=1)
    """Cosine similarity the nearest example needs for its task to be taken."""


class RoutingConfig(Strict):
    """What one request may spend before its first byte reaches the client, across every
    attempt: the failover loop must end even when every upstream is slow or failing."""

    deadline_s: Positive = 600
    """Not shorter than a provider's default ``timeout_s``: one long unstreamed answer fits."""
    max_attempts: int = Field(default=5, ge=1)
    """Upstream calls, key retries and hedges included."""
    classifier: ClassifierConfig | None = None


class ServerConfig(Strict):
    """What one client connection and request may send (docs/configuration.md)."""

    max_body_bytes: int = Field(default=32 * MIB, ge=1024)
    body_timeout_s: Positive = 60
    """The whole request body must arrive within this long of its head (else 408)."""
    header_timeout_s: Positive = 30
    """A connection must complete each request head within this long of opening or of its
    previous answer, else it is closed; an idle keep-alive connection is closed then too."""
    max_header_bytes: int = Field(default=8190, ge=1024)
    """Longest request line and longest header field (longer: 400 from the HTTP parser)."""
    max_headers: int = Field(default=128, ge=8)
    """Most header fields in one request."""
    max_messages: int = Field(default=2048, ge=1)
    """Most entries in a chat request's ``messages`` (else 400)."""
    max_json_depth: int = Field(default=64, ge=4, le=200)
    """Deepest nesting of arrays and objects in a JSON body (else 400). At most 200: every
    body must stay writable by the JSON codec (orjson) on its way upstream."""
    metrics_address: str | None = Field(
        default=None, pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]*):\d{1,5}$"
    )
    """``host:port`` of a second listener that serves only ``GET /metrics``, without auth:
    bind it where only the scraper can reach it (e.g. ``127.0.0.1:9464``). Without it,
    ``/metrics`` is on the main port behind the admin key."""
    metrics_key_labels: bool = False
    """Add a ``key_prefix`` label to the per-request counters. Off by default: every key
    becomes a series, which a large tenant base turns into a cardinality problem."""
    shutdown_timeout_s: Positive = 30
    """On SIGTERM, how long requests in flight may run on after new connections are refused;
    streams still running then end with an error event, charged for what they delivered."""

    def metrics_bind(self) -> tuple[str, int] | None:
        """``metrics_address`` split into host and port (brackets of an IPv6 host removed)."""
        if self.metrics_address is None:
            return None
        host, _, port = self.metrics_address.rpartition(":")
        return host.strip("[]"), int(port)


class PortalConfig(Strict):
    """The self-serve portal: developers sign up under ``/ui/signup`` with email and password
    and get an account of their own (with ``billing.signup_credit``)."""

    signup: Literal["open", "invite", "off"] = "off"
    """``open``: anyone may sign up; ``invite``: only with a single-use code from an operator
    (``POST /admin/invites``); ``off``: no sign-up page (existing users still sign in)."""
    signups_per_hour: int = Field(default=5, ge=1)
    """Sign-up attempts allowed per client IP address and hour (with ``redis:``, across every
    process and replica)."""
    client_ip_header: str | None = Field(default=None, min_length=1)
    """Behind a reverse proxy: the header it puts the client's address in (e.g.
    ``X-Forwarded-For``; its last entry is taken). Unset: the TCP peer's address. Set it only
    when every request comes through that proxy, or clients can pick their own address."""


class Config(Strict):
    database: str = "sqlite:///tokenyard.db"
    redis: str | None = None
    admin_key: str | None = Field(default=None, min_length=8, repr=False)
    billing: BillingConfig = Field(default_factory=BillingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    payments: PaymentsConfig = Field(default_factory=PaymentsConfig)
    portal: PortalConfig = Field(default_factory=PortalConfig)
