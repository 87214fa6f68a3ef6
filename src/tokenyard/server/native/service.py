"""The gateway's own HTTP/1.1 server for the hot paths, in front of aiohttp (decision 0015).

It listens on the gateway's port. The client API's hot paths (chat completions,
messages, embeddings) are answered here; a
connection's first request to any other route hands that connection to aiohttp, which
serves every route. What aiohttp's middleware does for a request (server/middleware.py,
generation.py, shutdown.py) :meth:`Service.serve` does for an exchange, with the same
pieces: a request id, the request's record, the pinned config generation, the shutdown's
count of what is in flight, and errors answered in the OpenAI shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from tokenyard.errors import TokenyardError
from tokenyard.server.client_api import chat, embed
from tokenyard.server.generation import CURRENT
from tokenyard.server.http import REQUEST_ID
from tokenyard.server.messages_api import anthropic_messages
from tokenyard.server.middleware import (
    INTERNAL,
    RECORDED,
    Recording,
    crashed,
    error_headers,
    failed,
    new_request_id,
)
from tokenyard.server.native.connection import Connection
from tokenyard.server.native.exchange import NativeExchange, Route
from tokenyard.server.shutdown import DRAIN
from tokenyard.server.state import LIMITS, SINKS

log = logging.getLogger(__name__)

HOT: dict[tuple[bytes, bytes], Route] = {
    (b"POST", b"/v1/chat/completions"): chat,
    (b"POST", b"/v1/messages"): anthropic_messages,
    (b"POST", b"/v1/embeddings"): embed,
}
"""The routes this server answers itself; aiohttp has them too, for connections it serves."""


class Service:
    """What every connection shares: the application, its routes, and aiohttp to hand
    connections to."""

    def __init__(self, app: web.Application, aiohttp_protocol: Callable[[], asyncio.Protocol]):
        self.app = app
        self.limits = app[LIMITS]
        self.routes = HOT
        self.aiohttp_protocol = aiohttp_protocol
        self.connections: set[Connection] = set()
        self.stopping = False
        self._current = app[CURRENT]
        self._drain = app[DRAIN]
        self._sinks = app.get(SINKS)

    async def serve(self, exchange: NativeExchange) -> None:
        request_id = exchange.request_id = new_request_id()
        operation = RECORDED[exchange.path]
        try:
            with Recording(request_id, operation, exchange.headers, self._sinks) as recording:
                await self._answer(exchange)
                recording.record.finish(exchange.status)
        except Exception:  # a bug past the route's own handling: logged, the connection cut
            log.exception("unhandled error", extra={"fields": {"request_id": request_id}})
            exchange.cut()
        finally:
            exchange.finish()

    async def _answer(self, exchange: NativeExchange) -> None:
        request_id = exchange.request_id
        generation = exchange.generation = self._current.pin()
        try:
            await self._drain.guard(
                exchange.route(exchange), begun=exchange.has_begun, end=exchange.end_with
            )
            if not exchange.started:
                raise RuntimeError(f"the route {exchange.path} did not answer")
        except TokenyardError as exc:
            failed(exc, request_id)
            exchange.fail(exc.status, exc.body(), error_headers(exc, request_id))
        except Exception:
            crashed(request_id)
            exchange.fail(500, INTERNAL, {REQUEST_ID: request_id})
        finally:
            self._current.unpin(generation)

    def stop_accepting(self) -> None:
        """Idle connections close now, busy ones after their answer."""
        self.stopping = True
        for connection in list(self.connections):
            connection.close_if_idle()

    def close(self) -> None:
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()


async def listen(service: Service, host: str, port: int, *, reuse_port: bool) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: Connection(service), host, port, reuse_port=reuse_port or None, backlog=1024
    )
