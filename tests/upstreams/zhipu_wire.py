"""A deterministic aiohttp stand-in for the Zhipu GLM v4 API (providers.md §7).

Routes: ``POST /api/paas/v4/chat/completions`` and ``POST /api/paas/v4/embeddings``; the base
URL is ``http://127.0.0.1:<port>/api/paas/v4``. It checks what the real API checks (as far as
the docs and the official SDK tell): the bearer is the raw key or an HS256 JWT signed with the
key's secret (header ``sign_type: SIGN``, millisecond ``exp``/``timestamp``); temperature and
top_p strictly inside (0, 1); string content for system/assistant/tool; bare base64 images;
``tool_choice`` only ``"auto"``; no unknown top-level fields. Errors use the string business
codes (``{"error": {"code": "1214", "message": ...}}``).

Answers are ``"echo: " + <last user text>``. Words in the user text steer it: ``weather``
(with tools) → a tool call (``two cities`` → two calls), ``context overflow`` → 1261,
``unsafe`` → 1301, ``blocked output`` → finish ``sensitive``, ``network failure`` → finish
``network_error``. ``thinking: {"type": "enabled"}`` adds ``reasoning_content``; a system
message starting with ``cached:`` reports cache hits. Token counts are word counts.
Fault injection: ``fail_next``, ``break_stream_next`` (an error frame after N chunks) and
``script_next`` (the raw SSE body of the next stream).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.openai_wire import run_in_thread

__all__ = ["CREATED", "Recorded", "ZhipuStandIn", "run_in_thread"]

CREATED = 1_760_000_000
REASONING = "Let me think."
FIELDS = frozenset(
    {
        "model",
        "request_id",
        "user_id",
        "do_sample",
        "stream",
        "temperature",
        "top_p",
        "max_tokens",
        "seed",
        "messages",
        "stop",
        "sensitive_word_check",
        "tools",
        "tool_choice",
        "meta",
        "extra",
        "response_format",
        "thinking",
    }
)
EMBEDDING_FIELDS = frozenset(
    {"model", "input", "dimensions", "encoding_format", "user", "request_id"}
)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


def _err(code: str, message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _words(text: str) -> list[str]:
    pieces = re.findall(r"\s*\S+", text)
    return pieces or ([text] if text else [])


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


class ZhipuStandIn:
    def __init__(
        self,
        api_key: str = "kid123.s3cr3t-value",
        *,
        accept_raw: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.accept_raw = accept_raw
        self.clock = clock
        self.requests: list[Recorded] = []
        self.base_url: str | None = None
        self._failures: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque()
        self._breaks: deque[tuple[int, str, str]] = deque()
        self._scripts: deque[list[bytes]] = deque()
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._seq = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/paas/v4/chat/completions", self._chat)
        app.router.add_post("/api/paas/v4/embeddings", self._embeddings)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/paas/v4"
        return self.base_url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ fault injection
    def fail_next(
        self, status: int, code: str, message: str = "error", headers: dict[str, str] | None = None
    ) -> None:
        body = {"error": {"code": code, "message": message}}
        with self._lock:
            self._failures.append((status, body, headers or {}))

    def break_stream_next(self, after_chunks: int, code: str = "1234", message: str = "") -> None:
        with self._lock:
            self._breaks.append((after_chunks, code, message or f"Network error, error id: {code}"))

    def script_next(self, frames: list[bytes]) -> None:
        with self._lock:
            self._scripts.append(frames)

    def _pop(self, queue: deque[Any]) -> Any:
        with self._lock:
            return queue.popleft() if queue else None

    # ------------------------------------------------------------------ auth
    def _authorized(self, header: str | None) -> str | None:
        """None when the bearer is good, else the business code of the failure."""
        if not header or not header.startswith("Bearer "):
            return "1001"
        token = header[7:]
        if token == self.api_key:
            return None if self.accept_raw else "1002"
        key_id, _, secret = self.api_key.partition(".")
        parts = token.split(".")
        if len(parts) != 3:
            return "1002"
        try:
            head = orjson.loads(_b64decode(parts[0]))
            claims = orjson.loads(_b64decode(parts[1]))
        except (ValueError, orjson.JSONDecodeError):
            return "1002"
        signed = f"{parts[0]}.{parts[1]}".encode()
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
        if head.get("alg") != "HS256" or head.get("sign_type") != "SIGN":
            return "1002"
        if not hmac.compare_digest(expected, _b64decode(parts[2])):
            return "1004"
        if claims.get("api_key") != key_id or not isinstance(claims.get("timestamp"), int):
            return "1002"
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= self.clock() * 1000:
            return "1003"
        return None

    async def _prelude(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Recorded(request.path, headers, body))
        failure = self._authorized(headers.get("authorization"))
        if failure is not None:
            return body, _err(failure, "身份验证失败 (authentication failed)", 401)
        injected = self._pop(self._failures)
        if injected is not None:
            status, payload, extra = injected
            return body, web.json_response(payload, status=status, headers=extra)
        if not isinstance(parsed, dict):
            return body, _err("1214", "请求体不是合法的 JSON")
        return body, None

    # ------------------------------------------------------------------ chat
    def _problem(self, body: dict[str, Any]) -> web.Response | None:
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return _err("1214", f"Extra inputs are not permitted, field: '{unknown[0]}'")
        if not isinstance(body.get("model"), str):
            return _err("1214", "model 参数非法")
        if body["model"] == "missing-model":
            return _err("1211", "模型不存在，请检查模型代码。")
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is not None and not (isinstance(value, float) and 0 < value < 1):
                return _err("1214", f"{name} 取值范围是：(0.0, 1.0) 开区间")
        if "tool_choice" in body and body["tool_choice"] != "auto":
            return _err("1214", "tool_choice 参数非法")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _err("1214", "messages 参数非法")
        for message in messages:
            role, content = message.get("role"), message.get("content")
            if role not in ("system", "user", "assistant", "tool"):
                return _err("1214", f"role {role} 非法")
            if role != "user" and content is not None and not isinstance(content, str):
                return _err("1214", f"{role} content 必须是字符串")
            for part in content if isinstance(content, list) else []:
                url = (part.get("image_url") or {}).get("url", "")
                if part.get("type") == "image_url" and url.startswith("data:"):
                    return _err("1210", "图片输入格式/解析错误")
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, early = await self._prelude(request)
        if early is not None:
            return early
        problem = self._problem(body)
        if problem is not None:
            return problem
        messages = body["messages"]
        user = next(
            (_text(m.get("content")) for m in reversed(messages) if m["role"] == "user"), ""
        )
        images = sum(
            1
            for m in messages
            if isinstance(m.get("content"), list)
            for p in m["content"]
            if p.get("type") == "image_url"
        )
        if "context overflow" in user:
            return _err("1261", "Prompt exceeds max length")
        if "unsafe" in user:
            return _err("1301", "系统检测到输入或生成内容可能包含不安全或敏感内容")
        self._seq += 1
        plan = self._plan(body, user, images)
        if body.get("stream") is True:
            return await self._stream(request, body, plan)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan["pieces"])}
        if plan["reasoning"]:
            message["reasoning_content"] = "".join(plan["reasoning"])
        if plan["calls"]:
            message["content"] = ""
            message["tool_calls"] = plan["calls"]
        choice = {"index": 0, "finish_reason": plan["finish"], "message": message}
        return web.json_response({**self._head(body), "choices": [choice], "usage": plan["usage"]})

    def _head(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"2025101812{self._seq:04d}",
            "request_id": f"req-{self._seq}",
            "created": CREATED,
            "model": body["model"],
        }

    def _plan(self, body: dict[str, Any], user: str, images: int) -> dict[str, Any]:
        thinking = (body.get("thinking") or {}).get("type") == "enabled"
        reasoning = _words(REASONING) if thinking else []
        calls: list[dict[str, Any]] = []
        if body.get("tools") and "weather" in user:
            name = body["tools"][0]["function"]["name"]
            cities = ["Paris", "Rome"] if "two cities" in user else ["Paris"]
            calls = [
                {
                    "id": f"call_-{900 + i}",
                    "index": i,
                    "type": "function",
                    "function": {"name": name, "arguments": f'{{"city":"{city}"}}'},
                }
                for i, city in enumerate(cities)
            ]
        text = f"echo: {user}" + (f" [{images} images]" if images else "")
        pieces = [] if calls else _words(text)
        finish = "tool_calls" if calls else "stop"
        limit = body.get("max_tokens")
        if isinstance(limit, int) and limit < len(pieces):
            pieces, finish = pieces[:limit], "length"
        if "blocked output" in user:
            pieces, finish = pieces[:2], "sensitive"
        if "network failure" in user:
            pieces, finish = pieces[:1], "network_error"
        prompt = sum(len(_text(m.get("content")).split()) + 3 for m in body["messages"])
        completion = len(pieces) + len(reasoning) + 4 * len(calls)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        system = next((m for m in body["messages"] if m["role"] == "system"), None)
        if system is not None and _text(system.get("content")).startswith("cached:"):
            usage["prompt_tokens_details"] = {"cached_tokens": 4}
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(reasoning)}
        return {
            "pieces": pieces,
            "reasoning": reasoning,
            "calls": calls,
            "finish": finish,
            "usage": usage,
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], plan: dict[str, Any]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream;charset=UTF-8"})
        await response.prepare(request)
        script = self._pop(self._scripts)
        if script is not None:
            for frame in script:
                await response.write(frame)
            await response.write_eof()
            return response
        head = self._head(body)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice: dict[str, Any] = {"index": 0, "delta": {"role": "assistant", **delta}}
            if finish is not None:
                choice["finish_reason"] = finish
            return {**head, "choices": [choice]}

        chunks = [chunk({"reasoning_content": piece}) for piece in plan["reasoning"]]
        chunks += [chunk({"tool_calls": [call]}) for call in plan["calls"]]
        chunks += [chunk({"content": piece}) for piece in plan["pieces"]]
        final = chunk({"content": ""}, plan["finish"])
        final["usage"] = plan["usage"]
        chunks.append(final)
        broken = self._pop(self._breaks)
        if broken is not None:
            chunks = chunks[: broken[0]]
        for data in chunks:
            await response.write(b"data: " + orjson.dumps(data) + b"\n\n")
        if broken is not None:
            error = {"error": {"code": broken[1], "message": broken[2]}}
            await response.write(b"data: " + orjson.dumps(error) + b"\n\n")
        else:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ embeddings
    async def _embeddings(self, request: web.Request) -> web.Response:
        body, early = await self._prelude(request)
        if early is not None:
            return early
        unknown = sorted(set(body) - EMBEDDING_FIELDS)
        if unknown:
            return _err("1214", f"Extra inputs are not permitted, field: '{unknown[0]}'")
        raw = body.get("input")
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            return _err("1214", "input 参数非法")
        if len(items) > 64:
            return _err("1214", "input 数组最大不得超过 64 条")
        dims = body.get("dimensions", 8)
        data = []
        for index, text in enumerate(items):
            digest = hashlib.sha256(text.encode()).digest()
            vector = [(digest[i % 32] - 128) / 128 for i in range(dims)]
            data.append({"index": index, "object": "embedding", "embedding": vector})
        tokens = sum(len(text.split()) for text in items)
        usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
        return web.json_response(
            {"model": body.get("model"), "object": "list", "data": data, "usage": usage}
        )
