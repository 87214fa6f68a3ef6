"""Prometheus metrics made from finished request records (obs/record.py).

One :class:`MetricsSink` per application turns each :class:`RequestRecord` into counter and
histogram updates: the OpenTelemetry GenAI semantic-convention instruments in their
Prometheus form (``gen_ai.client.token.usage`` → ``gen_ai_client_token_usage``, units as a
suffix) and ``tokenyard_*`` counters for what the conventions do not name (requests by
status, cost, upstream errors, retries, fallbacks, rejections).

Why it is built this way:

- **Bounded cardinality.** Every label value comes from the config (public model and
  provider names) or from a short fixed vocabulary (status codes, error codes). A requested
  model that is not in the catalogue is ``unknown``, an odd error code is ``other``; no key
  id or request id is ever a label (the key's visible prefix only with
  ``server.metrics_key_labels``).
- **Exact money.** Cost is counted in nano-units of the billing currency, the ledger's own
  integers, so a counter's total equals the ledger's sum to the unit (a float counter holds
  integers exactly up to 2**53 nano-units, about 9 million currency units per series and
  process lifetime).
- **Cheap.** ``emit`` runs on the event loop after every response: a handful of dict
  look-ups and additions, no I/O, no allocation beyond label tuples (see tests/obs).
- **Several processes.** With ``PROMETHEUS_MULTIPROC_DIR`` set (server/run.py does it for
  ``--workers N``) prometheus-client keeps every value in a per-process file and a scrape
  merges them (obs/exposition.py); nothing here depends on which mode is on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tokenyard.obs.record import RequestRecord

# The semantic conventions' ExplicitBucketBoundaries, as written there.
# fmt: off
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
# fmt: on

AUTO_MODELS = frozenset({"auto", "auto:economy", "auto:standard", "auto:premium"})
UNKNOWN = "unknown"
NONE = "none"  # no upstream was involved (refused before, or failed everywhere)
OTHER = "other"
_M = TypeVar("_M", Counter, Histogram)
_CODE = re.compile(r"[a-z0-9_]{1,48}")

GEN_AI_OPERATION = {"chat": "chat", "messages": "chat", "embeddings": "embeddings"}
"""Our endpoints as semantic-convention operation names (/v1/messages is a chat)."""


class Vocabulary:
    """The label values a scrape may ever show: names from the config, or a fallback."""

    def __init__(self, models: Iterable[str], providers: Iterable[str]):
        self._models = frozenset(models)
        self._requestable = self._models | AUTO_MODELS
        self._providers = frozenset(providers)

    def model(self, name: str | None) -> str:
        return name if name in self._models else UNKNOWN if name else NONE

    def requested(self, name: str | None) -> str:
        return name if name in self._requestable else UNKNOWN

    def provider(self, name: str | None) -> str:
        return name if name in self._providers else UNKNOWN if name else NONE

    @staticmethod
    def code(value: str | None) -> str:
        if not value:
            return ""
        return value if _CODE.fullmatch(value) else OTHER


GEN_AI = (
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
)


class _Series(Generic[_M]):
    """A metric's children by label values, looked up once: ``labels()`` validates and
    locks on every call, which was most of the sink's cost."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: _M):
        self._metric: _M = metric
        self._children: dict[tuple[str, ...], _M] = {}

    def __call__(self, *values: str) -> _M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class MetricsSink:
    """A :class:`~tokenyard.obs.record.Sink` that counts records into ``registry``.

    ``reserved`` reports how many holds this process has open (the wallet's active set); it
    is read after each record and at scrape time (``refresh``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        vocabulary: Vocabulary,
        *,
        key_labels: bool = False,
        reserved: Callable[[], int] | None = None,
    ):
        self.registry = registry
        self._words = vocabulary
        self._key_labels = key_labels
        self._reserved = reserved
        key = ("key_prefix",) if key_labels else ()
        r = registry
        self.token_usage = _Series(
            Histogram(
                "gen_ai_client_token_usage",
                "Tokens per billed request (gen_ai.client.token.usage), as charged.",
                [*GEN_AI, "gen_ai_token_type"],
                buckets=TOKEN_BUCKETS,
                registry=r,
            )
        )
        self.duration = _Series(
            Histogram(
                "gen_ai_server_request_duration",
                "Time from request to last byte (gen_ai.server.request.duration).",
                [*GEN_AI, "error_type"],
                unit="seconds",
                buckets=DURATION_BUCKETS,
                registry=r,
            )
        )
        self.ttft = _Series(
            Histogram(
                "gen_ai_server_time_to_first_token",
                "Time to the first byte of a successful answer "
                "(gen_ai.server.time_to_first_token).",
                GEN_AI,
                unit="seconds",
                buckets=TTFT_BUCKETS,
                registry=r,
            )
        )
        self.tpot = _Series(
            Histogram(
                "gen_ai_server_time_per_output_token",
                "Streamed answers: time per output token after the first "
                "(gen_ai.server.time_per_output_token).",
                GEN_AI,
                unit="seconds",
                buckets=TPOT_BUCKETS,
                registry=r,
            )
        )
        self.requests = _Series(
            Counter(
                "tokenyard_requests",
                "Client API requests by answering model, provider and HTTP status.",
                ["operation", "model", "provider", "status", "error_type", *key],
                registry=r,
            )
        )
        self.billed = _Series(
            Counter(
                "tokenyard_billed_requests",
                "Requests charged to an account (one ledger charge each).",
                ["operation", "model", "provider", *key],
                registry=r,
            )
        )
        self.tokens = _Series(
            Counter(
                "tokenyard_tokens",
                "Tokens charged; cached_input is the part of input read from a prompt cache.",
                ["operation", "model", "provider", "type", *key],
                registry=r,
            )
        )
        self.cost = _Series(
            Counter(
                "tokenyard_cost_nano",
                "Amount charged, in nano-units (1e-9) of the billing currency, markup included.",
                ["operation", "model", "provider", *key],
                registry=r,
            )
        )
        self.attempts = _Series(
            Counter(
                "tokenyard_upstream_attempts",
                "Upstream calls by outcome (ok, failed, cancelled).",
                ["provider", "model", "outcome"],
                registry=r,
            )
        )
        self.upstream_errors = _Series(
            Counter(
                "tokenyard_upstream_errors",
                "Failed upstream calls by provider and error code.",
                ["provider", "model", "error"],
                registry=r,
            )
        )
        self.retries = _Series(
            Counter(
                "tokenyard_retries",
                "Upstream calls beyond a request's first (failover, key retries, hedges).",
                ["operation", "model"],
                registry=r,
            )
        )
        self.fallbacks = _Series(
            Counter(
                "tokenyard_fallbacks",
                "Requests answered by another public model than the first one tried.",
                ["from_model", "to_model"],
                registry=r,
            )
        )
        self.rejections = _Series(
            Counter(
                "tokenyard_rejections",
                "Requests refused before any upstream call: 402 (budget) and 429 (key limits).",
                ["operation", "model", "status", "code"],
                registry=r,
            )
        )
        self.reservations = Gauge(
            "tokenyard_reservations_active",
            "Holds on account balances not yet settled or released (summed over live workers).",
            registry=r,
            multiprocess_mode="livesum",
        )

    def emit(self, record: RequestRecord) -> None:
        words = self._words
        operation = record.operation
        served = words.model(record.model)
        requested = words.requested(record.requested_model)
        model = served if record.model else requested
        provider = words.provider(record.provider)
        key = (record.key_prefix or NONE,) if self._key_labels else ()
        status = record.status
        error = words.code(record.error_type) or (str(status) if status >= 400 else "")
        self.requests(operation, model, provider, str(status), error, *key).inc()
        gen_ai = (GEN_AI_OPERATION.get(operation, operation), provider, requested, served)
        self.duration(*gen_ai, error).observe(record.latency_ms / 1000)
        if status < 400 and record.ttft_ms is not None:
            self.ttft(*gen_ai).observe(record.ttft_ms / 1000)
            if record.stream and record.output_tokens > 1:
                per_token = (record.latency_ms - record.ttft_ms) / 1000 / (record.output_tokens - 1)
                self.tpot(*gen_ai).observe(max(0.0, per_token))
        if record.charged:
            self._charged(record, (operation, served, provider), gen_ai, key)
        if record.attempts:
            self._attempts(record, operation, served)
        if status in (402, 429) and not record.attempts:
            code = words.code(record.error_code) or str(status)
            self.rejections(operation, model, str(status), code).inc()
        self.refresh()

    def _charged(
        self,
        record: RequestRecord,
        labels: tuple[str, str, str],
        gen_ai: tuple[str, str, str, str],
        key: tuple[str, ...],
    ) -> None:
        self.billed(*labels, *key).inc()
        self.cost(*labels, *key).inc(record.cost_nano)
        self.tokens(*labels, "input", *key).inc(record.input_tokens)
        self.tokens(*labels, "output", *key).inc(record.output_tokens)
        if record.cached_tokens:
            self.tokens(*labels, "cached_input", *key).inc(record.cached_tokens)
        self.token_usage(*gen_ai, "input").observe(record.input_tokens)
        if labels[0] != "embeddings":
            self.token_usage(*gen_ai, "output").observe(record.output_tokens)

    def _attempts(self, record: RequestRecord, operation: str, served: str) -> None:
        words = self._words
        for attempt in record.attempts:
            provider, model = words.provider(attempt.provider), words.model(attempt.model)
            self.attempts(provider, model, attempt.outcome).inc()
            if attempt.outcome == "failed":
                code = words.code(attempt.error) or OTHER
                self.upstream_errors(provider, model, code).inc()
        if len(record.attempts) > 1:
            self.retries(operation, served).inc(len(record.attempts) - 1)
        first = words.model(record.attempts[0].model)
        if record.charged and record.model and first != served:
            self.fallbacks(first, served).inc()

    def use_vocabulary(self, vocabulary: Vocabulary) -> None:
        """After a config reload: label the new models and providers by name."""
        self._words = vocabulary

    def refresh(self) -> None:
        """Re-read what is read rather than counted (this process's open holds)."""
        if self._reserved is not None:
            self.reservations.set(self._reserved())

    def track_redis(self) -> Callable[[bool], None]:
        """For a gateway configured with Redis: ``tokenyard_redis_up``, 1 while this process
        reaches Redis and 0 while it counts limits in process; returns its setter, which
        the process's Redis link calls on every change (store/redis_link.py)."""
        gauge = Gauge(
            "tokenyard_redis_up",
            "1 while Redis is reachable, 0 while rate limits are counted per process and "
            "state is not shared (the lowest over live workers).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        gauge.set(1)
        return lambda up: gauge.set(1 if up else 0)
