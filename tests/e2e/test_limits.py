"""The limits of ``server:`` on what one client may send, against one real gateway: message
count, header size and count, slow clients (slowloris, in the head and in the body), JSON
nesting, invalid UTF-8, and absurd ``n`` / ``max_tokens``. Each ends in the SPEC status with
an OpenAI-shaped error (Anthropic-shaped on /v1/messages), never a 5xx, and a request that
cannot be paid for reserves nothing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Upstreams, limited_gateway
from tests.e2e.harness import ADMIN_KEY, RunningGateway
from tests.e2e.test_errors import error_of

USER = [{"role": "user", "content": "hello there gateway"}]
CLOSED_WITHIN_S = 30.0
"""How long a test waits for the gateway to hang up on a slow client (generous: the
configured timeouts are 1 s, and so is the lingering after an early answer)."""


@pytest.fixture(scope="module")
def gateway(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    running = limited_gateway(upstreams, tmp_path_factory.mktemp("limits"))
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def account(gateway: RunningGateway) -> str:
    return gateway.new_account("limits", credit="10")


@pytest.fixture(scope="module")
def key(gateway: RunningGateway, account: str) -> str:
    return gateway.new_key(account)


def chat(gateway: RunningGateway, key: str, **body: Any) -> httpx.Response:
    return gateway.post("/v1/chat/completions", key, json={"messages": USER, **body})


def nested(depth: int) -> Any:
    """An array ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def anthropic_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    message: str = body["error"]["message"]
    return message


# -- message count --------------------------------------------------------------------------


def test_more_messages_than_the_limit_are_400(gateway: RunningGateway, key: str) -> None:
    messages = USER * 51
    error = error_of(
        chat(gateway, key, model="gpt-mini", messages=messages),
        400,
        "invalid_request_error",
        None,
    )
    assert error["param"] == "messages"
    assert "at most 50" in error["message"]
    anthropic = gateway.post(
        "/v1/messages", key, json={"model": "gpt-mini", "max_tokens": 5, "messages": messages}
    )
    assert "at most 50" in anthropic_error(anthropic, 400)
    assert chat(gateway, key, model="gpt-mini", messages=USER * 50).status_code == 200


# -- headers --------------------------------------------------------------------------------


def test_oversized_or_too_many_headers_are_refused_with_400(gateway: RunningGateway) -> None:
    for headers in ({"x-big": "a" * 5000}, {f"x-h{i}": "1" for i in range(40)}):
        with httpx.Client(base_url=gateway.base_url) as client:
            response = client.get("/v1/models", headers=headers)
        assert response.status_code == 400  # by aiohttp's HTTP parser, before any route
    assert gateway.http.get("/healthz").status_code == 200  # and the server is unharmed


def test_a_key_that_is_not_ascii_is_401_not_500(gateway: RunningGateway) -> None:
    for raw in (b"Bearer ty-\xff\xfe", "Bearer ty-ключ".encode()):
        with httpx.Client(base_url=gateway.base_url) as client:
            for path in ("/v1/models", "/admin/usage"):
                response = client.get(path, headers={"Authorization": raw})
                error_of(response, 401, "authentication_error", "invalid_api_key")


# -- slow clients ---------------------------------------------------------------------------


def dribble(gateway: RunningGateway, head: bytes, body: bytes) -> tuple[bytes, float]:
    """Send ``head`` at once, then ``body`` a byte at a time every 0.2 s, until the gateway
    hangs up; returns what it answered and how long it kept the connection."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    received = b""
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=CLOSED_WITHIN_S) as sock:
        sock.sendall(head)
        sock.settimeout(0.2)
        for byte in body:
            if time.monotonic() - started > CLOSED_WITHIN_S:
                break
            try:
                sock.send(bytes([byte]))
            except OSError:  # reset or broken pipe: hung up
                return received, time.monotonic() - started
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return received, time.monotonic() - started
            if not chunk:
                return received, time.monotonic() - started
            received += chunk
        sock.settimeout(CLOSED_WITHIN_S)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
    return received, time.monotonic() - started


def test_a_client_dribbling_its_headers_is_cut_off(gateway: RunningGateway) -> None:
    endless = b"x-slow: " + b"a" * 400  # never ends its header line
    received, held = dribble(gateway, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n", endless)
    assert received == b""  # nothing to answer: no request ever arrived
    assert held < CLOSED_WITHIN_S  # hung up by header_timeout_s, not by this test
    assert gateway.http.get("/healthz").status_code == 200


def test_a_client_dribbling_its_body_gets_408_and_is_cut_off(
    gateway: RunningGateway, key: str
) -> None:
    body = b'{"model": "gpt-mini", "messages": [' + b" " * 300 + b"]}"
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    received, held = dribble(gateway, head, body)
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), received[:300]
    error = httpx.Response(408, content=rest.partition(b"\r\n\r\n")[2]).json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_timeout")
    assert held < CLOSED_WITHIN_S


# -- JSON -----------------------------------------------------------------------------------


def test_json_nested_deeper_than_the_limit_is_400(gateway: RunningGateway, key: str) -> None:
    """The body's own object is level 1: ``metadata`` adds ``depth`` more."""
    head = b'{"model": "gpt-mini", "messages": [{"role": "user", "content": "hi"}], "metadata": '
    for depth, says in ((32, "deeper than 32"), (300, "deeper than 32"), (5000, "not valid JSON")):
        raw = head + b"[" * depth + b"]" * depth + b"}"  # 5000 is over orjson's own limit
        response = gateway.post("/v1/chat/completions", key, content=raw)
        assert says in error_of(response, 400, "invalid_request_error", None)["message"]
    assert (
        gateway.post(
            "/v1/chat/completions", key, content=head + b"[" * 31 + b"]" * 31 + b"}"
        ).status_code
        == 200
    )
    anthropic = gateway.post(
        "/v1/messages",
        key,
        json={"model": "gpt-mini", "max_tokens": 5, "messages": USER, "metadata": nested(40)},
    )
    assert "deeper than 32" in anthropic_error(anthropic, 400)


def test_json_nested_within_the_limit_is_served(gateway: RunningGateway, key: str) -> None:
    """About 30 levels (the body, a tool, its schema) pass the Anthropic edge translator and
    the OpenAI wire to the upstream. No translator recurses into a client's values, and the
    limit (at most 200) stays below what the codec can write upstream (254)."""
    schema: Any = {"type": "string"}
    for _ in range(12):
        schema = {"type": "object", "properties": {"a": schema}}
    tool = {"name": "deep", "description": "d", "input_schema": schema}
    response = gateway.post(
        "/v1/messages",
        key,
        json={"model": "gpt-mini", "max_tokens": 5, "messages": USER, "tools": [tool]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    function = {"name": "deep", "parameters": schema}
    answer = chat(
        gateway, key, model="gpt-mini", tools=[{"type": "function", "function": function}]
    )
    assert answer.status_code == 200, answer.text


def test_invalid_utf8_and_lone_surrogates_are_400(gateway: RunningGateway, key: str) -> None:
    for text in (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\\ud800"):
        raw = b'{"model": "gpt-mini", "messages": [{"role": "user", "content": "' + text + b'"}]}'
        for path in ("/v1/chat/completions", "/admin/accounts"):
            response = gateway.post(path, key, content=raw)
            if path == "/admin/accounts":
                assert response.status_code == 401  # the admin key comes before the body
                continue
            error_of(response, 400, "invalid_request_error", None)
    response = gateway.http.post(
        "/admin/accounts",
        content=b'{"name": "\xff"}',
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    error_of(response, 400, "invalid_request_error", None)


# -- n and max_tokens -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [129, 10**6, 10**30, -1, 0])
def test_n_out_of_range_is_400(gateway: RunningGateway, key: str, n: int) -> None:
    error = error_of(chat(gateway, key, model="gpt-mini", n=n), 400, "invalid_request_error", None)
    assert error["param"] == "n"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_over_what_the_model_can_write_is_400(
    gateway: RunningGateway, key: str, field: str
) -> None:
    """gpt-mini declares a 4096-token window: it cannot write 10**12 tokens."""
    response = chat(gateway, key, model="gpt-mini", **{field: 10**12})
    error = error_of(response, 400, "invalid_request_error", None)
    assert error["param"] == field
    assert "4096" in error["message"]
    anthropic = gateway.post(
        "/v1/messages", key, json={"model": "gpt-mini", "max_tokens": 10**12, "messages": USER}
    )
    assert "4096" in anthropic_error(anthropic, 400)


def test_a_hold_over_any_balance_is_402_and_reserves_nothing(
    gateway: RunningGateway, key: str, account: str
) -> None:
    """deepseek-chat declares no limits: the hold for max_tokens × n is beyond the balance
    (10**12) or beyond what any balance can be (10**18 × 128, over 64 bits): 402 either way,
    and nothing stays reserved."""
    before = gateway.admin("GET", f"/admin/accounts/{account}").json()
    for max_tokens, n in ((10**12, 1), (10**18, 128), (2**63, 1)):
        response = chat(gateway, key, model="deepseek-chat", max_tokens=max_tokens, n=n)
        error_of(response, 402, "insufficient_quota", "insufficient_quota")
    anthropic = gateway.post(
        "/v1/messages", key, json={"model": "deepseek-chat", "max_tokens": 10**18, "messages": USER}
    )
    anthropic_error(anthropic, 402)
    after = gateway.admin("GET", f"/admin/accounts/{account}").json()
    assert (after["balance"], after["reserved"]) == (before["balance"], "0.000000")


# -- amounts and numbers of the admin API ---------------------------------------------------


def test_amounts_beyond_the_ledger_are_400_and_change_nothing(gateway: RunningGateway) -> None:
    """Money columns are signed 64-bit nano-units (about 9.2e9 units): a credit, a budget
    or a sum of credits beyond them is refused, never stored wrong (SQLite would silently
    turn the balance into a float) and never a 5xx."""
    account = gateway.new_account("rich", credit=None)
    path = f"/admin/accounts/{account}/credits"
    for amount in ("9" * 25, "-" + "9" * 25, "9300000000", "1e400"):
        response = gateway.admin("POST", path, {"amount": amount, "reference": amount})
        assert error_of(response, 400, "invalid_request_error", None)["param"] == "amount"
    assert gateway.credit(account, "9000000000") == "9000000000.000000"
    response = gateway.admin("POST", path, {"amount": "9000000000", "reference": "twice"})
    assert error_of(response, 400, "invalid_request_error", None)["param"] == "amount"
    assert gateway.admin("GET", f"/admin/accounts/{account}").json()["balance"] == (
        "9000000000.000000"
    )
    for field, value in (("budget", "9" * 25), ("rpm", 2**63), ("tpm", 2**31)):
        response = gateway.admin("POST", "/admin/keys", {"account_id": account, field: value})
        assert error_of(response, 400, "invalid_request_error", None)["param"] == field


@pytest.mark.parametrize("month", ["0000-01", "9999-12"])
def test_an_invoice_month_out_of_range_is_400(gateway: RunningGateway, month: str) -> None:
    account = gateway.new_account("invoiced", credit=None)
    response = gateway.admin("GET", f"/admin/accounts/{account}/invoice?month={month}")
    assert error_of(response, 400, "invalid_request_error", None)["param"] == "month"
