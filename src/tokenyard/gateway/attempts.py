"""Trying a plan's attempts in order until one upstream answers.

Failing over happens only before the first byte reached the client, and only for failures
another upstream could fix. Deployments with an open circuit go last; a refusal of the key
itself (401, 403, 429) is retried with the deployment's next free key; a context overflow
skips to a model with a larger window.

A :class:`Budget` bounds every request, so that failing over ends even when every upstream
is slow or failing: a deadline over all its attempts (then 504) and a most number of
upstream calls, key retries and hedges included. A model with ``hedge_after_ms`` races an
attempt that has not answered in that time against the next attempt (gateway/hedge.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from tokenyard.errors import UpstreamError
from tokenyard.gateway.budget import Budget, Tries
from tokenyard.gateway.deadline import Deadline
from tokenyard.gateway.hedge import close_unused, race
from tokenyard.gateway.relay import OpenedStream
from tokenyard.immutable import immutable
from tokenyard.obs.record import start_attempt
from tokenyard.pool.keys import KeyPool, KeysExhausted, PooledKey
from tokenyard.providers.base import Call, Provider
from tokenyard.routing.catalog import PublicModel
from tokenyard.routing.health import HealthBook
from tokenyard.routing.plan import Attempt
from tokenyard.wire.json import JSONObject

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_FAULTS = frozenset({401, 403, 429})
"""Upstream statuses that are about the credential: another key may succeed."""


@immutable
class Won(Generic[T]):
    """The attempt that answered, and its answer."""

    attempt: Attempt
    result: T


@dataclass(slots=True)
class _Walk:
    """The plan in the order it is tried, and how far trying has got."""

    ordered: list[Attempt]
    at: int = 0


def _log_failure(attempt: Attempt, key: PooledKey | None, exc: UpstreamError) -> None:
    log.warning(
        "upstream attempt failed",
        extra={
            "fields": {
                "provider": attempt.deployment.provider,
                "key": key.label if key else None,
                "model": attempt.model.name,
                "error": exc.code,
                "status": exc.upstream_status,
                "retryable": exc.retryable,
            }
        },
    )


def _log_hedge(slow: Attempt, hedge: Attempt) -> None:
    log.info(
        "hedging a slow attempt",
        extra={
            "fields": {
                "slow": slow.deployment.key,
                "hedge": hedge.deployment.key,
                "after_ms": slow.model.config.hedge_after_ms,
            }
        },
    )


def _larger(model: PublicModel, than: PublicModel) -> bool:
    """Whether ``model`` is another model whose window is larger (or not declared)."""
    if model.name == than.name:
        return False
    window, other = model.context_window, than.context_window
    return window is None or other is None or window > other


class Attempter:
    """Holds what trying needs: the adapters, the key pools, the health book, the budget."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        pools: Mapping[str, KeyPool],
        health: HealthBook,
        budget: Budget | None = None,
    ):
        self._providers = providers
        self._pools = pools
        self._health = health
        self._budget = budget or Budget()

    def _healthy_first(self, attempts: list[Attempt]) -> list[Attempt]:
        """The plan with deployments whose circuit is open moved behind the healthy ones:
        skipped while a healthy alternative exists, still tried when none does."""
        healthy = [a for a in attempts if self._health.available(a.deployment.key)]
        if len(healthy) == len(attempts):
            return attempts
        return healthy + [a for a in attempts if a not in healthy]

    async def first_success(
        self,
        attempts: list[Attempt],
        body: JSONObject,
        call: Callable[[Provider, Call], Awaitable[T]],
        tokens: int = 0,
    ) -> tuple[Attempt, T, int]:
        """Try each attempt until one succeeds, within the budget; returns it, its result and
        the number of upstream calls made."""
        tries = Tries(self._budget.max_attempts)
        name = attempts[0].model.name if attempts else "?"
        deadline = Deadline(asyncio.get_running_loop().time() + self._budget.deadline_s)
        try:
            with deadline:
                won = await self._walk(
                    _Walk(self._healthy_first(attempts)), body, call, tokens, tries
                )
        except TimeoutError:
            if not deadline.expired:
                raise
            raise tries.deadline_error(name, self._budget.deadline_s) from None
        if won is None:
            raise tries.final_error(name)
        return won.attempt, won.result, tries.calls

    def _next(self, walk: _Walk, tries: Tries) -> Attempt | None:
        """The next attempt to call, its health slot taken; None when the plan or the budget
        of calls is spent."""
        while walk.at < len(walk.ordered):
            attempt = walk.ordered[walk.at]
            walk.at += 1
            if tries.overflowed is not None and not _larger(attempt.model, tries.overflowed):
                continue
            if not tries.may_call():
                return None
            if not self._health.acquire(attempt.deployment.key) and walk.at < len(walk.ordered):
                continue  # its circuit is open (or its one probe is out): try the next
            return attempt
        return None

    async def _walk(
        self,
        walk: _Walk,
        body: JSONObject,
        call: Callable[[Provider, Call], Awaitable[T]],
        tokens: int,
        tries: Tries,
    ) -> Won[T] | None:
        """Call the plan's attempts one after the other — or two at once, once per request,
        when a model's ``hedge_after_ms`` passes without an answer."""

        def start(attempt: Attempt) -> asyncio.Task[Won[T] | None]:
            return asyncio.create_task(self._try_deployment(attempt, body, call, tokens, tries))

        def start_hedge(slow: Attempt) -> asyncio.Task[Won[T] | None] | None:
            attempt = self._next(walk, tries)
            if attempt is None:
                return None
            tries.hedged = True
            _log_hedge(slow, attempt)
            return start(attempt)

        async def discard(won: Won[T]) -> None:
            await close_unused(won.result)

        while (attempt := self._next(walk, tries)) is not None:
            hedge_ms = attempt.model.hedge_after_ms
            if hedge_ms is None or tries.hedged:
                won = await self._try_deployment(attempt, body, call, tokens, tries)
            else:
                hedge = partial(start_hedge, attempt)
                won = await race(start(attempt), hedge_ms / 1000, hedge, discard)
            if won is not None:
                return won
        return None

    async def _try_deployment(
        self,
        attempt: Attempt,
        body: JSONObject,
        call: Callable[[Provider, Call], Awaitable[T]],
        tokens: int,
        tries: Tries,
    ) -> Won[T] | None:
        """Call one deployment. A refusal of the key itself (401, 403, 429) is tried again
        with the deployment's next free key; the pool takes that key out or cools it down.
        An attempt that ends without a verdict (cancelled: it lost a hedge race, the deadline
        passed, the client left) only releases its health slot."""
        deployment, pool = attempt.deployment.key, self._pools[attempt.deployment.provider]
        provider = self._providers[attempt.deployment.provider]
        reported = False
        try:
            for retry in range(max(1, len(pool.keys))):
                if retry and not tries.may_call():
                    break
                try:
                    key = await pool.choose(tokens)
                except KeysExhausted as exc:
                    tries.last = exc
                    break
                tries.calls += 1
                started = time.monotonic()
                noted = start_attempt(
                    attempt.deployment.provider,
                    attempt.model.name,
                    attempt.deployment.upstream_model,
                    key.label if key else None,
                )
                try:
                    result = await call(
                        provider,
                        Call(body, attempt.deployment.upstream_model, key.secret if key else None),
                    )
                except UpstreamError as exc:
                    noted.end("failed", exc.code, exc.upstream_status)
                    pool.failed(key, exc)
                    _log_failure(attempt, key, exc)
                    if exc.code == "context_length_exceeded":
                        # Only a larger model further down the chain could take this prompt.
                        tries.overflowed, tries.overflow = attempt.model, exc
                        break
                    self._health.failure(
                        deployment,
                        retryable=exc.retryable and exc.upstream_status not in KEY_FAULTS,
                    )
                    reported = True
                    if not exc.retryable:
                        raise
                    tries.last = exc
                    if key is not None and exc.upstream_status in KEY_FAULTS:
                        continue
                    return None
                except BaseException:
                    noted.end("cancelled")
                    raise
                noted.end("ok")
                self._succeeded(deployment, result, started)
                reported = True
                pool.succeeded(key)
                return Won(attempt, result)
            return None
        finally:
            if not reported:
                self._health.release(deployment)

    def _succeeded(self, deployment: str, result: object, started: float) -> None:
        """Report a success; an opened stream has delivered its first chunk, so the time it
        took is also the deployment's time to first token (what ``fastest`` ranks by)."""
        elapsed_ms = (time.monotonic() - started) * 1000
        ttft_ms = elapsed_ms if isinstance(result, OpenedStream) else None
        self._health.success(deployment, latency_ms=elapsed_ms, ttft_ms=ttft_ms)
