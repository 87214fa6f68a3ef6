"""A deterministic aiohttp stand-in for the Gemini Developer API (native wire).

Routes: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``,
``:batchEmbedContents`` and ``:embedContent``; auth by the ``x-goog-api-key`` header (a wrong
key answers ``400 INVALID_ARGUMENT`` with ``ErrorInfo.reason API_KEY_INVALID``, as Google does).

Requests are checked the way Google checks them where the rule is known (unknown fields,
roles, part shapes, ``functionResponse`` counts, ``stopSequences`` ≤ 5, ``thinkingBudget`` with
``thinkingLevel``, ``parameters`` with ``additionalProperties``, Gemini 3's thought signatures)
and answered with ``"echo: " + <last user text>``; token counts are word counts. Triggers in
the last user text: ``weather`` (with tools: a function call; ``two cities``: two parallel
calls), ``context overflow`` (400), ``blocked prompt`` (no candidates), ``unsafe``
(``finishReason: SAFETY``). Streams send one word per SSE event (``\\r\\n`` framing, no
``[DONE]``); ``break_stream_next`` ends one with a raw multi-line JSON error without ``data:``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.upstreams import background

THOUGHT = "Let me think this through."
SIGNATURE = base64.b64encode(b"sig-1").decode()
_TOP_LEVEL = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
}
_GENERATION = {
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
}
_PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
_RPC = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(status: int, message: str = "", details: list[Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {
        "code": status,
        "message": message or f"stand-in failure {status}",
        "status": _RPC.get(status, "UNKNOWN"),
    }
    if details is not None:
        err["details"] = details
    elif status == 429:
        err["details"] = [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"},
        ]
    return {"error": err}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Google pretty-prints its JSON bodies.
    return web.Response(
        text=json.dumps(data, indent=2),
        status=status,
        headers=headers,
        content_type="application/json",
    )


@dataclass
class Recorded:
    path: str  # includes the ":method" suffix
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


@dataclass
class _Failure:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] | None


@dataclass
class _Plan:
    """What every candidate of one answer says."""

    words: list[str]
    finish: str
    calls: list[dict[str, Any]]
    thought: bool
    thoughts_tokens: int


def _words(text: str) -> list[str]:
    """One piece per word, whitespace kept, so that ``"".join`` gives ``text`` back."""
    pieces = re.findall(r"\s*\S+", text)
    if not pieces:
        return [text] if text else []
    pieces[-1] += text[len("".join(pieces)) :]
    return pieces


def _valid_b64(data: Any) -> bool:
    try:
        base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _part_problem(part: Any, where: str) -> str | None:
    if not isinstance(part, dict):
        return f"{where}: a part must be an object"
    kinds = [k for k in _PART_DATA if k in part]
    unknown = set(part) - {*_PART_DATA, "thought", "thoughtSignature"}
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at {where}'
    if len(kinds) != 1:
        return f"{where}: a part must have exactly one data field"
    value = part[kinds[0]]
    if kinds[0] == "inlineData" and not (value.get("mimeType") and _valid_b64(value.get("data"))):
        return f"{where}.inlineData: mimeType and base64 data are required"
    if kinds[0] == "fileData" and not (value.get("mimeType") and value.get("fileUri")):
        return f"{where}.fileData: fileUri and mimeType are required"
    if kinds[0] == "functionCall" and not (
        value.get("name") and isinstance(value.get("args"), dict)
    ):
        return f"{where}.functionCall: name and args are required"
    if kinds[0] == "functionResponse" and not (
        value.get("name") and isinstance(value.get("response"), dict)
    ):
        return f"{where}.functionResponse: name and a response object are required"
    return None


def _contents_problem(contents: Any, model: str) -> str | None:
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    previous_calls = 0
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            return f"contents[{i}] must be an object"
        role, parts = content.get("role"), content.get("parts")
        if role not in ("user", "model"):
            return f"Please use a valid role: user, model. (contents[{i}])"
        if not isinstance(parts, list) or not parts:
            return (
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        for j, part in enumerate(parts):
            if (problem := _part_problem(part, f"contents[{i}].parts[{j}]")) is not None:
                return problem
        calls = [p for p in parts if "functionCall" in p]
        answers = [p for p in parts if "functionResponse" in p]
        if answers and len(answers) != previous_calls:
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        if calls and model.startswith("gemini-3") and "thoughtSignature" not in calls[0]:
            return (
                f"Function call is missing a thought_signature in functionCall parts. "
                f"(contents[{i}].parts[0])"
            )
        previous_calls = len(calls) if role == "model" else 0
    return None


def _generation_problem(config: Any) -> str | None:
    if not isinstance(config, dict):
        return "generationConfig must be an object"
    unknown = set(config) - _GENERATION
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at generationConfig'
    if len(config.get("stopSequences") or []) > 5:
        return "generationConfig.stopSequences: at most 5 stop sequences are allowed"
    thinking = config.get("thinkingConfig") or {}
    if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
        return "You can only set only one of thinking budget and thinking level."
    if "responseSchema" in config and "responseJsonSchema" in config:
        return "responseSchema and responseJsonSchema are mutually exclusive"
    if "responseJsonSchema" in config and config.get("responseMimeType") != "application/json":
        return "responseJsonSchema requires responseMimeType application/json"
    return None


def _tools_problem(tools: Any, tool_config: Any) -> str | None:
    for tool in tools or []:
        for decl in tool.get("functionDeclarations", []):
            if not decl.get("name"):
                return "functionDeclarations: name is required"
            if "parameters" in decl and "parametersJsonSchema" in decl:
                return "parameters and parametersJsonSchema are mutually exclusive"
            if "additionalProperties" in json.dumps(decl.get("parameters", {})):
                return 'Invalid JSON payload received. Unknown name "additionalProperties"'
    if tool_config is not None:
        mode = (tool_config.get("functionCallingConfig") or {}).get("mode")
        if mode not in ("AUTO", "ANY", "NONE", "VALIDATED"):
            return f"toolConfig.functionCallingConfig.mode: invalid value {mode!r}"
    return None


def request_problem(body: dict[str, Any], model: str) -> str | None:
    unknown = set(body) - _TOP_LEVEL
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": Cannot find field.'
    system = body.get("systemInstruction")
    if system is not None and not all("text" in p for p in system.get("parts", [])):
        return "systemInstruction may only contain text parts"
    return (
        _contents_problem(body.get("contents"), model)
        or _generation_problem(body.get("generationConfig", {}))
        or _tools_problem(body.get("tools"), body.get("toolConfig"))
    )


def _vector(key: str) -> list[float]:
    digest = hashlib.sha256(key.encode()).digest()
    return [(int.from_bytes(digest[i : i + 2], "big") - 32768) / 32768 for i in range(0, 16, 2)]


def _texts(content: dict[str, Any]) -> list[str]:
    return [p["text"] for p in content.get("parts", []) if "text" in p]


class GeminiStandIn:
    """Deterministic Gemini Developer API. ``fail_next``/``stall_next`` apply to the next
    requests, ``break_stream_next`` to the next streamed answer; ``call_ids`` makes function
    calls carry ids (otherwise they come without, as they often do)."""

    def __init__(self, api_key: str | None = "gm-test") -> None:
        self.api_key = api_key
        self.call_ids = False
        self.requests: list[Recorded] = []
        self.base_url: str | None = None
        self._failures: deque[_Failure] = deque()
        self._stalls: deque[float] = deque()
        self._breaks: deque[tuple[int, bool]] = deque()
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._seq = 0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1beta/models/{target}", self._dispatch)
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

    def fail_next(
        self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        with self._lock:
            self._failures.append(_Failure(status, body, headers))

    def stall_next(self, seconds: float) -> None:
        with self._lock:
            self._stalls.append(seconds)

    def break_stream_next(self, after_events: int, *, error: bool = True) -> None:
        """Cut the next stream after ``after_events`` events: with a raw JSON error (as Google
        does), or (``error=False``) by just closing the connection."""
        with self._lock:
            self._breaks.append((after_events, error))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self._stalls.clear()
            self._breaks.clear()
        self.call_ids = False

    def _pop(self, queue: deque[Any]) -> Any:
        with self._lock:
            return queue.popleft() if queue else None

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(
            Recorded(
                request.path, dict(request.query), headers, body if isinstance(body, dict) else {}
            )
        )
        if (stall := self._pop(self._stalls)) is not None:
            await asyncio.sleep(stall)
        key = headers.get("x-goog-api-key")
        if self.api_key is not None and key != self.api_key:
            if key is None:
                return _json(error_body(403, "Method doesn't allow unregistered callers"), 403)
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
            message = "API key not valid. Please pass a valid API key."
            return _json(error_body(400, message, [info]), 400)
        if (failure := self._pop(self._failures)) is not None:
            out = failure.body if failure.body is not None else error_body(failure.status)
            return _json(out, failure.status, failure.headers)
        if not isinstance(body, dict):
            return _json(error_body(400, "Invalid JSON payload received."), 400)
        model, _, method = request.match_info["target"].partition(":")
        if method == "generateContent":
            return self._generate(body, model)
        if method == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return _json(error_body(400, "this stand-in only streams with alt=sse"), 400)
            return await self._stream(request, body, model)
        if method == "batchEmbedContents":
            return self._batch_embed(body, model)
        if method == "embedContent":
            return self._embed_one(body, model)
        return _json(error_body(404, f"Method {method} not found"), 404)

    # ------------------------------------------------------------------ generation
    def _plan(self, body: dict[str, Any], text: str) -> _Plan:
        config = body.get("generationConfig", {})
        thinking = config.get("thinkingConfig", {})
        thinks = bool(thinking.get("thinkingLevel") or thinking.get("thinkingBudget"))
        thought = bool(thinking.get("includeThoughts"))
        thoughts_tokens = len(THOUGHT.split()) if thinks or thought else 0
        declarations = [d for t in body.get("tools", []) for d in t.get("functionDeclarations", [])]
        mode = (body.get("toolConfig") or {}).get("functionCallingConfig", {}).get("mode")
        if declarations and mode != "NONE" and ("weather" in text or mode == "ANY"):
            cities = ["Paris", "Rome"] if "two cities" in text else ["Paris"]
            calls = [{"name": declarations[0]["name"], "args": {"city": c}} for c in cities]
            if self.call_ids:
                for n, call in enumerate(calls):
                    call["id"] = f"fc-{self._seq}-{n}"
            return _Plan([], "STOP", calls, thought, thoughts_tokens)
        if "unsafe" in text:
            return _Plan([], "SAFETY", [], thought, thoughts_tokens)
        answer = f"echo: {text}"
        if config.get("responseMimeType") == "application/json":
            answer = json.dumps({"echo": text})
        for stop in config.get("stopSequences", []):
            if stop in answer:
                answer = answer[: answer.index(stop)]
        words, finish = _words(answer), "STOP"
        limit = config.get("maxOutputTokens")
        if isinstance(limit, int) and len(words) > limit:
            words, finish = words[:limit], "MAX_TOKENS"
        return _Plan(words, finish, [], thought, thoughts_tokens)

    def _prelude(self, body: dict[str, Any], model: str) -> tuple[web.Response | None, Any]:
        if (problem := request_problem(body, model)) is not None:
            return _json(error_body(400, problem), 400), None
        contents = body["contents"]
        text, images = "", 0
        last = contents[-1]
        if last["role"] == "user":
            text = " ".join(_texts(last))
            images = sum(1 for p in last["parts"] if "inlineData" in p or "fileData" in p)
            answers = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
            if answers:
                text = "tool said " + json.dumps(answers[0]["response"], sort_keys=True)
        if images:
            text = f"{text} [{images} images]".strip()
        if "context overflow" in text:
            message = (
                "The input token count (1048999) exceeds the maximum number of tokens "
                "allowed (1048576)."
            )
            return _json(error_body(400, message), 400), None
        return None, text

    def _usage(self, body: dict[str, Any], plan: _Plan, n: int, final: bool) -> dict[str, Any]:
        system = body.get("systemInstruction", {}).get("parts", [])
        system_words = sum(len(p["text"].split()) for p in system)
        prompt = system_words + sum(len(" ".join(_texts(c)).split()) + 3 for c in body["contents"])
        usage: dict[str, Any] = {"promptTokenCount": prompt}
        if system and system[0]["text"].startswith("cached:"):
            usage["cachedContentTokenCount"] = system_words
        if final:
            output = len(plan.words) + sum(len(json.dumps(c["args"]).split()) for c in plan.calls)
            usage["candidatesTokenCount"] = output * n
            if plan.thoughts_tokens:
                usage["thoughtsTokenCount"] = plan.thoughts_tokens * n
            usage["totalTokenCount"] = prompt + (output + plan.thoughts_tokens) * n
        else:
            usage["totalTokenCount"] = prompt
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        return usage

    def _parts(self, plan: _Plan, words: list[str], thought: bool) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if thought and plan.thought:
            parts.append({"text": THOUGHT, "thought": True})
        if words:
            parts.append({"text": "".join(words)})
        for n, call in enumerate(plan.calls):
            part: dict[str, Any] = {"functionCall": call}
            if n == 0:
                part["thoughtSignature"] = SIGNATURE
            parts.append(part)
        return parts

    def _head(self, model: str) -> dict[str, Any]:
        self._seq += 1
        return {"modelVersion": model, "responseId": f"standin-{self._seq}"}

    def _generate(self, body: dict[str, Any], model: str) -> web.Response:
        early, text = self._prelude(body, model)
        if early is not None:
            return early
        head = self._head(model)
        plan = self._plan(body, text)
        n = body.get("generationConfig", {}).get("candidateCount", 1)
        if "blocked prompt" in text:
            usage = {"promptTokenCount": 4, "totalTokenCount": 4}
            feedback = {"blockReason": "SAFETY", "safetyRatings": []}
            return _json({"promptFeedback": feedback, "usageMetadata": usage, **head})
        candidates = []
        for index in range(n):
            candidate: dict[str, Any] = {"finishReason": plan.finish, "index": index}
            parts = self._parts(plan, plan.words, thought=True)
            if parts:
                candidate["content"] = {"role": "model", "parts": parts}
            candidates.append(candidate)
        usage = self._usage(body, plan, n, final=True)
        return _json({"candidates": candidates, "usageMetadata": usage, **head})

    def _events(self, body: dict[str, Any], model: str, text: str) -> Iterator[dict[str, Any]]:
        head = self._head(model)
        plan = self._plan(body, text)
        n = body.get("generationConfig", {}).get("candidateCount", 1)
        if "blocked prompt" in text:
            feedback = {"blockReason": "SAFETY"}
            yield {"promptFeedback": feedback, "usageMetadata": {"promptTokenCount": 4}, **head}
            return
        steps: list[tuple[list[str], bool, bool]] = []  # (words, thought, calls)
        if plan.thought:
            steps.append(([], True, False))
        steps.extend(([w], False, False) for w in plan.words)
        if plan.calls or not steps:
            steps.append(([], False, True))
        for number, (words, thought, calls) in enumerate(steps):
            final = number == len(steps) - 1
            sub = _Plan(plan.words, plan.finish, plan.calls if calls else [], plan.thought, 0)
            candidates = []
            for index in range(n):
                candidate: dict[str, Any] = {"index": index}
                parts = self._parts(sub, words, thought=thought)
                if parts:
                    candidate["content"] = {"role": "model", "parts": parts}
                if final:
                    candidate["finishReason"] = plan.finish
                candidates.append(candidate)
            usage = self._usage(body, plan, n, final=final)
            yield {"candidates": candidates, "usageMetadata": usage, **head}

    async def _stream(
        self, request: web.Request, body: dict[str, Any], model: str
    ) -> web.StreamResponse:
        early, text = self._prelude(body, model)
        if early is not None:
            return early
        events = list(self._events(body, model, text))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        cut = self._pop(self._breaks)
        for event in events if cut is None else events[: cut[0]]:
            await response.write(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
        if cut is not None:
            if cut[1]:
                message = "The model is overloaded. Please try again later."
                error = json.dumps(error_body(503, message), indent=2).encode()
                await response.write(error + b"\n")
            response.force_close()
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ embeddings
    def _embedding(self, item: Any, model: str) -> dict[str, Any] | str:
        if not isinstance(item, dict) or item.get("model") != f"models/{model}":
            return f"requests[].model must be models/{model}"
        texts = _texts(item.get("content") or {})
        if len(texts) != 1:
            return "content must have one text part"
        dims = item.get("outputDimensionality")
        if dims is not None and not (isinstance(dims, int) and dims > 0):
            return "outputDimensionality must be a positive integer"
        return {"values": _vector(texts[0])[:dims]}

    def _batch_embed(self, body: dict[str, Any], model: str) -> web.Response:
        requests = body.get("requests")
        if set(body) != {"requests"} or not isinstance(requests, list) or not requests:
            return _json(error_body(400, "requests must be a non-empty list"), 400)
        out = []
        for item in requests:
            result = self._embedding(item, model)
            if isinstance(result, str):
                return _json(error_body(400, result), 400)
            out.append(result)
        return _json({"embeddings": out})

    def _embed_one(self, body: dict[str, Any], model: str) -> web.Response:
        result = self._embedding({**body, "model": f"models/{model}"}, model)
        if isinstance(result, str):
            return _json(error_body(400, result), 400)
        return _json({"embedding": result})


def run_in_thread(upstream: GeminiStandIn) -> tuple[str, Callable[[], None]]:
    """Start the stand-in on its own loop in a daemon thread. Returns (base_url, stop)."""
    url, stop = background.run_in_thread(upstream, "gemini-standin")
    return str(url), stop
