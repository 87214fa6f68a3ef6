"""The gateway's own HTTP/1.1 server (server/native/), against a real gateway process, over
raw sockets: keep-alive, the hand-off of a connection to aiohttp, pipelining,
``Expect: 100-continue``, HTTP/1.0 clients and chunked streams. Exact bytes go out and
whole answers are read back, so each test sees what a client sees on the wire (the
fixtures: tests/server/conftest.py; limits and faults: test_native_limits.py)."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import RunningGateway
from tests.server.wire import (
    CHAT,
    HEAD_END,
    Answer,
    Wire,
    assert_completion,
    chat,
    chat_body,
    error_of,
    request,
    troubles,
)

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


# -- the log --------------------------------------------------------------------------------


def test_nothing_above_crashed(gateway: RunningGateway) -> None:
    """Last of the tests on the module's gateway: no request above left a trace of a crash
    in its log (its teardown checks the log again after the shutdown)."""
    log = gateway.log()
    assert '"msg":"listening"' in log  # the log is the gateway's, and is read
    assert "Traceback" not in log
    assert "unhandled error" not in log
    assert troubles(log) == []
