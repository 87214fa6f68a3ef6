"""A deterministic aiohttp stand-in for an OpenAI-wire upstream provider.

One server speaks one *flavour* (OpenAI, DeepSeek, Moonshot, DashScope compatible mode, Mistral,
vLLM, Ollama /v1). Routes: ``POST /v1/chat/completions``, ``POST /v1/embeddings``,
``GET /v1/models``. Chat answers are ``"echo: " + <text of the last user message>``, token
counts are word counts, a ``tool_choice`` that forces a function and ``response_format:
json_schema`` are answered with a value built from the schema (what client libraries'
structured output parses), and the per-flavour wire differences live in ``flavors.py``. Used
by the gateway's end-to-end tests, which reach it over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web

from tests.upstreams import background

from .flavors import (
    DEFAULT_MODELS,
    REASONING_TEXT,
    Flavor,
    context_overflow_body,
    default_fail_headers,
    error_body,
    not_found_body,
    reasoning_field,
    request_problem,
    stream_usage_plan,
    tool_call_id,
    usage_for,
)

__all__ = ["Flavor", "Recorded", "StandInUpstream", "run_in_thread"]

CREATED = 1_760_000_000
_T = TypeVar("_T")
_WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)
_IMAGE_PARTS = ("image_url", "input_image", "image")


@dataclass
class Recorded:
    """One request the stand-in received."""

    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]  # parsed JSON body ({} for GET or unparsable bodies)


@dataclass
class _Failure:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] | None


@dataclass
class _Answer:
    """What every choice of one chat completion says."""

    pieces: list[str]  # answer text split into words, whitespace kept
    finish_reason: str
    tool: tuple[str, str, str] | None = None  # (id, function name, arguments)
    reasoning_field: str | None = None
    reasoning_pieces: list[str] = field(default_factory=list)

    @property
    def content(self) -> str | None:
        return None if self.tool else "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        words = len(self.tool[2].split()) if self.tool else len(self.pieces)
        return words + len(self.reasoning_pieces)


def _words(text: str) -> list[str]:
    """Split into one piece per whitespace-separated word so that ``"".join`` gives ``text``."""
    pieces = re.findall(r"\s*\S+", text)
    if not pieces:
        return [text] if text else []
    pieces[-1] += text[len("".join(pieces)) :]
    return pieces


def _text_of(content: Any) -> tuple[str, int]:
    """(joined text, number of image parts) of a message ``content``."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    parts = [p for p in content if isinstance(p, dict)]
    texts = [str(p.get("text", "")) for p in parts if p.get("type") == "text"]
    return " ".join(texts), sum(1 for p in parts if p.get("type") in _IMAGE_PARTS)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            text, images = _text_of(message.get("content"))
            if images:
                return f"{text} [{images} images]" if text else f"[{images} images]"
            return text
    return ""


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(_text_of(m.get("content"))[0].split()) + 3 for m in messages)


def _system_cached(messages: list[dict[str, Any]]) -> bool:
    for message in messages:
        if message.get("role") in ("system", "developer"):
            return _text_of(message.get("content"))[0].startswith("cached:")
    return False


def _vector(key: str) -> list[float]:
    """Eight deterministic values k/32768 in [-1, 1): exactly representable as float32."""
    digest = hashlib.sha256(key.encode()).digest()
    return [(int.from_bytes(digest[i : i + 2], "big") - 32768) / 32768 for i in range(0, 16, 2)]


def _forced_tool(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, parameters schema) of the tool that ``tool_choice`` forces, if any: a named
    function, or the first tool for ``"required"`` (how LangChain asks for structured output
    by function calling)."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    functions = [t.get("function") for t in tools if isinstance(t.get("function"), dict)]
    choice = body.get("tool_choice")
    if choice == "required" and functions:
        wanted = str(functions[0].get("name", "unknown"))
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        wanted = str(choice["function"].get("name", ""))
    else:
        return None
    for function in functions:
        if function.get("name") == wanted:
            parameters = function.get("parameters")
            return wanted, parameters if isinstance(parameters, dict) else {}
    return None


def _instance(schema: Any, text: str, root: dict[str, Any]) -> Any:
    """A deterministic JSON value valid against ``schema`` (the subset that SDKs generate from
    pydantic models: objects, arrays, scalars, enums, ``anyOf``, local ``$ref``), so JSON-schema
    mode and forced tool calls answer something a client can parse into its model. Strings
    are the last user message; numbers its word count."""
    if not isinstance(schema, dict):
        return text
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _instance(target, text, root)
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list) and options:
        chosen = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        return _instance((chosen or options)[0], text, root)
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    properties = schema.get("properties")
    if kind == "object" or isinstance(properties, dict):
        fields = properties if isinstance(properties, dict) else {}
        return {name: _instance(sub, text, root) for name, sub in fields.items()}
    if kind == "array":
        return [_instance(schema.get("items", {}), text, root)]
    scalars: dict[Any, Any] = {
        "integer": len(text.split()),
        "number": float(len(text.split())),
        "boolean": True,
        "null": None,
    }
    return scalars.get(kind, text)


def _json(
    data: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
    prefix: bytes = b"",
) -> web.Response:
    return web.Response(
        body=prefix + orjson.dumps(data),
        status=status,
        headers=headers,
        content_type="application/json",
    )


class StandInUpstream:
    """Deterministic OpenAI-wire upstream of one flavour, for the gateway's end-to-end tests.

    ``fail_next`` / ``stall_next`` apply to the next chat or embedding requests (not to
    ``GET /models``); ``break_stream_next`` and ``stall_stream_next`` (headers at once, the
    first chunk only after a pause) apply to the next *streamed* chat answer. ``cancelled``
    counts the chat requests whose client went away before the answer was complete.
    """

    def __init__(self, flavor: Flavor = Flavor.OPENAI, api_key: str | None = "sk-test") -> None:
        self.flavor = Flavor(flavor)
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.models: list[str] = list(DEFAULT_MODELS[self.flavor])
        self.base_url: str | None = None
        self._failures: deque[_Failure] = deque()
        self._stalls: deque[float] = deque()
        self._breaks: deque[int] = deque()
        self._stream_stalls: deque[float] = deque()
        self.cancelled = 0
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._seq = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
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
        port = runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ fault injection
    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        with self._lock:
            self._failures.extend(_Failure(status, body, headers) for _ in range(times))

    def stall_next(self, seconds: float) -> None:
        with self._lock:
            self._stalls.append(seconds)

    def break_stream_next(self, after_chunks: int) -> None:
        with self._lock:
            self._breaks.append(after_chunks)

    def stall_stream_next(self, seconds: float) -> None:
        """Send the next stream's headers at once but its first chunk only after ``seconds``."""
        with self._lock:
            self._stream_stalls.append(seconds)

    def reset(self) -> None:
        """Forget recorded requests and every queued failure, stall and break."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self._stalls.clear()
            self._breaks.clear()
            self._stream_stalls.clear()
            self.cancelled = 0

    def _pop(self, queue: deque[_T]) -> _T | None:
        with self._lock:
            return queue.popleft() if queue else None

    # ------------------------------------------------------------------ common prelude
    async def _prelude(
        self, request: web.Request, injectable: bool
    ) -> tuple[dict[str, Any], web.Response | None]:
        """Record the request, apply stalls, auth and injected failures."""
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Recorded(request.path, headers, body))
        if injectable and (stall := self._pop(self._stalls)) is not None:
            await asyncio.sleep(stall)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            message = "Incorrect API key provided."
            return body, _json(error_body(self.flavor, 401, message), 401)
        if injectable and (failure := self._pop(self._failures)) is not None:
            out = (
                failure.body
                if failure.body is not None
                else error_body(self.flavor, failure.status)
            )
            extra = failure.headers
            if extra is None:
                extra = default_fail_headers(self.flavor, failure.status)
            return body, _json(out, failure.status, extra)
        if parsed is None or (raw and not isinstance(parsed, dict)):
            message = "We could not parse the JSON body of your request."
            return body, _json(error_body(self.flavor, 400, message), 400)
        return body, None

    def _bad_request(self, message: str) -> web.Response:
        return _json(error_body(self.flavor, 400, message), 400)

    # ------------------------------------------------------------------ chat
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._chat_answer(request)
        except asyncio.CancelledError:  # handler_cancellation: the client closed the connection
            with self._lock:
                self.cancelled += 1
            raise

    async def _chat_answer(self, request: web.Request) -> web.StreamResponse:
        body, early = await self._prelude(request, injectable=True)
        if early is not None:
            return early
        messages, model = body.get("messages"), body.get("model")
        if not isinstance(model, str) or not model:
            return self._bad_request("you must provide a model parameter")
        if not (
            isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages)
        ):
            return self._bad_request("'messages' must be a non-empty array of objects")
        if model == "missing-model":
            return _json(not_found_body(self.flavor, model), 404)
        stream = body.get("stream") is True
        if (problem := request_problem(self.flavor, body)) is not None:
            return self._bad_request(problem)
        user_text = _last_user_text(messages)
        prompt = _prompt_tokens(messages)
        if "context overflow" in user_text:
            return _json(context_overflow_body(self.flavor, prompt), 400)

        answer = self._answer(body, model, user_text)
        n = body.get("n")
        n = n if isinstance(n, int) and n >= 1 else 1
        usage = usage_for(
            self.flavor,
            prompt,
            answer.completion_tokens * n,
            len(answer.reasoning_pieces) * n,
            _system_cached(messages),
        )
        self._seq += 1
        base: dict[str, Any] = {
            "id": f"chatcmpl-standin-{self._seq}",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
        }
        if self.flavor in (Flavor.OPENAI, Flavor.DEEPSEEK):
            base["system_fingerprint"] = "fp_standin"
        if stream:
            return await self._stream(request, body, base, answer, n, usage)
        return self._complete(base, answer, n, usage)

    def _answer(self, body: dict[str, Any], model: str, user_text: str) -> _Answer:
        rfield = reasoning_field(self.flavor, model, body)
        reasoning = _words(REASONING_TEXT) if rfield else []
        tools = body.get("tools")
        if (forced := _forced_tool(body)) is not None:
            name, parameters = forced
            arguments = json.dumps(_instance(parameters, user_text, parameters))
            tool = (tool_call_id(self.flavor), name, arguments)
            return _Answer([], "tool_calls", tool, rfield, reasoning)
        if isinstance(tools, list) and tools and _WEATHER.search(user_text):
            first = tools[0] if isinstance(tools[0], dict) else {}
            name = str((first.get("function") or {}).get("name", "unknown"))
            tool = (tool_call_id(self.flavor), name, '{"city":"Paris"}')
            return _Answer([], "tool_calls", tool, rfield, reasoning)
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_object":
            pieces = _words(json.dumps({"echo": user_text}))
        elif isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            schema = schema if isinstance(schema, dict) else {}
            pieces = _words(json.dumps(_instance(schema, user_text, schema)))
        else:
            pieces = _words("echo: " + user_text)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and 1 <= limit < len(pieces):
            return _Answer(pieces[:limit], "length", None, rfield, reasoning)
        return _Answer(pieces, "stop", None, rfield, reasoning)

    def _message(self, answer: _Answer) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.content}
        if self.flavor is Flavor.OPENAI:
            message["refusal"] = None
        if answer.reasoning_field:
            message[answer.reasoning_field] = "".join(answer.reasoning_pieces)
        if answer.tool:
            tid, name, arguments = answer.tool
            message["tool_calls"] = [
                {"id": tid, "type": "function", "function": {"name": name, "arguments": arguments}}
            ]
        return message

    def _complete(
        self, base: dict[str, Any], answer: _Answer, n: int, usage: dict[str, Any]
    ) -> web.Response:
        choices: list[dict[str, Any]] = []
        for index in range(n):
            choice = {
                "index": index,
                "message": self._message(answer),
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
            if self.flavor is Flavor.VLLM:
                choice["stop_reason"] = None
            choices.append(choice)
        data = {**base, "choices": choices, "usage": usage}
        headers = {"x-request-id": f"req_standin_{self._seq}"}
        # DeepSeek pads non-streamed bodies with blank lines while the request is queued.
        prefix = b"\n\n" if self.flavor is Flavor.DEEPSEEK else b""
        return _json(data, headers=headers, prefix=prefix)

    def _chunks(
        self,
        body: dict[str, Any],
        base: dict[str, Any],
        answer: _Answer,
        n: int,
        usage: dict[str, Any],
    ) -> Iterator[dict[str, Any]]:
        placement, trailing = stream_usage_plan(self.flavor, body)
        head: dict[str, Any] = {**base, "object": "chat.completion.chunk"}
        if trailing and self.flavor is Flavor.OPENAI:
            head["usage"] = None  # OpenAI: every other chunk carries "usage": null

        def chunk(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**head, "choices": [choice]}

        for index in range(n):
            yield chunk(index, {"role": "assistant", "content": None if answer.tool else ""}, None)
            for piece in answer.reasoning_pieces:
                yield chunk(index, {str(answer.reasoning_field): piece}, None)
            if answer.tool:
                tid, name, arguments = answer.tool
                function = {"name": name, "arguments": ""}
                first = {"index": 0, "id": tid, "type": "function", "function": function}
                yield chunk(index, {"tool_calls": [first]}, None)
                half = len(arguments) // 2
                for fragment in (arguments[:half], arguments[half:]):
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}
                    yield chunk(index, delta, None)
            for piece in answer.pieces:
                yield chunk(index, {"content": piece}, None)
            finish = chunk(index, {}, answer.finish_reason)
            if index == n - 1 and placement == "top":
                finish["usage"] = usage
            elif index == n - 1 and placement == "choice":
                finish["choices"][0]["usage"] = usage
            yield finish
        if trailing:
            yield {**head, "choices": [], "usage": usage}

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        base: dict[str, Any],
        answer: _Answer,
        n: int,
        usage: dict[str, Any],
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        if self.flavor is Flavor.DEEPSEEK:
            await response.write(b": keep-alive\n\n: keep-alive\n\n")
        chunks = list(self._chunks(body, base, answer, n, usage))
        if (stall := self._pop(self._stream_stalls)) is not None:
            await asyncio.sleep(stall)
        break_after = self._pop(self._breaks)
        if break_after is not None:
            chunks = chunks[: max(break_after, 0)]
        for data in chunks:
            await response.write(b"data: " + orjson.dumps(data) + b"\n\n")
        if break_after is not None:
            body_500 = error_body(self.flavor, 500, "The upstream stream was interrupted.")
            inner = body_500.get("error") or {k: v for k, v in body_500.items() if k != "object"}
            error = {"error": inner}  # always OpenAI-style, even for Mistral's flat envelope
            await response.write(b"data: " + orjson.dumps(error) + b"\n\n")
            response.force_close()
        else:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ embeddings & models
    async def _embeddings(self, request: web.Request) -> web.Response:
        body, early = await self._prelude(request, injectable=True)
        if early is not None:
            return early
        model, raw = body.get("model"), body.get("input")
        if not isinstance(model, str) or not model:
            return self._bad_request("you must provide a model parameter")
        if model == "missing-model":
            return _json(not_found_body(self.flavor, model), 404)
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            items: list[Any] = [raw]
        elif isinstance(raw, list) and raw:
            items = raw
        else:
            return self._bad_request("'input' must be a non-empty string or array")
        dims = body.get("dimensions")
        if dims is not None and not (isinstance(dims, int) and dims >= 1):
            return self._bad_request("'dimensions' must be a positive integer")
        as_base64 = body.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        tokens = 0
        for index, item in enumerate(items):
            if isinstance(item, str):
                key, tokens = item, tokens + len(item.split())
            elif isinstance(item, list):
                key, tokens = orjson.dumps(item).decode(), tokens + len(item)
            else:
                return self._bad_request(f"'input[{index}]' must be a string or token array")
            vector = _vector(key)[:dims]
            packed = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            embedding = packed if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        result: dict[str, Any] = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        if self.flavor is Flavor.VLLM:
            result.update(id="embd-standin", created=CREATED)
        return _json(result)

    async def _models(self, request: web.Request) -> web.Response:
        _, early = await self._prelude(request, injectable=False)
        if early is not None:
            return early
        data: list[dict[str, Any]] = []
        for model in self.models:
            entry: dict[str, Any] = {
                "id": model,
                "object": "model",
                "created": 0,
                "owned_by": "standin",
            }
            if self.flavor is Flavor.VLLM:
                entry.update(root=model, parent=None, max_model_len=8192)
            data.append(entry)
        return _json({"object": "list", "data": data})


def run_in_thread(upstream: StandInUpstream) -> tuple[str, Callable[[], None]]:
    """Start the server on its own event loop in a daemon thread (for sync pytest fixtures).
    Returns (base_url, stop); ``stop`` is idempotent."""
    url, stop = background.run_in_thread(upstream, "standin-upstream")
    return str(url), stop
