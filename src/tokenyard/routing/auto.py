"""The ``auto`` router (SPEC §3): which public models could serve a request, best first.

:func:`rank` filters the catalogue (chat models only, declared capabilities, context window,
regions, key scope, ``max_price``) and orders what is left by tier, task fit, the expected
cost of this very request and health; every model left out is named with why.
:func:`parse_auto` reads ``model: "auto[:tier]"`` and :func:`explain` renders the
``x-tokenyard-route`` header. Pure: no I/O, no clock, health is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import field
from decimal import Decimal
from typing import Literal

from tokenyard.errors import InvalidRequest
from tokenyard.immutable import immutable
from tokenyard.routing.catalog import Catalog, Deployment, PublicModel
from tokenyard.routing.task import TaskGuess, classify, needs
from tokenyard.wire.json import JSONObject
from tokenyard.wire.usage import Usage

TIERS = ("economy", "standard", "premium")
DEFAULT_TIER = "standard"
SORTS = ("price", "latency", "throughput")
_HEADER_UNSAFE = re.compile(r"[^A-Za-z0-9._:/@+-]")

MaxPrice = tuple[Decimal | None, Decimal | None]
"""Highest acceptable (input, output) price per 1M tokens, billing currency; None: any."""


@immutable
class Candidate:
    name: str
    expected_cost: Decimal
    """Provider cost of this request on the cheapest usable deployment, before markup."""
    tier: str
    task_match: bool
    reasons: list[str]
    health: float = 1.0
    deployment: Deployment | None = None
    """The cheapest usable deployment (the one ``expected_cost`` was priced on)."""


@immutable
class Ranking:
    task: TaskGuess
    candidates: list[Candidate]
    rejected: dict[str, str] = field(default_factory=dict)
    tier: str = DEFAULT_TIER
    """The tier asked for (``standard`` when the request named none)."""
    needs: frozenset[str] = frozenset()

    @property
    def chosen(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


def parse_auto(model: str) -> str | Literal[False] | None:
    """``auto`` → None (no tier), ``auto:<tier>`` → the tier, any other model → False."""
    if model == "auto":
        return None
    if not model.startswith("auto:"):
        return False
    tier = model.removeprefix("auto:")
    if tier not in TIERS:
        raise InvalidRequest(
            f"unknown auto tier {tier[:32]!r}: use auto, " + ", ".join(f"auto:{t}" for t in TIERS),
            param="model",
        )
    return tier


def _within(deployment: Deployment, max_price: MaxPrice | None) -> bool:
    if max_price is None:
        return True
    max_input, max_output = max_price
    price = deployment.price
    return (max_input is None or price.input <= max_input) and (
        max_output is None or price.output <= max_output
    )


@immutable
class _Request:
    task: str
    needs: frozenset[str]
    allowed: Callable[[str], bool]
    regions: frozenset[str] | None
    max_price: MaxPrice | None
    usage: Usage


def _rejection(model: PublicModel, request: _Request) -> str | None:
    """Why the model cannot serve the request on grounds other than its deployments."""
    if model.kind != "chat":
        return f"{model.kind} model"
    if not request.allowed(model.name):
        return "not allowed for this key"
    missing = request.needs - set(model.config.capabilities)
    if missing:
        return "lacks " + ", ".join(sorted(missing))
    window = model.config.context_window
    wanted = request.usage.total_tokens
    if window is not None and wanted > window:
        return f"window {window} < {wanted}"
    return None


def _cheapest(model: PublicModel, request: _Request) -> tuple[Deployment, Decimal] | str:
    """The cheapest deployment that satisfies regions and max_price, or why there is none."""
    usable = model.deployments
    if request.regions is not None:
        usable = tuple(d for d in usable if d.region in request.regions)
        if not usable:
            found = sorted({d.region or "unset" for d in model.deployments})
            return f"region {','.join(found)} not allowed"
    usable = tuple(d for d in usable if _within(d, request.max_price))
    if not usable:
        return "over max_price"
    priced = [(d, d.price.provider_cost(request.usage)) for d in usable]
    return min(priced, key=lambda pair: pair[1])


def _sort_key(sort: str | None, tier: str) -> Callable[[Candidate], tuple[object, ...]]:
    wanted = TIERS.index(tier)

    def key(c: Candidate) -> tuple[object, ...]:
        # A model with no deployment taking requests (every circuit open) goes last
        # whatever the order: named first, it would only be skipped by the failover.
        down = c.health <= 0.0
        distance = abs(TIERS.index(c.tier) - wanted) if c.tier in TIERS else len(TIERS)
        fit = (distance, not c.task_match)
        if sort == "price":
            return (down, c.expected_cost, *fit, -c.health)
        if sort in ("latency", "throughput"):
            return (-c.health, *fit, c.expected_cost)
        return (down, *fit, c.expected_cost, -c.health)

    return key


def rank(
    catalog: Catalog,
    body: JSONObject,
    *,
    tier: str | None,
    allowed: Callable[[str], bool],
    regions: frozenset[str] | None,
    sort: str | None,
    max_price: MaxPrice | None,
    prompt_tokens: int,
    output_tokens: int,
    health: Callable[[str], float] | None = None,
    guess: TaskGuess | None = None,
) -> Ranking:
    """Every catalogue model that can serve ``body``, best first, and the rest with why.

    Default order: tier match (exact first, then the nearest tier), task match, expected
    cost of this request, health. ``sort="price"`` puts cost first; ``"latency"`` and
    ``"throughput"`` put health first. ``guess`` is the request's task when the caller
    already knows it better than the rules (routing/similarity.py).
    """
    if sort is not None and sort not in SORTS:
        raise InvalidRequest(f"routing.sort must be one of {', '.join(SORTS)}", param="routing")
    wanted_tier = tier or DEFAULT_TIER
    if wanted_tier not in TIERS:
        raise InvalidRequest(f"unknown tier {wanted_tier[:32]!r}", param="model")
    guess = guess or classify(body)
    request = _Request(
        task=guess.task,
        needs=needs(body),
        allowed=allowed,
        regions=regions,
        max_price=max_price,
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=output_tokens),
    )
    candidates: list[Candidate] = []
    rejected: dict[str, str] = {}
    for model in catalog.models.values():
        why = _rejection(model, request)
        cheapest = _cheapest(model, request) if why is None else why
        if isinstance(cheapest, str):
            rejected[model.name] = cheapest
            continue
        candidates.append(_candidate(model, request, cheapest, health, wanted_tier))
    candidates.sort(key=_sort_key(sort, wanted_tier))
    return Ranking(guess, candidates, rejected, wanted_tier, request.needs)


def _candidate(
    model: PublicModel,
    request: _Request,
    cheapest: tuple[Deployment, Decimal],
    health: Callable[[str], float] | None,
    tier: str,
) -> Candidate:
    deployment, cost = cheapest
    score = 1.0 if health is None else min(1.0, max(0.0, health(model.name)))
    task_match = request.task in model.config.tasks
    reasons = [
        f"tier {model.config.tier}" + (" (asked)" if model.config.tier == tier else ""),
        f"task {request.task}" if task_match else f"no {request.task} hint",
        f"cost {cost:.6f} on {deployment.provider}",
    ]
    if score < 1.0:
        reasons.append(f"health {score:.2f}")
    return Candidate(
        name=model.name,
        expected_cost=cost,
        tier=model.config.tier,
        task_match=task_match,
        reasons=reasons,
        health=score,
        deployment=deployment,
    )


def _token(text: str) -> str:
    return _HEADER_UNSAFE.sub("_", text)[:64] or "_"


def explain(ranking: Ranking) -> str:
    """The ``x-tokenyard-route`` header: ``task=coding; tier=standard; chosen=a; runner-up=b``."""
    names = [c.name for c in ranking.candidates[:2]]
    parts = [f"task={_token(ranking.task.task)}", f"tier={_token(ranking.tier)}"]
    parts.append(f"chosen={_token(names[0]) if names else 'none'}")
    if len(names) > 1:
        parts.append(f"runner-up={_token(names[1])}")
    return "; ".join(parts)
