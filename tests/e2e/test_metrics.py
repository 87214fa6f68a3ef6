"""``GET /metrics`` of the real gateway: who may scrape it, what known traffic shows, that
its totals equal the ledger's, that one scrape sees every ``--workers`` process, and that no
id or secret ever appears in it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import ADMIN_KEY, RunningGateway, free_port, start_gateway

USER = [{"role": "user", "content": "hello there gateway"}]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _config(database_url: str, urls: dict[str, str], metrics_port: int) -> str:
    server = f"max_body_bytes: 65536, metrics_address: '127.0.0.1:{metrics_port}'"
    return gateway_config(database_url, urls, server=server)


@pytest.fixture(scope="module")
def metered(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, str]]:
    port = free_port()
    directory: Path = tmp_path_factory.mktemp("metered")
    running = start_gateway(directory, _config(database_url, upstreams.urls, port))
    yield running, f"http://127.0.0.1:{port}/metrics"
    assert running.stop() == 0, running.log()


def _parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(gateway: RunningGateway) -> Samples:
    response = gateway.http.get("/metrics", headers=ADMIN)
    assert response.status_code == 200, response.text
    return _parse(response.text)


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def _settled(gateway: RunningGateway, name: str, at_least: float, **labels: str) -> Samples:
    """Records reach the sink just after their response: wait a moment for the last."""
    deadline = time.monotonic() + 5
    while True:
        samples = scrape(gateway)
        if total(samples, name, **labels) >= at_least or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_metrics_need_the_admin_key(metered: tuple[RunningGateway, str]) -> None:
    gateway, _ = metered
    assert gateway.http.get("/metrics").status_code == 401
    wrong = gateway.http.get("/metrics", headers={"Authorization": "Bearer nope-nope-nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    key = gateway.new_key()
    assert (
        gateway.http.get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    )
    answer = gateway.http.get("/metrics", headers=ADMIN)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE tokenyard_requests_total counter" in answer.text


def test_known_traffic_shows_with_its_labels(
    metered: tuple[RunningGateway, str], upstreams: Upstreams
) -> None:
    gateway, _ = metered
    upstreams.reset()
    before = scrape(gateway)
    key = gateway.new_key(rpm=3)
    client = gateway.client(key, max_retries=0)
    client.chat.completions.create(model="gpt-mini", messages=USER)
    stream = client.chat.completions.create(
        model="gpt-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    assert [c for c in stream if c.usage is not None]
    failover = client.chat.completions.with_raw_response.create(model="failover", messages=USER)
    assert failover.headers["x-tokenyard-attempts"] == "2"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-mini", messages=USER)
    broke = gateway.client(gateway.new_key(gateway.new_account(credit=None)), max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        broke.chat.completions.create(model="gpt-mini", messages=USER)
    assert refused.value.status_code == 402
    unknown = gateway.post(
        "/v1/chat/completions",
        gateway.new_key(),
        json={"model": "no-such-model-xyz", "messages": USER},
    )
    assert unknown.status_code == 404
    seen = total(before, "tokenyard_requests_total", status="404")
    after = _settled(gateway, "tokenyard_requests_total", seen + 1, status="404")

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    ok = {"model": "gpt-mini", "provider": "openai-a", "status": "200", "operation": "chat"}
    assert delta("tokenyard_requests_total", **ok) == 2
    # the failover: one request, answered by the model's second deployment
    assert delta("tokenyard_requests_total", model="failover", provider="flaky", status="200") == 1
    assert delta("tokenyard_requests_total", status="402", error_type="insufficient_quota") == 1
    assert delta("tokenyard_requests_total", status="429", model="gpt-mini") == 1
    assert delta("tokenyard_rejections_total", status="402", code="insufficient_quota") == 1
    assert delta("tokenyard_rejections_total", status="429", code="rate_limit_exceeded") == 1
    assert delta("tokenyard_upstream_errors_total", provider="dead") == 1
    assert delta("tokenyard_upstream_attempts_total", provider="flaky", outcome="ok") == 1
    assert delta("tokenyard_upstream_attempts_total", provider="dead", outcome="failed") == 1
    assert delta("tokenyard_retries_total", operation="chat") == 1
    assert delta("tokenyard_billed_requests_total", model="gpt-mini") == 2
    assert delta("tokenyard_cost_nano_total", model="gpt-mini") > 0
    gen_ai = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai-a"}
    usage = {**gen_ai, "gen_ai_request_model": "gpt-mini", "gen_ai_token_type": "output"}
    assert delta("gen_ai_client_token_usage_count", **usage) == 2
    assert delta("gen_ai_client_token_usage_sum", **usage) == delta(
        "tokenyard_tokens_total", model="gpt-mini", type="output"
    )
    assert delta("gen_ai_server_time_to_first_token_seconds_count", **gen_ai) == 2
    assert delta("gen_ai_server_time_per_output_token_seconds_count", **gen_ai) == 1  # the stream
    assert (
        delta("gen_ai_server_request_duration_seconds_count", gen_ai_request_model="gpt-mini") == 4
    )
    # the unknown model is counted, under no name of its own
    assert "no-such-model" not in gateway.http.get("/metrics", headers=ADMIN).text
    assert delta("tokenyard_requests_total", model="unknown") == 1


def _traffic(gateway: RunningGateway) -> list[str]:
    """A mix of billed requests: plain, streamed, failed over, embeddings, /v1/messages.
    Returns the request ids the gateway gave them."""
    key = gateway.new_key()
    client = gateway.client(key, max_retries=0)
    ids = []
    for model in ("gpt-mini", "deepseek-chat", "failover", "kimi"):
        raw = client.chat.completions.with_raw_response.create(model=model, messages=USER)
        ids.append(raw.headers["x-tokenyard-request-id"])
    stream = client.chat.completions.create(
        model="qwen-plus", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    raw_embedding = client.embeddings.with_raw_response.create(
        model="embed-small", input=["one", "two"]
    )
    ids.append(raw_embedding.headers["x-tokenyard-request-id"])
    body = {"model": "gpt-mini", "max_tokens": 50, "messages": USER}
    message = gateway.post("/v1/messages", key, json=body)
    assert message.status_code == 200, message.text
    ids.append(message.headers["x-tokenyard-request-id"])
    return ids


def test_metric_totals_equal_the_ledger(metered: tuple[RunningGateway, str]) -> None:
    gateway, _ = metered
    _traffic(gateway)
    # Everything billed since this gateway (and its fresh database) started, both ways.
    for _ in range(100):
        rows = gateway.admin("GET", "/admin/usage?group_by=model").json()["rows"]
        ledger = {
            r["group"]: (
                r["requests"],
                r["input_tokens"],
                r["output_tokens"],
                int(Decimal(r["cost"]) * 10**9),
            )
            for r in rows
        }
        samples = scrape(gateway)
        metrics = {
            model: (
                int(total(samples, "tokenyard_billed_requests_total", model=model)),
                int(total(samples, "tokenyard_tokens_total", model=model, type="input")),
                int(total(samples, "tokenyard_tokens_total", model=model, type="output")),
                int(total(samples, "tokenyard_cost_nano_total", model=model)),
            )
            for model in ledger
        }
        if metrics == ledger:
            break
        time.sleep(0.05)
    assert metrics == ledger
    assert {"gpt-mini", "deepseek-chat", "failover", "kimi", "qwen-plus", "embed-small"} <= set(
        ledger
    )
    billed = total(samples, "tokenyard_billed_requests_total")
    assert billed == sum(r[0] for r in ledger.values())
    assert total(samples, "tokenyard_cost_nano_total") == sum(r[3] for r in ledger.values())


def test_no_id_or_secret_appears(metered: tuple[RunningGateway, str]) -> None:
    gateway, listener = metered
    account = gateway.new_account()
    created = gateway.admin("POST", "/admin/keys", {"account_id": account, "name": "k"}).json()
    client = gateway.client(created["key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-mini", messages=USER)
    request_id = raw.headers["x-tokenyard-request-id"]
    time.sleep(0.2)
    for text in (gateway.http.get("/metrics", headers=ADMIN).text, httpx.get(listener).text):
        for secret in (
            created["key"],
            created["id"],
            created["prefix"],
            account,
            request_id,
            ADMIN_KEY,
            "sk-openai-a-secret",
            "openai-a#0",
        ):
            assert secret not in text
        assert "key_prefix" not in text


def test_the_metrics_listener_answers_without_auth(metered: tuple[RunningGateway, str]) -> None:
    _, listener = metered
    answer = httpx.get(listener)
    assert answer.status_code == 200
    samples = _parse(answer.text)
    assert total(samples, "tokenyard_requests_total") > 0
    assert total(samples, "tokenyard_circuit_state", deployment="openai-a/gpt-4o-mini") == 1
    assert total(samples, "tokenyard_upstream_keys", provider="openai-a", state="ready") == 1
    assert "tokenyard_reservations_active" in answer.text
    # it serves nothing else
    assert httpx.get(listener.replace("/metrics", "/v1/models")).status_code == 404
    assert httpx.get(listener.replace("/metrics", "/admin/usage")).status_code == 404


def test_one_scrape_sees_every_worker(
    database_url: str,
    upstreams: Upstreams,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory: Path = tmp_path_factory.mktemp("metered-workers")
    scratch = directory / "tmp"
    scratch.mkdir()
    port = free_port()
    gateway = start_gateway(
        directory,
        _config(database_url, upstreams.urls, port),
        workers=2,
        env={"TMPDIR": str(scratch)},
    )
    try:
        assert [p.name for p in scratch.iterdir() if p.name.startswith("tokenyard-metrics-")]
        account = gateway.new_account()
        key = gateway.new_key(account)
        for _ in range(20):  # a new connection each: the kernel spreads them over both workers
            with httpx.Client(base_url=gateway.base_url, timeout=10) as fresh:
                response = fresh.post(
                    "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "gpt-mini", "messages": USER},
                )
                assert response.status_code == 200
        time.sleep(0.3)
        for _ in range(6):  # whichever worker answers, it counts both
            with httpx.Client(base_url=gateway.base_url, timeout=10) as fresh:
                text = fresh.get("/metrics", headers=ADMIN).text
            assert total(_parse(text), "tokenyard_requests_total", model="gpt-mini") == 20
            assert (
                total(
                    _parse(httpx.get(f"http://127.0.0.1:{port}/metrics").text),
                    "tokenyard_billed_requests_total",
                )
                == 20
            )
        usage = gateway.admin("GET", f"/admin/usage?group_by=model&account_id={account}")
        assert sum(r["requests"] for r in usage.json()["rows"]) == 20
    finally:
        assert gateway.stop() == 0, gateway.log()
    # the per-process files went with the parent
    assert not [p for p in scratch.iterdir() if p.name.startswith("tokenyard-metrics-")]
