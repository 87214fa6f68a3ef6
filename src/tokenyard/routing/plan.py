"""The ordered list of attempts for one request: the model's deployments in order, then
each fallback model's deployments. (Policies, health and `auto`: issue 5.)"""

from __future__ import annotations

from dataclasses import dataclass

from tokenyard.routing.catalog import Catalog, Deployment, PublicModel


@dataclass(frozen=True, slots=True)
class Attempt:
    model: PublicModel
    deployment: Deployment


def plan(catalog: Catalog, model: PublicModel) -> list[Attempt]:
    attempts = [Attempt(model, d) for d in model.deployments]
    seen = {model.name}
    for name in model.fallbacks:
        fallback = catalog.get(name)
        if fallback is None or name in seen:
            continue
        seen.add(name)
        attempts.extend(Attempt(fallback, d) for d in fallback.deployments)
    return attempts
