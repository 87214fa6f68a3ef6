"""The gateway's own HTTP/1.1 server (server/native/) at its limits, over raw sockets: the
limits of ``server:`` on the hot routes, malformed HTTP, early answers, odd keys,
upgrades, a client that hangs up, and SIGTERM (the fixtures: tests/server/conftest.py)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import RunningGateway, start_gateway
from tests.server.wire import (
    CHAT,
    WAIT_S,
    Wire,
    assert_completion,
    chat,
    chat_body,
    error_of,
    request,
    troubles,
)

# -- limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        b"x-big: " + b"a" * 5000 + b"\r\n",
        b"".join(b"x-h%d: 1\r\n" % i for i in range(40)),
    ],
    ids=["header-too-long", "too-many-headers"],
)
def test_a_head_over_the_limits_is_400_and_the_connection_closed(
    wire: Wire, key: str, extra: bytes
) -> None:
    wire.send(chat(key, extra=extra))
    answer = wire.answer()
    assert error_of(answer, 400)["type"] == "invalid_request_error"
    assert answer.closes
    assert answer.native
    assert wire.at_end()


def test_a_request_line_over_the_limit_is_400(wire: Wire, key: str) -> None:
    wire.send(request(b"POST", CHAT + b"?q=" + b"a" * 5000, key, chat_body()))
    answer = wire.answer()
    error_of(answer, 400)
    assert answer.native and answer.closes
    assert wire.at_end()


def test_a_header_line_that_never_ends_is_400_before_the_head_timeout(wire: Wire) -> None:
    """Sent at once, not dribbled: the parser would hold the unfinished line whole, so the
    head is refused once it is longer than every line at its longest (here 4096 × 34
    bytes), with an answer: the 1 s head timeout would cut it without one."""
    wire.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-big: " + b"a" * 300_000)
    answer = wire.answer()
    assert "too large" in error_of(answer, 400)["message"]
    assert answer.native and answer.closes


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /v1/chat/completions HTTP/9.9x\r\nHost: x\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: nine\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["version", "header-line", "content-length", "length-and-chunked"],
)
def test_malformed_http_is_400_never_5xx(wire: Wire, raw: bytes) -> None:
    wire.send(raw)
    answer = wire.answer()
    error_of(answer, 400)
    assert answer.native and answer.closes
    assert wire.at_end()


def test_a_body_over_the_limit_is_413(wire: Wire, key: str) -> None:
    body = chat_body(words="a" * 70_000)
    wire.send(request(b"POST", CHAT, key, body))
    error = error_of(wire.answer(), 413)
    assert error["code"] == "request_too_large"


def test_a_body_announced_over_the_limit_is_413_before_it_is_sent(wire: Wire, key: str) -> None:
    """No ``100 Continue``: the client is told at once not to send it."""
    raw = request(b"POST", CHAT, key, b"{}", extra=b"Expect: 100-continue\r\n")
    head = raw.removesuffix(b"{}").replace(b"Length: 2\r\n", b"Length: 1000000000\r\n")
    wire.send(head)
    error = error_of(wire.answer(), 413)
    assert error["code"] == "request_too_large"


def test_a_body_that_does_not_arrive_in_time_is_408(wire: Wire, key: str) -> None:
    raw = chat(key)
    wire.send(raw[:-10])  # the body's last bytes never come
    started = time.monotonic()
    error = error_of(wire.answer(), 408)
    assert error["code"] == "request_timeout"
    assert time.monotonic() - started < 5  # body_timeout_s is 1 s
    assert wire.at_end(within_s=5)


def test_an_idle_connection_is_closed_after_header_timeout(wire: Wire, key: str) -> None:
    wire.send(chat(key))
    assert_completion(wire.answer())
    started = time.monotonic()
    assert not wire.at_end(within_s=0.5)  # kept alive for a while ...
    assert wire.at_end(within_s=5)  # ... then closed (header_timeout_s is 1 s)
    assert time.monotonic() - started < 5


# -- early answers and odd keys -------------------------------------------------------------


def test_an_early_401_closes_once_the_rest_of_the_body_is_dropped(wire: Wire) -> None:
    length = b"Content-Type: application/json\r\nContent-Length: 2000\r\n"
    wire.send(request(b"POST", CHAT, "ty-not-a-key", extra=length) + b"{" + b" " * 99)
    answer = wire.answer()  # 1900 bytes of the body are still to come
    error = error_of(answer, 401)
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert answer.closes
    wire.send(b" " * 400)  # more of the body is read, and dropped
    assert wire.at_end(within_s=5)  # within min(10 s, body_timeout_s)


def test_a_request_after_a_dropped_body_is_not_served(
    wire: Wire, key: str, upstreams: Upstreams
) -> None:
    """The rest of the early-answered body and a valid chat come in one read: the
    connection closes when the body ends, and the chat never reaches an upstream."""
    upstreams.reset()
    length = b"Content-Type: application/json\r\nContent-Length: 200\r\n"
    wire.send(request(b"POST", CHAT, "ty-not-a-key", extra=length) + b"{")
    error_of(wire.answer(), 401)
    wire.send(b" " * 199 + chat(key))
    assert wire.at_end(within_s=5)
    time.sleep(0.3)
    assert upstreams["openai-a"].requests == []


@pytest.mark.parametrize("credential", [b"ty-\xff\xfe", "ty-ключ".encode()])
def test_a_key_that_is_not_ascii_is_401_not_5xx(wire: Wire, credential: bytes) -> None:
    wire.send(chat(credential))
    answer = wire.answer()
    error = error_of(answer, 401)
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert answer.native


# -- upgrades -------------------------------------------------------------------------------

H2C = (
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
)
"""What ``curl --http2`` adds to a request over plain http (curl 7.88)."""


def test_an_upgrade_request_gets_one_answer(wire: Wire, key: str) -> None:
    """``curl --http2 http://…/v1/chat/completions -d …``: an upgrade goes to aiohttp,
    which ignores it and serves the request over HTTP/1.1: one request, one answer."""
    wire.send(chat(key, extra=H2C))
    answer = wire.answer()
    assert_completion(answer)
    assert not answer.native
    assert wire.unasked(within_s=1.0) == b""


# -- a client that hangs up -----------------------------------------------------------------


def test_a_client_that_hangs_up_cancels_its_request_and_releases_its_hold(
    gateway: RunningGateway, upstreams: Upstreams
) -> None:
    account = gateway.new_account("leaving", credit="10")
    key = gateway.new_key(account)
    upstreams.reset()
    upstreams["openai-a"].stall_next(5.0)
    wire = Wire(gateway)
    wire.send(chat(key))
    deadline = time.monotonic() + WAIT_S
    while not upstreams["openai-a"].requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstreams["openai-a"].requests, "the request did not reach the upstream"
    wire.close()
    hung_up = time.monotonic()
    while upstreams["openai-a"].cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstreams["openai-a"].cancelled == 1
    assert time.monotonic() - hung_up < 2  # at once, not when the stall ends
    reserved = ""
    while time.monotonic() < deadline:
        reserved = gateway.admin("GET", f"/admin/accounts/{account}").json()["reserved"]
        if reserved == "0.000000":
            break
        time.sleep(0.05)
    assert reserved == "0.000000"
    upstreams.reset()


# -- SIGTERM --------------------------------------------------------------------------------


def test_sigterm_closes_idle_connections_at_once_and_busy_ones_after_their_answer(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A gateway of its own (it is stopped), with the default header_timeout_s of 30 s: an
    idle connection that closes now is closed by the shutdown."""
    directory: Path = tmp_path_factory.mktemp("native-stop")
    running = start_gateway(
        directory, gateway_config(f"sqlite:///{directory / 'tokenyard.db'}", upstreams.urls)
    )
    idle, busy = Wire(running), Wire(running)
    try:
        key = running.new_key(running.new_account("stopping", credit="10"))
        idle.send(chat(key))
        assert_completion(idle.answer())
        upstreams.reset()
        upstreams["openai-a"].stall_next(1.5)
        busy.send(chat(key))
        deadline = time.monotonic() + WAIT_S
        while not upstreams["openai-a"].requests and time.monotonic() < deadline:
            time.sleep(0.02)
        running.process.send_signal(signal.SIGTERM)
        assert idle.at_end(within_s=1.0)  # before the busy one's answer is ready
        answer = busy.answer()
        assert_completion(answer)
        assert answer.closes
        assert busy.at_end()
        assert running.process.wait(timeout=WAIT_S) == 0
        assert troubles(running.log()) == []
    finally:
        idle.close()
        busy.close()
        upstreams.reset()
        running.stop()
