"""The sink's counters and histograms: plain dicts read by a scrape, or prometheus-client's.

Why two kinds behind one small interface (:class:`Counting`, :class:`Observing`):

- **In one process** nothing reads a value but a scrape, and scrapes run on the same event
  loop as the sink. prometheus-client's ``Counter.inc`` and ``Histogram.observe`` take a
  lock, check that the metric is a labelled child and (histograms) walk the buckets in
  Python on every update — most of what the sink cost per request (121k of its machine
  instructions a record before this module, 48k with it, bench/micro.py's record). Here
  a counter is one ``dict[labels] += amount`` and an observation two list additions, and
  :class:`DictCollector` (a registry collector, prometheus-client's documented extension
  point) turns the dicts into the very families prometheus-client's own metrics render:
  same names, HELP, TYPE, label order, cumulative buckets, ``_count``, ``_sum`` and a
  ``_created`` taken when the series first appeared (always: prometheus-client's
  ``disable_created_metrics()``, which tokenyard never calls, does not reach them). A
  scrape is exact: there is nothing to flush.
- **With** ``PROMETHEUS_MULTIPROC_DIR`` a scrape reads the per-process files only, so the
  values must be in them when any worker answers: :class:`ClientCounter` and
  :class:`ClientHistogram` write through prometheus-client's own metrics on every update,
  exactly as before (their children are looked up once; ``labels()`` validates and locks).

Both kinds trust their callers with the label tuple (obs/metrics.py builds it, the tests
check each series' labels), so neither validates it again per update.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

Labels = tuple[str, ...]
"""A series' label values, in the order of its metric's label names."""


class Counting(Protocol):
    def add(self, labels: Labels, amount: float = 1.0) -> None: ...


class Observing(Protocol):
    def observe(self, labels: Labels, value: float) -> None: ...


class DictCounter:
    """A counter's series in a dict; rendered as prometheus-client renders a ``Counter``."""

    __slots__ = ("_created", "_values", "documentation", "labelnames", "name")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._values: dict[Labels, float] = {}
        self._created: dict[Labels, float] = {}

    def add(self, labels: Labels, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        try:
            self._values[labels] += amount
        except KeyError:  # the series' first update: prometheus-client starts from 0.0
            self._values[labels] = 0.0 + amount
            self._created[labels] = time.time()

    def empty(self) -> Metric:
        """The family without samples."""
        return Metric(self.name, self.documentation, "counter")

    def family(self) -> Metric:
        metric = self.empty()
        total, created = self.name + "_total", self.name + "_created"
        for labels, value in list(self._values.items()):
            named = dict(zip(self.labelnames, labels, strict=True))
            metric.add_sample(total, named, value)
            metric.add_sample(created, named, self._created[labels])
        return metric


class DictHistogram:
    """A histogram's series in a dict, each a list of per-bucket counts then the sum;
    rendered as prometheus-client renders a ``Histogram`` (cumulative ``le`` buckets)."""

    __slots__ = (
        "_bounds",
        "_created",
        "_le",
        "_series",
        "documentation",
        "labelnames",
        "name",
        "unit",
    )

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        unit: str = "",
    ):
        self.name = f"{name}_{unit}" if unit else name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.unit = unit
        self._bounds = [float(b) for b in buckets]
        if self._bounds[-1] != INF:
            self._bounds.append(INF)
        self._le = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]
        self._series: dict[Labels, list[float]] = {}
        self._created: dict[Labels, float] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts = self._series.get(labels)
        if counts is None:
            counts = self._series[labels] = [0.0] * (len(self._bounds) + 1)
            self._created[labels] = time.time()
        counts[bisect_left(self._bounds, value)] += 1.0  # the first bound >= value
        counts[-1] += value

    def empty(self) -> Metric:
        """The family without samples."""
        return Metric(self.name, self.documentation, "histogram", self.unit)

    def family(self) -> Metric:
        metric = self.empty()
        bucket, count, total = self.name + "_bucket", self.name + "_count", self.name + "_sum"
        for labels, counts in list(self._series.items()):
            named = dict(zip(self.labelnames, labels, strict=True))
            acc = 0.0
            for le, n in zip(self._le, counts, strict=False):  # counts ends with the sum
                acc += n
                metric.add_sample(bucket, {**named, "le": le}, acc)
            metric.add_sample(count, named, acc)
            metric.add_sample(total, named, counts[-1])
            metric.add_sample(self.name + "_created", named, self._created[labels])
        return metric


class DictCollector(Collector):
    """Renders dict-kept counters and histograms, in the order they were made."""

    def __init__(self, families: Iterable[DictCounter | DictHistogram]):
        self._families = tuple(families)

    def describe(self) -> Iterator[Metric]:
        """The families without samples: the registry learns their names (and refuses a
        duplicate) without a collect."""
        for family in self._families:
            yield family.empty()

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.family()


_M = TypeVar("_M", Counter, Histogram)


class _Children(Generic[_M]):
    """A prometheus-client metric whose children are looked up once: ``labels()``
    validates and locks on every call."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: _M):
        self._metric: _M = metric
        self._children: dict[Labels, _M] = {}

    def child(self, labels: Labels) -> _M:
        found = self._children.get(labels)
        if found is None:
            found = self._children[labels] = self._metric.labels(*labels)
        return found


class ClientCounter(_Children[Counter]):
    __slots__ = ()

    def add(self, labels: Labels, amount: float = 1.0) -> None:
        self.child(labels).inc(amount)


class ClientHistogram(_Children[Histogram]):
    __slots__ = ()

    def observe(self, labels: Labels, value: float) -> None:
        self.child(labels).observe(value)


class Instruments:
    """Makes the sink's counters and histograms in ``registry``: dict-kept ones rendered by
    one :class:`DictCollector`, or with ``files`` (multi-process mode) prometheus-client's.
    Call :meth:`register` once all are made."""

    def __init__(self, registry: CollectorRegistry, *, files: bool):
        self._registry = registry
        self._files = files
        self._dicts: list[DictCounter | DictHistogram] = []

    def counter(self, name: str, documentation: str, labelnames: Sequence[str]) -> Counting:
        if self._files:
            return ClientCounter(Counter(name, documentation, labelnames, registry=self._registry))
        counter = DictCounter(name, documentation, labelnames)
        self._dicts.append(counter)
        return counter

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        unit: str = "",
    ) -> Observing:
        if self._files:
            metric = Histogram(
                name, documentation, labelnames, unit=unit, buckets=buckets, registry=self._registry
            )
            return ClientHistogram(metric)
        histogram = DictHistogram(name, documentation, labelnames, buckets=buckets, unit=unit)
        self._dicts.append(histogram)
        return histogram

    def register(self) -> None:
        if self._dicts:
            self._registry.register(DictCollector(self._dicts))
