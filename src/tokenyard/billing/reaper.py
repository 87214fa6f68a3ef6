"""Releasing the reservations of processes that died (SIGKILL, power loss).

Every process heartbeats its owner id into the database. On start and periodically, a
process releases the reservations of owners that are certainly dead: on the same host with
no such pid (or with its own pid: the pid was reused by a restart), or silent for longer
than ``stale_after_s`` anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from tokenyard.errors import ServiceUnavailable
from tokenyard.store.holds import HeldReservation, HoldStore

log = logging.getLogger(__name__)


def new_owner() -> tuple[str, str, int]:
    host = socket.gethostname()[:60]
    pid = os.getpid()
    return f"{host}:{pid}:{secrets.token_hex(4)}", host, pid


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OwnerStore(Protocol):
    async def heartbeat(self, owner: str, host: str, pid: int) -> None: ...

    async def owners(self) -> list[tuple[str, str, int, datetime]]: ...

    async def reservations_of(self, owner: str) -> list[HeldReservation]: ...

    async def forget(self, owner: str) -> None: ...


class Reaper:
    def __init__(
        self,
        store: OwnerStore,
        holds: HoldStore,
        *,
        owner: str,
        host: str,
        pid: int,
        interval_s: float = 5.0,
        stale_after_s: float = 60.0,
        active: Callable[[], set[str]] = set,
        alive: Callable[[int], bool] = pid_alive,
        clock: Callable[[], float] = time.time,
    ):
        self._store = store
        self._holds = holds
        self.owner, self._host, self._pid = owner, host, pid
        self._interval_s = interval_s
        self._stale_after_s = stale_after_s
        self._active = active
        self._alive = alive
        self._clock = clock

    def _dead(self, host: str, pid: int, heartbeat: datetime) -> bool:
        if host == self._host and (pid == self._pid or not self._alive(pid)):
            return True
        return self._clock() - heartbeat.astimezone(UTC).timestamp() > self._stale_after_s

    async def run_once(self) -> int:
        await self._store.heartbeat(self.owner, self._host, self._pid)
        released = await self._release_orphans()
        for owner, host, pid, heartbeat in await self._store.owners():
            if owner != self.owner and self._dead(host, pid, heartbeat):
                count = await self.release_owner(owner)
                released += count
                log.warning(
                    "released the reservations of a dead process",
                    extra={"fields": {"owner": owner, "released": count}},
                )
        return released

    async def _release_orphans(self) -> int:
        """Release this process's own holds that nothing works on any more."""
        count = 0
        for held in await self._store.reservations_of(self.owner):
            if held.id not in self._active():
                count += await self._holds.release(held)
        if count:
            log.warning("released orphaned reservations", extra={"fields": {"released": count}})
        return count

    async def release_owner(self, owner: str) -> int:
        """Release every reservation of a dead process; returns how many."""
        count = 0
        for held in await self._store.reservations_of(owner):
            count += await self._holds.release(held)
        await self._store.forget(owner)
        return count

    async def run(self) -> None:
        """Every ``interval_s``; while the database is away, says so once, not every turn."""
        away = False
        while True:
            try:
                await self.run_once()
            except ServiceUnavailable:
                if not away:
                    log.warning("reaper: database unavailable; retrying")
                away = True
            else:
                if away:
                    log.warning("reaper: database reachable again")
                away = False
            await asyncio.sleep(self._interval_s)

    async def stop(self) -> None:
        try:
            await self._store.forget(self.owner)
        except ServiceUnavailable:
            log.warning("reaper: could not deregister on shutdown")
