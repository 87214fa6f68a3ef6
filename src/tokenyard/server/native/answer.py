"""The bytes of an HTTP/1.1 answer: status line, headers, framing."""

from __future__ import annotations

import functools
import time
from email.utils import formatdate
from http import HTTPStatus

from tokenyard.errors import TokenyardError
from tokenyard.wire.http1 import header_line
from tokenyard.wire.json import dumps

REASONS = {status.value: status.phrase for status in HTTPStatus}
SERVER = "tokenyard"


def http_date() -> str:
    """The ``Date`` header's value, made once a second."""
    return _date_of(int(time.time()))


@functools.lru_cache(maxsize=1)
def _date_of(second: int) -> str:
    return formatdate(second, usegmt=True)


def head(status: int, headers: dict[str, str], framing: str, *, keep_alive: bool) -> bytes:
    """Status line and headers; ``framing`` is the ``Content-Length`` or
    ``Transfer-Encoding`` line, or ``""`` for a body the closing connection ends."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"]
    lines.extend(header_line(name, value) for name, value in headers.items())
    lines.append(f"{framing}Date: {http_date()}\r\nServer: {SERVER}\r\n")
    if not keep_alive:
        lines.append("Connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def whole(status: int, headers: dict[str, str], body: bytes, *, keep_alive: bool) -> bytes:
    return head(status, headers, f"Content-Length: {len(body)}\r\n", keep_alive=keep_alive) + body


def error_answer(error: TokenyardError) -> bytes:
    """A request refused before it became an exchange (its head broke a limit): its
    OpenAI-shaped error, and the connection closes."""
    body = dumps(error.body())
    return whole(error.status, {"Content-Type": "application/json"}, body, keep_alive=False)
