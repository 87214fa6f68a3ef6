"""A raw HTTP/1.1 client for tests of the gateway's own server: exact bytes out, whole
answers in (``Content-Length``, chunked, or up to the close), and what a gateway log says
went wrong."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

from tests.e2e.harness import RunningGateway

WAIT_S = 10.0
"""How long a read waits for the gateway before the test fails (no test hangs the suite;
every timeout the tests configure is 1 s)."""
CHAT = b"/v1/chat/completions"
HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes  # decoded from its framing
    raw_body: bytes  # as it came on the wire

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"

    @property
    def native(self) -> bool:
        """Answered by the gateway's own server (aiohttp's answers name aiohttp)."""
        return self.headers.get("server") == "tokenyard"


class Wire:
    """One TCP connection to the gateway: exact bytes out, whole HTTP answers in."""

    def __init__(self, gateway: RunningGateway) -> None:
        host, port = gateway.base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> Answer:
        """The next answer: status line, headers, and its body by Content-Length, by
        chunks, or up to the connection's close."""
        head = self._until(HEAD_END)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, _ = status_line.split(" ", 2)
        assert version in ("HTTP/1.0", "HTTP/1.1"), status_line
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if int(status) < 200:
            return Answer(int(status), headers, b"", b"")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, raw = self._chunked()
        elif "content-length" in headers:
            body = raw = self._exactly(int(headers["content-length"]))
        else:
            body = raw = self._rest()
        return Answer(int(status), headers, body, raw)

    def at_end(self, within_s: float = WAIT_S) -> bool:
        """Whether the gateway closes the connection within ``within_s`` with nothing
        more to say."""
        if self.buffer:
            return False
        self.sock.settimeout(within_s)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(WAIT_S)
        self.buffer += data
        return data == b""

    def unasked(self, within_s: float) -> bytes:
        """Whatever the gateway sends, unasked, within ``within_s`` or until it closes."""
        self.sock.settimeout(within_s)
        try:
            while data := self.sock.recv(65536):
                self.buffer += data
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self.sock.settimeout(WAIT_S)
        found, self.buffer = self.buffer, b""
        return found

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"the gateway closed the connection; unread: {self.buffer!r}")
        self.buffer += data

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        found, self.buffer = self.buffer[:size], self.buffer[size:]
        return found

    def _chunked(self) -> tuple[bytes, bytes]:
        body, raw = b"", b""
        while True:
            size_line = self._until(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            data = self._exactly(size + 2)
            raw += size_line + b"\r\n" + data
            assert data.endswith(b"\r\n"), data[-10:]
            if size == 0:  # no trailers are sent: the last chunk ends the body
                return body, raw
            body += data[:-2]

    def _rest(self) -> bytes:
        while True:
            try:
                self._fill()
            except (EOFError, ConnectionResetError):
                found, self.buffer = self.buffer, b""
                return found


def chat_body(stream: bool = False, words: str = "hello there gateway") -> bytes:
    messages = [{"role": "user", "content": words}]
    return json.dumps({"model": "gpt-mini", "messages": messages, "stream": stream}).encode()


def request(
    method: bytes,
    path: bytes,
    key: str | bytes | None,
    body: bytes | None = None,
    *,
    version: bytes = b"HTTP/1.1",
    extra: bytes = b"",
) -> bytes:
    """The bytes of one request; ``extra`` is more header lines, each ending in CRLF."""
    lines = method + b" " + path + b" " + version + b"\r\nHost: gateway\r\n"
    if key is not None:
        lines += b"Authorization: Bearer " + (key.encode() if isinstance(key, str) else key)
        lines += b"\r\n"
    if body is not None:
        lines += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return lines + extra + b"\r\n" + (body or b"")


def chat(key: str | bytes, stream: bool = False, **options: Any) -> bytes:
    return request(b"POST", CHAT, key, chat_body(stream), **options)


def assert_completion(answer: Answer) -> None:
    assert answer.status == 200, answer
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["object"] == "chat.completion"
    assert answer.json()["choices"][0]["message"]["content"]
    assert answer.headers["x-tokenyard-request-id"].startswith("req_")


def error_of(answer: Answer, status: int) -> dict[str, Any]:
    """The OpenAI-shaped error of ``answer``, which must have ``status``."""
    assert answer.status == status, answer
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code"} <= set(error)
    return error


def troubles(log: str) -> list[str]:
    """The lines of a gateway log that tell of a fault: errors, exceptions (the JSON
    formatter names them in ``exc_type``), and anything that is not a JSON entry (a trace
    printed around the logging)."""
    found = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip():
                found.append(line)
            continue
        if entry.get("level") in ("error", "critical") or "exc_type" in entry:
            found.append(line)
    return found
