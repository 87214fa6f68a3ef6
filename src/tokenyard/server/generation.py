"""What the config builds for the request path, as one immutable generation, and the one
mutable holder that says which generation new requests get.

A config reload (server/reload.py) builds a whole new generation beside the running one and
swaps it in with one assignment, so a request never sees half of each. Every request pins
the generation that was current when it arrived (the ``pin`` middleware; on our own server,
``native.service``) and keeps it to
the end, streams included; the old generation's upstream clients are closed when its last
pinned request is done. What outlives a generation — the wallet, the limiters, the health
book, the identity, the Redis bus — is built once by the composition root and handed to
every generation (``Lasting``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from tokenyard.billing.wallet import Wallet
from tokenyard.config import Config
from tokenyard.gateway.flow import Gateway
from tokenyard.immutable import immutable
from tokenyard.pool.keys import CoolListener, KeyPool
from tokenyard.providers.registry import Upstreams, build_upstreams
from tokenyard.routing.catalog import Catalog
from tokenyard.routing.health import HealthBook, HealthPolicy
from tokenyard.store.limits import KeyLimiter

log = logging.getLogger(__name__)


@immutable
class Generation:
    """One config and everything built from it for serving requests."""

    number: int
    config: Config
    gateway: Gateway
    pools: Mapping[str, KeyPool]
    upstreams: Upstreams


@dataclass(slots=True)
class Lasting:
    """What every generation shares: built once at start, never rebuilt by a reload."""

    wallet: Wallet
    limiter: KeyLimiter
    health: HealthBook
    rng: random.Random
    on_cool: CoolListener | None = None  # set by server/sharing.py when Redis is configured


def health_policy(config: Config) -> HealthPolicy:
    return HealthPolicy(**config.health.model_dump())


def build_pools(
    config: Config, lasting: Lasting, previous: Mapping[str, KeyPool] | None = None
) -> dict[str, KeyPool]:
    """A key pool per provider. A key whose provider and secret did not change keeps its
    cool-down, back-off and refusal from ``previous``: a reload must not hand a key the
    upstream just refused straight back to requests."""
    pools = {}
    for name, provider in config.providers.items():
        pool = KeyPool(name, provider.keys, lasting.rng, windows=lasting.limiter)
        pool.on_cool = lasting.on_cool
        old = previous.get(name) if previous is not None else None
        if old is not None:
            before = {k.id: k for k in old.keys}
            for key in pool.keys:
                if (kept := before.get(key.id)) is not None:
                    key.cool_until, key.full_until = kept.cool_until, kept.full_until
                    key.backoff_s, key.refused_s = kept.backoff_s, kept.refused_s
                    key.refused = kept.refused
        pools[name] = pool
    return pools


async def build_generation(
    number: int, config: Config, lasting: Lasting, previous: Generation | None = None
) -> Generation:
    """Everything the request path needs from ``config``; opens the upstream clients."""
    upstreams = await build_upstreams(config.providers)
    pools = build_pools(config, lasting, previous.pools if previous is not None else None)
    gateway = Gateway(
        catalog=Catalog(config),
        providers=upstreams.providers,
        pools=pools,
        wallet=lasting.wallet,
        limiter=lasting.limiter,
        markup=config.billing.markup,
        default_max_output=config.billing.default_max_output_tokens,
        rng=lasting.rng,
        health=lasting.health,
        routing=config.routing,
        log_prompts=config.logging.prompts,
    )
    return Generation(number, config, gateway, pools, upstreams)


@dataclass(eq=False)
class Current:
    """The generation new requests get, and how many requests each one still serves."""

    generation: Generation
    listeners: list[Callable[[Generation], None]] = field(default_factory=list)
    _pinned: dict[int, int] = field(default_factory=dict)
    _retired: dict[int, Generation] = field(default_factory=dict)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def pin(self) -> Generation:
        generation = self.generation
        self._pinned[generation.number] = self._pinned.get(generation.number, 0) + 1
        return generation

    def unpin(self, generation: Generation) -> None:
        left = self._pinned[generation.number] - 1
        if left:
            self._pinned[generation.number] = left
            return
        del self._pinned[generation.number]
        retired = self._retired.pop(generation.number, None)
        if retired is not None:
            self._close_later(retired)

    def swap(self, new: Generation) -> Generation:
        """Make ``new`` current at once; the old one is closed when its requests are done."""
        old, self.generation = self.generation, new
        for listener in self.listeners:
            listener(new)
        if self._pinned.get(old.number):
            self._retired[old.number] = old
        else:
            self._close_later(old)
        return old

    def in_flight(self, generation: Generation) -> int:
        return self._pinned.get(generation.number, 0)

    def _close_later(self, generation: Generation) -> None:
        task = asyncio.get_running_loop().create_task(generation.upstreams.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """At shutdown: close the current generation and any still waiting to be closed."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for generation in (*self._retired.values(), self.generation):
            await generation.upstreams.close()
        self._retired.clear()


CURRENT = web.AppKey("current", Current)
PINNED = web.RequestKey("generation", Generation)
"""The request key under which the ``pin`` middleware keeps the request's generation."""


@web.middleware
async def pin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve the whole request — a stream to its last byte — on one generation."""
    current = request.app[CURRENT]
    generation = current.pin()
    request[PINNED] = generation
    try:
        return await handler(request)
    finally:
        current.unpin(generation)


def generation_of(request: web.Request) -> Generation:
    """The generation this request was pinned to (the current one outside the middleware)."""
    pinned = request.get(PINNED)
    return pinned if pinned is not None else request.app[CURRENT].generation
