"""Embeddings through the gateway: float and base64, dimensions, cost."""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import RunningGateway


def test_float_and_base64_embeddings(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    client = gateway.client(key)
    # The SDK asks for base64 by default and decodes it itself.
    raw = client.embeddings.with_raw_response.create(model="embed-small", input=["hello", "world"])
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1]
    sent = upstreams["openai-a"].requests[-1].body
    assert sent["model"] == "text-embedding-3-small"
    assert sent["encoding_format"] == "base64"
    floats = client.embeddings.create(
        model="embed-small", input=["hello", "world"], encoding_format="float"
    )
    assert floats.data[0].embedding == result.data[0].embedding
    tokens = result.usage.prompt_tokens
    cost = (Decimal(tokens) * Decimal("0.02") / Decimal(1_000_000) * Decimal("1.1")).quantize(
        Decimal("0.000000001")
    )
    assert Decimal(raw.headers["x-tokenyard-cost"]) == cost
    assert raw.headers["x-tokenyard-provider"] == "openai-a"


def test_dimensions_and_raw_base64_pass_through(gateway: RunningGateway, key: str) -> None:
    response = gateway.post(
        "/v1/embeddings",
        key,
        json={
            "model": "embed-small",
            "input": "hello",
            "dimensions": 4,
            "encoding_format": "base64",
        },
    )
    assert response.status_code == 200
    vector = base64.b64decode(response.json()["data"][0]["embedding"])
    assert len(struct.unpack("<4f", vector)) == 4
    assert "cost" in response.json()["usage"]


def test_input_is_required(gateway: RunningGateway, key: str) -> None:
    response = gateway.post("/v1/embeddings", key, json={"model": "embed-small"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"
