"""``api: local``: the in-process embedding model behind the real gateway process."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

from tests.e2e.harness import ADMIN_KEY, start_gateway


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_local_embeddings_through_the_gateway(tmp_path: Path) -> None:
    config = f"""
database: sqlite:///{tmp_path / "local.db"}
admin_key: {ADMIN_KEY}
providers:
  local: {{api: local}}
models:
  minilm:
    kind: embedding
    deployments: [{{provider: local, model: all-minilm-l6-v2, price: {{input: 0.01}}}}]
"""
    gateway = start_gateway(tmp_path, config)
    try:
        client = gateway.client(gateway.new_key(), max_retries=0)
        raw = client.embeddings.with_raw_response.create(
            model="minilm",
            input=[
                "A man is playing a guitar.",
                "Someone plays an instrument.",
                "The stock market fell today.",
            ],
        )
        result = raw.parse()
        vectors = [d.embedding for d in result.data]
        assert [len(v) for v in vectors] == [384, 384, 384]
        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
        assert result.usage.prompt_tokens > 10
        assert Decimal(raw.headers["x-tokenyard-cost"]) > 0
        assert raw.headers["x-tokenyard-provider"] == "local"
    finally:
        gateway.stop()
