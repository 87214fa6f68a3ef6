"""A 200 answer of the Messages API that the gateway relays as is (gateway/passthrough.py).

Its body, or its stream's lines as they arrive, are read with the bounds and the
translation of failures of every other upstream read (providers/http.py): a stream that
breaks off, goes silent or sends an endless line raises an :class:`UpstreamError` that the
relay ends the client's stream with, instead of a transport error escaping mid-answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tokenyard.errors import UpstreamTimeout
from tokenyard.providers.http import UpstreamHttp, stream_body
from tokenyard.providers.transport import Response
from tokenyard.wire.sse import lines


class RawAnswer:
    def __init__(self, response: Response, http: UpstreamHttp):
        self._response = response
        self._http = http

    @property
    def content(self) -> AsyncIterator[bytes]:
        """The streamed body's lines, each with its line end (LF), as they arrive."""
        return self._lines()

    async def _lines(self) -> AsyncIterator[bytes]:
        provider = self._http.name
        try:
            async for line in lines(stream_body(self._response, provider)):
                yield line + b"\n"
        except TimeoutError:
            raise UpstreamTimeout(f"provider {provider} went silent mid-stream") from None

    async def read(self) -> bytes:
        """The whole body (bounded, within ``timeout_s``); the response is released."""
        return await self._http.read(self._response)

    def release(self) -> None:
        """Back to the pool when read to its end; closed (the upstream stops) otherwise."""
        self._response.release()
