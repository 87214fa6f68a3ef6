"""Running a stand-in server on its own event loop in a daemon thread, for sync tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol


class Server(Protocol):
    async def start(self) -> Any: ...

    async def stop(self) -> None: ...


def run_in_thread(server: Server, name: str = "standin") -> tuple[Any, Callable[[], None]]:
    """Start ``server``; returns what its ``start`` returned (usually its base URL) and an
    idempotent ``stop``."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        try:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            if not thread.is_alive():
                loop.close()

    try:
        started = asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
    except BaseException:
        stop()
        raise
    return started, stop
