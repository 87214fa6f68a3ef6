"""Building the configured providers: one adapter and one keep-alive connection pool each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tokenyard.config import ProviderConfig, SimulatorConfig
from tokenyard.errors import ConfigError
from tokenyard.providers.base import Provider
from tokenyard.providers.http import configured_timeouts
from tokenyard.providers.openai import OpenAIProvider
from tokenyard.providers.simulator import SimulatorProvider
from tokenyard.providers.transport import HttpClient
from tokenyard.providers.vendors import VENDORS, vendor_for

Builder = Callable[[str, ProviderConfig, HttpClient], Provider]


def _family(api: str) -> Builder:
    """The ``build`` function of a wire family, imported only when a provider uses it."""
    if api == "anthropic":
        from tokenyard.providers.anthropic import build as anthropic

        return anthropic
    if api == "gemini":
        from tokenyard.providers.gemini import build as gemini

        return gemini
    if api == "zhipu":
        from tokenyard.providers.zhipu import build as zhipu

        return zhipu
    if api == "dashscope":
        from tokenyard.providers.dashscope import build as dashscope

        return dashscope
    if api == "spark":
        from tokenyard.providers.spark import build as spark

        return spark
    raise ConfigError([f"no adapter for api {api!r}"])


HTTP_FAMILIES = frozenset({"anthropic", "gemini", "zhipu", "dashscope", "spark"})
AVAILABLE_APIS = frozenset({"openai", "simulator", "local"}) | HTTP_FAMILIES


def availability_problems(providers: Mapping[str, ProviderConfig]) -> list[str]:
    """What the config asks of this build that it cannot do yet."""
    problems = []
    for name, cfg in providers.items():
        if cfg.api not in AVAILABLE_APIS:
            problems.append(
                f"providers.{name}.api: {cfg.api!r} is not available in this version "
                f"(available: {', '.join(sorted(AVAILABLE_APIS))})"
            )
        if cfg.vendor is not None and cfg.vendor not in VENDORS:
            problems.append(
                f"providers.{name}.vendor: unknown vendor {cfg.vendor!r} "
                f"(known: {', '.join(sorted(VENDORS))})"
            )
    return problems


@dataclass
class Upstreams:
    """The built providers and the HTTP clients they call through (one per provider: its
    own pool of kept-alive connections; no cookies are kept, so nothing an upstream sets
    while answering one tenant rides along on another's call)."""

    providers: dict[str, Provider]
    clients: list[HttpClient]

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()
        for client in self.clients:
            await client.close()


async def build_upstreams(providers: Mapping[str, ProviderConfig]) -> Upstreams:
    problems = availability_problems(providers)
    if problems:
        raise ConfigError(problems)
    built: dict[str, Provider] = {}
    clients: list[HttpClient] = []
    for name, cfg in providers.items():
        if cfg.api == "simulator":
            sim = cfg.simulator or SimulatorConfig()
            built[name] = SimulatorProvider(
                name=name,
                ttft_ms=sim.ttft_ms,
                tokens_per_s=sim.tokens_per_s,
                max_output_tokens=sim.max_output_tokens,
            )
            continue
        if cfg.api == "local":  # in process: no network, no session
            from tokenyard.providers.local import build as local

            built[name] = local(name, cfg)
            continue
        client = HttpClient()
        clients.append(client)
        if cfg.api in HTTP_FAMILIES:
            built[name] = _family(cfg.api)(name, cfg, client)
            continue
        assert cfg.base_url is not None  # checked by config validation
        built[name] = OpenAIProvider(
            name=name,
            base_url=cfg.base_url,
            vendor=vendor_for(cfg.vendor, cfg.base_url),
            client=client,
            extra_headers=cfg.headers,
            **configured_timeouts(cfg),
        )
    return Upstreams(providers=built, clients=clients)
