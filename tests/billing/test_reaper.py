"""The reaper on a real SQLite database: which reservations it releases, and which not."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tokenyard.billing.reaper import Reaper
from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts
from tokenyard.store.holds import HeldReservation
from tokenyard.store.ledger import SqlLedger


def test_releases_dead_and_orphaned_holds_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(f"sqlite:///{tmp_path / 'r.db'}")
        await db.upgrade()
        ledger, holds = SqlLedger(db.engine), db.hold_store()
        account = await SqlAccounts(db.engine).create_account("a")
        await ledger.credit(account.id, 1000, "seed")
        owners = {
            "me": ("me", "host-a", os.getpid()),
            "dead-here": ("dead-here", "host-a", 999_999),  # no such pid on this host
            "alive-here": ("alive-here", "host-a", os.getppid()),
            "silent-there": ("silent-there", "host-b", 1),
            "fresh-there": ("fresh-there", "host-b", 1),
        }
        for name, (owner, host, pid) in owners.items():
            if name != "silent-there":  # it never heartbeat: silent since forever
                await ledger.heartbeat(owner, host, pid)
            await holds.reserve(HeldReservation(f"r-{name}", account.id, None, 10), owner)
        await holds.reserve(HeldReservation("r-me-busy", account.id, None, 10), "me")
        reaper = Reaper(
            ledger,
            holds,
            owner="me",
            host="host-a",
            pid=os.getpid(),
            stale_after_s=60,
            active=lambda: {"r-me-busy"},
            alive=lambda pid: pid != 999_999,
            clock=lambda: time.time() + 30,
        )
        released = await reaper.run_once()
        assert released == 3  # r-me (orphaned), r-dead-here, r-silent-there
        left = {
            h.id
            for o in ("me", "alive-here", "fresh-there", "dead-here", "silent-there")
            for h in await ledger.reservations_of(o)
        }
        assert left == {"r-me-busy", "r-alive-here", "r-fresh-there"}
        assert (await SqlAccounts(db.engine).get_account(account.id)).reserved_nano == 30  # type: ignore[union-attr]
        assert await reaper.run_once() == 0
        await reaper.stop()
        assert {o for o, *_ in await ledger.owners()} == {"alive-here", "fresh-there", "me"}
        await holds.close()
        await db.close()

    asyncio.run(scenario())
