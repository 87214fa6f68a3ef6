"""Embedding vectors in OpenAI's ``encoding_format: "base64"``: little-endian float32."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence


def float32_base64(vector: Sequence[float]) -> str:
    """The vector packed as little-endian float32 values, base64-encoded (what the OpenAI
    SDKs decode with ``numpy.frombuffer(..., dtype="float32")``)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
