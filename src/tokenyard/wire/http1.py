"""What HTTP/1.1 messages are made of, shared by the upstream client
(providers/transport/) and the gateway's own server (server/native/)."""

from __future__ import annotations


def header_line(name: str, value: str) -> str:
    """``name: value`` and its CRLF. A CR, LF or NUL in either would end the line early and
    let a value inject headers of its own: refused with ``ValueError``."""
    line = f"{name}: {value}\r\n"
    if "\r" in line[:-2] or "\n" in line[:-2] or "\0" in line:
        raise ValueError(f"header {name!r} contains a line break")
    return line
