"""A real gateway process, switched to tracing by ``OTEL_EXPORTER_OTLP_ENDPOINT`` alone,
exports its spans over OTLP/HTTP to a stand-in collector."""

from __future__ import annotations

import gzip
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import RunningGateway, start_gateway
from tests.upstreams.background import run_in_thread


class Collector:
    """Receives ``POST /v1/traces`` (protobuf) and keeps every span with its resource."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, object], Span]] = []
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        with self._lock:
            for resource_spans in export.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend((resource, s) for s in scope_spans.spans)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def wait_for(self, request_id: str, timeout: float = 10.0) -> tuple[dict[str, object], Span]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for resource, span in self.spans:
                    if _attrs(span).get("tokenyard.request_id") == request_id:
                        return resource, span
            time.sleep(0.05)
        raise AssertionError(f"the collector got no span for {request_id}")

    def children(self, parent: Span) -> list[Span]:
        with self._lock:
            found = [s for _, s in self.spans if s.parent_span_id == parent.span_id]
        return sorted(found, key=lambda s: s.start_time_unix_nano)


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attrs(span: Span) -> dict[str, object]:
    return {a.key: _value(a.value) for a in span.attributes}


@pytest.fixture(scope="module")
def collector() -> Iterator[tuple[Collector, str]]:
    collector = Collector()
    url, stop = run_in_thread(collector, "collector")
    yield collector, url
    stop()


@pytest.fixture(scope="module")
def traced_gateway(
    collector: tuple[Collector, str], upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("otlp")
    config = gateway_config(f"sqlite:///{directory / 'tokenyard.db'}", upstreams.urls)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector[1],  # this alone switches tracing on
        "OTEL_SERVICE_NAME": "tokenyard-e2e",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    running = start_gateway(directory, config, env=env)
    yield running
    assert running.stop() == 0, running.log()


def test_spans_reach_an_otlp_collector(
    traced_gateway: RunningGateway, collector: tuple[Collector, str], upstreams: Upstreams
) -> None:
    upstreams.reset()
    sink = collector[0]
    client = traced_gateway.client(traced_gateway.new_key(), max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-mini", messages=[{"role": "user", "content": "hello"}]
    )
    resource, root = sink.wait_for(raw.headers["x-tokenyard-request-id"])
    assert resource["service.name"] == "tokenyard-e2e"
    assert root.name == "chat gpt-mini"
    assert root.kind == Span.SPAN_KIND_SERVER
    attrs = _attrs(root)
    assert attrs["gen_ai.provider.name"] == "openai-a"
    assert attrs["gen_ai.usage.input_tokens"] == raw.parse().usage.prompt_tokens  # type: ignore[union-attr]
    assert attrs["tokenyard.cost"] == raw.headers["x-tokenyard-cost"]
    (attempt,) = sink.children(root)
    assert attempt.kind == Span.SPAN_KIND_CLIENT
    assert attempt.name == "chat gpt-4o-mini"
    assert attempt.trace_id == root.trace_id


def test_failover_and_traceparent_over_otlp(
    traced_gateway: RunningGateway, collector: tuple[Collector, str], upstreams: Upstreams
) -> None:
    upstreams.reset()
    sink = collector[0]
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    client = traced_gateway.client(traced_gateway.new_key(), max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="failover",  # the first deployment refuses connections
        messages=[{"role": "user", "content": "hello"}],
        extra_headers={"traceparent": f"00-{trace_id}-{span_id}-01"},
    )
    _, root = sink.wait_for(raw.headers["x-tokenyard-request-id"])
    assert root.trace_id.hex() == trace_id
    assert root.parent_span_id.hex() == span_id
    failed, ok = sink.children(root)
    assert _attrs(failed)["tokenyard.outcome"] == "failed"
    assert _attrs(failed)["gen_ai.provider.name"] == "dead"
    assert _attrs(ok)["tokenyard.outcome"] == "ok"
    assert _attrs(root)["tokenyard.attempts"] == 2
