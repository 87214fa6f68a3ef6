"""Server-sent events: a liberal reader for upstream streams and the writer's framing.

Reading follows providers.md §1.1: ``data:`` with or without a space, comment lines (``:``)
ignored, ``event:`` names honoured, blank lines optional between events (some vendors omit
them). Every ``data:`` line is one event: no LLM API sends multi-line data fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Event:
    data: bytes
    event: bytes | None = None


async def read_events(lines: AsyncIterable[bytes]) -> AsyncIterator[Event]:
    event: bytes | None = None
    async for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line or line[0] == 0x3A:  # blank or ":" comment
            continue
        if line.startswith(b"data:"):
            data = line[5:]
            if data[:1] == b" ":
                data = data[1:]
            yield Event(data, event)
            event = None
        elif line.startswith(b"event:"):
            event = line[6:].strip()
        # id:, retry: and unknown fields are ignored


def frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
