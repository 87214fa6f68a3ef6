"""The scripted-upstream fixture the round-trip tests share, imported by the conftests of
the directories that hold them (providers and wire)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.roundtrip.upstream import Bench


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    """A scripted upstream for one test module (the translator round-trips)."""
    bench = Bench()
    bench.start()
    yield bench
    bench.stop()
