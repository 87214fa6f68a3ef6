"""One client API request and its answer, as a route sees it, whichever HTTP server carries
it: aiohttp's (every route) or the gateway's own for the hot paths (server/native/).

A route written against :class:`Exchange` runs on both, so each hot path is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from tokenyard.server.generation import Generation, generation_of
from tokenyard.server.http import REQUEST_ID_KEY, json_response, read_json
from tokenyard.wire.json import JSONObject


class Exchange(Protocol):
    @property
    def app(self) -> web.Application:
        """What the composition root put there (server/state.py)."""
        ...

    generation: Generation  # the config generation the request is pinned to
    request_id: str

    @property
    def headers(self) -> Mapping[str, str]:
        """The request's headers, case-insensitive."""
        ...

    async def json(self) -> JSONObject:
        """The body as a JSON object within ``server:``'s limits (400, 408, 413)."""
        ...

    def answer(self, body: Any, headers: dict[str, str], status: int = 200) -> None:
        """Answer with ``body`` as JSON."""
        ...

    def answer_json(self, data: bytes, headers: dict[str, str]) -> None:
        """Answer 200 with ``data``, a JSON document already encoded."""
        ...

    async def open_stream(self, headers: dict[str, str]) -> None:
        """Send a 200 head whose body follows in pieces through :meth:`write`."""
        ...

    async def write(self, data: bytes) -> None:
        """One piece of a streamed body; raises ``ConnectionResetError`` once the client
        has gone."""
        ...


class AiohttpExchange:
    """An :class:`Exchange` over an aiohttp request; the route's answer is :attr:`response`."""

    __slots__ = ("app", "generation", "headers", "request", "request_id", "response")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.app = request.app
        self.generation = generation_of(request)
        self.request_id = request[REQUEST_ID_KEY]
        self.headers: Mapping[str, str] = request.headers
        self.response: web.StreamResponse | None = None

    async def json(self) -> JSONObject:
        return await read_json(self.request)

    def answer(self, body: Any, headers: dict[str, str], status: int = 200) -> None:
        self.response = json_response(body, status=status, headers=headers)

    def answer_json(self, data: bytes, headers: dict[str, str]) -> None:
        self.response = web.Response(body=data, content_type="application/json", headers=headers)

    async def open_stream(self, headers: dict[str, str]) -> None:
        self.response = web.StreamResponse(headers=headers)
        await self.response.prepare(self.request)

    async def write(self, data: bytes) -> None:
        assert self.response is not None
        await self.response.write(data)

    def answered(self) -> web.StreamResponse:
        assert self.response is not None, "the route did not answer"
        return self.response
