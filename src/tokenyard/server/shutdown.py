"""Ending what is in flight when the process stops (SIGTERM, server/run.py).

:class:`Drain` knows every request being handled (its middleware). Once the listening
sockets are closed, :meth:`Drain.drain` lets them finish for up to
``server.shutdown_timeout_s``; what still runs then is cancelled. A cancelled handler
closes its upstream and settles what was produced on its way out (gateway/relay.py, the
``finally`` paths); the middleware then ends a stream that had begun with an error event —
an OpenAI ``data:`` error and ``[DONE]``, or an Anthropic ``error`` event on /v1/messages —
and answers a request that had not begun with 503; either way the request log records
``service_unavailable``, what the client was told. aiohttp's own shutdown timeout cancels
too, but closes the connection first: the client would see a cut, not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from tokenyard.errors import ServiceUnavailable
from tokenyard.server.middleware import note_error
from tokenyard.wire.anthropic.response import anthropic_error
from tokenyard.wire.anthropic.stream import event
from tokenyard.wire.json import dumps
from tokenyard.wire.sse import DONE_FRAME, frame

log = logging.getLogger(__name__)

END_GRACE_S = 5.0
"""After the deadline, how long cancelled requests get to settle and write their end."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


class Drain:
    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()
        self._ended: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        return await self.guard(
            handler(request),
            begun=lambda: bool(request.writer.output_size),
            end=lambda error: _end_stream(request, error),
        )

    async def guard(
        self,
        handling: Awaitable[T],
        *,
        begun: Callable[[], bool],
        end: Callable[[ServiceUnavailable], Awaitable[None]],
    ) -> T:
        """Await ``handling`` as one request in flight. Ended by the shutdown: before its
        answer ``begun``, it raises 503; after, ``end`` writes the stream's last words."""
        task = asyncio.current_task()
        assert task is not None
        if not self._running:  # the first in flight: no longer idle
            self._idle.clear()
        self._running.add(task)
        try:
            return await handling
        except asyncio.CancelledError:
            if task not in self._ended:
                raise  # the client left, or the loop is going: nothing to tell anyone
            stopping = ServiceUnavailable("the gateway is shutting down")
            if not begun():  # nothing sent yet: an ordinary 503
                task.uncancel()
                raise stopping from None
            note_error(stopping)  # the request log says what the client was told
            await end(stopping)
            raise
        finally:
            self._running.discard(task)
            self._ended.discard(task)
            if not self._running:
                self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def drain(self, deadline_s: float) -> None:
        """Wait until no request is in flight, for up to ``deadline_s``; then end the rest."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), deadline_s)
        left = list(self._running)
        if not left:
            return
        log.warning(
            "shutdown deadline reached: ending the requests still running",
            extra={"fields": {"in_flight": len(left)}},
        )
        self._ended.update(left)
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=END_GRACE_S)


def last_words(path: str, error: ServiceUnavailable) -> bytes:
    """The end of a stream that was cut, in the client API's own shape."""
    if path == "/v1/messages":
        return event(anthropic_error(error.status, error.message))
    return frame(dumps(error.body())) + DONE_FRAME


async def _end_stream(request: web.Request, error: ServiceUnavailable) -> None:
    await request.writer.write(last_words(request.path, error))
    await request.writer.write_eof()


DRAIN = web.AppKey("drain", Drain)
