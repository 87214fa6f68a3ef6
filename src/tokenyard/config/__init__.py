"""The configuration: the YAML schema of SPEC §2, parsed once into frozen typed objects."""

from tokenyard.config.load import load_config, parse_config
from tokenyard.config.schema import (
    Config,
    DeploymentConfig,
    KeyConfig,
    ModelConfig,
    PriceConfig,
    ProviderConfig,
    SimulatorConfig,
)

__all__ = [
    "Config",
    "DeploymentConfig",
    "KeyConfig",
    "ModelConfig",
    "PriceConfig",
    "ProviderConfig",
    "SimulatorConfig",
    "load_config",
    "parse_config",
]
