"""``freeze_startup_heap``: what exists at start-up leaves the collector's generations,
garbage made later in cycles is still collected, and the youngest generation waits for
10,000 objects (decision 0016)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from tokenyard.server.run import YOUNG_GENERATION, freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_what_start_up_built_is_frozen_and_later_cycles_are_still_collected() -> None:
    built_at_start = _Node()
    assert gc.is_tracked(built_at_start)
    frozen = freeze_startup_heap()

    assert frozen == gc.get_freeze_count() > 0
    assert not any(obj is built_at_start for obj in gc.get_objects())  # out of the generations
    assert gc.get_threshold()[0] == YOUNG_GENERATION == 10_000

    first, second = _Node(), _Node()
    first.other, second.other = second, first  # a cycle: reference counting cannot free it
    gone = weakref.ref(first)
    del first, second
    assert gone() is not None
    gc.collect()
    assert gone() is None
