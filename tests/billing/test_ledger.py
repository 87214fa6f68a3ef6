"""The ledger's invariants under any sequence of credits, holds, charges and releases —
checked against a plain model of the books, on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts
from tokenyard.store.holds import Charge, HeldReservation
from tokenyard.store.ledger import SqlLedger
from tokenyard.store.tables import accounts, api_keys, ledger, reservations

ACCOUNTS = 2
operation = st.one_of(
    st.tuples(
        st.just("credit"), st.integers(0, ACCOUNTS - 1), st.integers(-50, 500), st.integers(0, 5)
    ),
    st.tuples(st.just("hold"), st.integers(0, ACCOUNTS - 1), st.booleans(), st.integers(0, 300)),
    st.tuples(st.just("settle"), st.integers(0, 20), st.floats(0, 1), st.booleans()),
    st.tuples(st.just("release"), st.integers(0, 20), st.just(0), st.just(0)),
)


@dataclass
class Books:
    """What the ledger should say."""

    credits: dict[int, int] = field(default_factory=dict)
    charges: dict[int, int] = field(default_factory=dict)
    key_spent: dict[int, int] = field(default_factory=dict)
    references: dict[str, int] = field(default_factory=dict)
    open: dict[int, HeldReservation] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)
    late: bool = False  # a hold released (by the reaper) was charged after all


async def check_invariants(db: Database, ids: list[str], keys: list[str], books: Books) -> None:
    async with db.engine.connect() as conn:
        for index, account_id in enumerate(ids):
            row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).one()
            ledger_sum = await conn.scalar(
                select(func.coalesce(func.sum(ledger.c.amount_nano), 0)).where(
                    ledger.c.account_id == account_id
                )
            )
            held = await conn.scalar(
                select(func.coalesce(func.sum(reservations.c.amount_nano), 0)).where(
                    reservations.c.account_id == account_id
                )
            )
            expected = books.credits.get(index, 0) - books.charges.get(index, 0)
            assert row.balance_nano == ledger_sum == expected
            assert row.reserved_nano == held >= 0
            assert row.reserved_nano == sum(
                h.amount_nano for h in books.open.values() if h.account_id == account_id
            )
            key = (await conn.execute(select(api_keys).where(api_keys.c.id == keys[index]))).one()
            assert key.spent_nano == books.key_spent.get(index, 0)
            assert key.reserved_nano >= 0
            # The key budget below; only a charge that arrives after its hold was released
            # (a request the reaper gave up on, that finished after all) can go past it.
            assert key.spent_nano + key.reserved_nano <= 400 or books.late
        charged = await conn.scalar(
            select(func.count()).select_from(ledger).where(ledger.c.kind == "charge")
        )
        assert charged == len(books.closed)


async def scenario(url: str, operations: list[tuple[str, int, object, object]]) -> None:
    db = Database(url)
    await db.upgrade()
    store, money, hot = SqlAccounts(db.engine), SqlLedger(db.engine), db.hold_store()
    ids, keys = [], []
    for i in range(ACCOUNTS):
        account = await store.create_account(f"a{i}")
        key = await store.create_key(
            account_id=account.id,
            name="k",
            key_hash=f"{account.id}h",
            prefix="ty-x",
            models=None,
            rpm=None,
            tpm=None,
            budget_nano=400,
            expires_at=None,
        )
        ids.append(account.id)
        keys.append(key.id)
    books = Books()
    holds: list[HeldReservation] = []
    for step, (kind, a, b, c) in enumerate(operations):
        if kind == "credit":
            amount, reference = int(b), f"{ids[a]}-ref-{c}"  # type: ignore[call-overload]
            if amount == 0:
                continue
            result = await money.credit(ids[a], amount, reference)
            assert result is not None
            applied = reference not in books.references
            assert result[1] is applied
            if applied:
                books.references[reference] = amount
                books.credits[a] = books.credits.get(a, 0) + amount
        elif kind == "hold":
            use_key, amount = bool(b), int(c)  # type: ignore[call-overload]
            held = HeldReservation(f"r{step}", ids[a], keys[a] if use_key else None, amount)
            balance = books.credits.get(a, 0) - books.charges.get(a, 0)
            reserved = sum(h.amount_nano for h in books.open.values() if h.account_id == ids[a])
            key_used = books.key_spent.get(a, 0) + sum(
                h.amount_nano for h in books.open.values() if h.key_id == keys[a]
            )
            expected = None if balance - reserved >= amount else "account"
            if expected is None and use_key and key_used + amount > 400:
                expected = "key"
            assert await hot.reserve(held, "owner-1") == expected
            if expected is None:  # a refused hold never reaches an upstream, nor a charge
                books.open[len(holds)] = held
                holds.append(held)
        elif kind in ("settle", "release") and holds:
            index = a % len(holds)
            held = holds[index]
            if kind == "release":
                released = await hot.release(held)
                assert released is (index in books.open)
                books.open.pop(index, None)
                continue
            cost = int(held.amount_nano * float(b))  # type: ignore[arg-type]
            charge = Charge(
                held.id,
                held.account_id,
                held.key_id,
                held.amount_nano,
                cost,
                cost,
                "m",
                "p",
                1,
                0,
                1,
            )
            charged = await hot.settle(charge)
            # Settling twice never charges twice; settling a released hold (the reaper may
            # have released it) still charges, once.
            assert charged is (index not in books.closed)
            if charged:
                books.late |= index not in books.open
                books.closed.add(index)
                account_index = ids.index(held.account_id)
                books.charges[account_index] = books.charges.get(account_index, 0) + cost
                if held.key_id is not None:
                    books.key_spent[account_index] = books.key_spent.get(account_index, 0) + cost
            books.open.pop(index, None)
            if c and charged:  # settle the same request again: must change nothing
                assert await hot.settle(charge) is False
        await check_invariants(db, ids, keys, books)
    await hot.close()
    await db.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.services)]
)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=st.lists(operation, max_size=25))
def test_books_always_balance(
    backend: str,
    operations: list[tuple[str, int, object, object]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'l.db'}"
        asyncio.run(scenario(url, operations))
        return
    from tests.e2e.harness import postgres_database

    admin = os.environ.get("TOKENYARD_TEST_PG")
    if not admin:
        pytest.fail("TOKENYARD_TEST_PG is not set: run the tests through `make test`")
    url, drop = postgres_database(admin)
    try:
        asyncio.run(scenario(url, operations))
    finally:
        drop()


def test_a_free_hold_can_be_released(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Found by the property test: a hold of zero (a free model) is still a hold."""
    url = f"sqlite:///{tmp_path_factory.mktemp('zero') / 'z.db'}"
    asyncio.run(scenario(url, [("hold", 0, False, 0), ("release", 0, 0, 0)]))
