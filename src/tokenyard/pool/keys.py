"""A provider's keys, chosen by weight. (RPM/TPM windows and cool-downs: issue 5.)"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from tokenyard.config import KeyConfig


@dataclass(frozen=True, slots=True)
class PooledKey:
    label: str  # "provider#index": safe to log, unlike the secret
    secret: str = field(repr=False)
    weight: int = 1


class KeyPool:
    def __init__(self, provider: str, keys: Sequence[KeyConfig], rng: random.Random):
        self.provider = provider
        self._keys = [PooledKey(f"{provider}#{i}", k.key, k.weight) for i, k in enumerate(keys)]
        self._weights = [k.weight for k in self._keys]
        self._rng = rng

    def choose(self) -> PooledKey | None:
        """A key for the next call, or None when the provider needs no credential."""
        if not self._keys:
            return None
        if len(self._keys) == 1:
            return self._keys[0]
        return self._rng.choices(self._keys, weights=self._weights)[0]
