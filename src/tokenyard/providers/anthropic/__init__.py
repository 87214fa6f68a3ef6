"""The Anthropic Messages wire family (``api: anthropic``), as an upstream.

``request`` and ``messages`` translate the canonical OpenAI request, ``response`` the
Anthropic ``Message``, ``stream`` its SSE events, ``failure`` its errors; ``provider`` does
the HTTP. Facts: ../shared/providers.md §3, checked against anthropic-sdk-python.
"""

from tokenyard.providers.anthropic.provider import AnthropicProvider, build

__all__ = ["AnthropicProvider", "build"]
