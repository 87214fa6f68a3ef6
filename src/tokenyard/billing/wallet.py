"""Pre-authorisation and settlement (SPEC §6).

Before any upstream call the worst case is held against the account balance and the key
budget in one atomic step (402 when it does not fit); afterwards the real cost is charged
and the rest released, in one transaction, before the answer's last byte is written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from tokenyard.billing.money import format_nano
from tokenyard.billing.price import NO_MARKUP, Markup, Price, cost_nano
from tokenyard.errors import InsufficientQuota
from tokenyard.immutable import immutable
from tokenyard.store.holds import Charge, HeldReservation, HoldStore
from tokenyard.store.ledger import MAX_NANO
from tokenyard.wire.usage import Usage


@immutable
class Payer:
    """Who pays for a request: the account, the key, and the account's markup."""

    account_id: str
    key_id: str
    markup: Markup
    tpm: int | None = None


@immutable
class Settled:
    cost_nano: int
    provider_cost_nano: int


class Wallet:
    def __init__(self, ledger: HoldStore, *, owner: str):
        self._ledger = ledger
        self.owner = owner
        self.active: set[str] = set()
        """Holds this process is still working on. A hold of this owner that is not here was
        orphaned (its charge or release failed, e.g. the database was away) and the reaper
        releases it."""

    @staticmethod
    def worst_case(
        prices: Iterable[Price], prompt_tokens: int, output_tokens: int, markup: Markup
    ) -> int:
        """The most this request can cost on any upstream it may be sent to."""
        worst = 0
        for price in prices:
            worst = max(worst, price.nano(prompt_tokens, 0, output_tokens, markup))
        return worst

    async def hold(self, request_id: str, payer: Payer, amount_nano: int) -> HeldReservation:
        if amount_nano > MAX_NANO:  # more than any balance can be (and than the columns hold)
            raise InsufficientQuota(
                f"no balance can cover this request (up to {format_nano(amount_nano)} is needed)"
            )
        held = HeldReservation(request_id, payer.account_id, payer.key_id, amount_nano)
        self.active.add(held.id)
        try:
            refused = await self._ledger.reserve(held, self.owner)
        except BaseException:
            self.active.discard(held.id)
            raise
        if refused is not None:
            self.active.discard(held.id)
        if refused == "account":
            raise InsufficientQuota(
                f"the account balance cannot cover this request "
                f"(up to {format_nano(amount_nano)} is needed)"
            )
        if refused == "key":
            raise InsufficientQuota(
                f"this key's budget cannot cover this request "
                f"(up to {format_nano(amount_nano)} is needed)"
            )
        return held

    async def release(self, held: HeldReservation) -> None:
        try:
            await asyncio.shield(self._ledger.release(held))
        finally:
            self.active.discard(held.id)

    async def settle(
        self,
        held: HeldReservation,
        *,
        payer: Payer,
        price: Price,
        usage: Usage,
        model: str,
        provider: str,
        on_charged: Callable[[Settled], None] | None = None,
    ) -> Settled:
        """Charge the real cost and release the hold; committed when this returns.

        The charge goes on when the caller is cancelled meanwhile (the client left), and the
        cancellation waits for it; ``on_charged`` is called once it is committed, in either
        case, so that whoever reports the charge (the request's record) learns of it."""
        settled = Settled(
            cost_nano=cost_nano(price, usage, payer.markup),
            provider_cost_nano=cost_nano(price, usage, NO_MARKUP),
        )
        charge = Charge(
            request_id=held.id,
            account_id=held.account_id,
            key_id=held.key_id,
            reserved_nano=held.amount_nano,
            cost_nano=settled.cost_nano,
            provider_cost_nano=settled.provider_cost_nano,
            model=model,
            provider=provider,
            input_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            output_tokens=usage.completion_tokens,
        )
        try:
            charged = self._ledger.settle_at_once(charge)
        except BaseException:
            self.active.discard(charge.request_id)
            raise
        if charged is not None:  # committed already: no await, so nothing could cancel it
            self._charged(charge, settled, on_charged)
            return settled
        # The store's future goes on without us (no task of ours: on SQLite it is the
        # writer's queued operation): shielded, a cancellation never reaches it.
        charging = self._ledger.settle_soon(charge)
        try:
            await asyncio.shield(charging)
        except asyncio.CancelledError:
            # The client left. Finish first: the request's record is emitted once the
            # cancellation ends it, so the charge is reported before. A charge that fails
            # leaves its hold to the reaper, as without a cancellation. Cancelled again while
            # waiting, the report is left to the charge's own completion, which still comes.
            try:
                with contextlib.suppress(Exception):  # reported below, as failed
                    await asyncio.shield(charging)
            except asyncio.CancelledError:
                if not charging.done():  # else it finished as the second cancel came: below
                    charging.add_done_callback(
                        lambda done: self._charge_done(done, charge, settled, on_charged)
                    )
                raise
            raise
        finally:
            if charging.done():
                self._charge_done(charging, charge, settled, on_charged)
        return settled

    def _charge_done(
        self,
        done: asyncio.Future[bool],
        charge: Charge,
        settled: Settled,
        on_charged: Callable[[Settled], None] | None,
    ) -> None:
        """A finished charge, told to the books in memory: reported when committed; failed,
        the hold no longer counts as active and is left to the reaper."""
        if done.cancelled() or done.exception() is not None:  # retrieved: not logged
            self.active.discard(charge.request_id)
        else:
            self._charged(charge, settled, on_charged)

    def _charged(
        self, charge: Charge, settled: Settled, on_charged: Callable[[Settled], None] | None
    ) -> None:
        self.active.discard(charge.request_id)  # the hold's id
        if on_charged is not None:
            on_charged(settled)
