"""What HTTP/1.1 messages are made of, shared by the upstream client
(providers/transport/) and the gateway's own server (server/native/)."""

from __future__ import annotations

from collections.abc import Mapping


def header_line(name: str, value: str) -> str:
    """``name: value`` and its CRLF. A CR, LF or NUL in either would end the line early and
    let a value inject headers of its own: refused with ``ValueError``."""
    line = f"{name}: {value}\r\n"
    if "\r" in line[:-2] or "\n" in line[:-2] or "\0" in line:
        raise ValueError(f"header {name!r} contains a line break")
    return line


def header_lines(headers: Mapping[str, str]) -> str:
    """:func:`header_line` of each header, joined, checked once for the whole block: each
    line brings exactly one CR and one LF of its own, so any more is a break inside one
    (then :func:`header_line` finds which, and refuses it as it would alone). An answer
    has several headers: one check instead of one per line."""
    block = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    lines = len(headers)
    if block.count("\n") != lines or block.count("\r") != lines or "\0" in block:
        for name, value in headers.items():
            header_line(name, value)
    return block
