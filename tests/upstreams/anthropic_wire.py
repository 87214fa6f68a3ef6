"""A deterministic aiohttp stand-in for the Anthropic Messages API (``POST /v1/messages``).

It speaks the wire of anthropic-sdk-python (``types/message_create_params.py``,
``message.py``, ``usage.py``, ``raw_*_event.py``, ``shared/error_response.py``) and checks
requests the way the API does: the key in ``x-api-key`` (SDK 0.x) or ``Authorization:
Bearer`` (SDK 2.x), ``anthropic-version`` 2023-06-01 or 2026-10-21 (which rejects
``temperature``/``top_p``/``top_k``), required
``max_tokens``, only known top-level fields, ``user``/``assistant`` roles, non-empty text
blocks, image sources, ``tool_result`` blocks first and answering the previous turn's
``tool_use`` ids, temperature 0..1, thinking budget ≥ 1024 and < ``max_tokens`` and not
combined with temperature/top_k/forced tool use.

Answers: ``"echo: " + <text of the last user turn>`` one word per token; a JSON object when
``output_config.format`` or a system text asking for a "JSON object" is present; with
tools and "weather" in the text, a text block then one ``tool_use`` per city named (Paris,
Rome, Tokyo; default Paris); a thinking block first when thinking is enabled; "refuse"
gives ``stop_reason: refusal``; "context overflow" gives the API's 400 "prompt is too long";
model ``missing-model`` gives 404. A system text starting with ``cached:`` is reported as a
cache read. Faults: ``fail_next``, ``stall_next``, ``break_stream_next`` (close the stream
after N events), ``error_stream_next`` (an ``event: error`` after N events).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams import background

API_VERSIONS = ("2023-06-01", "2026-10-21")  # the second drops temperature/top_p/top_k
REASONING_TEXT = "The user wants an echo, so I echo."
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
CITIES = ("Paris", "Rome", "Tokyo")
KNOWN_FIELDS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "temperature", "top_p", "top_k",
        "stop_sequences", "stream", "tools", "tool_choice", "thinking", "output_config",
        "metadata", "service_tier", "container", "cache_control", "inference_geo",
    }
)  # fmt: skip
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str | None = None, kind: str | None = None) -> dict[str, Any]:
    kind = kind or ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message or kind.replace("_", " ")},
        "request_id": "req_011standin",
    }


def _json(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Any:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


class Invalid(Exception):
    """The request breaks a rule of the Messages API (answered as a 400)."""


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    raw: bytes


@dataclass
class _Fault:
    status: int
    body: dict[str, Any] | bytes | None  # bytes: a non-JSON page, as a proxy sends
    headers: dict[str, str] | None


@dataclass
class _Answer:
    blocks: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None = None
    thinking_tokens: int = 0
    output_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _words(text: str) -> list[str]:
    pieces = re.findall(r"\s*\S+", text)
    if not pieces:
        return [text] if text else []
    pieces[-1] += text[len("".join(pieces)) :]  # keep trailing whitespace
    return pieces


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for block in content if isinstance(content, list) else ():
        if block.get("type") == "text":
            out.append(block["text"])
        elif block.get("type") == "tool_result":
            out.extend(_texts(block.get("content", "")))
        elif block.get("type") == "image":
            out.append("[image]")
    return out


def _check_block(block: Any, role: str, index: int) -> None:
    where = f"messages.{index}.content"
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise Invalid(f"{where}: text content blocks must be non-empty")
    elif kind == "image" and role == "user":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            if source.get("media_type") not in IMAGE_TYPES or not source.get("data"):
                raise Invalid(f"{where}: invalid image source")
            if str(source["data"]).startswith("data:"):
                raise Invalid(f"{where}: image data must not carry a data: prefix")
        elif source.get("type") != "url" or not str(source.get("url", "")).startswith("http"):
            raise Invalid(f"{where}: invalid image source")
    elif kind == "document" and role == "user":
        if (block.get("source") or {}).get("media_type") != "application/pdf":
            raise Invalid(f"{where}: invalid document source")
    elif kind == "tool_use" and role == "assistant":
        if not isinstance(block.get("input"), dict) or not block.get("id"):
            raise Invalid(f"{where}: tool_use needs an id and an object input")
    elif kind != "tool_result" or role != "user":
        raise Invalid(f"{where}: unexpected block type {kind!r} for role {role!r}")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    pending: set[str] = set()
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            raise Invalid(f"messages.{index}: all messages must have non-empty content")
        for block in blocks:
            _check_block(block, role, index)
        results = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
        if results and any(b.get("type") != "tool_result" for b in blocks[: len(results)]):
            raise Invalid(f"messages.{index}: tool_result blocks must come first")
        if pending and set(results) != pending:
            raise Invalid(
                f"messages.{index}: tool_use ids were found without tool_result blocks "
                f"immediately after: {', '.join(sorted(pending - set(results)))}"
            )
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}


def check_request(body: dict[str, Any]) -> None:
    """Raise :class:`Invalid` where the real API would answer 400."""
    for name in body:
        if name not in KNOWN_FIELDS:
            raise Invalid(f"{name}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise Invalid("max_tokens: Field required")
    _check_messages(body.get("messages"))
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        raise Invalid("temperature: Input should be less than or equal to 1")
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        raise Invalid("stop_sequences: Input should be a valid list of strings")
    for tool in body.get("tools") or ():
        if set(tool) - {"name", "description", "input_schema", "strict", "cache_control"}:
            raise Invalid("tools.0: Extra inputs are not permitted")
        if not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
            raise Invalid("tools.0: name and input_schema are required")
    choice = body.get("tool_choice")
    if choice is not None and choice.get("type") not in ("auto", "any", "tool", "none"):
        raise Invalid("tool_choice: invalid type")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024 or budget >= max_tokens:
            raise Invalid("thinking.budget_tokens: must be >= 1024 and less than max_tokens")
        if temperature not in (None, 1) or body.get("top_k") is not None:
            raise Invalid("temperature may only be set to 1 when thinking is enabled")
        if choice is not None and choice.get("type") in ("any", "tool"):
            raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")
    fmt = (body.get("output_config") or {}).get("format")
    if fmt is not None and (
        fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict)
    ):
        raise Invalid("output_config.format: invalid")


def _system_texts(body: dict[str, Any]) -> list[str]:
    system = body.get("system")
    return [system] if isinstance(system, str) else [b["text"] for b in system or ()]


def usage_of(body: dict[str, Any], answer: _Answer) -> dict[str, Any]:
    system = _system_texts(body)
    system_words = sum(len(t.split()) for t in system)
    message_words = sum(len(" ".join(_texts(m["content"])).split()) + 3 for m in body["messages"])
    cached = system_words if system and system[0].startswith("cached:") else 0
    usage: dict[str, Any] = {
        "input_tokens": system_words + message_words - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": answer.output_tokens,
        "service_tier": "standard",
    }
    if answer.thinking_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": answer.thinking_tokens}
    return usage


def answer_for(body: dict[str, Any], seq: int) -> _Answer:
    last = body["messages"][-1]
    text = " ".join(_texts(last["content"])) if last["role"] == "user" else ""
    blocks: list[dict[str, Any]] = []
    thinking = (body.get("thinking") or {}).get("type") == "enabled"
    thought = len(_words(REASONING_TEXT)) if thinking else 0
    if thinking:
        blocks.append({"type": "thinking", "thinking": REASONING_TEXT, "signature": SIGNATURE})
    if body.get("tools") and "weather" in text.lower():
        cities = [c for c in CITIES if c in text] or ["Paris"]
        name = body["tools"][0]["name"]
        blocks.append({"type": "text", "text": "Let me check."})
        for k, city in enumerate(cities):
            call = {"type": "tool_use", "id": f"toolu_{seq:02d}{k}", "name": name}
            blocks.append({**call, "input": {"city": city}})
        return _Answer(blocks, "tool_use", None, thought, thought + 3 + 2 * len(cities))
    system = " ".join(_system_texts(body))
    if (body.get("output_config") or {}).get("format") or "JSON object" in system:
        reply = json.dumps({"echo": text})
    else:
        reply = "echo: " + text
    stop, reason = None, "refusal" if "refuse" in text else "end_turn"
    for candidate in body.get("stop_sequences") or ():
        if candidate in reply:
            reply, stop, reason = reply[: reply.index(candidate)], candidate, "stop_sequence"
    pieces = _words(reply)
    if len(pieces) > body["max_tokens"] - thought:
        pieces, reason = pieces[: max(body["max_tokens"] - thought, 0)], "max_tokens"
    if pieces:
        blocks.append({"type": "text", "text": "".join(pieces)})
    extra = {}
    if reason == "refusal":
        extra["stop_details"] = {"type": "refusal", "category": "cyber", "explanation": "No."}
    return _Answer(blocks, reason, stop, thought, thought + len(pieces), extra)


def events_for(message: dict[str, Any], answer: _Answer) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events (name, data) that stream ``message``."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    head = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    head.pop("stop_details", None)
    out: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {**head, "usage": start_usage}}),
        ("ping", {"type": "ping"}),
    ]

    def delta(index: int, body: dict[str, Any]) -> None:
        out.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})
        )

    for index, block in enumerate(answer.blocks):
        kind = block["type"]
        shell = {"text": ""} if kind == "text" else {"thinking": "", "signature": ""}
        if kind == "tool_use":
            shell = {"id": block["id"], "name": block["name"], "input": {}}
        start = {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": kind, **shell},
        }
        out.append(("content_block_start", start))
        if kind == "text":
            for piece in _words(block["text"]):
                delta(index, {"type": "text_delta", "text": piece})
        elif kind == "thinking":
            for piece in _words(block["thinking"]):
                delta(index, {"type": "thinking_delta", "thinking": piece})
            delta(index, {"type": "signature_delta", "signature": block["signature"]})
        else:
            arguments = json.dumps(block["input"])
            half = len(arguments) // 2
            for fragment in ("", arguments[:half], arguments[half:]):
                delta(index, {"type": "input_json_delta", "partial_json": fragment})
        out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    final_delta: dict[str, Any] = {
        "stop_reason": answer.stop_reason,
        "stop_sequence": answer.stop_sequence,
    }
    final_delta.update(answer.extra)
    end_usage = {k: v for k, v in usage.items() if k != "service_tier"}
    out.append(
        ("message_delta", {"type": "message_delta", "delta": final_delta, "usage": end_usage})
    )
    out.append(("message_stop", {"type": "message_stop"}))
    return out


class AnthropicStandIn:
    """The stand-in server; ``requests`` records what it received."""

    def __init__(self, api_key: str | None = "sk-ant-test") -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.base_url: str | None = None
        self._faults: deque[_Fault] = deque()
        self._stalls: deque[float] = deque()
        self._breaks: deque[int] = deque()
        self._errors: deque[tuple[int, str]] = deque()
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._seq = 0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=1.0,
            access_log=None,
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(status, body, headers))

    def stall_next(self, seconds: float) -> None:
        with self._lock:
            self._stalls.append(seconds)

    def break_stream_next(self, after_events: int) -> None:
        with self._lock:
            self._breaks.append(after_events)

    def error_stream_next(self, after_events: int, kind: str = "overloaded_error") -> None:
        with self._lock:
            self._errors.append((after_events, kind))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            for queue in (self._faults, self._stalls, self._breaks, self._errors):
                queue.clear()

    def _pop(self, queue: deque[Any]) -> Any:
        with self._lock:
            return queue.popleft() if queue else None

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        self.requests.append(Recorded(request.path, headers, body, raw))
        if (stall := self._pop(self._stalls)) is not None:
            await asyncio.sleep(stall)
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and key != self.api_key:
            return _json(error_body(401, "invalid x-api-key"), 401)
        version = headers.get("anthropic-version")
        if version not in API_VERSIONS:
            return _json(error_body(400, "anthropic-version: header is required"), 400)
        if (fault := self._pop(self._faults)) is not None:
            if isinstance(fault.body, bytes):
                return web.Response(body=fault.body, status=fault.status, content_type="text/html")
            return _json(fault.body or error_body(fault.status), fault.status, fault.headers)
        if parsed is None or not isinstance(parsed, dict):
            return _json(error_body(400, "There was an issue with the request body: not JSON"), 400)
        try:
            check_request(body)
            for name in ("temperature", "top_p", "top_k"):
                if version == API_VERSIONS[1] and name in body:
                    raise Invalid(f"{name}: Extra inputs are not permitted")
        except Invalid as exc:
            return _json(error_body(400, str(exc)), 400)
        if body["model"] == "missing-model":
            return _json(error_body(404, f"model: {body['model']}"), 404)
        if "context overflow" in " ".join(_texts(body["messages"][-1]["content"])):
            return _json(error_body(400, "prompt is too long: 208656 tokens > 200000 maximum"), 400)
        self._seq += 1
        answer = answer_for(body, self._seq)
        message = {
            "id": f"msg_standin_{self._seq}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": answer.blocks,
            "stop_reason": answer.stop_reason,
            "stop_sequence": answer.stop_sequence,
            **answer.extra,
            "usage": usage_of(body, answer),
        }
        if body.get("stream") is True:
            return await self._stream(request, events_for(message, answer))
        return _json(message, headers={"request-id": "req_011standin"})

    async def _stream(
        self, request: web.Request, events: list[tuple[str, dict[str, Any]]]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        cut, error = self._pop(self._breaks), self._pop(self._errors)
        if cut is not None:
            events = events[:cut]
        if error is not None:
            events = events[: error[0]]
            events.append(("error", error_body(529, "Overloaded", error[1])))
        for name, data in events:
            await response.write(f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")
        if cut is not None:
            response.force_close()
        await response.write_eof()
        return response


def run_in_thread(upstream: AnthropicStandIn) -> tuple[str, Callable[[], None]]:
    """Start the server on its own loop in a daemon thread; returns (base_url, stop)."""
    url, stop = background.run_in_thread(upstream, "anthropic-standin")
    return str(url), stop
