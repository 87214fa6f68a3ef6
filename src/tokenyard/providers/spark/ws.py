"""The classic Spark WebSocket API (credential ``app_id:api_key:api_secret``).

One call = one connection (xfyun.cn/doc/spark/接口说明.html: short connections, the
server closes after the answer): connect to the signed URL (signing.py), send one JSON text
frame (request.py ``ws_frame``), read frames until ``header.status == 2``. Frames
(providers.md §9.1, websdk-java ``SparkChatResponse``, spark-ai-python ``on_message``)::

    {"header": {"code": 0, "message": "Success", "sid": "cht…", "status": 0|1|2},
     "payload": {"choices": {"status": 0|1|2, "seq": n,
                             "text": [{"content": "…", "reasoning_content": "…" (X1),
                                       "role": "assistant", "index": 0,
                                       "function_call": {"name": "…", "arguments": "…"}}]},
                 "usage": {"text": {"question_tokens", "prompt_tokens",
                                    "completion_tokens", "total_tokens"}}}}  (last frame)

``header.code != 0`` is an error frame (codes.py). A function call comes as a single frame
with status 2. A non-streamed chat is the same call aggregated (as one-api and the official
SDKs do). ``open_stream`` returns once the first frame arrived without an error, so a
refused request (moderation, quota) fails before the client sees a 200.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.immutable import immutable
from tokenyard.providers.base import Call, ChatResult
from tokenyard.providers.spark.codes import OUTPUT_FILTERED, code_of, error_for
from tokenyard.providers.spark.models import MODELS, SparkModel, find_model
from tokenyard.providers.spark.request import max_tokens_of, ws_frame
from tokenyard.providers.spark.response import (
    ChunkWriter,
    arguments_text,
    as_object,
    completion,
    completion_id,
    estimated_usage,
    finish_reason,
    tool_call_id,
    usage_of,
)
from tokenyard.providers.spark.signing import WsCredentials, signed_url
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads
from tokenyard.wire.usage import Usage

_DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)


@immutable
class Frame:
    """What one response frame says."""

    code: int
    message: str
    sid: str | None
    content: str = ""
    reasoning: str = ""
    call: tuple[str, str] | None = None  # (name, arguments)
    last: bool = False
    usage: Usage | None = None


def parse_frame(doc: object) -> Frame:
    header, payload = (
        as_object(as_object(doc).get("header")),
        as_object(as_object(doc).get("payload")),
    )
    choices = as_object(payload.get("choices"))
    texts = [t for t in choices.get("text") or () if isinstance(t, dict)]
    call = next(
        (t["function_call"] for t in texts if isinstance(t.get("function_call"), dict)), None
    )
    sid = header.get("sid")
    return Frame(
        code=code_of(header.get("code")),
        message=str(header.get("message") or ""),
        sid=sid if isinstance(sid, str) and sid else None,
        content="".join(str(t.get("content") or "") for t in texts),
        reasoning="".join(str(t.get("reasoning_content") or "") for t in texts),
        call=None
        if call is None
        else (str(call.get("name") or ""), arguments_text(call.get("arguments"))),
        last=header.get("status") == 2 or choices.get("status") == 2,
        usage=usage_of(as_object(payload.get("usage")).get("text")),
    )


class _Socket:
    """One open connection: reads frames, translating transport failures."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, provider: str, idle_s: float):
        self._ws = ws
        self._provider = provider
        self._idle_s = idle_s

    async def send(self, frame: JSONObject) -> None:
        await self._ws.send_str(dumps(frame).decode())

    async def next(self) -> Frame:
        try:
            msg = await self._ws.receive(timeout=self._idle_s)
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self._provider} went silent mid-answer") from None
        except aiohttp.ClientError as exc:
            raise self._broken(type(exc).__name__) from None
        if msg.type not in _DATA:
            raise self._broken(msg.type.name)
        try:
            return parse_frame(loads(msg.data))
        except JSONDecodeError:
            raise UpstreamError(
                f"provider {self._provider} sent a frame that is not JSON", retryable=True
            ) from None

    def _broken(self, why: str) -> UpstreamError:
        return UpstreamError(
            f"provider {self._provider} closed the connection before the answer was complete "
            f"({why})",
            retryable=True,
        )

    async def close(self) -> None:
        await self._ws.close()


@dataclass
class _Opened:
    socket: _Socket
    first: Frame
    writer: ChunkWriter
    max_tokens: int | None
    messages: object


@dataclass
class _Answer:
    """The frames of one answer, aggregated."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    call: tuple[str, str] | None = None
    usage: Usage | None = None

    def add(self, frame: Frame) -> None:
        self.content.append(frame.content)
        self.reasoning.append(frame.reasoning)
        self.call = self.call or frame.call
        self.usage = frame.usage or self.usage


class SparkWebSocket:
    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float,
        connect_timeout_s: float,
        first_byte_timeout_s: float,
        idle_timeout_s: float,
        extra_headers: dict[str, str] | None,
        clock: Callable[[], float],
    ):
        self.name = name
        self._base = base_url.rstrip("/")
        self._session = session  # made on the first connection when not given; then ours
        self._owned = session is None
        self._timeout_s = timeout_s
        self._connect_s = connect_timeout_s
        self._first_byte_s = first_byte_timeout_s
        self._idle_s = idle_timeout_s
        self._headers = dict(extra_headers or {})
        self._clock = clock

    def _model(self, name: str) -> SparkModel:
        model = find_model(name)
        if model is None:
            raise UpstreamError(
                f"provider {self.name}: Spark model {name!r} has no WebSocket endpoint "
                f"(known: {', '.join(m.domain for m in MODELS.values())}); "
                "use an APIPassword key for the HTTP API",
                retryable=True,
            )
        return model

    def _sessions(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # No cookie jar: a cookie set for one tenant's call must not ride on another's.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "tokenyard"},
            )
        return self._session

    async def close(self) -> None:
        """Close the session this made (one that was given belongs to its giver)."""
        if self._owned and self._session is not None:
            await self._session.close()
            self._session = None

    async def _connect(self, url: str) -> aiohttp.ClientWebSocketResponse:
        try:
            async with asyncio.timeout(self._connect_s):
                return await self._sessions().ws_connect(
                    URL(url, encoded=True), headers=self._headers
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise UpstreamError(
                f"provider {self.name} refused the WebSocket handshake (HTTP {exc.status})",
                retryable=True,
                code="upstream_rate_limited" if exc.status == 429 else None,
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"provider {self.name} could not be reached: {type(exc).__name__}",
                retryable=True,
            ) from None

    async def _open(self, call: Call, creds: WsCredentials) -> _Opened:
        model = self._model(call.upstream_model)
        frame = ws_frame(call.body, model, creds.app_id)
        url = signed_url(self._base + model.ws_path, creds, self._clock())
        secrets = (creds.api_key, creds.api_secret)
        try:
            async with asyncio.timeout(self._first_byte_s):
                socket = _Socket(await self._connect(url), self.name, self._idle_s)
                try:
                    await socket.send(frame)
                    first = await socket.next()
                except BaseException:
                    await socket.close()
                    raise
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self.name} did not answer in time") from None
        except (aiohttp.ClientError, OSError) as exc:  # e.g. ConnectionResetError on send
            raise UpstreamError(
                f"provider {self.name} broke off: {type(exc).__name__}", retryable=True
            ) from None
        if first.code != 0:
            await socket.close()
            raise error_for(first.code, first.message, provider=self.name, secrets=secrets)
        writer = ChunkWriter(completion_id(first.sid), int(self._clock()), call.upstream_model)
        messages = call.body.get("messages")
        return _Opened(socket, first, writer, max_tokens_of(call.body, model), messages)

    async def chat(self, call: Call, creds: WsCredentials) -> ChatResult:
        opened = await self._open(call, creds)
        answer, frame, filtered = _Answer(), opened.first, False
        try:
            async with asyncio.timeout(self._timeout_s):
                while True:
                    if frame.code == OUTPUT_FILTERED:
                        filtered = True
                        break
                    if frame.code != 0:
                        raise error_for(
                            frame.code, frame.message, provider=self.name, secrets=(creds.api_key,)
                        )
                    answer.add(frame)
                    if frame.last:
                        break
                    frame = await opened.socket.next()
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self.name} did not finish in time") from None
        finally:
            await opened.socket.close()
        content, reasoning = "".join(answer.content), "".join(answer.reasoning)
        usage = answer.usage or estimated_usage(opened.messages, content + reasoning)
        calls = []
        if answer.call is not None:
            name, arguments = answer.call
            function = {"name": name, "arguments": arguments}
            calls.append(
                {"id": tool_call_id(opened.first.sid, 0), "type": "function", "function": function}
            )
        finish = (
            "content_filter"
            if filtered
            else finish_reason(
                None,
                tool_calls=bool(calls),
                completion_tokens=usage.completion_tokens,
                max_tokens=opened.max_tokens,
            )
        )
        body = completion(
            opened.writer,
            content=content,
            reasoning=reasoning,
            tool_calls=calls,
            finish=finish,
            usage=usage,
        )
        return ChatResult(body=body, usage=usage)

    async def open_stream(self, call: Call, creds: WsCredentials) -> SparkWSStream:
        opened = await self._open(call, creds)
        return SparkWSStream(opened, self.name, (creds.api_key, creds.api_secret))


class SparkWSStream:
    """Relays the frames of one WebSocket answer as canonical chunks, one or more per frame."""

    def __init__(self, opened: _Opened, provider: str, secrets: tuple[str, ...]):
        self.usage: Usage | None = None
        self._opened = opened
        self._provider = provider
        self._secrets = secrets
        self._text: list[str] = []

    def _chunks(self, frame: Frame) -> list[bytes]:
        writer, out = self._opened.writer, []
        if frame.reasoning:
            out.append(writer.chunk({"reasoning_content": frame.reasoning}))
        if frame.content:
            out.append(writer.chunk({"content": frame.content}))
        if frame.call is not None:
            name, arguments = frame.call
            out.append(
                writer.tool_call(0, tool_call_id(self._opened.first.sid, 0), name, arguments)
            )
        self._text.extend((frame.reasoning, frame.content))
        return out

    def _settle(self, frame_usage: Usage | None) -> Usage:
        self.usage = frame_usage or estimated_usage(self._opened.messages, "".join(self._text))
        return self.usage

    async def __aiter__(self) -> AsyncIterator[bytes]:
        writer, frame, called = self._opened.writer, self._opened.first, False
        yield writer.role()
        while True:
            if frame.code == OUTPUT_FILTERED:
                self._settle(None)
                await self.aclose()
                yield writer.finish("content_filter")
                return
            if frame.code != 0:
                await self.aclose()
                raise error_for(
                    frame.code, frame.message, provider=self._provider, secrets=self._secrets
                )
            for chunk in self._chunks(frame):
                yield chunk
            called = called or frame.call is not None
            if frame.last:
                usage = self._settle(frame.usage)
                await self.aclose()
                yield writer.finish(
                    finish_reason(
                        None,
                        tool_calls=called,
                        completion_tokens=usage.completion_tokens,
                        max_tokens=self._opened.max_tokens,
                    )
                )
                return
            frame = await self._opened.socket.next()

    async def aclose(self) -> None:
        # Closing before the last frame cancels the answer upstream (iFlytek: "如果在生成的过程
        # 中需要终止,可以直接发送websocket的close消息").
        await self._opened.socket.close()
