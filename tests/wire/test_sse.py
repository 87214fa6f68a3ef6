import asyncio
from collections.abc import AsyncIterator

from tokenyard.wire.sse import Event, frame, read_events


async def _lines(*lines: bytes) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


def _read(*lines: bytes) -> list[Event]:
    async def collect() -> list[Event]:
        return [event async for event in read_events(_lines(*lines))]

    return asyncio.run(collect())


def test_data_with_and_without_space_comments_and_blank_lines() -> None:
    events = _read(
        b": keep-alive\n",
        b"\n",
        b'data: {"a":1}\n',
        b"\n",
        b'data:{"b":2}\r\n',
        b":HTTP_STATUS/200\n",
        b"data: [DONE]\n",
    )
    assert [e.data for e in events] == [b'{"a":1}', b'{"b":2}', b"[DONE]"]
    assert all(e.event is None for e in events)


def test_event_names_belong_to_the_next_data_line_only() -> None:
    events = _read(b"event: error\n", b'data: {"x":1}\n', b"id: 7\n", b'data: {"y":2}\n')
    assert events == [Event(b'{"x":1}', b"error"), Event(b'{"y":2}', None)]


def test_frame() -> None:
    assert frame(b'{"a":1}') == b'data: {"a":1}\n\n'
