"""The ordered list of attempts for one request.

The requested model's deployments (in the order of its policy: as configured, weighted at
random, or cheapest first), then each of its fallback models, then the models the request
itself lists (OpenRouter's ``models``). Deployments outside the request's regions are left
out, and so are models whose context window is smaller than the prompt. (Health, `auto`
and hedging arrive with the rest of issue 5.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tokenyard.routing.catalog import Catalog, Deployment, PublicModel
from tokenyard.wire.usage import Usage


@dataclass(frozen=True, slots=True)
class Attempt:
    model: PublicModel
    deployment: Deployment


@dataclass(frozen=True, slots=True)
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


def _ordered(model: PublicModel, wishes: Wishes, rng: random.Random) -> list[Deployment]:
    deployments = list(model.deployments)
    policy = model.config.policy
    if policy == "cheapest":
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
) -> list[Attempt]:
    wishes = wishes or Wishes()
    attempts: list[Attempt] = []
    for candidate in _chain(catalog, model, wishes.models):
        window = candidate.config.context_window
        if window is not None and wishes.prompt_tokens > window:
            continue
        for deployment in _ordered(candidate, wishes, rng or random.Random()):  # noqa: S311
            if wishes.regions is None or deployment.region in wishes.regions:
                attempts.append(Attempt(candidate, deployment))
    return attempts
