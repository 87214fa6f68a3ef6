"""Dict-kept counters and histograms: what they refuse and what they tell the registry.

That they render as prometheus-client's own metrics do is shown through the sink
(tests/obs/test_metrics.py), on every series it makes."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

from tokenyard.obs.tally import Instruments


def test_a_counter_only_goes_up() -> None:
    counter = Instruments(CollectorRegistry(), files=False).counter("things", "Things.", ["kind"])
    with pytest.raises(ValueError, match="non-negative"):
        counter.add(("a",), -1)


def test_the_registry_knows_dict_kept_names_and_refuses_them_twice() -> None:
    registry = CollectorRegistry()
    make = Instruments(registry, files=False)
    make.counter("things", "Things.", ["kind"])
    make.histogram("wait", "Waits.", ["kind"], buckets=(0.1, 1.0), unit="seconds")
    make.register()
    for name in ("things", "wait_seconds"):
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            Counter(name, "Again.", registry=registry)


def test_a_histogram_counts_a_value_on_a_bound_in_that_bound_s_bucket() -> None:
    registry = CollectorRegistry()
    make = Instruments(registry, files=False)
    wait = make.histogram("wait", "Waits.", ["kind"], buckets=(0.1, 1.0), unit="seconds")
    make.register()
    for value in (0.1, 0.5, 1.0, 7.0):
        wait.observe(("a",), value)
    bucket = registry.get_sample_value
    assert bucket("wait_seconds_bucket", {"kind": "a", "le": "0.1"}) == 1
    assert bucket("wait_seconds_bucket", {"kind": "a", "le": "1.0"}) == 3
    assert bucket("wait_seconds_bucket", {"kind": "a", "le": "+Inf"}) == 4
    assert bucket("wait_seconds_sum", {"kind": "a"}) == 8.6
