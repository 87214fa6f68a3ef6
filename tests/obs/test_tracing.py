"""Traces of the real application, served in-process and exported to memory.

The gateway (``build_app``) runs on its own loop in a thread, in front of stand-in OpenAI-wire
upstreams; the official OpenAI SDK calls it; an ``InMemorySpanExporter`` collects the spans.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from aiohttp import web
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.upstreams.background import run_in_thread
from tests.upstreams.openai_wire import Flavor, StandInUpstream
from tests.upstreams.openai_wire import run_in_thread as run_upstream
from tokenyard.config.load import parse_config
from tokenyard.errors import ConfigError
from tokenyard.obs.tracing import TracingSink, span_exporters
from tokenyard.server.app import build_app
from tokenyard.server.state import SINKS
from tokenyard.store import Database

ADMIN = "admin-trace-" + "y" * 16
MARKER = "prompt-marker-" + secrets.token_hex(6)


def _config(directory: Path, urls: dict[str, str]) -> str:
    return f"""
database: sqlite:///{directory / "tokenyard.db"}
admin_key: {ADMIN}
billing: {{currency: USD, markup: 0.10}}
health: {{consecutive_failures: 1000, min_requests: 1000}}
providers:
  openai-a:
    api: openai
    base_url: {urls["openai-a"]}
    keys: [{{key: sk-trace-a-secret}}]
  flaky:
    api: openai
    base_url: {urls["flaky"]}
    keys: [{{key: sk-trace-flaky-secret}}]
models:
  gpt-mini:
    deployments:
      - {{provider: openai-a, model: gpt-4o-mini, price: {{input: 0.15, output: 0.60}}}}
  failover:
    deployments:
      - {{provider: flaky, model: gpt-4o-flaky, price: {{input: 1, output: 2}}}}
      - {{provider: openai-a, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
  only-flaky:
    deployments:
      - {{provider: flaky, model: gpt-4o-flaky, price: {{input: 1, output: 2}}}}
  embed-small:
    kind: embedding
    deployments:
      - {{provider: openai-a, model: text-embedding-3-small, price: {{input: 0.02}}}}
"""


class InProcessGateway:
    """``build_app`` served by an ``AppRunner`` on a free port (the ``run_in_thread`` protocol)."""

    def __init__(self, config_text: str, exporter: SpanExporter | None) -> None:
        self.config = parse_config(config_text, environ={})
        self.exporter = exporter
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        database = Database(self.config.database)
        await database.upgrade()
        await database.close()
        self.app = await build_app(self.config, span_exporter=self.exporter)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def sink(self) -> TracingSink:
        assert self.app is not None
        return next(s for s in self.app[SINKS] if isinstance(s, TracingSink))


@dataclass
class Traced:
    base_url: str
    gateway: InProcessGateway
    exporter: InMemorySpanExporter
    upstreams: dict[str, StandInUpstream]
    key: str

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=self.key, max_retries=0)

    def spans_of(
        self, request_id: str, timeout: float = 5.0
    ) -> tuple[ReadableSpan, list[ReadableSpan]]:
        """The request's SERVER span and its children, waiting for the sink to emit them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.gateway.sink.force_flush()
            spans = self.exporter.get_finished_spans()
            server = [
                s
                for s in spans
                if s.attributes and s.attributes.get("tokenyard.request_id") == request_id
            ]
            if server:
                root = server[0]
                assert root.context is not None
                children = [
                    s
                    for s in spans
                    if s.parent is not None and s.parent.span_id == root.context.span_id
                ]
                return root, sorted(children, key=lambda s: s.start_time or 0)
            time.sleep(0.02)
        raise AssertionError(f"no span for {request_id}")


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    upstreams = {
        "openai-a": StandInUpstream(Flavor.OPENAI, api_key="sk-trace-a-secret"),
        "flaky": StandInUpstream(Flavor.OPENAI, api_key="sk-trace-flaky-secret"),
    }
    stops: list[Callable[[], None]] = []
    urls = {}
    for name, upstream in upstreams.items():
        urls[name], stop = run_upstream(upstream)
        stops.append(stop)
    exporter = InMemorySpanExporter()
    gateway = InProcessGateway(_config(tmp_path_factory.mktemp("trace"), urls), exporter)
    base_url, stop_gateway = run_in_thread(gateway, "gateway")
    admin = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"})
    account = admin.post("/admin/accounts", json={"name": "traced"}).json()["id"]
    admin.post(f"/admin/accounts/{account}/credits", json={"amount": "100", "reference": "t"})
    key = admin.post("/admin/keys", json={"account_id": account, "name": "k"}).json()["key"]
    admin.close()
    yield Traced(base_url, gateway, exporter, upstreams, key)
    stop_gateway()
    for stop in stops:
        stop()


@pytest.fixture(autouse=True)
def _clean(traced: Traced) -> None:
    for upstream in traced.upstreams.values():
        upstream.reset()


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _assert_no_secrets(span: ReadableSpan, key: str) -> None:
    for value in _attrs(span).values():
        text = str(value)
        assert MARKER not in text and key not in text and "secret" not in text, span.name


def test_a_request_is_a_server_span_with_one_client_span_per_attempt(traced: Traced) -> None:
    raw = traced.client().chat.completions.with_raw_response.create(
        model="gpt-mini", messages=[{"role": "user", "content": f"hello {MARKER}"}]
    )
    completion = raw.parse()
    root, children = traced.spans_of(raw.headers["x-tokenyard-request-id"])

    assert root.name == "chat gpt-mini"
    assert root.kind is SpanKind.SERVER
    attrs = _attrs(root)
    assert completion.usage is not None
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "gpt-mini"
    assert attrs["gen_ai.response.model"] == "gpt-mini"
    assert attrs["gen_ai.provider.name"] == "openai-a"
    assert attrs["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert attrs["http.response.status_code"] == 200
    assert attrs["http.route"] == "/v1/chat/completions"
    assert attrs["tokenyard.cost"] == raw.headers["x-tokenyard-cost"]
    assert attrs["tokenyard.attempts"] == 1
    assert "error.type" not in attrs
    assert root.status.status_code is StatusCode.UNSET

    assert len(children) == 1
    (attempt,) = children
    assert attempt.kind is SpanKind.CLIENT
    assert attempt.name == "chat gpt-4o-mini"
    assert attempt.context is not None and root.context is not None
    assert attempt.context.trace_id == root.context.trace_id
    a = _attrs(attempt)
    assert a["gen_ai.provider.name"] == "openai-a"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["tokenyard.model"] == "gpt-mini"
    assert a["tokenyard.outcome"] == "ok"
    assert a["tokenyard.upstream_key"] == "openai-a#0"  # the label, never the key
    assert a["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    # the attempt lies within the request (50 ms of slack: wall and monotonic clocks)
    assert root.start_time is not None and root.end_time is not None
    assert attempt.start_time is not None and attempt.end_time is not None
    assert attempt.start_time >= root.start_time - 50_000_000
    assert attempt.end_time <= root.end_time + 50_000_000
    assert root.end_time > root.start_time
    for span in (root, attempt):
        _assert_no_secrets(span, traced.key)


def test_a_stream_and_an_embedding_are_traced(traced: Traced) -> None:
    client = traced.client()
    with client.chat.completions.with_streaming_response.create(
        model="gpt-mini",
        messages=[{"role": "user", "content": f"stream {MARKER}"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        request_id = response.headers["x-tokenyard-request-id"]
        chunks = list(response.parse())
    usage = chunks[-1].usage
    assert usage is not None
    root, children = traced.spans_of(request_id)
    attrs = _attrs(root)
    assert attrs["tokenyard.stream"] is True
    assert attrs["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert "tokenyard.ttft_ms" in attrs
    assert [c.name for c in children] == ["chat gpt-4o-mini"]

    raw = client.embeddings.with_raw_response.create(model="embed-small", input=f"e {MARKER}")
    root, children = traced.spans_of(raw.headers["x-tokenyard-request-id"])
    assert root.name == "embeddings embed-small"
    assert _attrs(root)["gen_ai.operation.name"] == "embeddings"
    assert [c.name for c in children] == ["embeddings text-embedding-3-small"]
    for span in [root, *children]:
        _assert_no_secrets(span, traced.key)


def test_failover_is_two_attempt_spans_the_first_failed(traced: Traced) -> None:
    traced.upstreams["flaky"].fail_next(500)
    raw = traced.client().chat.completions.with_raw_response.create(
        model="failover", messages=[{"role": "user", "content": "hi"}]
    )
    root, children = traced.spans_of(raw.headers["x-tokenyard-request-id"])
    assert _attrs(root)["tokenyard.attempts"] == 2
    assert _attrs(root)["gen_ai.provider.name"] == "openai-a"
    assert [c.name for c in children] == ["chat gpt-4o-flaky", "chat gpt-4o-mini"]
    failed, ok = children
    assert _attrs(failed)["tokenyard.outcome"] == "failed"
    assert _attrs(failed)["gen_ai.provider.name"] == "flaky"
    assert _attrs(failed)["http.response.status_code"] == 500
    assert "error.type" in _attrs(failed)
    assert failed.status.status_code is StatusCode.ERROR
    assert "gen_ai.usage.input_tokens" not in _attrs(failed)
    assert _attrs(ok)["tokenyard.outcome"] == "ok"
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.end_time is not None and ok.start_time is not None
    assert failed.end_time <= ok.start_time + 50_000_000


def test_errors_carry_error_type(traced: Traced) -> None:
    client = traced.client()
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    root, children = traced.spans_of(missing.value.response.headers["x-tokenyard-request-id"])
    assert _attrs(root)["http.response.status_code"] == 404
    assert _attrs(root)["error.type"] == "model_not_found"
    assert root.status.status_code is StatusCode.UNSET  # a client error is not the server's
    assert children == []

    traced.upstreams["flaky"].fail_next(500, times=5)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(
            model="only-flaky", messages=[{"role": "user", "content": "x"}]
        )
    assert failed.value.status_code >= 500
    root, children = traced.spans_of(failed.value.response.headers["x-tokenyard-request-id"])
    assert root.status.status_code is StatusCode.ERROR
    assert _attrs(root)["error.type"]
    assert children and all(_attrs(c)["tokenyard.outcome"] == "failed" for c in children)


def test_an_incoming_traceparent_is_the_parent(traced: Traced) -> None:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    raw = traced.client().chat.completions.with_raw_response.create(
        model="gpt-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"traceparent": f"00-{trace_id}-{span_id}-01", "tracestate": "vendor=x"},
    )
    root, children = traced.spans_of(raw.headers["x-tokenyard-request-id"])
    assert root.context is not None and root.parent is not None
    assert root.context.trace_id == int(trace_id, 16)
    assert root.parent.span_id == int(span_id, 16)
    assert root.parent.is_remote
    assert all(c.context is not None and c.context.trace_id == int(trace_id, 16) for c in children)


def test_tracing_is_off_without_otel_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, traced: Traced
) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    urls = {name: u.base_url or "" for name, u in traced.upstreams.items()}
    gateway = InProcessGateway(_config(tmp_path, urls), exporter=None)
    base_url, stop = run_in_thread(gateway, "untraced")
    try:
        assert gateway.app is not None
        assert not any(isinstance(s, TracingSink) for s in gateway.app[SINKS])
        assert httpx.get(base_url + "/healthz").status_code == 200
    finally:
        stop()


@pytest.mark.parametrize(
    ("environ", "kinds"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "gw", "OTEL_TRACES_SAMPLER": "always_on"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, [OTLPSpanExporter]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/v1/traces"}, [OTLPSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, [OTLPSpanExporter]),
        (
            {"OTEL_TRACES_EXPORTER": "console,otlp_proto_http"},
            [ConsoleSpanExporter, OTLPSpanExporter],
        ),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
    ],
)
def test_which_variables_turn_tracing_on(environ: dict[str, str], kinds: list[type]) -> None:
    exporters = span_exporters(environ)
    try:
        assert [type(e) for e in exporters] == kinds
    finally:
        for exporter in exporters:
            exporter.shutdown()


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
    ],
)
def test_an_exporter_tokenyard_cannot_build_fails_startup(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="OTEL_"):
        span_exporters(environ)
