"""Portal users, invites and disabled accounts in SQL on both databases (migration 0006):
one user per address whatever its case, single-use invites that a failed sign-up does not
burn, and a disable that revokes every key in the same transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts
from tokenyard.store.portal import EmailTaken, InviteRefused, SqlPortal
from tokenyard.store.tables import ledger


def run(url: str, scenario: Callable[[SqlPortal, SqlAccounts], Awaitable[None]]) -> None:
    async def main() -> None:
        database = Database(url)
        await database.upgrade()
        try:
            await scenario(SqlPortal(database.engine), SqlAccounts(database.engine))
        finally:
            await database.close()

    asyncio.run(main())


def test_users_are_unique_by_address_in_any_case(database_url: str) -> None:
    async def scenario(portal: SqlPortal, accounts: SqlAccounts) -> None:
        user = await portal.create_user(" Ada@Example.COM ", "argon2-hash")
        assert user.email == "ada@example.com" and user.disabled_at is None
        account = await accounts.get_account(user.account_id)
        assert account is not None and account.name == "ada@example.com"
        assert account.balance_nano == 0 and account.disabled_at is None
        before = len(await accounts.list_accounts())
        with pytest.raises(EmailTaken):
            await portal.create_user("ADA@example.com", "other-hash")
        assert len(await accounts.list_accounts()) == before  # no orphan account
        found = await portal.user_by_email("ada@EXAMPLE.com")
        assert found is not None and found.id == user.id and found.password_hash == "argon2-hash"
        assert (await portal.user_by_id(user.id)) == found
        assert await portal.user_by_email("nobody@example.com") is None

    run(database_url, scenario)


def test_invites_are_single_use(database_url: str) -> None:
    async def scenario(portal: SqlPortal, accounts: SqlAccounts) -> None:
        await portal.add_invite("digest-1")
        with pytest.raises(InviteRefused):
            await portal.create_user("x@example.com", "h", invite_hash="digest-unknown")
        taken = await portal.create_user("taken@example.com", "h")
        with pytest.raises(EmailTaken):  # a failed sign-up leaves the invite unused
            await portal.create_user(taken.email, "h", invite_hash="digest-1")
        user = await portal.create_user("y@example.com", "h", invite_hash="digest-1")
        assert user.email == "y@example.com"
        with pytest.raises(InviteRefused):
            await portal.create_user("z@example.com", "h", invite_hash="digest-1")
        assert await portal.user_by_email("z@example.com") is None
        assert await portal.user_by_email("x@example.com") is None

    run(database_url, scenario)


def test_disabling_revokes_every_key_at_once(database_url: str) -> None:
    async def scenario(portal: SqlPortal, accounts: SqlAccounts) -> None:
        user = await portal.create_user("d@example.com", "h")
        keys = [
            await accounts.create_key(
                account_id=user.account_id,
                name=f"k{i}",
                key_hash=f"{user.id}-{i}",
                prefix="ty-x",
                models=None,
                rpm=None,
                tpm=None,
                budget_nano=None,
                expires_at=None,
            )
            for i in range(3)
        ]
        await accounts.revoke_key(keys[0].id)
        assert await portal.disable_account(user.account_id) == 2
        for key in keys:
            row = await accounts.key_by_id(key.id)
            assert row is not None and row.revoked_at is not None
        account = await accounts.get_account(user.account_id)
        assert account is not None and account.disabled_at is not None
        again = await portal.user_by_id(user.id)
        assert again is not None and again.disabled_at == account.disabled_at
        assert await portal.disable_account(user.account_id) == 0  # the first time stays
        still = await accounts.get_account(user.account_id)
        assert still is not None and still.disabled_at == account.disabled_at
        assert await portal.disable_account("acct_missing") is None

    run(database_url, scenario)


def test_the_signup_credit_is_written_with_the_user_or_not_at_all(database_url: str) -> None:
    async def scenario(portal: SqlPortal, accounts: SqlAccounts) -> None:
        user = await portal.create_user("credit@example.com", "h", credit_nano=5_000_000_000)
        account = await accounts.get_account(user.account_id)
        assert account is not None and account.balance_nano == 5_000_000_000
        async with portal._engine.connect() as conn:  # the ledger row that explains it
            rows = (
                await conn.execute(
                    select(ledger.c.amount_nano, ledger.c.reference).where(
                        ledger.c.account_id == user.account_id
                    )
                )
            ).all()
        assert [tuple(r) for r in rows] == [(5_000_000_000, f"signup:{user.id}")]
        before = len(await accounts.list_accounts())
        with pytest.raises(EmailTaken):  # refused: no account, no credit
            await portal.create_user("CREDIT@example.com", "h", credit_nano=5_000_000_000)
        assert len(await accounts.list_accounts()) == before

    run(database_url, scenario)
