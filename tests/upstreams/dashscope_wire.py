"""A deterministic aiohttp stand-in for Alibaba DashScope's native API (providers.md §6.4).

Routes (the base URL is the host, ``http://127.0.0.1:<port>``):
``/api/v1/services/aigc/text-generation/generation``,
``/api/v1/services/aigc/multimodal-generation/generation`` and
``/api/v1/services/embeddings/text-embedding/text-embedding``.

It behaves like the real service where the SDK and docs say how: ``Authorization: Bearer``;
``X-DashScope-SSE: enable`` streams ``id:``/``event:result``/``:HTTP_STATUS/200``/``data:``
frames with ``finish_reason: "null"`` until the end, cumulative usage on every event and no
``[DONE]``; ``incremental_output`` false repeats the text so far. Without ``result_format:
"message"`` it answers the legacy ``output.text`` shape. Thinking (``enable_thinking``, on by
default for ``qwen3-8b``, always for ``qwq-*``) refuses non-streamed calls like the real
service. Text models refuse the multimodal route and the Qwen3.5/VL models the text route
("url error"). Errors are flat ``{"code", "message", "request_id"}`` objects.

Answers are ``"echo: " + <last user text>``; words steer it: ``weather`` (with tools) → a
tool call, ``context overflow`` → InvalidParameter "Range of input length", ``unsafe`` →
DataInspectionFailed. ``parameters.n`` gives n choices (streamed one choice per event, each
with its own usage, as the SDK expects). Token counts are word counts.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.openai_wire import run_in_thread

__all__ = ["DashScopeStandIn", "Recorded", "run_in_thread"]

TEXT = "/api/v1/services/aigc/text-generation/generation"
MULTIMODAL = "/api/v1/services/aigc/multimodal-generation/generation"
EMBEDDING = "/api/v1/services/embeddings/text-embedding/text-embedding"
REASONING = "Let me think."
THINKING_DEFAULT = ("qwen3-8b",)
MULTIMODAL_MODELS = ("vl", "qwen3.5", "omni")


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


def _words(text: str) -> list[str]:
    pieces = re.findall(r"\s*\S+", text)
    return pieces or ([text] if text else [])


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(i["text"]) for i in content if isinstance(i, dict) and "text" in i)
    return ""


class DashScopeStandIn:
    def __init__(self, api_key: str = "sk-dash") -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.base_url: str | None = None
        self._failures: deque[tuple[int, dict[str, Any], dict[str, str], bool]] = deque()
        self._breaks: deque[tuple[int, int, str, str] | int] = deque()
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._seq = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(TEXT, self._text_generation)
        app.router.add_post(MULTIMODAL, self._multimodal_generation)
        app.router.add_post(EMBEDDING, self._embeddings)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ fault injection
    def fail_next(
        self,
        status: int,
        code: str,
        message: str = "error",
        headers: dict[str, str] | None = None,
        sse: bool = False,
    ) -> None:
        body = {"code": code, "message": message, "request_id": "req-failed"}
        with self._lock:
            self._failures.append((status, body, headers or {}, sse))

    def break_stream_next(
        self, after_events: int, status: int = 500, code: str = "InternalError", message: str = ""
    ) -> None:
        with self._lock:
            self._breaks.append((after_events, status, code, message or "An internal error."))

    def cut_stream_next(self, after_events: int) -> None:
        """End the next stream after N events, without an error and without a finish."""
        with self._lock:
            self._breaks.append(after_events)

    def _pop(self, queue: deque[Any]) -> Any:
        with self._lock:
            return queue.popleft() if queue else None

    # ------------------------------------------------------------------ helpers
    def _error(self, status: int, code: str, message: str) -> web.Response:
        body = {"code": code, "message": message, "request_id": f"req-{self._seq}"}
        return web.json_response(body, status=status)

    async def _prelude(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Recorded(request.path, headers, body))
        self._seq += 1
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return body, self._error(401, "InvalidApiKey", "Invalid API-key provided.")
        injected = self._pop(self._failures)
        if injected is not None:
            status, payload, extra, sse = injected
            if sse:
                text = f"id:1\nevent:error\n:HTTP_STATUS/{status}\ndata:"
                data = text.encode() + orjson.dumps(payload) + b"\n\n"
                return body, web.Response(
                    body=data, status=status, headers=extra, content_type="text/event-stream"
                )
            return body, web.json_response(payload, status=status, headers=extra)
        if not isinstance(parsed, dict) or set(parsed) - {"model", "input", "parameters"}:
            return body, self._error(400, "InvalidParameter", "Request body is invalid.")
        return body, None

    # ------------------------------------------------------------------ generation
    async def _text_generation(self, request: web.Request) -> web.StreamResponse:
        return await self._generation(request, multimodal=False)

    async def _multimodal_generation(self, request: web.Request) -> web.StreamResponse:
        return await self._generation(request, multimodal=True)

    def _content_problem(self, messages: list[Any], multimodal: bool) -> str | None:
        for message in messages:
            content = message.get("content")
            if message.get("role") not in ("system", "user", "assistant", "tool"):
                return "Role must be in [system, user, assistant, tool]"
            if not multimodal and not isinstance(content, str):
                return "Input should be a valid string: input.messages.content"
            if multimodal and isinstance(content, list):
                for item in content:
                    kinds = set(item) & {"text", "image", "audio", "video"}
                    if len(kinds) != 1 or len(item) != 1:
                        return "The content item is invalid."
        return None

    async def _generation(self, request: web.Request, *, multimodal: bool) -> web.StreamResponse:
        body, early = await self._prelude(request)
        if early is not None:
            return early
        model = str(body.get("model", ""))
        wants_multimodal = any(marker in model for marker in MULTIMODAL_MODELS)
        if wants_multimodal != multimodal:
            return self._error(400, "InvalidParameter", "url error, please check url!")
        messages = (body.get("input") or {}).get("messages")
        if not isinstance(messages, list) or not messages:
            return self._error(400, "InvalidParameter", "Input messages must not be empty.")
        problem = self._content_problem(messages, multimodal)
        if problem is not None:
            return self._error(400, "InvalidParameter", problem)
        params = body.get("parameters") or {}
        stream = request.headers.get("X-DashScope-SSE") == "enable"
        thinks = "qwq" in model or params.get("enable_thinking", model in THINKING_DEFAULT)
        if "qwq" in model and not stream:
            return self._error(
                400,
                "InvalidParameter",
                "This model only support stream mode, please enable the stream parameter.",
            )
        if thinks and not stream:
            return self._error(
                400,
                "InvalidParameter",
                "<400> InternalError.Algo.InvalidParameter: parameter.enable_thinking must be set to false for non-streaming calls",
            )
        if thinks and params.get("incremental_output") is not True:
            return self._error(
                400,
                "InvalidParameter",
                "incremental_output must be true when enable_thinking is true",
            )
        user = next((_text(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
        if "context overflow" in user:
            return self._error(
                400,
                "InvalidParameter",
                "<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 98304]",
            )
        if "unsafe" in user:
            return self._error(
                400, "DataInspectionFailed", "Input data may contain inappropriate content."
            )
        plan = self._plan(params, messages, user, bool(thinks), multimodal)
        if stream:
            return await self._stream(request, params, plan)
        return web.json_response(self._complete(params, plan))

    def _plan(
        self, params: dict[str, Any], messages: list[Any], user: str, thinks: bool, multimodal: bool
    ) -> dict[str, Any]:
        images = sum(
            1
            for m in messages
            if isinstance(m["content"], list)
            for i in m["content"]
            if "image" in i
        )
        calls: list[dict[str, Any]] = []
        tools = params.get("tools")
        if tools and "weather" in user:
            name = tools[0]["function"]["name"]
            calls = [
                {
                    "id": "call_ds1",
                    "type": "function",
                    "function": {"name": name, "arguments": '{"city":"Paris"}'},
                }
            ]
        text = f"echo: {user}" + (f" [{images} images]" if images else "")
        pieces = [] if calls else _words(text)
        finish = "tool_calls" if calls else "stop"
        limit = params.get("max_tokens")
        if isinstance(limit, int) and limit < len(pieces):
            pieces, finish = pieces[:limit], "length"
        reasoning = _words(REASONING) if thinks else []
        prompt = sum(len(_text(m["content"]).split()) + 3 for m in messages)
        system = next((m for m in messages if m["role"] == "system"), None)
        cached = 4 if system is not None and _text(system["content"]).startswith("cached:") else 0
        return {
            "pieces": pieces,
            "reasoning": reasoning,
            "calls": calls,
            "finish": finish,
            "prompt": prompt,
            "cached": cached,
            "multimodal": multimodal,
            "n": params.get("n", 1),
        }

    def _usage(self, plan: dict[str, Any], output: int, reasoning: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": plan["prompt"],
            "output_tokens": output,
            "total_tokens": plan["prompt"] + output,
        }
        if plan["cached"]:
            usage["prompt_tokens_details"] = {"cached_tokens": plan["cached"]}
        if reasoning:
            usage["output_tokens_details"] = {"reasoning_tokens": reasoning}
        return usage

    def _content(self, plan: dict[str, Any], text: str) -> Any:
        return [{"text": text}] if plan["multimodal"] else text

    def _complete(self, params: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
        per_choice = len(plan["pieces"]) + len(plan["reasoning"]) + 4 * len(plan["calls"])
        usage = self._usage(plan, per_choice * plan["n"], len(plan["reasoning"]) * plan["n"])
        text = "".join(plan["pieces"])
        if params.get("result_format") != "message":
            output = {"text": text, "finish_reason": plan["finish"]}
            return {"output": output, "usage": usage, "request_id": f"req-{self._seq}"}
        choices = []
        for index in range(plan["n"]):
            message: dict[str, Any] = {"role": "assistant", "content": self._content(plan, text)}
            if plan["reasoning"]:
                message["reasoning_content"] = "".join(plan["reasoning"])
            if plan["calls"]:
                message["content"] = ""
                message["tool_calls"] = [{**c, "index": 0} for c in plan["calls"]]
            choice = {"finish_reason": plan["finish"], "message": message}
            if plan["n"] > 1:
                choice["index"] = index
            choices.append(choice)
        return {"output": {"choices": choices}, "usage": usage, "request_id": f"req-{self._seq}"}

    def _events(self, params: dict[str, Any], plan: dict[str, Any]) -> list[dict[str, Any]]:
        incremental = params.get("incremental_output") is True
        events: list[dict[str, Any]] = []
        for index in range(plan["n"]):
            produced = 0
            reasoning_so_far = ""
            text_so_far = ""

            def event(message: dict[str, Any], finish: str = "null") -> dict[str, Any]:
                choice: dict[str, Any] = {
                    "message": {"role": "assistant", **message},
                    "finish_reason": finish,
                }
                if plan["n"] > 1:
                    choice["index"] = index
                usage = self._usage(plan, produced, min(produced, len(plan["reasoning"])))
                return {
                    "output": {"choices": [choice]},
                    "usage": usage,
                    "request_id": f"req-{self._seq}",
                }

            for piece in plan["reasoning"]:
                produced += 1
                reasoning_so_far += piece
                shown = piece if incremental else reasoning_so_far
                events.append(
                    event({"content": self._content(plan, ""), "reasoning_content": shown})
                )
            for call in plan["calls"]:
                arguments = call["function"]["arguments"]
                half = len(arguments) // 2
                opening = {
                    **call,
                    "index": 0,
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
                produced += 1
                events.append(event({"content": "", "tool_calls": [opening]}))
                for fragment in (arguments[:half], arguments[half:]):
                    produced += 1
                    piece_call = {
                        "index": 0,
                        "id": "",
                        "type": "function",
                        "function": {"arguments": fragment},
                    }
                    events.append(event({"content": "", "tool_calls": [piece_call]}))
            for piece in plan["pieces"]:
                produced += 1
                text_so_far += piece
                events.append(
                    event({"content": self._content(plan, piece if incremental else text_so_far)})
                )
            produced += len(plan["calls"])
            final = "" if incremental else text_so_far
            events.append(event({"content": self._content(plan, final)}, plan["finish"]))
        return events

    async def _stream(
        self, request: web.Request, params: dict[str, Any], plan: dict[str, Any]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream;charset=UTF-8"})
        await response.prepare(request)
        events = self._events(params, plan)
        broken = self._pop(self._breaks)
        if isinstance(broken, int):
            events, broken = events[:broken], None
        elif broken is not None:
            events = events[: broken[0]]
        for number, data in enumerate(events, start=1):
            frame = f"id:{number}\nevent:result\n:HTTP_STATUS/200\ndata:".encode()
            await response.write(frame + orjson.dumps(data) + b"\n\n")
        if broken is not None:
            _, status, code, message = broken
            error = {"code": code, "message": message, "request_id": f"req-{self._seq}"}
            frame = f"id:{len(events) + 1}\nevent:error\n:HTTP_STATUS/{status}\ndata:".encode()
            await response.write(frame + orjson.dumps(error) + b"\n\n")
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ embeddings
    async def _embeddings(self, request: web.Request) -> web.Response:
        body, early = await self._prelude(request)
        if early is not None:
            return early
        texts = (body.get("input") or {}).get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self._error(400, "InvalidParameter", "input.texts should be a list of strings")
        if len(texts) > 10:
            return self._error(
                400, "InvalidParameter", "batch size is invalid, it should not be larger than 10."
            )
        params = body.get("parameters") or {}
        if "dimensions" in params:
            return self._error(400, "InvalidParameter", "unknown parameter dimensions")
        dims = params.get("dimension", 8)
        embeddings = []
        for index, text in enumerate(texts):
            digest = hashlib.sha256(text.encode()).digest()
            vector = [(digest[i % 32] - 128) / 128 for i in range(dims)]
            embeddings.append({"text_index": index, "embedding": vector})
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response(
            {
                "output": {"embeddings": embeddings},
                "usage": {"total_tokens": tokens},
                "request_id": f"req-{self._seq}",
            }
        )
