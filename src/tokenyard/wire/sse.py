"""Server-sent events: a liberal reader for upstream streams and the writer's framing.

Reading follows providers.md §1.1: ``data:`` with or without a space, comment lines (``:``)
ignored, ``event:`` names honoured, blank lines optional between events (some vendors omit
them). Every ``data:`` line is one event: no LLM API sends multi-line data fields.

The reader takes the body as it arrives (chunks cut anywhere, even inside a UTF-8 sequence)
and splits lines itself. aiohttp's own line reader gives up on a line longer than twice its
read buffer (``LineTooLong``, not even a ``ClientError``), and one event can be that long: a
tool call whose arguments come whole (a file to write), a long reasoning summary. The
caller bounds an event's size (providers/http.py ``stream_body``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from tokenyard.immutable import immutable

DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"


@immutable
class Event:
    data: bytes
    event: bytes | None = None


async def lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The lines of a byte stream cut anywhere, without their LF or CR LF ending; a last
    line without an ending is yielded at the end."""
    pieces: list[bytes] = []
    async for chunk in chunks:
        pieces.append(chunk)
        if b"\n" not in chunk:
            continue
        *complete, rest = b"".join(pieces).split(b"\n")
        pieces = [rest]
        for line in complete:
            yield line.rstrip(b"\r")
    rest = b"".join(pieces)
    if rest:
        yield rest.rstrip(b"\r")


async def read_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[Event]:
    """The events of an SSE body given as chunks cut anywhere (or as lines)."""
    event: bytes | None = None
    async for line in lines(chunks):
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
