"""OpenAI-wire vendors as data: what each one renames, drops, clamps or puts elsewhere.

A new OpenAI-compatible vendor is one :class:`VendorSpec` here (and a stand-in flavour in
tests). The adapter reads these flags; it never branches on a vendor's name. Facts and
their sources: ../shared/providers.md §2, §5, §6, §8, §10, §11.
"""

from __future__ import annotations

from dataclasses import field
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from tokenyard.immutable import immutable


@immutable
class VendorSpec:
    name: str
    hosts: tuple[str, ...] = ()
    """Base-URL host suffixes that identify the vendor when the config names none."""
    stream_usage_option: bool = True
    """Accepts ``stream_options.include_usage`` (tokenyard always asks for usage)."""
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = "max_tokens"
    """Where the output limit goes; None sends whatever the client sent."""
    rename: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    drop: frozenset[str] = frozenset()
    reasoning_field: str = "reasoning_content"
    """Where the vendor puts reasoning text in messages and deltas."""
    cached_tokens_field: str | None = None
    """A top-level usage field counting cache hits, where the vendor has its own."""
    developer_role: bool = True
    """False: ``developer`` messages are sent as ``system``."""
    temperature_max: float | None = None


GENERIC = VendorSpec(name="generic", max_tokens_field=None)

VENDORS: MappingProxyType[str, VendorSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            GENERIC,
            VendorSpec(
                name="openai",
                hosts=("api.openai.com",),
                max_tokens_field="max_completion_tokens",
            ),
            VendorSpec(
                name="deepseek",
                hosts=("api.deepseek.com",),
                cached_tokens_field="prompt_cache_hit_tokens",
                developer_role=False,
            ),
            VendorSpec(
                name="moonshot",
                hosts=("api.moonshot.cn", "api.moonshot.ai"),
                temperature_max=1.0,
                developer_role=False,
            ),
            VendorSpec(
                name="dashscope",
                hosts=(
                    "dashscope.aliyuncs.com",
                    "dashscope-intl.aliyuncs.com",
                    "dashscope-us.aliyuncs.com",
                    "maas.aliyuncs.com",
                ),
                developer_role=False,
            ),
            VendorSpec(
                name="mistral",
                hosts=("api.mistral.ai",),
                rename=MappingProxyType({"seed": "random_seed"}),
                drop=frozenset({"stream_options", "logprobs", "top_logprobs"}),
                stream_usage_option=False,  # Mistral puts usage on the last chunk unasked
                developer_role=False,
            ),
            VendorSpec(name="vllm", reasoning_field="reasoning", max_tokens_field=None),
            VendorSpec(
                name="ollama",
                hosts=("localhost:11434", "127.0.0.1:11434", "ollama.com"),
                reasoning_field="reasoning",
            ),
        )
    }
)


def vendor_for(name: str | None, base_url: str | None) -> VendorSpec:
    """The spec a provider names, else the one its base URL's host identifies, else generic."""
    if name is not None:
        return VENDORS[name]
    netloc = urlsplit(base_url or "").netloc.lower()
    for spec in VENDORS.values():
        if any(netloc == host or netloc.endswith("." + host) for host in spec.hosts):
            return spec
    return GENERIC
