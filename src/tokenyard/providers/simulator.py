"""``api: simulator`` — a built-in stand-in provider, clearly labelled, never used unless
configured. Deterministic text (the same prompt gives the same answer), realistic token
counts, a configurable time to first token and tokens per second, streaming, embeddings.
It powers ``tokenyard demo``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

from tokenyard.errors import UpstreamRejected
from tokenyard.providers.base import Call, ChatResult, EmbeddingResult
from tokenyard.wire.embeddings import float32_base64
from tokenyard.wire.json import JSONObject, dumps
from tokenyard.wire.tokens import content_text, estimate_prompt_tokens, estimate_text_tokens
from tokenyard.wire.usage import Usage

_WORDS = (
    "the gateway routes each request to a healthy upstream and bills the exact cost of "
    "every token it relays while streams arrive chunk by chunk so clients see answers as "
    "soon as models write them and operators see spend latency and errors in one place"
).split()
_LABEL = "(simulated reply)"


def _seed(body: JSONObject) -> int:
    messages = body.get("messages") or []
    last = content_text(messages[-1].get("content")) if messages else ""
    return int.from_bytes(hashlib.sha256(last.encode()).digest()[:8], "big")


def _words(seed: int, count: int) -> list[str]:
    out = [_LABEL]
    state = seed or 1
    for _ in range(count - 1):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append(_WORDS[(state >> 33) % len(_WORDS)])
    return out


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic unit-range vector: the same text always embeds the same."""
    out: list[float] = []
    block = text.encode()
    while len(out) < dims:
        block = hashlib.sha512(block).digest()
        out.extend((b - 127.5) / 127.5 for b in block)
    return out[:dims]


class SimulatorProvider:
    def __init__(self, *, name: str, ttft_ms: float, tokens_per_s: float, max_output_tokens: int):
        self.name = name
        self._ttft_s = ttft_ms / 1000
        self._token_s = 1 / tokens_per_s
        self._max_output = max_output_tokens

    def _plan(self, body: JSONObject) -> tuple[list[str], str, Usage]:
        if body.get("n", 1) not in (1, None):
            raise UpstreamRejected("the simulator answers with one choice only (n must be 1)")
        seed = _seed(body)
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or self._max_output
        natural = 12 + seed % max(1, self._max_output - 12)
        count = max(1, min(int(limit), natural, self._max_output))
        words = _words(seed, count)
        finish = "length" if count < natural else "stop"
        prompt = estimate_prompt_tokens(body.get("messages") or [])
        return words, finish, Usage(prompt_tokens=prompt, completion_tokens=len(words))

    @staticmethod
    def _envelope(call: Call, obj: str) -> JSONObject:
        return {
            "id": "chatcmpl-sim-" + hashlib.sha256(dumps(call.body)).hexdigest()[:24],
            "object": obj,
            "created": int(time.time()),
            "model": call.upstream_model,
            "system_fingerprint": "tokenyard-simulator",
        }

    async def chat(self, call: Call) -> ChatResult:
        words, finish, usage = self._plan(call.body)
        await asyncio.sleep(self._ttft_s + self._token_s * (len(words) - 1))
        body = self._envelope(call, "chat.completion")
        body["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(words), "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ]
        body["usage"] = usage.to_openai()
        return ChatResult(body=body, usage=usage)

    async def open_stream(self, call: Call) -> SimulatorStream:
        words, finish, usage = self._plan(call.body)
        return SimulatorStream(
            envelope=self._envelope(call, "chat.completion.chunk"),
            words=words,
            finish=finish,
            usage=usage,
            ttft_s=self._ttft_s,
            token_s=self._token_s,
        )

    async def embed(self, call: Call) -> EmbeddingResult:
        raw = call.body.get("input")
        inputs: list[object] = [raw] if isinstance(raw, str) else list(raw or [])
        dims = int(call.body.get("dimensions") or 16)
        as_base64 = call.body.get("encoding_format") == "base64"
        data: list[JSONObject] = []
        tokens = 0
        for index, item in enumerate(inputs):
            if isinstance(item, str):
                text, tokens = item, tokens + estimate_text_tokens(item)
            else:  # token ids
                ids = item if isinstance(item, list) else [item]
                text, tokens = " ".join(map(str, ids)), tokens + len(ids)
            vector = _vector(text, dims)
            embedding: object = float32_base64(vector) if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        body = {
            "object": "list",
            "model": call.upstream_model,
            "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return EmbeddingResult(body=body, usage=Usage(prompt_tokens=tokens))

    async def close(self) -> None:
        return None


class SimulatorStream:
    def __init__(
        self,
        *,
        envelope: JSONObject,
        words: list[str],
        finish: str,
        usage: Usage,
        ttft_s: float,
        token_s: float,
    ):
        self.usage: Usage | None = None
        self._envelope = envelope
        self._words = words
        self._finish = finish
        self._final_usage = usage
        self._ttft_s = ttft_s
        self._token_s = token_s

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> bytes:
        return dumps(
            {
                **self._envelope,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await asyncio.sleep(self._ttft_s)
        yield self._chunk({"role": "assistant", "content": ""})
        for i, word in enumerate(self._words):
            if i:
                await asyncio.sleep(self._token_s)
            yield self._chunk({"content": word if i == 0 else " " + word})
        self.usage = self._final_usage
        yield self._chunk({}, self._finish)

    async def aclose(self) -> None:
        return None
