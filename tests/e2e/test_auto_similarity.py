"""`auto` with the similarity classifier (``routing.classifier``): a request without rule cues
is routed by the labelled example it is most like, embedded by the real local model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway

CODING = "My list loses its last element whenever I sort it, what am I doing wrong?"
LEGAL = "Can my employer fire me for posting on social media?"
NEITHER = "What should I cook tonight?"


@pytest.fixture(scope="module")
def gateway(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("similarity")
    price = "price: {input: 1, output: 1}"
    config = f"""
database: sqlite:///{directory / "t.db"}
admin_key: {ADMIN_KEY}
providers:
  local: {{api: local}}
  up: {{api: openai, base_url: "{upstreams.urls["openai-a"]}", keys: [{{key: sk-openai-a-secret}}]}}
routing:
  classifier:
    embedding_model: minilm
    min_similarity: 0.35
    examples:
      coding:
        - my code throws an error when the list is empty
        - the function returns the wrong value
        - how do I fix this bug in my program
      legal:
        - is this contract clause enforceable
        - can my landlord keep my deposit
        - can my boss fire me without notice
models:
  minilm:
    kind: embedding
    deployments: [{{provider: local, model: all-minilm-l6-v2, price: {{input: 0}}}}]
  talker:
    tasks: [chat]
    deployments: [{{provider: up, model: gpt-4o-mini, {price}}}]
  coder:
    tasks: [coding]
    deployments: [{{provider: up, model: gpt-4o-mini, {price}}}]
  lawyer:
    tasks: [legal]
    deployments: [{{provider: up, model: gpt-4o-mini, {price}}}]
"""
    running = start_gateway(directory, config)
    yield running
    assert running.stop() == 0, running.log()


def route(gateway: RunningGateway, key: str, text: str) -> dict[str, object]:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    response = gateway.post("/v1/route", key, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_requests_without_cues_go_to_the_model_for_their_nearest_example(
    gateway: RunningGateway,
) -> None:
    key = gateway.new_key()
    coding = route(gateway, key, CODING)
    assert coding["task"] == "coding"
    assert "similarity" in str(coding["task_reason"])
    assert route(gateway, key, LEGAL)["task"] == "legal"
    neither = route(gateway, key, NEITHER)
    assert (neither["task"], neither["task_reason"]) == ("chat", "no strong task cues")
    raw = gateway.client(key, max_retries=0).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": CODING}]
    )
    assert raw.headers["x-tokenyard-model"] == "coder"
    assert "task=coding" in raw.headers["x-tokenyard-route"]
    assert raw.parse().choices[0].message.content


def test_a_request_with_rule_cues_keeps_the_rules_task(gateway: RunningGateway) -> None:
    answer = route(gateway, gateway.new_key(), "```python\ndef f(x):\n    return x\n```\nWhy?")
    assert answer["task"] == "coding"
    assert "similarity" not in str(answer["task_reason"])
