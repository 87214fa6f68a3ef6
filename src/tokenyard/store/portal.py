"""Portal users, invite codes and disabled accounts (SQL side of ``identity.portal``).

A sign-up is one transaction: the invite (when one is needed) is used, the account and the
user are created — or nothing is, so a refused e-mail address does not burn an invite and
leaves no orphan account behind. Its starter credit goes through the ledger afterwards,
with a reference that can be applied only once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenyard.errors import ServiceUnavailable
from tokenyard.immutable import immutable
from tokenyard.store.accounts import new_id
from tokenyard.store.ledger import credit_in
from tokenyard.store.tables import accounts, api_keys, invites, users


class EmailTaken(Exception):
    """A user with this e-mail address exists."""


class InviteRefused(Exception):
    """The invite code is unknown or was used already."""


@immutable
class UserRow:
    id: str
    email: str
    password_hash: str
    account_id: str
    disabled_at: datetime | None  # the account's: set, the user may not sign in


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _unavailable(exc: SQLAlchemyError) -> ServiceUnavailable:
    return ServiceUnavailable(f"database unavailable: {type(exc).__name__}")


class SqlPortal:
    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    async def create_user(
        self,
        email: str,
        password_hash: str,
        *,
        invite_hash: str | None = None,
        credit_nano: int = 0,
    ) -> UserRow:
        """A new user with a new account named after the address (stored lower-cased),
        credited ``credit_nano`` (ledger reference ``signup:<user id>``) in the same
        transaction: there is no user without the credit. Raises EmailTaken or
        InviteRefused, and then nothing was written."""
        email = email.strip().lower()
        user_id, account_id = new_id("user"), new_id("acct")
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                if invite_hash is not None:
                    used = await conn.execute(
                        update(invites)
                        .where(invites.c.code_hash == invite_hash, invites.c.used_at.is_(None))
                        .values(used_at=now, used_by=user_id)
                    )
                    if not used.rowcount:
                        raise InviteRefused
                await conn.execute(
                    accounts.insert().values(
                        id=account_id, name=email, balance_nano=0, reserved_nano=0, created_at=now
                    )
                )
                await conn.execute(
                    users.insert().values(
                        id=user_id,
                        email=email,
                        password_hash=password_hash,
                        account_id=account_id,
                        created_at=now,
                    )
                )
                if credit_nano > 0:
                    await credit_in(
                        conn, account_id, credit_nano, f"signup:{user_id}", note="sign-up credit"
                    )
        except IntegrityError:  # the only unique value not drawn at random is the address
            raise EmailTaken from None
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return UserRow(user_id, email, password_hash, account_id, None)

    async def user_by_email(self, email: str) -> UserRow | None:
        return await self._one(users.c.email == email.strip().lower())

    async def user_by_id(self, user_id: str) -> UserRow | None:
        return await self._one(users.c.id == user_id)

    async def _one(self, where: ColumnElement[bool]) -> UserRow | None:
        query = (
            select(users, accounts.c.disabled_at)
            .join(accounts, accounts.c.id == users.c.account_id)
            .where(where)
        )
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).first()
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        if row is None:
            return None
        m = row._mapping
        return UserRow(
            m["id"], m["email"], m["password_hash"], m["account_id"], _utc(m["disabled_at"])
        )

    async def add_invite(self, code_hash: str) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    invites.insert().values(code_hash=code_hash, created_at=datetime.now(UTC))
                )
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None

    async def disable_account(self, account_id: str) -> int | None:
        """Mark the account disabled (the first time only) and revoke every key it still has,
        in one transaction. Returns how many keys were revoked; None if no such account."""
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                found = await conn.execute(
                    update(accounts)
                    .where(accounts.c.id == account_id)
                    .values(disabled_at=func.coalesce(accounts.c.disabled_at, now))
                )
                if not found.rowcount:
                    return None
                revoked = await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.account_id == account_id, api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return int(revoked.rowcount)
