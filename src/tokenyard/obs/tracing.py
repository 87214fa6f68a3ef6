"""OpenTelemetry traces of finished requests: off unless the standard ``OTEL_*`` variables ask.

Tracing is built from the :class:`~tokenyard.obs.record.RequestRecord` that every client
request already leaves behind, *after* the response, instead of from spans opened along the
hot path: the record carries wall-clock starts and durations of the request and of each
upstream attempt, so the spans get their real timestamps while the answer never waits for
tracing. Spans go through a ``BatchSpanProcessor``: ``emit`` only queues, a background thread
exports.

When it is on (:func:`span_exporters`), following the SDK's own variables:

- ``OTEL_SDK_DISABLED=true`` turns it off, whatever else is set;
- ``OTEL_TRACES_EXPORTER`` names the exporters (``otlp``, ``otlp_proto_http``, ``console``;
  ``none`` turns it off);
- without it, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``
  turns on the OTLP/HTTP exporter;
- with none of these, it is off (the SDK's own default exporter is ``otlp``; a gateway that
  sends spans nobody asked for to ``localhost:4318`` would only log export failures).

Everything else — endpoint, headers, timeout, compression, the sampler
(``OTEL_TRACES_SAMPLER``/``_ARG``), the resource (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``) and the batch sizes (``OTEL_BSP_*``) — the SDK reads itself.

A span carries names, counts, statuses and the cost, never prompt or completion text, never a
client key (its id only) and never an upstream key (its label only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from tokenyard.billing.money import format_nano
from tokenyard.errors import ConfigError
from tokenyard.obs.record import AttemptRecord, RequestRecord

_OPERATIONS = {"chat": "chat", "messages": "chat", "embeddings": "embeddings"}
"""The record's operation → ``gen_ai.operation.name`` (the Messages API is a chat)."""

_ROUTES = {
    "chat": "/v1/chat/completions",
    "messages": "/v1/messages",
    "embeddings": "/v1/embeddings",
}
_OTLP = ("otlp", "otlp_proto_http")
_PROPAGATOR = TraceContextTextMapPropagator()
Attributes = dict[str, AttributeValue]


def _set(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = _set(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _set(
        environ, "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if protocol not in ("", "http/protobuf"):
        raise ConfigError(
            [f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: tokenyard exports traces over http/protobuf"]
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # reads endpoint, headers, timeout and compression itself


def span_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters the environment asks for; empty when tracing is off (see the module)."""
    if _set(environ, "OTEL_SDK_DISABLED").lower() == "true":
        return []
    names = [n.strip().lower() for n in _set(environ, "OTEL_TRACES_EXPORTER").split(",")]
    names = [n for n in names if n]
    if not names:
        endpoint = _set(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _set(
            environ, "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return [_otlp_exporter(environ)] if endpoint else []
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            return []
        if name in _OTLP:
            exporters.append(_otlp_exporter(environ))
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            raise ConfigError(
                [f"OTEL_TRACES_EXPORTER={name}: must be otlp, otlp_proto_http, console or none"]
            )
    return exporters


def _resource() -> Resource:
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "tokenyard"}))
    return resource


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _parent(record: RequestRecord) -> Context | None:
    """The caller's trace, from its W3C ``traceparent`` (and ``tracestate``) header."""
    if not record.traceparent:
        return None
    carrier = {"traceparent": record.traceparent}
    if record.tracestate:
        carrier["tracestate"] = record.tracestate
    return _PROPAGATOR.extract(carrier)


def _error_type(record: RequestRecord) -> str | None:
    if record.status < 400 and record.error_type is None:
        return None
    return record.error_code or record.error_type or str(record.status)


def request_attributes(record: RequestRecord) -> Attributes:
    """The SERVER span's attributes: GenAI and HTTP conventions, then tokenyard's own."""
    attributes: Attributes = {
        "gen_ai.operation.name": _OPERATIONS.get(record.operation, record.operation),
        "http.request.method": "POST",
        "http.route": _ROUTES.get(record.operation, ""),
        "http.response.status_code": record.status,
        "tokenyard.request_id": record.request_id,
        "tokenyard.attempts": record.calls,
        "tokenyard.stream": record.stream,
    }
    optional: dict[str, AttributeValue | None] = {
        "gen_ai.request.model": record.requested_model,
        "gen_ai.response.model": record.model,
        "gen_ai.provider.name": record.provider,
        "error.type": _error_type(record),
        "tokenyard.account_id": record.account_id,
        "tokenyard.key_id": record.key_id,
        "tokenyard.ttft_ms": record.ttft_ms,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if record.charged:
        attributes["gen_ai.usage.input_tokens"] = record.input_tokens
        attributes["gen_ai.usage.output_tokens"] = record.output_tokens
        attributes["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
        attributes["tokenyard.cost"] = format_nano(record.cost_nano)
    return attributes


def attempt_attributes(
    record: RequestRecord, attempt: AttemptRecord, *, answered: bool
) -> Attributes:
    """A CLIENT span's attributes; ``answered``: the attempt whose answer was charged."""
    attributes: Attributes = {
        "gen_ai.operation.name": _OPERATIONS.get(record.operation, record.operation),
        "gen_ai.request.model": attempt.upstream_model,
        "gen_ai.provider.name": attempt.provider,
        "tokenyard.model": attempt.model,
        "tokenyard.outcome": attempt.outcome,
    }
    if attempt.key is not None:
        attributes["tokenyard.upstream_key"] = attempt.key  # the label, never the key
    if attempt.upstream_status is not None:
        attributes["http.response.status_code"] = attempt.upstream_status
    if attempt.outcome == "failed":
        attributes["error.type"] = attempt.error or "upstream_error"
    if answered and record.charged:
        attributes["gen_ai.response.model"] = attempt.upstream_model
        attributes["gen_ai.usage.input_tokens"] = record.input_tokens
        attributes["gen_ai.usage.output_tokens"] = record.output_tokens
    return attributes


def _answered(record: RequestRecord) -> AttemptRecord | None:
    """The attempt that gave the answer: the last one that succeeded."""
    won = [a for a in record.attempts if a.outcome == "ok"]
    return won[-1] if won else None


class TracingSink:
    """Turns each finished record into a SERVER span with one CLIENT child per attempt.

    Owns its ``TracerProvider`` (never the global one: two gateways can live in one process)
    and exports through a ``BatchSpanProcessor`` per exporter. Call :meth:`shutdown` when the
    application stops; it flushes what is queued.
    """

    def __init__(self, exporters: Sequence[SpanExporter], resource: Resource | None = None):
        self._provider = TracerProvider(resource=resource or _resource(), shutdown_on_exit=False)
        for exporter in exporters:
            self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("tokenyard")

    def emit(self, record: RequestRecord) -> None:
        start = _ns(record.started)
        end = start + _ns(record.latency_ms / 1000)
        name = _OPERATIONS.get(record.operation, record.operation)
        if record.requested_model:
            name = f"{name} {record.requested_model}"
        span = self._tracer.start_span(
            name,
            context=_parent(record),
            kind=SpanKind.SERVER,
            attributes=request_attributes(record),
            start_time=start,
        )
        if record.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        answered = _answered(record)
        for attempt in record.attempts:
            self._attempt(span, record, attempt, answered=attempt is answered, end=end)
        span.end(end_time=end)

    def _attempt(
        self,
        parent: Span,
        record: RequestRecord,
        attempt: AttemptRecord,
        *,
        answered: bool,
        end: int,
    ) -> None:
        start = _ns(attempt.started)
        finish = start + _ns(attempt.duration_ms / 1000) if attempt.outcome != "pending" else end
        operation = _OPERATIONS.get(record.operation, record.operation)
        span = self._tracer.start_span(
            f"{operation} {attempt.upstream_model}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes=attempt_attributes(record, attempt, answered=answered),
            start_time=start,
        )
        if attempt.outcome == "failed":
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=max(finish, start))

    def force_flush(self, timeout_ms: int = 30_000) -> bool:
        return self._provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Export what is queued and stop the export threads (blocking: run it off the loop)."""
        self._provider.shutdown()


def build_tracing(
    environ: Mapping[str, str], exporter: SpanExporter | None = None
) -> TracingSink | None:
    """The tracing sink, or None when tracing is off. ``exporter`` (tests) replaces the
    exporters the environment would choose and turns tracing on."""
    exporters = [exporter] if exporter is not None else span_exporters(environ)
    return TracingSink(exporters) if exporters else None
