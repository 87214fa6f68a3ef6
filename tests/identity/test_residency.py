"""Data residency: a key is served only in regions both it and its account allow, and a
request's ``routing.regions`` can narrow that but never widen it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tokenyard.errors import InvalidRequest
from tokenyard.identity.revocation import MemoryEpoch
from tokenyard.identity.service import Identity, Principal, residency
from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts

EU, US, CN = "eu", "us", "cn"


def principal(regions: frozenset[str] | None) -> Principal:
    return Principal(
        key_id="key_1",
        account_id="acct_1",
        prefix="ty-x",
        models=None,
        rpm=None,
        tpm=None,
        budget_nano=None,
        expires_at=None,
        regions=regions,
    )


@pytest.mark.parametrize(
    ("resident", "requested", "allowed"),
    [
        (None, None, None),  # nobody restricts anything
        (None, {US}, {US}),  # no residency: the request alone decides
        ({EU}, None, {EU}),  # the request says nothing: the residency applies
        ({EU, US}, {EU}, {EU}),  # narrower request: kept
        ({EU}, {EU, US}, {EU}),  # wider request: narrowed to the residency
        ({EU, US}, {US, CN}, {US}),  # overlapping: only the overlap
        (None, set(), set()),  # an empty list allows nothing, residency or not
        ({EU}, set(), set()),
    ],
)
def test_a_request_narrows_but_never_widens(
    resident: set[str] | None, requested: set[str] | None, allowed: set[str] | None
) -> None:
    got = principal(frozenset(resident) if resident is not None else None).narrow_regions(
        frozenset(requested) if requested is not None else None
    )
    assert got == (frozenset(allowed) if allowed is not None else None)


def test_a_request_outside_the_residency_is_refused_naming_what_is_allowed() -> None:
    with pytest.raises(InvalidRequest) as caught:
        principal(frozenset({EU, CN})).narrow_regions(frozenset({US}))
    error = caught.value
    assert error.status == 400 and error.param == "routing.regions"
    assert "allowed regions: cn, eu" in error.message


def test_a_key_whose_residency_is_empty_is_refused_every_named_region() -> None:
    with pytest.raises(InvalidRequest, match="allowed regions: none"):
        principal(frozenset()).narrow_regions(frozenset({EU}))
    assert principal(frozenset()).narrow_regions(None) == frozenset()


@pytest.mark.parametrize(
    ("key", "account", "expected"),
    [
        (None, None, None),
        ((EU,), None, {EU}),
        (None, (EU, US), {EU, US}),
        ((EU, CN), (EU, US), {EU}),  # both must allow it
        ((CN,), (EU,), set()),  # disjoint: nowhere
    ],
)
def test_residency_is_the_intersection_of_key_and_account(
    key: tuple[str, ...] | None, account: tuple[str, ...] | None, expected: set[str] | None
) -> None:
    assert residency(key, account) == (frozenset(expected) if expected is not None else None)


def test_authentication_carries_key_and_account_residency(tmp_path: Path) -> None:
    async def main() -> None:
        database = Database(f"sqlite:///{tmp_path / 'residency.db'}")
        await database.upgrade()
        try:
            store = SqlAccounts(database.engine)
            identity = Identity(store, MemoryEpoch())
            account = await store.create_account("a", regions=[EU, US])
            free = await identity.issue_key(account_id=account.id, name="free")
            pinned = await identity.issue_key(account_id=account.id, name="p", regions=[EU, CN])
            assert (await identity.authenticate(free.key)).regions == frozenset({EU, US})
            assert (await identity.authenticate(pinned.key)).regions == frozenset({EU})
        finally:
            await database.close()

    asyncio.run(main())


def test_a_residency_change_reaches_cached_keys_in_every_process(tmp_path: Path) -> None:
    """Two Identities on one epoch stand for two workers: the change made through one is
    seen by the other at once, not after REVALIDATE_S."""

    async def main() -> None:
        database = Database(f"sqlite:///{tmp_path / 'change.db'}")
        await database.upgrade()
        try:
            epoch = MemoryEpoch()
            here = Identity(SqlAccounts(database.engine), epoch, clock=lambda: 0.0)
            there = Identity(SqlAccounts(database.engine), epoch, clock=lambda: 0.0)
            account = await here.store.create_account("a")
            issued = await here.issue_key(account_id=account.id, name="k")
            assert (await there.authenticate(issued.key)).regions is None  # now cached
            changed = await here.set_account_regions(account.id, [EU])
            assert changed is not None and changed.regions == (EU,)
            assert (await there.authenticate(issued.key)).regions == frozenset({EU})
            assert (await here.authenticate(issued.key)).regions == frozenset({EU})
            await here.set_account_regions(account.id, None)
            assert (await there.authenticate(issued.key)).regions is None
            assert await here.set_account_regions("acct_nope", [EU]) is None
        finally:
            await database.close()

    asyncio.run(main())
