"""The wallet's settlement on a real SQLite database: when its caller is cancelled (a client
that hangs up), and when the request is alone in flight, so that the charge commits at once
(store/sqlite_writer.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from tokenyard.billing.price import Markup, Price, cost_nano
from tokenyard.billing.wallet import Payer, Settled, Wallet
from tokenyard.errors import ServiceUnavailable
from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts
from tokenyard.store.holds import Charge, HeldReservation
from tokenyard.store.ledger import SqlLedger
from tokenyard.wire.usage import Usage

PRICE = Price(input=Decimal(1), output=Decimal(2), cached_input=Decimal(1))
USAGE = Usage(prompt_tokens=1000, completion_tokens=500)


class Books:
    """A credited account with one hold, and a wallet that knows of it; its writer told
    whether the request is alone in flight."""

    def __init__(self, path: Path, *, alone: bool, url: str | None = None, request: str = "req_1"):
        self.path = path
        self.alone = alone
        self.request = request
        self.db = Database(url or f"sqlite:///{path}")

    async def open(self) -> None:
        await self.db.upgrade()
        self.accounts, self.holds = SqlAccounts(self.db.engine), self.db.hold_store()
        account = await self.accounts.create_account("a")
        await SqlLedger(self.db.engine).credit(account.id, 10**9, f"seed:{self.request}")
        self.held = HeldReservation(self.request, account.id, None, 10**6)
        self.payer = Payer(account.id, "key_1", Markup.of(Decimal("0.1")))
        writer = self.db.sqlite_writer()
        if writer is not None:  # PostgreSQL has none
            writer.alone = lambda: self.alone
        self.wallet = Wallet(self.holds, owner="me")
        assert await self.holds.reserve(self.held, "me") is None
        self.wallet.active.add(self.held.id)

    async def settle(self, reported: list[Settled]) -> Settled:
        return await self.wallet.settle(
            self.held,
            payer=self.payer,
            price=PRICE,
            usage=USAGE,
            model="m",
            provider="p",
            on_charged=reported.append,
        )

    async def sums(self) -> tuple[int, int]:
        row = await self.accounts.get_account(self.held.account_id)
        assert row is not None
        return row.balance_nano, row.reserved_nano

    async def close(self) -> None:
        await self.holds.close()
        await self.db.close()


@pytest.mark.parametrize("alone", [False, True], ids=["in-a-batch", "alone"])
def test_a_cancelled_caller_waits_for_the_charge_and_it_is_reported(
    tmp_path: Path, alone: bool
) -> None:
    """Alone or not, a charge that must wait (another process holds the write lock) is the
    writer's queued operation, which goes on and which the caller's cancellation waits for."""

    async def scenario() -> None:
        books = Books(tmp_path / "w.db", alone=alone)
        await books.open()
        reported: list[Settled] = []
        # Another connection holds the write lock: the charge waits for it on the thread.
        blocker = sqlite3.connect(books.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        settling = asyncio.create_task(books.settle(reported))
        await asyncio.sleep(0.05)  # queued, flushed, and waiting for the lock on the thread
        settling.cancel()
        await asyncio.sleep(0.05)
        assert not settling.done()  # the cancellation waits for the charge
        assert reported == []
        blocker.execute("ROLLBACK")
        blocker.close()
        with pytest.raises(asyncio.CancelledError):
            await settling
        expected = cost_nano(PRICE, USAGE, books.payer.markup)
        assert [s.cost_nano for s in reported] == [expected]
        assert await books.sums() == (10**9 - expected, 0)
        assert books.held.id not in books.wallet.active
        await books.close()

    asyncio.run(scenario())


def test_alone_the_charge_is_committed_and_reported_without_a_loop_turn(tmp_path: Path) -> None:
    async def scenario() -> None:
        books = Books(tmp_path / "w.db", alone=True)
        await books.open()
        turned: list[str] = []
        asyncio.get_running_loop().call_soon(turned.append, "a turn")
        reported: list[Settled] = []
        settled = await books.settle(reported)
        assert turned == []  # neither a task nor a wait: committed before settle returned
        expected = cost_nano(PRICE, USAGE, books.payer.markup)
        assert settled.cost_nano == expected
        assert reported == [settled]
        assert books.held.id not in books.wallet.active
        assert await books.sums() == (10**9 - expected, 0)
        await books.close()

    asyncio.run(scenario())


def test_alone_a_charge_that_cannot_commit_fails_and_leaves_the_hold(tmp_path: Path) -> None:
    """A database error during the charge comes back as a 503 to the caller; the ledger has
    no charge and the hold stays for the reaper, as when the charge waits in its task."""

    async def scenario() -> None:
        books = Books(tmp_path / "w.db", alone=True)
        await books.open()
        broken = sqlite3.connect(books.path, isolation_level=None)
        broken.execute("ALTER TABLE reservations RENAME TO gone")  # the charge's DELETE fails
        broken.close()
        reported: list[Settled] = []
        with pytest.raises(ServiceUnavailable):
            await books.settle(reported)
        assert reported == []
        assert books.held.id not in books.wallet.active
        assert await books.sums() == (10**9, 10**6)  # nothing charged, the hold still held
        await books.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("cancels", [1, 2], ids=["cancelled", "cancelled-twice"])
def test_a_charge_cancelled_while_queued_is_committed_once_and_reported(
    database_url: str, tmp_path: Path, cancels: int
) -> None:
    """Not alone, the charge is the store's future (on SQLite the writer's queued operation,
    no task of its own). A caller cancelled before it commits — even before the group
    commit's flush — must not take it out of the queue: it is committed once and reported
    once, before the cancellation ends the request (cancelled once) or when it commits
    (cancelled again while waiting for it)."""

    async def scenario() -> None:
        request = f"req_queued_{cancels}"
        books = Books(tmp_path / "w.db", alone=False, url=database_url, request=request)
        await books.open()
        reported: list[Settled] = []
        settling = asyncio.create_task(books.settle(reported))
        await asyncio.sleep(0)  # the charge is queued; its flush (or round trip) is not done
        for _ in range(cancels):
            settling.cancel()
            await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError):
            await settling
        if cancels == 1:
            assert len(reported) == 1  # reported before the cancellation ended the caller
        for _ in range(500):
            if reported:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # no second report comes
        expected = cost_nano(PRICE, USAGE, books.payer.markup)
        assert [s.cost_nano for s in reported] == [expected]
        assert await books.sums() == (10**9 - expected, 0)
        assert books.held.id not in books.wallet.active
        assert await books.holds.settle(_charge_again(books, expected)) is False  # once only
        await books.close()

    asyncio.run(scenario())


def _charge_again(books: Books, cost: int) -> Charge:
    held = books.held
    return Charge(
        held.id, held.account_id, held.key_id, held.amount_nano, cost, cost, "m", "p", 0, 0, 0
    )
