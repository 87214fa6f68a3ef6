"""JSON aliases and the one codec (orjson)."""

from __future__ import annotations

from typing import Any

import orjson

JSONObject = dict[str, Any]
"""A decoded JSON object whose shape is checked by the code reading it."""

JSONDecodeError = orjson.JSONDecodeError


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
