"""`model: "auto"`: the scheduler picks, says why, and `/v1/route` shows its ranking
without calling any upstream."""

from __future__ import annotations

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import RunningGateway

CODE = [
    {"role": "user", "content": "Fix this bug:\n```python\ndef add(a, b):\n    return a - b\n```"}
]


def test_auto_picks_by_task_and_says_why(gateway: RunningGateway, key: str) -> None:
    raw = gateway.client(key).chat.completions.with_raw_response.create(model="auto", messages=CODE)
    assert raw.headers["x-tokenyard-model"] == "deepseek-chat"  # standard tier, coding task
    route = raw.headers["x-tokenyard-route"]
    assert "task=coding" in route and "chosen=deepseek-chat" in route
    assert raw.parse().choices[0].message.content


def test_auto_tiers_and_capabilities(gateway: RunningGateway, key: str) -> None:
    client = gateway.client(key)
    economy = client.chat.completions.with_raw_response.create(
        model="auto:economy", messages=[{"role": "user", "content": "hello"}]
    )
    assert economy.headers["x-tokenyard-model"] == "gpt-mini"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with_tools = client.chat.completions.with_raw_response.create(
        model="auto:premium", messages=[{"role": "user", "content": "hello"}], tools=tools
    )  # type: ignore[arg-type]
    assert with_tools.headers["x-tokenyard-model"] == "gpt-mini"  # the only one with tools
    bad = gateway.post(
        "/v1/chat/completions",
        key,
        json={"model": "auto:gold", "messages": [{"role": "user", "content": "x"}]},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "model"


def test_route_explains_without_calling_upstreams(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams.reset()
    response = gateway.post(
        "/v1/route",
        key,
        json={
            "model": "auto",
            "messages": CODE,
            "routing": {"regions": ["us"], "max_price": {"input": 1, "output": 1}},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "coding"
    us = {"gpt-mini", "tiny-window", "text-only", "small-window", "cheapest-first"}
    assert body["candidates"] and {c["model"] for c in body["candidates"]} <= us
    assert "region" in body["rejected"]["deepseek-chat"]  # its provider is in cn
    assert body["route"].startswith("task=coding;")
    assert all(not u.requests for u in upstreams.by_name.values())
    assert gateway.post("/v1/route", None, json={"model": "auto"}).status_code == 401
