"""The public model catalogue, built once from the config."""

from __future__ import annotations

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

    @property
    def key(self) -> str:
        """Names this deployment in health books and logs."""
        return f"{self.provider}/{self.upstream_model}"


@immutable
class PublicModel:
    name: str
    config: ModelConfig
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.config.kind

    def lacks(self, capability: str) -> bool:
        """True when the model declares its capabilities and this one is not among them."""
        declared = self.config.capabilities
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
