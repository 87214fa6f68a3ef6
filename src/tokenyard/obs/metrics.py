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
  look-ups and additions, no I/O, no allocation beyond label tuples. In one process the
  values live in plain dicts that a scrape renders (obs/tally.py), not in prometheus-client
  metrics, whose every update takes a lock (bench/micro.py measures it).
- **Several processes.** With ``PROMETHEUS_MULTIPROC_DIR`` set (server/run.py does it for
  ``--workers N``) prometheus-client keeps every value in a per-process file and a scrape
  merges them (obs/exposition.py); the sink is then told ``files=True`` and writes through
  prometheus-client's own metrics, so a scrape by any worker is exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Gauge

from tokenyard.obs.record import RequestRecord
from tokenyard.obs.tally import Instruments

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


class MetricsSink:
    """A :class:`~tokenyard.obs.record.Sink` that counts records into ``registry``.

    ``reserved`` reports how many holds this process has open (the wallet's active set). In
    one process the gauge reads it when scraped; with ``files`` (multi-process mode, where
    a scrape reads the other workers' files, not their memory) it is written after each
    record whose count changed and at scrape time (``refresh``). ``files`` also picks how
    counters and histograms are kept (obs/tally.py)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        vocabulary: Vocabulary,
        *,
        key_labels: bool = False,
        reserved: Callable[[], int] | None = None,
        files: bool = False,
    ):
        self.registry = registry
        self._words = vocabulary
        self._key_labels = key_labels
        self._reserved = reserved
        self._written: int | None = None  # the gauge's value in this process's file
        key = ("key_prefix",) if key_labels else ()
        make = Instruments(registry, files=files)
        self.token_usage = make.histogram(
            "gen_ai_client_token_usage",
            "Tokens per billed request (gen_ai.client.token.usage), as charged.",
            [*GEN_AI, "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
        )
        self.duration = make.histogram(
            "gen_ai_server_request_duration",
            "Time from request to last byte (gen_ai.server.request.duration).",
            [*GEN_AI, "error_type"],
            unit="seconds",
            buckets=DURATION_BUCKETS,
        )
        self.ttft = make.histogram(
            "gen_ai_server_time_to_first_token",
            "Time to the first byte of a successful answer (gen_ai.server.time_to_first_token).",
            GEN_AI,
            unit="seconds",
            buckets=TTFT_BUCKETS,
        )
        self.tpot = make.histogram(
            "gen_ai_server_time_per_output_token",
            "Streamed answers: time per output token after the first "
            "(gen_ai.server.time_per_output_token).",
            GEN_AI,
            unit="seconds",
            buckets=TPOT_BUCKETS,
        )
        self.requests = make.counter(
            "tokenyard_requests",
            "Client API requests by answering model, provider and HTTP status.",
            ["operation", "model", "provider", "status", "error_type", *key],
        )
        self.billed = make.counter(
            "tokenyard_billed_requests",
            "Requests charged to an account (one ledger charge each).",
            ["operation", "model", "provider", *key],
        )
        self.tokens = make.counter(
            "tokenyard_tokens",
            "Tokens charged; cached_input is the part of input read from a prompt cache.",
            ["operation", "model", "provider", "type", *key],
        )
        self.cost = make.counter(
            "tokenyard_cost_nano",
            "Amount charged, in nano-units (1e-9) of the billing currency, markup included.",
            ["operation", "model", "provider", *key],
        )
        self.attempts = make.counter(
            "tokenyard_upstream_attempts",
            "Upstream calls by outcome (ok, failed, cancelled).",
            ["provider", "model", "outcome"],
        )
        self.upstream_errors = make.counter(
            "tokenyard_upstream_errors",
            "Failed upstream calls by provider and error code.",
            ["provider", "model", "error"],
        )
        self.retries = make.counter(
            "tokenyard_retries",
            "Upstream calls beyond a request's first (failover, key retries, hedges).",
            ["operation", "model"],
        )
        self.fallbacks = make.counter(
            "tokenyard_fallbacks",
            "Requests answered by another public model than the first one tried.",
            ["from_model", "to_model"],
        )
        self.rejections = make.counter(
            "tokenyard_rejections",
            "Requests refused before any upstream call: 402 (budget) and 429 (key limits).",
            ["operation", "model", "status", "code"],
        )
        make.register()
        self.reservations = Gauge(
            "tokenyard_reservations_active",
            "Holds on account balances not yet settled or released (summed over live workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._files = files
        if reserved is not None and not files:
            self.reservations.set_function(reserved)

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
        self.requests.add((operation, model, provider, str(status), error, *key))
        gen_ai = (GEN_AI_OPERATION.get(operation, operation), provider, requested, served)
        self.duration.observe((*gen_ai, error), record.latency_ms / 1000)
        if status < 400 and record.ttft_ms is not None:
            self.ttft.observe(gen_ai, record.ttft_ms / 1000)
            if record.stream and record.output_tokens > 1:
                per_token = (record.latency_ms - record.ttft_ms) / 1000 / (record.output_tokens - 1)
                self.tpot.observe(gen_ai, max(0.0, per_token))
        if record.charged:
            self._charged(record, (operation, served, provider, *key), gen_ai)
        if record.attempts:
            self._attempts(record, operation, served)
        if status in (402, 429) and not record.attempts:
            code = words.code(record.error_code) or str(status)
            self.rejections.add((operation, model, str(status), code))
        if self._files:
            self._write_reserved()

    def _charged(
        self, record: RequestRecord, labels: tuple[str, ...], gen_ai: tuple[str, str, str, str]
    ) -> None:
        """``labels``: operation, served model, provider, then the key prefix if labelled."""
        self.billed.add(labels)
        self.cost.add(labels, record.cost_nano)
        head, key = labels[:3], labels[3:]
        self.tokens.add((*head, "input", *key), record.input_tokens)
        self.tokens.add((*head, "output", *key), record.output_tokens)
        if record.cached_tokens:
            self.tokens.add((*head, "cached_input", *key), record.cached_tokens)
        self.token_usage.observe((*gen_ai, "input"), record.input_tokens)
        if labels[0] != "embeddings":
            self.token_usage.observe((*gen_ai, "output"), record.output_tokens)

    def _attempts(self, record: RequestRecord, operation: str, served: str) -> None:
        words = self._words
        for attempt in record.attempts:
            provider, model = words.provider(attempt.provider), words.model(attempt.model)
            self.attempts.add((provider, model, attempt.outcome))
            if attempt.outcome == "failed":
                code = words.code(attempt.error) or OTHER
                self.upstream_errors.add((provider, model, code))
        if len(record.attempts) > 1:
            self.retries.add((operation, served), len(record.attempts) - 1)
        first = words.model(record.attempts[0].model)
        if record.charged and record.model and first != served:
            self.fallbacks.add((first, served))

    def use_vocabulary(self, vocabulary: Vocabulary) -> None:
        """After a config reload: label the new models and providers by name."""
        self._words = vocabulary

    def refresh(self) -> None:
        """Before a scrape: re-read what is read rather than counted (this process's open
        holds). In one process the gauge reads it itself when collected."""
        if self._files:
            self._write_reserved()

    def _write_reserved(self) -> None:
        """Multi-process mode: put this process's open holds in its file when they changed
        (a gauge ``set`` takes a lock and writes the file even when nothing changed)."""
        if self._reserved is not None:
            held = self._reserved()
            if held != self._written:
                self.reservations.set(held)
                self._written = held

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
