"""Trying a plan's attempts in order until one upstream answers.

Failing over happens only before the first byte reached the client, and only for failures
another upstream could fix. Deployments with an open circuit go last; a refusal of the key
itself (401, 403, 429) is retried with the deployment's next free key; a context overflow
skips to a model with a larger window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from tokenyard.errors import NoUpstreamAvailable, UpstreamError, UpstreamTimeout
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


@dataclass(slots=True)
class _Tries:
    """What the attempts of one request have done so far."""

    calls: int = 0
    last: UpstreamError | None = None
    overflowed: PublicModel | None = None  # a model whose window the prompt overflowed
    overflow: UpstreamError | None = None

    def final_error(self, name: str) -> UpstreamError:
        if self.overflow is not None and self.last is None:
            return self.overflow
        if self.last is None:
            return NoUpstreamAvailable(f"no deployment of {name!r} can serve this request")
        if isinstance(self.last, UpstreamTimeout):
            return UpstreamTimeout(f"every upstream for {name!r} timed out ({self.calls} tried)")
        return UpstreamError(
            f"every upstream for {name!r} failed ({self.calls} tried); last: {self.last.message}",
            retryable=False,
            status=502,
            code=self.last.code,
        )


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


def _larger(model: PublicModel, than: PublicModel) -> bool:
    """Whether ``model`` is another model whose window is larger (or not declared)."""
    if model.name == than.name:
        return False
    window, other = model.config.context_window, than.config.context_window
    return window is None or other is None or window > other


class Attempter:
    """Holds what trying needs: the adapters, the key pools, the health book."""

    def __init__(
        self, providers: Mapping[str, Provider], pools: Mapping[str, KeyPool], health: HealthBook
    ):
        self._providers = providers
        self._pools = pools
        self._health = health

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
        """Try each attempt until one succeeds; returns it, its result and the number of
        upstream calls made."""
        tries = _Tries()
        ordered = self._healthy_first(attempts)
        for attempt in ordered:
            if tries.overflowed is not None and not _larger(attempt.model, tries.overflowed):
                continue
            if not self._health.acquire(attempt.deployment.key) and attempt is not ordered[-1]:
                continue  # its circuit is open (or its one probe is out): try the next
            done, result = await self._try_deployment(attempt, body, call, tokens, tries)
            if done:
                return attempt, result, tries.calls  # type: ignore[return-value]
        raise tries.final_error(attempts[0].model.name if attempts else "?")

    async def _try_deployment(
        self,
        attempt: Attempt,
        body: JSONObject,
        call: Callable[[Provider, Call], Awaitable[T]],
        tokens: int,
        tries: _Tries,
    ) -> tuple[bool, T | None]:
        """Call one deployment. A refusal of the key itself (401, 403, 429) is tried again
        with the deployment's next free key; the pool takes that key out or cools it down."""
        deployment, pool = attempt.deployment.key, self._pools[attempt.deployment.provider]
        provider = self._providers[attempt.deployment.provider]
        for _ in range(max(1, len(pool.keys))):
            try:
                key = pool.choose(tokens)
            except KeysExhausted as exc:
                tries.last = exc
                break
            tries.calls += 1
            started = time.monotonic()
            try:
                result = await call(
                    provider,
                    Call(body, attempt.deployment.upstream_model, key.secret if key else None),
                )
            except UpstreamError as exc:
                pool.failed(key, exc)
                _log_failure(attempt, key, exc)
                if exc.code == "context_length_exceeded":
                    # Only a larger model further down the chain could take this prompt.
                    tries.overflowed, tries.overflow = attempt.model, exc
                    break
                self._health.failure(
                    deployment, retryable=exc.retryable and exc.upstream_status not in KEY_FAULTS
                )
                if not exc.retryable:
                    raise
                tries.last = exc
                if key is not None and exc.upstream_status in KEY_FAULTS:
                    continue
                return False, None
            except BaseException:
                self._health.release(deployment)
                raise
            self._health.success(deployment, latency_ms=(time.monotonic() - started) * 1000)
            pool.succeeded(key)
            return True, result
        self._health.release(deployment)
        return False, None
