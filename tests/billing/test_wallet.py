"""The wallet's settlement when its caller is cancelled (a client that hangs up), on a real
SQLite database."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from tokenyard.billing.price import Price, cost_nano
from tokenyard.billing.wallet import Payer, Settled, Wallet
from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts
from tokenyard.store.holds import HeldReservation
from tokenyard.store.ledger import SqlLedger
from tokenyard.wire.usage import Usage


def test_a_cancelled_caller_waits_for_the_charge_and_it_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "w.db"

    async def scenario() -> None:
        db = Database(f"sqlite:///{path}")
        await db.upgrade()
        accounts, holds = SqlAccounts(db.engine), db.hold_store()
        account = await accounts.create_account("a")
        await SqlLedger(db.engine).credit(account.id, 10**9, "seed")
        held = HeldReservation("req_1", account.id, None, 10**6)
        assert await holds.reserve(held, "me") is None
        wallet = Wallet(holds, owner="me")
        wallet.active.add(held.id)
        price = Price(input=Decimal(1), output=Decimal(2), cached_input=Decimal(1))
        usage = Usage(prompt_tokens=1000, completion_tokens=500)
        payer = Payer(account.id, "key_1", Decimal("0.1"))
        reported: list[Settled] = []
        # Another connection holds the write lock: the charge waits for it on the thread.
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        before = len(asyncio.all_tasks())
        settling = asyncio.create_task(
            wallet.settle(
                held,
                payer=payer,
                price=price,
                usage=usage,
                model="m",
                provider="p",
                on_charged=reported.append,
            )
        )
        for _ in range(500):  # until the charge runs in its own task
            if len(asyncio.all_tasks()) >= before + 2:
                break
            await asyncio.sleep(0.01)
        settling.cancel()
        await asyncio.sleep(0.05)
        assert not settling.done()  # the cancellation waits for the charge
        assert reported == []
        blocker.execute("ROLLBACK")
        blocker.close()
        with pytest.raises(asyncio.CancelledError):
            await settling
        expected = cost_nano(price, usage, payer.markup)
        assert [s.cost_nano for s in reported] == [expected]
        row = await accounts.get_account(account.id)
        assert row is not None
        assert (row.balance_nano, row.reserved_nano) == (10**9 - expected, 0)
        assert held.id not in wallet.active
        await holds.close()
        await db.close()

    asyncio.run(scenario())
