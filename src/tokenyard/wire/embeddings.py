"""Embeddings on the wire: OpenAI's ``encoding_format: "base64"`` (little-endian float32),
and the batches of input texts for upstreams that take strings only, a few at a time."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence

from tokenyard.errors import UpstreamRejected
from tokenyard.wire.json import JSONObject


def float32_base64(vector: Sequence[float]) -> str:
    """The vector packed as little-endian float32 values, base64-encoded (what the OpenAI
    SDKs decode with ``numpy.frombuffer(..., dtype="float32")``)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def text_batches(body: JSONObject, batch: int, family: str) -> list[list[str]]:
    """The request's ``input`` as batches of at most ``batch`` strings; an upstream
    ``family`` that takes no token arrays refuses anything else."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise UpstreamRejected(
            f"{family} embeddings take a string or an array of strings (no token arrays)"
        )
    return [texts[at : at + batch] for at in range(0, len(texts), batch)]
