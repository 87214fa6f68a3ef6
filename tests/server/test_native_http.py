"""The gateway's own HTTP/1.1 server (server/native/), against a real gateway process, over
raw sockets: keep-alive, the hand-off of a connection to aiohttp, pipelining,
``Expect: 100-continue``, HTTP/1.0 clients, chunked streams, the limits of ``server:`` on
the hot route, early answers, a client that hangs up, and SIGTERM. Exact bytes go out and
whole answers are read back, so each test sees what a client sees on the wire."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Upstreams, gateway_config, upstreams
from tests.e2e.harness import RunningGateway, start_gateway
from tests.server.wire import (
    CHAT,
    HEAD_END,
    WAIT_S,
    Answer,
    Wire,
    assert_completion,
    chat,
    chat_body,
    error_of,
    request,
    troubles,
)

__all__ = ["upstreams"]

LIMITS = (
    "server: {max_body_bytes: 65536, body_timeout_s: 1, header_timeout_s: 1,"
    " max_header_bytes: 4096, max_headers: 32}"
)


@pytest.fixture
def wire(gateway: RunningGateway) -> Iterator[Wire]:
    connection = Wire(gateway)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def gateway(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("native")
    config = gateway_config(f"sqlite:///{directory / 'tokenyard.db'}", upstreams.urls)
    assert "server: {max_body_bytes: 65536}" in config
    running = start_gateway(directory, config.replace("server: {max_body_bytes: 65536}", LIMITS))
    yield running
    assert running.stop() == 0, running.log()
    assert troubles(running.log()) == []


@pytest.fixture(scope="module")
def account(gateway: RunningGateway) -> str:
    return gateway.new_account("native", credit="10")


@pytest.fixture(scope="module")
def key(gateway: RunningGateway, account: str) -> str:
    return gateway.new_key(account)


# -- keep-alive, hand-off, pipelining -------------------------------------------------------


def test_two_chat_completions_share_one_connection(wire: Wire, key: str) -> None:
    for _ in range(2):
        wire.send(chat(key))
        answer = wire.answer()
        assert_completion(answer)
        assert answer.native and not answer.closes
        assert answer.headers["date"].endswith(" GMT")


def test_a_connection_is_handed_to_aiohttp_after_a_chat_completion(wire: Wire, key: str) -> None:
    wire.send(chat(key))
    first = wire.answer()
    assert_completion(first)
    assert first.native
    wire.send(request(b"GET", b"/v1/models", key))
    models = wire.answer()
    assert models.status == 200, models
    assert "gpt-mini" in {model["id"] for model in models.json()["data"]}
    wire.send(chat(key))
    last = wire.answer()
    assert_completion(last)
    assert not last.native  # aiohttp serves the connection from the hand-off on


def test_a_connection_whose_first_request_is_another_route_goes_to_aiohttp(
    wire: Wire, key: str
) -> None:
    wire.send(request(b"GET", b"/healthz", None))
    health = wire.answer()
    assert health.status == 200, health
    assert not health.native
    wire.send(chat(key))
    assert_completion(wire.answer())


HOT_CALLS = {
    "chat": (CHAT, {"model": "gpt-mini", "messages": [{"role": "user", "content": "hi"}]}),
    "messages": (
        b"/v1/messages",
        {"model": "gpt-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "embeddings": (b"/v1/embeddings", {"model": "embed-small", "input": "hello"}),
}


def shape(answer: Answer, stream: bool) -> tuple[object, ...]:
    """What must not depend on which server answered: status, content type, the gateway's
    headers, and the body's kind (its ``object``/``type``, or the stream's event names)."""
    gateway = sorted(
        h for h in answer.headers if h.startswith("x-tokenyard-") and h != "x-tokenyard-request-id"
    )
    if stream:
        lines = answer.body.decode().splitlines()
        kinds = [line for line in lines if line.startswith("event:")] or [lines[-2]]
        return answer.status, answer.headers["content-type"], gateway, kinds
    body = answer.json()
    return (
        answer.status,
        answer.headers["content-type"],
        gateway,
        body.get("object") or body["type"],
    )


@pytest.mark.parametrize(
    ("route", "stream"),
    [
        ("chat", False),
        ("chat", True),
        ("messages", False),
        ("messages", True),
        ("embeddings", False),
    ],
)
def test_a_hot_route_answers_alike_on_both_servers(
    gateway: RunningGateway, key: str, route: str, stream: bool
) -> None:
    """Each hot route once on our server, once on aiohttp's (after a hand-off): the route
    is written once (server/exchange.py), and so is what the client sees."""
    path, body = HOT_CALLS[route]
    raw = request(
        b"POST", path, key, json.dumps({**body, "stream": stream} if stream else body).encode()
    )
    answers = []
    for handed_off in (False, True):
        wire = Wire(gateway)
        try:
            if handed_off:
                wire.send(request(b"GET", b"/healthz", None))
                assert wire.answer().status == 200
            wire.send(raw)
            answer = wire.answer()
        finally:
            wire.close()
        assert answer.native is not handed_off
        answers.append(shape(answer, stream))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200, answers


def test_a_hand_off_split_across_reads_loses_no_byte(wire: Wire, key: str) -> None:
    """The head of the first request, then its body, in separate reads: aiohttp parses it
    whole (here a body it must read: an embedding)."""
    body = json.dumps({"model": "embed-small", "input": "hello"}).encode()
    raw = request(b"POST", b"/v1/embeddings", key, body)
    for piece in (raw[:20], raw[20 : raw.index(HEAD_END) + 4], raw[raw.index(HEAD_END) + 4 :]):
        wire.send(piece)
        time.sleep(0.1)
    embedding = wire.answer()
    assert embedding.status == 200, embedding
    assert embedding.json()["data"][0]["embedding"]
    wire.send(chat(key))
    assert_completion(wire.answer())


def test_another_route_in_a_later_read_waits_for_the_chat_and_is_handed_off(
    wire: Wire, key: str, upstreams: Upstreams
) -> None:
    """The chat is still at the upstream when ``GET /v1/models`` arrives in a read of its
    own: the hand-off waits for the chat's answer, then aiohttp answers the models."""
    upstreams.reset()
    upstreams["openai-a"].stall_next(0.5)
    wire.send(chat(key))
    time.sleep(0.2)
    wire.send(request(b"GET", b"/v1/models", key))
    first = wire.answer()
    assert_completion(first)
    assert first.native and not first.closes
    models = wire.answer()
    assert models.status == 200, models
    assert models.json()["object"] == "list"
    assert not models.native


def test_another_method_on_the_chat_path_is_aiohttp_s_405(wire: Wire, key: str) -> None:
    wire.send(request(b"GET", CHAT, key))
    answer = wire.answer()
    assert answer.status == 405, answer
    assert not answer.native


def test_pipelined_chat_completions_are_answered_in_order(wire: Wire, key: str) -> None:
    """Five at once: more than the connection queues before it stops reading."""
    words = [f"words number {i}" for i in range(5)]
    wire.send(b"".join(request(b"POST", CHAT, key, chat_body(words=w)) for w in words))
    answers = [wire.answer() for _ in words]
    for answer in answers:
        assert_completion(answer)
        assert not answer.closes
    assert len({answer.headers["x-tokenyard-request-id"] for answer in answers}) == len(words)
    for answer, sent in zip(answers, words, strict=True):  # the stand-in echoes the prompt
        assert sent in answer.json()["choices"][0]["message"]["content"], answer.body
    wire.send(chat(key))  # and the connection is still served
    assert_completion(wire.answer())


def test_a_malformed_request_pipelined_after_chats_is_answered_after_them(
    wire: Wire, key: str
) -> None:
    """Each request gets its own answer, in order: the two chats read before the broken
    request are answered first, then its 400, then the connection closes."""
    broken = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"
    wire.send(chat(key) + chat(key) + broken)
    for _ in range(2):
        assert_completion(wire.answer())
    error_of(wire.answer(), 400)
    assert wire.at_end()


def test_another_route_pipelined_after_a_chat_closes_the_connection(wire: Wire, key: str) -> None:
    wire.send(chat(key) + request(b"GET", b"/v1/models", key))
    assert_completion(wire.answer())
    assert wire.at_end(within_s=0.5)  # at once: the models request is for the client to retry


def test_connection_close_is_honoured(wire: Wire, key: str, upstreams: Upstreams) -> None:
    """The request pipelined after a ``Connection: close`` one is ignored: neither served
    nor answered; the connection closes."""
    upstreams.reset()
    wire.send(chat(key, extra=b"Connection: close\r\n") + chat(key))
    answer = wire.answer()
    assert_completion(answer)
    assert answer.closes
    after = wire.unasked(within_s=5)
    assert after == b"", after
    assert wire.at_end(within_s=0.1)
    assert len(upstreams["openai-a"].requests) == 1


def test_a_chunked_request_body_is_read(wire: Wire, key: str) -> None:
    body = chat_body()
    chunks = b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    head = request(b"POST", CHAT + b"?trace=1", key, extra=b"Transfer-Encoding: chunked\r\n")
    wire.send(head + chunks)
    assert_completion(wire.answer())


# -- Expect, HTTP/1.0, streams --------------------------------------------------------------


def test_expect_100_continue_is_answered_before_the_body(wire: Wire, key: str) -> None:
    raw = chat(key, extra=b"Expect: 100-continue\r\n")
    head, body = raw.split(HEAD_END)
    wire.send(head + HEAD_END)
    interim = wire.answer()  # the body has not been sent: only the 100 can come
    assert interim.status == 100
    wire.send(body)
    assert_completion(wire.answer())


def test_an_http_1_0_client_is_answered_and_the_connection_closed(wire: Wire, key: str) -> None:
    wire.send(chat(key, version=b"HTTP/1.0"))
    answer = wire.answer()
    assert_completion(answer)
    assert answer.closes
    assert wire.at_end()


def test_an_http_1_0_client_that_asks_for_keep_alive_keeps_the_connection(
    wire: Wire, key: str
) -> None:
    for _ in range(2):
        wire.send(chat(key, version=b"HTTP/1.0", extra=b"Connection: keep-alive\r\n"))
        answer = wire.answer()
        assert_completion(answer)
        assert answer.headers["connection"] == "keep-alive"  # said: HTTP/1.0 closes otherwise


def test_an_http_1_0_stream_is_not_chunked_and_ends_with_the_connection(
    wire: Wire, key: str
) -> None:
    wire.send(chat(key, stream=True, version=b"HTTP/1.0"))
    answer = wire.answer()  # read up to the close: it must come
    assert answer.status == 200, answer
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "transfer-encoding" not in answer.headers
    assert "content-length" not in answer.headers
    assert answer.closes
    assert answer.body.startswith(b"data: {")
    assert answer.body.endswith(b"data: [DONE]\n\n"), answer.body[-200:]


def test_an_http_1_1_stream_is_chunked_and_keeps_the_connection(wire: Wire, key: str) -> None:
    wire.send(chat(key, stream=True))
    answer = wire.answer()
    assert answer.status == 200, answer
    assert answer.headers["transfer-encoding"] == "chunked"
    assert not answer.closes
    assert answer.raw_body.endswith(b"\r\n0\r\n\r\n")
    events = [e for e in answer.body.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    wire.send(chat(key))
    assert_completion(wire.answer())


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


# -- the log --------------------------------------------------------------------------------


def test_nothing_above_crashed(gateway: RunningGateway) -> None:
    """Last of the tests on the module's gateway: no request above left a trace of a crash
    in its log (its teardown checks the log again after the shutdown)."""
    log = gateway.log()
    assert '"msg":"listening"' in log  # the log is the gateway's, and is read
    assert "Traceback" not in log
    assert "unhandled error" not in log
    assert troubles(log) == []


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
