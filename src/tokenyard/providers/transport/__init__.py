"""The HTTP/1.1 client the gateway calls upstreams with: kept-alive connections per origin,
requests written in one piece, responses parsed by httptools (llhttp, uvicorn's parser).

Why not aiohttp's client (docs/decisions/0014): a POST and its read cost 71 µs of CPU at
concurrency 16 and 154 µs alone through aiohttp's ``ClientSession``, against 22 and 68 µs
here (``bench/client.py``). The gateway makes one such call per request: that was a tenth
of its whole cost per request, and a fifth of the 0.5 ms latency goal at concurrency 1.

What it does, and no more, since it only ever talks to configured upstream APIs:

- ``POST`` with a body of known length; no redirects (an API that redirects is
  misconfigured, and its status becomes the provider's error), no cookies, no proxy;
- responses framed by Content-Length, chunked, or the connection's end; ``gzip`` and
  ``deflate`` bodies are inflated (none is asked for, but some servers send them anyway);
- idle connections are kept per origin and reused last in, first out; one idle for
  longer than ``keepalive_s``, or closed by the upstream, is dropped; a response read to
  its end goes back to the pool, anything else closes its connection (which cancels a
  generation);
- a new connection tries the host's addresses 250 ms apart (happy eyeballs), all within
  ``connect_timeout_s``; TLS is verified against the system's trust store and host name;
- a response's body is buffered up to :data:`HIGH_WATER` bytes, beyond which the socket is
  no longer read until the reader catches up, as a slow client slows its upstream;
- the headers can be awaited until a ``deadline`` (the caller's first-byte timeout,
  connecting included) and a streamed response's reads, the headers' too, bounded by
  ``idle_timeout_s``; one timer serves the wait for the headers (``TimeoutError``).

Every failure of the connection or of the upstream's HTTP is a :class:`TransportError`;
timeouts are ``TimeoutError``. Callers (providers/http.py) translate both.

The pieces, each a module here: ``client`` (the pool, and the bytes of a request),
``connection`` (one connection: the parser's callbacks, reuse or not) and ``response``
(one response's body as it arrives: buffering, back-pressure, the idle timer).
"""

from tokenyard.providers.transport.client import HttpClient
from tokenyard.providers.transport.response import HIGH_WATER, Response, TransportError

__all__ = ["HIGH_WATER", "HttpClient", "Response", "TransportError"]
