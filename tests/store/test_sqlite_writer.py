"""The SQLite writer (store/sqlite_writer.py): what is queued in two turns of the event loop
is committed in one transaction, each operation in its own savepoint, and nobody hears of
a result before it is committed. Its connection runs with the WAL's automatic checkpoint
off (its fsync would stall every request); its thread checkpoints every CHECKPOINT_EVERY
commits instead. If it did not, the WAL would grow without end."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tokenyard.errors import ServiceUnavailable
from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts
from tokenyard.store.holds import Charge, HeldReservation
from tokenyard.store.ledger import SqlLedger
from tokenyard.store.sqlite_writer import CHECKPOINT_EVERY, PAGE_SIZE, SqliteWriter

AT_ONCE = 8  # holds per turn: each turn commits 8 holds, then 8 releases
TURNS = CHECKPOINT_EVERY * 5 // 8  # a round: 1.25 checkpoints' worth of commits, so that
# checkpoints fall while writes go on, never only in the pauses between rounds
ROUNDS = 6


def test_the_wal_is_checkpointed_off_the_loop_while_writes_go_on(tmp_path: Path) -> None:
    """Checkpoints run on the writer's thread while the loop keeps committing. A passive
    checkpoint never catches up with a busy writer, so SQLite never restarts the WAL, which
    then grows by every commit (measured: 5.3 MB more each round, without end). The
    writer's checkpoints make SQLite restart it, so it stays the size of a round."""
    path = tmp_path / "holds.db"
    wal = Path(f"{path}-wal")

    async def scenario() -> list[int]:
        db = Database(f"sqlite:///{path}")
        await db.upgrade()
        account = await SqlAccounts(db.engine).create_account("a")
        await SqlLedger(db.engine).credit(account.id, 10**12, "seed")
        await db.engine.dispose()  # only the writer writes from here on
        holds = db.hold_store()

        async def hold_and_release(name: str) -> None:
            held = HeldReservation(name, account.id, None, 1000)
            assert await holds.reserve(held, "me") is None
            assert await holds.release(held)

        sizes = []
        for round_ in range(ROUNDS):
            for turn in range(TURNS):
                await asyncio.gather(
                    *(hold_and_release(f"req_{round_}_{turn}_{i}") for i in range(AT_ONCE))
                )
            await asyncio.sleep(0.2)  # the last checkpoint, on the thread, finishes
            sizes.append(wal.stat().st_size)  # noqa: ASYNC240 (a test, measuring)
        await db.close()
        return sizes

    sizes = asyncio.run(scenario())
    # Growing by every commit, the WAL grows in every round (5.3, 10.5, 15.8, 21.1 MB …).
    # Reused from its start, it keeps its size; a checkpoint that a busy machine delays lets
    # it grow in a round now and then (measured: once in 6 rounds while a soak ran beside
    # it), never in most of them.
    grew = sum(later > earlier for earlier, later in itertools.pairwise(sizes))
    assert grew <= (ROUNDS - 1) // 2, sizes


class Books:
    """A fresh database with one credited account and one key with a budget."""

    def __init__(self, path: Path):
        self.path = path
        self.db = Database(f"sqlite:///{path}")

    async def open(self, *, budget_nano: int = 150) -> None:
        await self.db.upgrade()
        accounts = SqlAccounts(self.db.engine)
        self.account = (await accounts.create_account("a")).id
        await SqlLedger(self.db.engine).credit(self.account, 10**9, "seed")
        key = await accounts.create_key(
            account_id=self.account,
            name="k",
            key_hash="0" * 64,
            prefix="sk-test",
            models=None,
            rpm=None,
            tpm=None,
            budget_nano=budget_nano,
            expires_at=None,
        )
        self.key = key.id
        self.holds = self.db.hold_store()
        writer = self.db.sqlite_writer()
        assert writer is not None
        self.writer = writer

    def held(self, name: str, amount: int, *, key: bool = False) -> HeldReservation:
        return HeldReservation(name, self.account, self.key if key else None, amount)

    def read(self, sql: str) -> list[tuple[object, ...]]:
        """Through a connection of its own: only what is committed."""
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def sums(self) -> tuple[object, ...]:
        account = self.read("SELECT balance_nano, reserved_nano FROM accounts")[0]
        key = self.read("SELECT spent_nano, reserved_nano FROM api_keys")[0]
        return (*account, *key)

    def reservations(self) -> set[object]:
        return {r[0] for r in self.read("SELECT id FROM reservations")}

    async def close(self) -> None:
        await self.db.close()


def on_books(path: Path, scenario: Callable[[Books], Awaitable[None]]) -> None:
    async def main() -> None:
        books = Books(path)
        await books.open()
        try:
            await scenario(books)
        finally:
            await books.close()

    asyncio.run(main())


def broken(cursor: sqlite3.Cursor) -> None:
    """An operation of ours that writes, then raises: its write must be undone."""
    cursor.execute("UPDATE accounts SET reserved_nano = 999")
    raise ValueError("ours")


def charge(held: HeldReservation, cost: int) -> Charge:
    return Charge(
        held.id, held.account_id, held.key_id, held.amount_nano, cost, cost // 2, "m", "p", 10, 0, 5
    )


def test_what_one_turn_queues_is_one_transaction_committed_before_anyone_hears(
    tmp_path: Path,
) -> None:
    async def scenario(books: Books) -> None:
        before = books.writer.batches
        heard = await asyncio.gather(
            *(books.holds.reserve(books.held(f"r{i}", 100), "me") for i in range(8))
        )
        assert heard == [None] * 8
        assert books.writer.batches == before + 1
        assert books.reservations() == {f"r{i}" for i in range(8)}
        assert books.sums() == (10**9, 800, 0, 0)

    on_books(tmp_path / "w.db", scenario)


def test_what_the_next_turn_queues_joins_the_batch_and_no_later_turn_waits(
    tmp_path: Path,
) -> None:
    """A batch is committed two turns after its first operation: what the turn after it
    queues (the requests that the poll between them woke) shares the commit; what comes
    after the commit is the next batch's."""

    async def scenario(books: Books) -> None:
        loop = asyncio.get_running_loop()
        seen: dict[str, int] = {}  # operation: the commit it ran in
        futures: dict[str, asyncio.Future[None]] = {}

        def queue(name: str) -> None:
            def operation(cursor: sqlite3.Cursor) -> None:
                cursor.execute("SELECT 1")
                seen[name] = books.writer.batches

            futures[name] = books.writer.queue(operation)

        def next_turn() -> None:
            queue("second")
            loop.call_soon(queue, "third")  # the turn of the first batch's commit

        before = books.writer.batches
        queue("first")
        loop.call_soon(next_turn)
        await futures["first"]
        await asyncio.gather(futures["second"], futures["third"])
        assert seen == {"first": before, "second": before, "third": before + 1}
        assert books.writer.batches == before + 2

    on_books(tmp_path / "w.db", scenario)


def test_a_refusal_in_a_batch_undoes_only_its_own_part(tmp_path: Path) -> None:
    async def scenario(books: Books) -> None:
        heard = await asyncio.gather(
            books.holds.reserve(books.held("fits", 100, key=True), "me"),
            books.holds.reserve(books.held("over-budget", 100, key=True), "me"),  # 200 > 150
            books.holds.reserve(books.held("no-key", 50), "me"),
            books.holds.reserve(books.held("over-balance", 10**9), "me"),
        )
        assert heard == [None, "key", None, "account"]
        assert books.reservations() == {"fits", "no-key"}
        # The refused hold's account part (taken before its key refused it) is undone.
        assert books.sums() == (10**9, 150, 0, 100)

    on_books(tmp_path / "w.db", scenario)


def test_a_second_charge_is_refused_while_its_neighbours_commit(tmp_path: Path) -> None:
    async def scenario(books: Books) -> None:
        first, second = books.held("r1", 100, key=True), books.held("r2", 40)
        assert await books.holds.reserve(first, "me") is None
        assert await books.holds.reserve(second, "me") is None
        assert await books.holds.settle(charge(first, 30)) is True
        again = await asyncio.gather(
            books.holds.settle(charge(first, 30)), books.holds.settle(charge(second, 7))
        )
        assert again == [False, True]
        assert books.sums() == (10**9 - 37, 0, 30, 0)
        assert books.read("SELECT count(*) FROM ledger WHERE kind = 'charge'") == [(2,)]

    on_books(tmp_path / "w.db", scenario)


def test_an_operation_that_fails_fails_alone(tmp_path: Path) -> None:
    async def scenario(books: Books) -> None:
        heard = await asyncio.gather(
            books.writer.run(broken),
            books.writer.run(lambda conn: conn.execute("SELECT * FROM no_such_table")),
            books.holds.reserve(books.held("r1", 100), "me"),
            return_exceptions=True,
        )
        assert isinstance(heard[0], ValueError)
        assert isinstance(heard[1], ServiceUnavailable)  # SQLite's own errors: a 503
        assert heard[2] is None
        assert books.sums() == (10**9, 100, 0, 0)  # the broken one's update is undone

    on_books(tmp_path / "w.db", scenario)


def test_a_caller_cancelled_before_its_turn_is_never_run(tmp_path: Path) -> None:
    async def scenario(books: Books) -> None:
        leaving = asyncio.create_task(books.holds.reserve(books.held("gone", 100), "me"))
        staying = asyncio.create_task(books.holds.reserve(books.held("kept", 100), "me"))
        await asyncio.sleep(0)  # both are queued; their turn's commit has not run yet
        leaving.cancel()
        assert await staying is None
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert books.reservations() == {"kept"}
        assert books.sums() == (10**9, 100, 0, 0)

    on_books(tmp_path / "w.db", scenario)


@pytest.mark.parametrize("alone", [False, True], ids=["in-a-batch", "alone"])
def test_while_another_process_writes_a_batch_waits_on_the_thread(
    tmp_path: Path, alone: bool
) -> None:
    """Alone or not, the loop never waits for another process's write lock: the batch goes
    to the thread that waits (alone, nothing is written at once)."""

    async def scenario(books: Books) -> None:
        books.writer.alone = lambda: alone
        blocker = sqlite3.connect(books.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(tick())
        waiting = asyncio.gather(
            *(books.holds.reserve(books.held(f"r{i}", 100), "me") for i in range(4))
        )
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert ticks >= 10  # the loop kept running meanwhile
        blocker.execute("ROLLBACK")
        blocker.close()
        assert await waiting == [None] * 4
        ticking.cancel()
        assert books.reservations() == {f"r{i}" for i in range(4)}

    on_books(tmp_path / "w.db", scenario)


def test_alone_in_its_turn_an_operation_is_undone_by_its_transaction(tmp_path: Path) -> None:
    """One operation in a turn runs without a savepoint: its refusal or failure rolls back
    the whole (its own) transaction, and the writer goes on."""

    async def scenario(books: Books) -> None:
        assert await books.holds.reserve(books.held("over-budget", 200, key=True), "me") == "key"
        with pytest.raises(ValueError, match="ours"):
            await books.writer.run(broken)
        held = books.held("r1", 100, key=True)
        assert await books.holds.reserve(held, "me") is None
        assert await books.holds.settle(charge(held, 30)) is True
        assert await books.holds.settle(charge(held, 30)) is False  # charged before
        assert books.sums() == (10**9 - 30, 0, 30, 0)
        assert books.reservations() == set()

    on_books(tmp_path / "w.db", scenario)


def test_alone_an_operation_commits_at_once_without_a_loop_turn(tmp_path: Path) -> None:
    """With nothing else to wait for (``alone``: one request in flight), an operation does
    not wait a turn of the loop for others to join its commit: it is committed, and its
    result heard, before any other callback runs."""

    async def scenario(books: Books) -> None:
        books.writer.alone = lambda: True
        turned: list[str] = []
        asyncio.get_running_loop().call_soon(turned.append, "a turn")
        before = books.writer.batches
        held = books.held("r1", 100, key=True)
        assert await books.holds.reserve(held, "me") is None
        assert turned == []  # no loop turn passed
        assert books.writer.batches == before + 1
        assert books.reservations() == {"r1"}  # committed: another connection sees it
        assert await books.holds.settle(charge(held, 30)) is True
        assert turned == []
        assert books.sums() == (10**9 - 30, 0, 30, 0)

    on_books(tmp_path / "w.db", scenario)


def test_alone_refusals_and_failures_are_heard_as_in_a_batch(tmp_path: Path) -> None:
    async def scenario(books: Books) -> None:
        books.writer.alone = lambda: True
        assert await books.holds.reserve(books.held("over-budget", 200, key=True), "me") == "key"
        with pytest.raises(ValueError, match="ours"):
            await books.writer.run(broken)
        with pytest.raises(ServiceUnavailable):  # SQLite's own errors: a 503
            await books.writer.run(lambda conn: conn.execute("SELECT * FROM no_such_table"))
        held = books.held("r1", 100, key=True)
        assert await books.holds.reserve(held, "me") is None
        assert await books.holds.settle(charge(held, 30)) is True
        assert await books.holds.settle(charge(held, 30)) is False  # charged before
        assert books.sums() == (10**9 - 30, 0, 30, 0)  # the broken one's update undone
        assert books.reservations() == set()

    on_books(tmp_path / "w.db", scenario)


def page_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def test_a_new_database_has_small_pages_whichever_connection_makes_it(tmp_path: Path) -> None:
    """Each changed page goes to the WAL whole: a new file gets PAGE_SIZE pages (1 KiB, not
    SQLite's 4 KiB), made by the migrations or by the writer, even though WAL mode, set
    on the same connection, fixes the page size for good."""
    assert PAGE_SIZE == 1024

    on_books(tmp_path / "migrated.db", lambda books: asyncio.sleep(0))
    assert page_size(tmp_path / "migrated.db") == PAGE_SIZE

    async def write_first() -> None:
        writer = SqliteWriter(str(tmp_path / "written.db"))
        await writer.run(lambda cursor: cursor.execute("CREATE TABLE t (v INTEGER)"))
        await writer.close()

    asyncio.run(write_first())
    assert page_size(tmp_path / "written.db") == PAGE_SIZE


def test_an_existing_database_keeps_its_pages_and_its_books(tmp_path: Path) -> None:
    """A file made with SQLite's default pages (before PAGE_SIZE) is used as it is."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")  # as every earlier version made it
    conn.close()

    async def scenario(books: Books) -> None:
        held = books.held("r1", 100, key=True)
        assert await books.holds.reserve(held, "me") is None
        assert await books.holds.settle(charge(held, 30)) is True
        assert books.sums() == (10**9 - 30, 0, 30, 0)

    on_books(path, scenario)
    assert page_size(path) == 4096
