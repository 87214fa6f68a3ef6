"""Accounts and client keys (SQL side of ``identity``)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Select, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenyard.errors import ServiceUnavailable
from tokenyard.immutable import immutable
from tokenyard.store.tables import accounts, api_keys


@immutable
class AccountRow:
    id: str
    name: str
    balance_nano: int
    reserved_nano: int
    markup: str | None = None
    regions: tuple[str, ...] | None = None  # residency; None: any region
    disabled_at: datetime | None = None  # set by an operator: no sign-in, every key revoked


@immutable
class KeyRow:
    id: str
    account_id: str
    name: str
    key_hash: str
    prefix: str
    models: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    budget_nano: int | None
    spent_nano: int
    expires_at: datetime | None
    revoked_at: datetime | None
    reserved_nano: int = 0
    account_markup: str | None = None  # the account's own markup, a decimal string
    regions: tuple[str, ...] | None = None  # the key's own residency; None: any region
    account_regions: tuple[str, ...] | None = None  # the account's residency
    log_prompts: bool | None = None  # False: never store this key's text; None: the config


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(8)}"


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _tags(value: object) -> tuple[str, ...] | None:
    """A JSON list column as a tuple (None stays None: no restriction)."""
    return tuple(str(v) for v in value) if isinstance(value, list) else None


def _account_row(row: object) -> AccountRow:
    m = row._mapping  # type: ignore[attr-defined]
    return AccountRow(
        m["id"],
        m["name"],
        m["balance_nano"],
        m["reserved_nano"],
        m["markup"],
        _tags(m["regions"]),
        _utc(m.get("disabled_at")),
    )


def _keys_with_account() -> Select[tuple[object, ...]]:
    """Keys joined with what authentication needs of their account, so it is one query."""
    return select(
        api_keys,
        accounts.c.markup.label("account_markup"),
        accounts.c.regions.label("account_regions"),
    ).join(accounts, accounts.c.id == api_keys.c.account_id)


def _key_row(row: object) -> KeyRow:
    m = row._mapping  # type: ignore[attr-defined]
    return KeyRow(
        id=m["id"],
        account_id=m["account_id"],
        name=m["name"],
        key_hash=m["key_hash"],
        prefix=m["prefix"],
        models=tuple(m["models"]) if m["models"] is not None else None,
        rpm=m["rpm"],
        tpm=m["tpm"],
        budget_nano=m["budget_nano"],
        spent_nano=m["spent_nano"],
        expires_at=_utc(m["expires_at"]),
        revoked_at=_utc(m["revoked_at"]),
        reserved_nano=m["reserved_nano"],
        account_markup=m.get("account_markup"),
        regions=_tags(m["regions"]),
        account_regions=_tags(m.get("account_regions")),
        log_prompts=m["log_prompts"],
    )


class SqlAccounts:
    """Accounts and keys in the database. Every failure to reach it is a ServiceUnavailable."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    async def create_account(
        self, name: str, markup: str | None = None, regions: Sequence[str] | None = None
    ) -> AccountRow:
        """A new account, with nothing in it: money comes only through the ledger."""
        tags = tuple(regions) if regions is not None else None
        row = AccountRow(new_id("acct"), name, 0, 0, markup, tags)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    accounts.insert().values(
                        id=row.id,
                        name=name,
                        balance_nano=0,
                        reserved_nano=0,
                        markup=markup,
                        regions=list(tags) if tags is not None else None,
                        created_at=datetime.now(UTC),
                    )
                )
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return row

    async def get_account(self, account_id: str) -> AccountRow | None:
        query = select(accounts).where(accounts.c.id == account_id)
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).first()
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return None if row is None else _account_row(row)

    async def update_account_regions(
        self, account_id: str, regions: Sequence[str] | None
    ) -> AccountRow | None:
        """Set (or, with None, lift) an account's residency; None when there is no such
        account. Cached principals keep the old value until the caller announces it."""
        stored = list(regions) if regions is not None else None
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(accounts).where(accounts.c.id == account_id).values(regions=stored)
                )
                row = (
                    await conn.execute(select(accounts).where(accounts.c.id == account_id))
                ).first()
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return None if row is None else _account_row(row)

    async def list_accounts(self) -> list[AccountRow]:
        query = select(accounts).order_by(accounts.c.created_at)
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return [_account_row(r) for r in rows]

    async def list_keys(self, account_id: str | None = None) -> list[KeyRow]:
        query = _keys_with_account().order_by(api_keys.c.created_at)
        if account_id is not None:
            query = query.where(api_keys.c.account_id == account_id)
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return [_key_row(r) for r in rows]

    async def create_key(
        self,
        *,
        account_id: str,
        name: str,
        key_hash: str,
        prefix: str,
        models: list[str] | None,
        rpm: int | None,
        tpm: int | None,
        budget_nano: int | None,
        expires_at: datetime | None,
        regions: Sequence[str] | None = None,
        log_prompts: bool | None = None,
    ) -> KeyRow:
        key_id = new_id("key")
        tags = tuple(regions) if regions is not None else None
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    api_keys.insert().values(
                        id=key_id,
                        account_id=account_id,
                        name=name,
                        key_hash=key_hash,
                        prefix=prefix,
                        models=models,
                        regions=list(tags) if tags is not None else None,
                        rpm=rpm,
                        tpm=tpm,
                        budget_nano=budget_nano,
                        spent_nano=0,
                        expires_at=expires_at,
                        created_at=datetime.now(UTC),
                        log_prompts=log_prompts,
                    )
                )
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return KeyRow(
            key_id,
            account_id,
            name,
            key_hash,
            prefix,
            tuple(models) if models is not None else None,
            rpm,
            tpm,
            budget_nano,
            0,
            expires_at,
            None,
            regions=tags,
            log_prompts=log_prompts,
        )

    async def key_by_hash(self, key_hash: str) -> KeyRow | None:
        return await self._one_key(api_keys.c.key_hash == key_hash)

    async def key_by_id(self, key_id: str) -> KeyRow | None:
        return await self._one_key(api_keys.c.id == key_id)

    async def _one_key(self, where: object) -> KeyRow | None:
        try:
            async with self._engine.connect() as conn:
                query = _keys_with_account().where(where)  # type: ignore[arg-type]
                row = (await conn.execute(query)).first()
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return None if row is None else _key_row(row)

    async def revoke_key(self, key_id: str) -> bool:
        """Mark a key revoked; False when there is no such (unrevoked) key."""
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=datetime.now(UTC))
                )
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return bool(result.rowcount)


def _unavailable(exc: SQLAlchemyError) -> ServiceUnavailable:
    return ServiceUnavailable(f"database unavailable: {type(exc).__name__}")
