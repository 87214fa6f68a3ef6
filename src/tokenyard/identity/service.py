"""Authenticating client keys from memory, issuing and revoking them through the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from tokenyard.billing.price import Markup
from tokenyard.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from tokenyard.identity.keys import KEY_MARK, generate_key, hash_key, visible_prefix
from tokenyard.identity.revocation import RevocationEpoch
from tokenyard.immutable import immutable
from tokenyard.store.accounts import AccountRow, KeyRow

REVALIDATE_S = 10.0
"""A cached key is re-read from the database after this long, which bounds how long a
revocation on another machine (without Redis) can take to be seen."""
CACHE_LIMIT = 100_000


@immutable
class Principal:
    """Who is calling: an authenticated, unrevoked, unexpired client key."""

    key_id: str
    account_id: str
    prefix: str
    models: frozenset[str] | None
    rpm: int | None
    tpm: int | None
    budget_nano: int | None
    expires_at: float | None  # epoch seconds
    markup: Markup | None = None  # the account's own markup, when it has one
    regions: frozenset[str] | None = None
    """Residency: the regions this key may be served in (the key's own setting intersected
    with its account's); None when neither restricts it."""
    log_prompts: bool | None = None
    """The key's own prompt-logging setting: False opts it out of ``logging.prompts``."""

    def narrow_regions(self, requested: frozenset[str] | None) -> frozenset[str] | None:
        """The regions a request may be served in: what it asks for (``routing.regions``)
        within the residency. A request can narrow its residency, never widen it: regions
        outside it are dropped, and a request that names only such regions is refused rather
        than silently served somewhere it did not ask for."""
        if self.regions is None:
            return requested
        if requested is None:
            return self.regions
        allowed = requested & self.regions
        if requested and not allowed:
            listed = ", ".join(sorted(self.regions)) or "none"
            raise InvalidRequest(
                f"routing.regions names only regions outside this key's data residency; "
                f"allowed regions: {listed}",
                param="routing.regions",
            )
        return allowed

    def check_model(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            raise PermissionDenied(f"this key may not use the model {model!r}", param="model")

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


class AccountStore(Protocol):
    async def create_account(
        self, name: str, markup: str | None = None, regions: Sequence[str] | None = None
    ) -> AccountRow: ...

    async def get_account(self, account_id: str) -> AccountRow | None: ...

    async def update_account_regions(
        self, account_id: str, regions: Sequence[str] | None
    ) -> AccountRow | None: ...

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
    ) -> KeyRow: ...

    async def key_by_hash(self, key_hash: str) -> KeyRow | None: ...

    async def key_by_id(self, key_id: str) -> KeyRow | None: ...

    async def revoke_key(self, key_id: str) -> bool: ...


def residency(key: Sequence[str] | None, account: Sequence[str] | None) -> frozenset[str] | None:
    """Where a key may be served: in the regions both it and its account allow (either
    alone when only one is set; None when neither restricts it)."""
    if key is None:
        return frozenset(account) if account is not None else None
    if account is None:
        return frozenset(key)
    return frozenset(key) & frozenset(account)


def _principal(row: KeyRow) -> Principal:
    return Principal(
        key_id=row.id,
        account_id=row.account_id,
        prefix=row.prefix,
        models=frozenset(row.models) if row.models is not None else None,
        rpm=row.rpm,
        tpm=row.tpm,
        budget_nano=row.budget_nano,
        expires_at=row.expires_at.timestamp() if row.expires_at else None,
        markup=Markup.of(Decimal(row.account_markup)) if row.account_markup is not None else None,
        regions=residency(row.regions, row.account_regions),
        log_prompts=row.log_prompts,
    )


@immutable
class IssuedKey:
    row: KeyRow
    key: str  # the only time the secret exists outside the client's hands


class Identity:
    def __init__(
        self,
        store: AccountStore,
        epoch: RevocationEpoch,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self._epoch = epoch
        self._clock = clock
        self._seen_epoch = epoch.value()
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._reading: dict[str, asyncio.Task[KeyRow | None]] = {}
        """Keys being read from the store: requests with the same key share the one read
        instead of each taking a connection (under load, every REVALIDATE_S)."""

    async def authenticate(self, key: str | None) -> Principal:
        if not key or not key.startswith(KEY_MARK):
            raise AuthenticationFailed("missing or malformed API key")
        epoch = self._epoch.value()
        if epoch != self._seen_epoch:
            self._cache.clear()
            self._reading.clear()  # a read begun before a revocation is not shared on
            self._seen_epoch = epoch
        digest = hash_key(key)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < REVALIDATE_S:
            principal = cached[0]
        else:
            row = await self._read(digest)
            if row is None or row.revoked_at is not None:
                self._cache.pop(digest, None)
                raise AuthenticationFailed("invalid API key")
            principal = _principal(row)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = (principal, now)
        if principal.expires_at is not None and now >= principal.expires_at:
            raise AuthenticationFailed("this API key has expired")
        return principal

    async def _read(self, digest: str) -> KeyRow | None:
        """One store read per key at a time. It runs as its own task, so a caller that is
        cancelled (its client left) does not cancel the read the others wait for."""
        reading = self._reading.get(digest)
        if reading is None:
            reading = asyncio.ensure_future(self.store.key_by_hash(digest))
            self._reading[digest] = reading
            reading.add_done_callback(lambda done: self._forget(digest, done))
        return await asyncio.shield(reading)

    def _forget(self, digest: str, done: asyncio.Task[KeyRow | None]) -> None:
        if self._reading.get(digest) is done:
            del self._reading[digest]
        if not done.cancelled():
            done.exception()  # seen here: a failure every waiter left is not "never retrieved"

    async def issue_key(
        self,
        *,
        account_id: str,
        name: str,
        models: list[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        budget_nano: int | None = None,
        expires_at: datetime | None = None,
        regions: Sequence[str] | None = None,
        log_prompts: bool | None = None,
    ) -> IssuedKey:
        key = generate_key()
        row = await self.store.create_key(
            account_id=account_id,
            name=name,
            key_hash=hash_key(key),
            prefix=visible_prefix(key),
            models=models,
            rpm=rpm,
            tpm=tpm,
            budget_nano=budget_nano,
            expires_at=expires_at.astimezone(UTC) if expires_at else None,
            regions=regions,
            log_prompts=log_prompts,
        )
        return IssuedKey(row=row, key=key)

    async def revoke(self, key_id: str) -> bool:
        revoked = await self.store.revoke_key(key_id)
        if revoked:
            self._cache = {h: e for h, e in self._cache.items() if e[0].key_id != key_id}
            self._epoch.bump()
        return revoked

    async def set_account_regions(
        self, account_id: str, regions: Sequence[str] | None
    ) -> AccountRow | None:
        """Change an account's residency and make every process see it at once: the same
        path as a revocation (the epoch bump clears every process's key cache, across
        machines too when Redis carries it), so no cached key keeps its wider regions for
        up to REVALIDATE_S. None when there is no such account."""
        account = await self.store.update_account_regions(account_id, regions)
        if account is not None:
            self._drop_account(account_id)
            self._epoch.bump()
        return account

    def forget_account(self, account_id: str) -> None:
        """After the store revoked all of an account's keys at once (a disabled account):
        drop them from this process's cache and bump the revocation epoch, so every process
        (every replica too, when Redis carries the epoch) refuses them now rather than after
        REVALIDATE_S."""
        self._drop_account(account_id)
        self._epoch.bump()

    def _drop_account(self, account_id: str) -> None:
        self._cache = {h: e for h, e in self._cache.items() if e[0].account_id != account_id}
