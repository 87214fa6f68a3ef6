"""Accounts and keys in SQL on both databases: the residency columns (migration 0004) and
the one-query key lookup that brings the account's settings along."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tokenyard.store import Database
from tokenyard.store.accounts import KeyRow, SqlAccounts


def run(url: str, scenario: Callable[[SqlAccounts], Awaitable[None]]) -> None:
    async def main() -> None:
        database = Database(url)
        await database.upgrade()
        try:
            await scenario(SqlAccounts(database.engine))
        finally:
            await database.close()

    asyncio.run(main())


async def new_key(
    store: SqlAccounts, account_id: str, name: str, regions: list[str] | None = None
) -> KeyRow:
    return await store.create_key(
        account_id=account_id,
        name=name,
        key_hash=f"{account_id}-{name}",
        prefix="ty-x",
        models=None,
        rpm=None,
        tpm=None,
        budget_nano=None,
        expires_at=None,
        regions=regions,
    )


def test_regions_are_stored_for_accounts_and_keys(database_url: str) -> None:
    async def scenario(store: SqlAccounts) -> None:
        pinned = await store.create_account("pinned", regions=["eu", "us"])
        free = await store.create_account("free")
        assert pinned.regions == ("eu", "us") and free.regions is None
        read = await store.get_account(pinned.id)
        assert read is not None and read.regions == ("eu", "us")
        listed = {a.id: a.regions for a in await store.list_accounts()}
        assert listed[pinned.id] == ("eu", "us") and listed[free.id] is None

        created = await new_key(store, free.id, "k", ["eu"])
        assert created.regions == ("eu",)
        row = await store.key_by_id(created.id)
        assert row is not None and row.regions == ("eu",) and row.account_regions is None
        unrestricted = await new_key(store, free.id, "open")
        assert unrestricted.regions is None
        again = await store.key_by_hash(unrestricted.key_hash)
        assert again is not None and again.regions is None

    run(database_url, scenario)


def test_the_key_lookup_brings_the_accounts_regions(database_url: str) -> None:
    async def scenario(store: SqlAccounts) -> None:
        account = await store.create_account("a", regions=["eu"])
        key = await new_key(store, account.id, "k", ["eu", "cn"])
        row = await store.key_by_hash(key.key_hash)
        assert row is not None
        assert row.regions == ("eu", "cn") and row.account_regions == ("eu",)
        [listed] = await store.list_keys(account.id)
        assert listed.account_regions == ("eu",)

    run(database_url, scenario)


def test_an_accounts_regions_can_be_changed_and_lifted(database_url: str) -> None:
    async def scenario(store: SqlAccounts) -> None:
        account = await store.create_account("a", markup="0.2")
        key = await new_key(store, account.id, "k")
        changed = await store.update_account_regions(account.id, ["us"])
        assert changed is not None
        assert changed.regions == ("us",) and changed.markup == "0.2" and changed.name == "a"
        row = await store.key_by_hash(key.key_hash)
        assert row is not None and row.account_regions == ("us",)
        lifted = await store.update_account_regions(account.id, None)
        assert lifted is not None and lifted.regions is None
        row = await store.key_by_hash(key.key_hash)
        assert row is not None and row.account_regions is None
        assert await store.update_account_regions("acct_nope", ["us"]) is None

    run(database_url, scenario)
