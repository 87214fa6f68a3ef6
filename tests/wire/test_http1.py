"""HTTP/1.1 header lines, as the upstream client sends them and the gateway's own server
answers with them: no value can end its line early."""

from __future__ import annotations

import pytest

from tokenyard.wire.http1 import header_line, header_lines


def test_a_header_is_one_line() -> None:
    assert header_line("x-tokenyard-model", "gpt-mini") == "x-tokenyard-model: gpt-mini\r\n"


@pytest.mark.parametrize("bad", ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\0b"])
def test_a_line_break_or_nul_in_a_value_or_name_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        header_line("x-test", bad)
    with pytest.raises(ValueError, match="line break"):
        header_line(bad, "value")


def test_a_block_of_headers_is_their_lines() -> None:
    headers = {"Content-Type": "application/json", "x-request-id": "r1", "empty": ""}
    block = "".join(header_line(name, value) for name, value in headers.items())
    assert header_lines(headers) == block
    assert header_lines({}) == ""


@pytest.mark.parametrize("bad", ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\0b", "a\r\n"])
def test_a_block_refuses_what_a_line_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="header 'x-test' contains a line break"):
        header_lines({"first": "ok", "x-test": bad, "last": "ok"})
    with pytest.raises(ValueError, match="line break"):
        header_lines({"first": "ok", bad: "value"})
