"""The Gemini Developer API family (``api: gemini``), native wire (providers.md §4).

``request`` translates the OpenAI request, ``response`` and ``stream`` translate answers back,
``failure`` maps Google RPC errors, ``embedding`` covers ``batchEmbedContents`` and
``provider`` does the HTTP.
"""

from tokenyard.providers.gemini.provider import DEFAULT_BASE_URL, GeminiProvider, build
from tokenyard.providers.gemini.stream import GeminiStream

__all__ = ["DEFAULT_BASE_URL", "GeminiProvider", "GeminiStream", "build"]
