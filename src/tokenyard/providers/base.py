"""The port every upstream adapter implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from tokenyard.immutable import immutable
from tokenyard.wire.json import JSONObject
from tokenyard.wire.usage import Usage


@immutable
class Call:
    """One upstream call: the canonical request body, the upstream's own model name and the
    credential chosen from the provider's key pool (None when the upstream needs none)."""

    body: JSONObject
    upstream_model: str
    api_key: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class ChatResult:
    """A complete, canonical (OpenAI-shaped) chat completion and its usage."""

    body: JSONObject
    usage: Usage


@dataclass(slots=True)
class EmbeddingResult:
    body: JSONObject
    usage: Usage


class ChatStream(Protocol):
    """An open upstream stream. Iterating yields canonical chunk payloads (JSON bytes, no
    ``data:`` framing, no usage: the adapter strips usage and records it in ``usage``).
    Iteration raises :class:`~tokenyard.errors.UpstreamError` on a broken stream."""

    usage: Usage | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    async def chat(self, call: Call) -> ChatResult: ...

    async def open_stream(self, call: Call) -> ChatStream:
        """Send the request and return once the upstream has accepted it (status 200).
        Errors before that are raised as :class:`~tokenyard.errors.UpstreamError`."""
        ...

    async def embed(self, call: Call) -> EmbeddingResult: ...

    async def close(self) -> None: ...
