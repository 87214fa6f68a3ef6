"""The public model catalogue, built once from the config."""

from __future__ import annotations

from dataclasses import field

from tokenyard.billing.price import Price
from tokenyard.config import Config, ModelConfig
from tokenyard.immutable import immutable


@immutable
class Deployment:
    provider: str
    upstream_model: str
    price: Price
    region: str | None
    weight: int = 1
    key: str = field(init=False, compare=False)
    """Names this deployment in health books and logs."""

    def __post_init__(self) -> None:  # read-only to mypy: set once, here
        object.__setattr__(self, "key", f"{self.provider}/{self.upstream_model}")


@immutable
class PublicModel:
    name: str
    config: ModelConfig
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...]
    # What every request reads of ``config``, copied once: the config is a pydantic model,
    # whose ``__getattr__`` makes each attribute read on it take CPython's slow path.
    kind: str = field(init=False, compare=False)
    capabilities: frozenset[str] = field(init=False, compare=False)
    context_window: int | None = field(init=False, compare=False)
    max_output_tokens: int | None = field(init=False, compare=False)
    policy: str = field(init=False, compare=False)
    hedge_after_ms: int | None = field(init=False, compare=False)

    def __post_init__(self) -> None:  # read-only to mypy: set once, here
        config = self.config
        for name in ("kind", "context_window", "max_output_tokens", "policy", "hedge_after_ms"):
            object.__setattr__(self, name, getattr(config, name))
        object.__setattr__(self, "capabilities", frozenset(config.capabilities))

    def lacks(self, capability: str) -> bool:
        """True when the model declares its capabilities and this one is not among them."""
        declared = self.capabilities
        return bool(declared) and capability not in declared


class Catalog:
    def __init__(self, config: Config):
        self.models: dict[str, PublicModel] = {}
        for name, model in config.models.items():
            deployments = tuple(
                Deployment(
                    provider=d.provider,
                    upstream_model=d.model,
                    price=Price.from_config(d.price, config.billing),
                    region=d.region or config.providers[d.provider].region,
                    weight=d.weight,
                )
                for d in model.deployments
            )
            self.models[name] = PublicModel(name, model, deployments, tuple(model.fallbacks))

    def get(self, name: str) -> PublicModel | None:
        return self.models.get(name)
