"""SQLite holds run their transactions on the event loop with the WAL's automatic
checkpoint off (its fsync would stall every request); the holds' thread checkpoints every
CHECKPOINT_EVERY commits instead. If it did not, the WAL would grow without end."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts
from tokenyard.store.holds import HeldReservation
from tokenyard.store.ledger import SqlLedger
from tokenyard.store.sqlite_holds import CHECKPOINT_EVERY

PAIRS = 2 * CHECKPOINT_EVERY  # a hold and its release: 4 checkpoints' worth of commits


def test_the_wal_is_checkpointed_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "holds.db"
    wal = Path(f"{path}-wal")

    async def scenario() -> tuple[int, int]:
        db = Database(f"sqlite:///{path}")
        await db.upgrade()
        account = await SqlAccounts(db.engine).create_account("a")
        await SqlLedger(db.engine).credit(account.id, 10**12, "seed")
        await db.engine.dispose()  # only the holds write from here on
        holds = db.hold_store()
        sizes = []
        for round_ in range(2):
            for i in range(PAIRS):
                held = HeldReservation(f"req_{round_}_{i}", account.id, None, 1000)
                assert await holds.reserve(held, "me") is None
                assert await holds.release(held)
            await asyncio.sleep(0.2)  # the last checkpoint, on the thread, finishes
            sizes.append(wal.stat().st_size)  # noqa: ASYNC240 (a test, measuring)
        await holds.close()
        return sizes[0], sizes[1]

    first, second = asyncio.run(scenario())
    # Checkpointed, the WAL is reused from its start: the second round does not grow it.
    # Without checkpoints, it would have doubled.
    assert second <= first * 1.2, (first, second)
