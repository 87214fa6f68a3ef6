"""The ordered list of attempts for one request.

The requested model's deployments (in the order of its policy: as configured, weighted at
random, cheapest first, or fastest first), then each of its fallback models, then the models
the request itself lists (OpenRouter's ``models``). Deployments outside the request's regions
are left out, and so are models whose context window is smaller than the prompt. Health
(open circuits last) and hedging are the attempt loop's business (gateway/attempts.py).

``fastest`` reads live speed through a ``speed`` function (deployment key → milliseconds, or
None when never measured), which the gateway builds from its health book: the plan stays a
pure function of what it is given, and a test passes any speeds it likes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from tokenyard.immutable import immutable
from tokenyard.routing.catalog import Catalog, Deployment, PublicModel
from tokenyard.wire.usage import Usage


@immutable
class Attempt:
    model: PublicModel
    deployment: Deployment


Speed = Callable[[str], float | None]
"""A deployment's expected time to its first token in ms (lower is faster); None when it
has never been measured."""


@immutable
class Wishes:
    """What a request adds to its plan."""

    models: tuple[PublicModel, ...] = ()
    regions: frozenset[str] | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0


def _chain(catalog: Catalog, model: PublicModel, extra: Sequence[PublicModel]) -> list[PublicModel]:
    chain = [model]
    names = {model.name}
    for candidate in [*(catalog.get(n) for n in model.fallbacks), *extra]:
        if candidate is not None and candidate.name not in names:
            chain.append(candidate)
            names.add(candidate.name)
    return chain


def _fastest(deployments: list[Deployment], speed: Speed | None) -> list[Deployment]:
    """Fastest first; deployments never measured go before all others (in configured order),
    so that each gets measured once instead of never being tried again."""
    if speed is None:
        return deployments
    known = {d.key: speed(d.key) for d in deployments}

    def rank(d: Deployment) -> tuple[bool, float]:
        ms = known[d.key]
        return (ms is not None, 0.0 if ms is None else ms)

    return sorted(deployments, key=rank)  # stable: ties keep the configured order


def _ordered(
    model: PublicModel, wishes: Wishes, rng: random.Random, speed: Speed | None
) -> list[Deployment]:
    deployments = list(model.deployments)
    policy = model.policy
    if policy == "fastest":
        deployments = _fastest(deployments, speed)
    elif policy == "cheapest":
        usage = Usage(prompt_tokens=wishes.prompt_tokens, completion_tokens=wishes.output_tokens)
        deployments.sort(key=lambda d: d.price.provider_cost(usage))
    elif policy == "weighted" and len(deployments) > 1:
        # Weighted shuffle: each draw picks among the rest by weight.
        left, out = deployments, []
        while left:
            pick = rng.choices(left, weights=[d.weight for d in left])[0]
            out.append(pick)
            left = [d for d in left if d is not pick]
        deployments = out
    return deployments


def plan(
    catalog: Catalog,
    model: PublicModel,
    wishes: Wishes | None = None,
    rng: random.Random | None = None,
    speed: Speed | None = None,
) -> list[Attempt]:
    """The attempts in the order to try them. Without ``speed``, ``fastest`` keeps the
    configured order."""
    wishes = wishes or Wishes()
    rng = rng or random.Random()  # noqa: S311 — load spreading, not security
    attempts: list[Attempt] = []
    for candidate in _chain(catalog, model, wishes.models):
        window = candidate.context_window
        if window is not None and wishes.prompt_tokens > window:
            continue
        for deployment in _ordered(candidate, wishes, rng, speed):
            if wishes.regions is None or deployment.region in wishes.regions:
                attempts.append(Attempt(candidate, deployment))
    return attempts
