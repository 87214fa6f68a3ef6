"""A deterministic aiohttp stand-in for iFlytek Spark: the classic WebSocket API and the
OpenAI-compatible HTTP API (providers.md §9).

WebSocket (``GET <path>`` upgraded, one path per model version as iFlytek documents them): the
handshake is refused unless ``authorization``/``date``/``host`` verify against the configured
``APISecret`` exactly as xfyun.cn/doc/spark/general_url_authentication.html describes (401 for
a bad signature, 403 for a date more than 300 s off), then one request frame is read and
checked (app id, ``domain`` matching the path, roles, value ranges) and the answer is sent as
frames with ``header.status`` 0/1/2, usage in the last one.

HTTP (``POST /v1/chat/completions`` and ``/v2/…``): ``Authorization: Bearer <APIPassword>``;
bodies and chunks carry ``code``/``message``/``sid``, no ``finish_reason``, stream lines are
``data:{…}`` without a space, every delta repeats ``role``, usage rides on the last chunk, and
tool calls are an array only when ``tool_calls_switch`` is true (one object otherwise).

Answers: ``"echo: " + <last user text>`` one word per frame/chunk; a request with functions
whose last user text mentions "weather" gets a function call; the ``x1`` model reasons first.
Token counts are word counts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from tests.upstreams import background

CREATED = 1_760_000_000
REASONING_TEXT = "Let me think about it."
WS_DOMAINS = {
    "/v1.1/chat": "lite",
    "/v3.1/chat": "generalv3",
    "/chat/pro-128k": "pro-128k",
    "/v3.5/chat": "generalv3.5",
    "/chat/max-32k": "max-32k",
    "/v4.0/chat": "4.0Ultra",
    "/v1/x1": "x1",
}
HTTP_MODELS = frozenset(WS_DOMAINS.values())
_AUTH = re.compile(
    r'^api_key="(?P<key>[^"]*)", algorithm="hmac-sha256", '
    r'headers="host date request-line", signature="(?P<sig>[^"]*)"$'
)


@dataclass
class WsRecord:
    path: str
    query: dict[str, str]
    frame: dict[str, Any]
    closed_early: bool = False


@dataclass
class HttpRecord:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _Fault:
    code: int | None = None  # business error code
    after: int = 0  # answer frames/chunks sent first
    drop: bool = False  # close without finishing
    stall_s: float = 0.0
    omit_usage: bool = False
    http_status: int | None = None
    http_body: dict[str, Any] | None = None
    http_headers: dict[str, str] | None = None
    slow: bool = False  # WebSocket: wait between frames, noticing a client's close


@dataclass
class _Answer:
    pieces: list[str]
    reasoning: list[str] = field(default_factory=list)
    call: tuple[str, str] | None = None  # (name, arguments)
    prompt_tokens: int = 0

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces) + len(self.reasoning) + (1 if self.call else 0)

    def usage(self) -> dict[str, int]:
        total = self.prompt_tokens + self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": total,
        }


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def _answer(
    messages: list[dict[str, Any]], functions: list[Any], model: str, limit: Any
) -> _Answer:
    user = next(
        (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), ""
    )
    prompt = sum(len(str(m.get("content") or "").split()) + 3 for m in messages)
    reasoning = _words(REASONING_TEXT) if model == "x1" else []
    if functions and "weather" in user.lower():
        name = str(functions[0].get("name") or (functions[0].get("function") or {}).get("name"))
        return _Answer([], reasoning, (name, '{"city":"Paris"}'), prompt)
    pieces = _words("echo: " + user)
    if isinstance(limit, int) and 1 <= limit < len(pieces):
        pieces = pieces[:limit]
    return _Answer(pieces, reasoning, None, prompt)


def _problem(frame: dict[str, Any], domain: str, app_id: str) -> tuple[int, str] | None:
    """(code, message) for a request frame the real service would refuse."""
    header, chat = frame.get("header") or {}, (frame.get("parameter") or {}).get("chat") or {}
    text = ((frame.get("payload") or {}).get("message") or {}).get("text")
    if header.get("app_id") != app_id:
        return 10005, "app_id does not match the signing key"
    if chat.get("domain") != domain:
        return 10005, f"domain {chat.get('domain')!r} is not served at this path"
    if not isinstance(text, list) or not text:
        return 10004, "payload.message.text must be a non-empty array"
    for index, message in enumerate(text):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "user", "assistant") or not isinstance(
            message.get("content"), str
        ):
            return 10004, f"payload.message.text[{index}] is not a {{role, content}} text"
        if role == "system" and index != 0:
            return 10004, "the system message must come first"
    temperature = chat.get("temperature", 0.5)
    if not 0 < temperature <= 1:
        return 10005, "temperature must be in (0, 1]"
    if not 1 <= chat.get("top_k", 4) <= 6:
        return 10005, "top_k must be in [1, 6]"
    limit = 4096 if domain in ("lite", "pro-128k") else 32768 if domain == "x1" else 8192
    if not 1 <= chat.get("max_tokens", 1) <= limit:
        return 10005, f"max_tokens must be in [1, {limit}]"
    return None


class SparkStandIn:
    """Stand-in Spark upstream. ``apps`` maps APIKey → (app id, APISecret)."""

    def __init__(
        self,
        apps: dict[str, tuple[str, str]] | None = None,
        password: str = "spark-password",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.apps = apps or {"key-1": ("app00001", "secret-1")}
        self.password = password
        self.clock = clock
        self.ws_requests: list[WsRecord] = []
        self.http_requests: list[HttpRecord] = []
        self.handshake_failures: list[int] = []
        self.port = 0
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._seq = 0

    @property
    def ws_base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application()
        for path in WS_DOMAINS:
            app.router.add_get(path, self._ws)
        app.router.add_post("/v1/chat/completions", self._http)
        app.router.add_post("/v2/chat/completions", self._http)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ fault injection
    def fail_next(self, code: int, after: int = 0) -> None:
        """The next answer sends ``after`` frames/chunks, then a business error ``code``."""
        self._push(_Fault(code=code, after=after))

    def drop_next(self, after: int) -> None:
        """The next answer breaks off (socket/stream closed) after ``after`` frames/chunks."""
        self._push(_Fault(drop=True, after=after))

    def stall_next(self, seconds: float) -> None:
        self._push(_Fault(stall_s=seconds))

    def slow_next(self) -> None:
        self._push(_Fault(slow=True))

    def omit_usage_next(self) -> None:
        self._push(_Fault(omit_usage=True))

    def http_fail_next(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._push(_Fault(http_status=status, http_body=body, http_headers=headers))

    def reset(self) -> None:
        with self._lock:
            self.ws_requests.clear()
            self.http_requests.clear()
            self.handshake_failures.clear()
            self._faults.clear()

    def _push(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _pop(self) -> _Fault:
        with self._lock:
            return self._faults.popleft() if self._faults else _Fault()

    def _sid(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:06d}@dx18793cd421fb8945"

    # ------------------------------------------------------------------ WebSocket
    def _verify(self, request: web.Request) -> tuple[int, str, str] | None:
        """(status, message, app id): the handshake verdict; None means refused silently."""
        query = request.query
        authorization, date, host = query.get("authorization"), query.get("date"), query.get("host")
        if not (authorization and date and host):
            return 401, "authorization, date and host are required", ""
        if host != request.host:
            return 401, "host does not match the request", ""
        try:
            origin = base64.b64decode(authorization).decode()
            sent = parsedate_to_datetime(date).timestamp()
        except (ValueError, TypeError):
            return 401, "malformed authorization or date", ""
        if abs(self.clock() - sent) > 300:
            return 403, "HMAC signature does not conform (clock skew)", ""
        match = _AUTH.match(origin)
        if match is None or match["key"] not in self.apps:
            return 401, "HMAC signature cannot be verified", ""
        app_id, secret = self.apps[match["key"]]
        signed = f"host: {host}\ndate: {date}\nGET {request.path} HTTP/1.1"
        expected = base64.b64encode(
            hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, match["sig"]):
            return 401, "HMAC signature cannot be verified", ""
        return 101, "", app_id

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        status, message, app_id = self._verify(request) or (401, "refused", "")
        if status != 101:
            self.handshake_failures.append(status)
            return web.json_response({"message": message}, status=status)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        msg = await ws.receive(timeout=10)
        frame = orjson.loads(msg.data) if msg.type == WSMsgType.TEXT else {}
        record = WsRecord(request.path, dict(request.query), frame)
        self.ws_requests.append(record)
        fault = self._pop()
        sid = self._sid("cht")
        if fault.stall_s:
            await asyncio.sleep(fault.stall_s)
        problem = _problem(frame, WS_DOMAINS[request.path], app_id)
        if problem is not None:
            await self._ws_error(ws, sid, *problem)
            return ws
        chat = frame["parameter"]["chat"]
        text = frame["payload"]["message"]["text"]
        functions = ((frame["payload"].get("functions") or {}).get("text")) or []
        answer = _answer(text, functions, chat["domain"], chat.get("max_tokens"))
        frames = self._ws_frames(answer, sid, fault.omit_usage)
        if fault.code is not None or fault.drop:
            frames = frames[: fault.after]
        for out in frames:
            await ws.send_bytes(orjson.dumps(out))
            if fault.slow and out is not frames[-1]:
                try:
                    msg = await ws.receive(timeout=0.1)
                except TimeoutError:
                    continue
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    record.closed_early = True
                    return ws
        if fault.code is not None:
            await self._ws_error(ws, sid, fault.code, "injected failure")
        await ws.close()
        return ws

    @staticmethod
    async def _ws_error(ws: web.WebSocketResponse, sid: str, code: int, message: str) -> None:
        await ws.send_bytes(
            orjson.dumps({"header": {"code": code, "message": message, "sid": sid, "status": 2}})
        )
        await ws.close()

    @staticmethod
    def _ws_frames(answer: _Answer, sid: str, omit_usage: bool) -> list[dict[str, Any]]:
        texts: list[dict[str, Any]] = [
            {"content": "", "reasoning_content": r, "role": "assistant", "index": 0}
            for r in answer.reasoning
        ]
        texts += [{"content": p, "role": "assistant", "index": 0} for p in answer.pieces]
        if answer.call is not None:
            name, arguments = answer.call
            call = {"name": name, "arguments": arguments}
            texts.append({"content": "", "role": "assistant", "index": 0, "function_call": call})
        texts = texts or [{"content": "", "role": "assistant", "index": 0}]
        frames = []
        for seq, text in enumerate(texts):
            status = 2 if seq == len(texts) - 1 else 0 if seq == 0 else 1
            frame: dict[str, Any] = {
                "header": {"code": 0, "message": "Success", "sid": sid, "status": status},
                "payload": {"choices": {"status": status, "seq": seq, "text": [text]}},
            }
            if status == 2 and not omit_usage:
                usage = {"question_tokens": 4, **answer.usage()}
                frame["payload"]["usage"] = {"text": usage}
            frames.append(frame)
        return frames

    # ------------------------------------------------------------------ HTTP
    async def _http(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.http_requests.append(HttpRecord(request.path, headers, body))
        if headers.get("authorization") != f"Bearer {self.password}":
            error = {"message": "invalid user", "type": "api_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=401)
        fault = self._pop()
        if fault.stall_s:
            await asyncio.sleep(fault.stall_s)
        if fault.http_status is not None:
            return web.json_response(
                fault.http_body, status=fault.http_status, headers=fault.http_headers
            )
        sid = self._sid("cha")
        if fault.code is not None and fault.after == 0 and not body.get("stream"):
            return web.json_response(
                {"code": fault.code, "message": "injected failure", "sid": sid}
            )
        if body.get("model") not in HTTP_MODELS:
            return web.json_response({"code": 10005, "message": "model not found", "sid": sid})
        answer = _answer(
            body["messages"], body.get("tools") or [], body["model"], body.get("max_tokens")
        )
        switch = body.get("tool_calls_switch") is True
        if body.get("stream"):
            return await self._http_stream(request, answer, sid, switch, fault)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.pieces)}
        if answer.reasoning:
            message["reasoning_content"] = "".join(answer.reasoning)
        if answer.call is not None:
            message["tool_calls"] = self._http_calls(answer.call, switch)
        out: dict[str, Any] = {
            "code": 0,
            "message": "Success",
            "sid": sid,
            "choices": [{"message": message, "index": 0}],
        }
        if not fault.omit_usage:
            out["usage"] = answer.usage()
        return web.json_response(out)

    @staticmethod
    def _http_calls(call: tuple[str, str], switch: bool) -> Any:
        name, arguments = call
        function = {"name": name, "arguments": arguments}
        if switch:
            return [{"id": "call_spark_1", "type": "function", "function": function}]
        return {"type": "function", "function": function}  # Spark's default: one object

    async def _http_stream(
        self, request: web.Request, answer: _Answer, sid: str, switch: bool, fault: _Fault
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        head = {"code": 0, "message": "Success", "sid": sid, "id": sid, "created": CREATED}
        deltas: list[dict[str, Any]] = [
            {"role": "assistant", "content": "", "reasoning_content": r} for r in answer.reasoning
        ]
        deltas += [{"role": "assistant", "content": p} for p in answer.pieces]
        if answer.call is not None:
            calls = self._http_calls(answer.call, switch)
            deltas.append({"role": "assistant", "content": "", "tool_calls": calls})
        chunks = [{**head, "choices": [{"delta": d, "index": 0}]} for d in deltas]
        last = {**head, "choices": [{"delta": {"role": "assistant", "content": ""}, "index": 0}]}
        if not fault.omit_usage:
            last["usage"] = answer.usage()
        chunks.append(last)
        if fault.code is not None or fault.drop:
            chunks = chunks[: fault.after]
        for chunk in chunks:
            await response.write(b"data:" + orjson.dumps(chunk) + b"\n\n")
        if fault.code is not None:
            error = {"code": fault.code, "message": "injected failure", "sid": sid}
            await response.write(b"data:" + orjson.dumps(error) + b"\n\n")
        if fault.drop:
            response.force_close()
        else:
            await response.write(b"data:[DONE]\n\n")
        await response.write_eof()
        return response


def run_in_thread(upstream: SparkStandIn) -> Callable[[], None]:
    """Start the stand-in on its own event loop in a daemon thread; returns ``stop``."""
    _, stop = background.run_in_thread(upstream, "spark-standin")
    return stop
