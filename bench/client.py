"""The upstream call alone: aiohttp's client against tokenyard's (providers/transport/).

Usage: ``python bench/client.py [--requests 20000] [--concurrency 1,16]``.

Starts the stand-in upstream (``upstream.py``) on one core and, on the other, POSTs a chat
request to it and reads the whole answer, ``--requests`` times per row with
``--concurrency`` callers, through each client as the gateway uses it: aiohttp's
``ClientSession`` (no cookie jar, a per-call ``ClientTimeout``, ``asyncio.timeout`` around
the post and the read) and ``HttpClient`` (the same two timeouts). Prints CPU µs per call of
this process, which is the client's whole cost (the upstream runs elsewhere), and calls/s.
This is the measurement behind decision 0014.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import aiohttp

import procs
from tokenyard.providers.transport import HttpClient

BODY = b'{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
HEADERS = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
WARMUP = 500


class Answer(Protocol):
    """What both clients' responses offer: the whole body, then back to the pool."""

    async def read(self) -> bytes: ...

    def release(self) -> None: ...


async def measure(
    send: Callable[[], Awaitable[Answer]], requests: int, concurrency: int
) -> tuple[float, float]:
    """(CPU µs per call, calls per second) of ``requests`` calls by ``concurrency`` callers;
    a call is ``send()`` and a read of the whole answer, each within the gateway's bounds."""

    async def call() -> bytes:
        async with asyncio.timeout(30):
            response = await send()
        try:
            async with asyncio.timeout(30):
                return await response.read()
        finally:
            response.release()

    for _ in range(WARMUP):
        await call()
    left = requests

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / requests * 1e6, requests / wall


async def with_aiohttp(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        return await measure(
            lambda: session.post(url, data=BODY, headers=HEADERS, timeout=timeout),
            requests,
            concurrency,
        )


async def with_transport(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    async with HttpClient() as client:
        return await measure(
            lambda: client.post(url, BODY, HEADERS, connect_timeout_s=10), requests, concurrency
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args(argv)
    loop_name = procs.install_uvloop()
    mine, theirs = procs.plan_cores()
    port = procs.free_port()
    log = Path(tempfile.mkdtemp(prefix="tokenyard-client-bench-")) / "upstream.log"
    cmd = [sys.executable, str(Path(__file__).with_name("upstream.py")), "--port", str(port)]
    upstream = procs.start("upstream", cmd, log, theirs)
    procs.pin_self(mine)
    try:
        procs.wait_ready(upstream, f"http://127.0.0.1:{port}/health", timeout=10)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        print(f"loop: {loop_name}; client on core {mine}, upstream on core {theirs}\n")
        print("| client | conc | calls/s | CPU µs/call |")
        print("|---|---:|---:|---:|")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for name, run in (
                ("aiohttp ClientSession", with_aiohttp),
                ("HttpClient", with_transport),
            ):
                cpu_us, rate = asyncio.run(run(url, args.requests, concurrency))
                print(f"| {name} | {concurrency} | {rate:,.0f} | {cpu_us:.1f} |")
    finally:
        procs.stop(upstream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
