"""Client keys: format, hashing, the warm cache, revocation and expiry — on a real SQLite
database (and the shared-memory epoch that carries revocations across workers)."""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tokenyard.errors import AuthenticationFailed, PermissionDenied
from tokenyard.identity.keys import generate_key, hash_key, visible_prefix
from tokenyard.identity.revocation import MemoryEpoch, SharedEpoch
from tokenyard.identity.service import REVALIDATE_S, Identity
from tokenyard.store import Database
from tokenyard.store.accounts import KeyRow, SqlAccounts


def test_key_format_and_entropy() -> None:
    key = generate_key()
    assert key.startswith("ty-")
    raw = base64.urlsafe_b64decode(key[3:] + "=")
    assert len(raw) == 32
    assert generate_key() != key


def test_only_a_hash_and_a_prefix_are_derived() -> None:
    key = generate_key()
    digest = hash_key(key)
    assert len(digest) == 64
    assert key[3:] not in digest
    assert digest == hash_key(key)
    assert visible_prefix(key) == key[:11]


class CountingStore(SqlAccounts):
    """The real SQL store, counting how often a key is looked up."""

    lookups = 0

    async def key_by_hash(self, key_hash: str) -> KeyRow | None:
        self.lookups += 1
        return await super().key_by_hash(key_hash)


def run(tmp_path: Path, scenario: Callable[[Database], Awaitable[None]]) -> None:
    async def main() -> None:
        database = Database(f"sqlite:///{tmp_path / 'keys.db'}")
        await database.upgrade()
        try:
            await scenario(database)
        finally:
            await database.close()

    asyncio.run(main())


def test_a_warm_key_does_not_touch_the_database(tmp_path: Path) -> None:
    async def scenario(database: Database) -> None:
        store = CountingStore(database.engine)
        identity = Identity(store, MemoryEpoch())
        account = await store.create_account("a")
        issued = await identity.issue_key(account_id=account.id, name="k")
        for _ in range(5):
            principal = await identity.authenticate(issued.key)
        assert principal.account_id == account.id
        assert store.lookups == 1
        row = await store.key_by_id(issued.row.id)
        assert row is not None
        assert row.key_hash == hash_key(issued.key)
        assert issued.key not in repr(row)

    run(tmp_path, scenario)


def test_a_cached_key_is_revalidated_after_a_while(tmp_path: Path) -> None:
    async def scenario(database: Database) -> None:
        now = [1000.0]
        store = CountingStore(database.engine)
        identity = Identity(store, MemoryEpoch(), clock=lambda: now[0])
        account = await store.create_account("a")
        issued = await identity.issue_key(account_id=account.id, name="k")
        await identity.authenticate(issued.key)
        now[0] += REVALIDATE_S + 1
        await identity.authenticate(issued.key)
        assert store.lookups == 2

    run(tmp_path, scenario)


def test_concurrent_requests_with_one_key_share_one_lookup(tmp_path: Path) -> None:
    async def scenario(database: Database) -> None:
        store = CountingStore(database.engine)
        identity = Identity(store, MemoryEpoch())
        account = await store.create_account("a")
        issued = await identity.issue_key(account_id=account.id, name="k")
        leaving = asyncio.ensure_future(identity.authenticate(issued.key))
        await asyncio.sleep(0)  # the first caller has started the read ...
        leaving.cancel()  # ... and its client leaves: the others still get the row
        principals = await asyncio.gather(*(identity.authenticate(issued.key) for _ in range(16)))
        assert {p.account_id for p in principals} == {account.id}
        assert store.lookups == 1
        assert leaving.cancelled()

    run(tmp_path, scenario)


def test_unknown_and_malformed_keys_fail(tmp_path: Path) -> None:
    async def scenario(database: Database) -> None:
        identity = Identity(SqlAccounts(database.engine), MemoryEpoch())
        for key in (None, "", "sk-foreign", generate_key()):
            with pytest.raises(AuthenticationFailed):
                await identity.authenticate(key)

    run(tmp_path, scenario)


def test_revocation_reaches_another_process_sharing_the_epoch_at_once(tmp_path: Path) -> None:
    async def scenario(database: Database) -> None:
        shared = SharedEpoch(multiprocessing.get_context("fork").Value("q", 0))
        worker_a = Identity(SqlAccounts(database.engine), shared)
        worker_b = Identity(CountingStore(database.engine), shared)
        account = await worker_a.store.create_account("a")
        issued = await worker_a.issue_key(account_id=account.id, name="k")
        await worker_b.authenticate(issued.key)  # now warm in worker B's cache
        assert await worker_a.revoke(issued.row.id)
        with pytest.raises(AuthenticationFailed):
            await worker_b.authenticate(issued.key)
        assert not await worker_a.revoke(issued.row.id)  # already revoked

    run(tmp_path, scenario)


def test_expired_keys_fail_even_when_cached(tmp_path: Path) -> None:
    async def scenario(database: Database) -> None:
        now = [datetime(2030, 1, 1, tzinfo=UTC).timestamp()]
        identity = Identity(SqlAccounts(database.engine), MemoryEpoch(), clock=lambda: now[0])
        account = await identity.store.create_account("a")
        expiry = datetime(2030, 1, 1, 0, 0, 5, tzinfo=UTC)
        issued = await identity.issue_key(account_id=account.id, name="k", expires_at=expiry)
        await identity.authenticate(issued.key)
        now[0] += 6
        with pytest.raises(AuthenticationFailed, match="expired"):
            await identity.authenticate(issued.key)

    run(tmp_path, scenario)


def test_model_scopes(tmp_path: Path) -> None:
    async def scenario(database: Database) -> None:
        identity = Identity(SqlAccounts(database.engine), MemoryEpoch())
        account = await identity.store.create_account("a")
        issued = await identity.issue_key(
            account_id=account.id,
            name="k",
            models=["m1"],
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        principal = await identity.authenticate(issued.key)
        principal.check_model("m1")
        with pytest.raises(PermissionDenied):
            principal.check_model("m2")
        assert principal.may_use("m1")
        assert not principal.may_use("m2")

    run(tmp_path, scenario)
