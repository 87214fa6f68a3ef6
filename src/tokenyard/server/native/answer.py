"""The bytes of an HTTP/1.1 answer: status line, headers, framing."""

from __future__ import annotations

import functools
import time
from email.utils import formatdate
from http import HTTPStatus

from tokenyard.errors import TokenyardError
from tokenyard.wire.http1 import header_lines
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
    close = "" if keep_alive else "Connection: close\r\n"
    return (
        f"{_status_line(status)}{header_lines(headers)}{framing}Date: {http_date()}\r\n"
        f"Server: {SERVER}\r\n{close}\r\n"
    ).encode("latin-1")


@functools.lru_cache(maxsize=64)
def _status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"


def whole(status: int, headers: dict[str, str], body: bytes, *, keep_alive: bool) -> bytes:
    return head(status, headers, f"Content-Length: {len(body)}\r\n", keep_alive=keep_alive) + body


def error_answer(error: TokenyardError) -> bytes:
    """A request refused before it became an exchange (its head broke a limit): its
    OpenAI-shaped error, and the connection closes."""
    body = dumps(error.body())
    return whole(error.status, {"Content-Type": "application/json"}, body, keep_alive=False)
