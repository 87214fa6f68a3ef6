"""What a scrape returns: the counted metrics of every process, and state read right now.

Counters and histograms (obs/metrics.py) live in one registry per application in a single
process. With ``--workers N`` they live in files, one per process, under
``PROMETHEUS_MULTIPROC_DIR``; a scrape answered by any worker merges all of them with
prometheus-client's ``MultiProcessCollector``, so one scrape sees every worker.

Circuit and key-pool state is not counted but read at scrape time from the answering
process (:class:`StateCollector`). With ``redis:`` configured every worker shares circuits
and key cool-downs, so any worker's view is the fleet's; without Redis each worker has its
own and a scrape shows the view of whichever worker answered it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, values
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CIRCUIT_STATES = ("closed", "open", "half_open")
KEY_STATES = ("ready", "cooling", "full", "refused")

Circuits = Callable[[], Mapping[str, str]]
"""deployment (``provider/upstream-model``) → its circuit state, one of CIRCUIT_STATES."""
KeyStates = Callable[[], Mapping[str, Sequence[str]]]
"""provider → the state of each of its keys, one of KEY_STATES."""


class StateCollector(Collector):
    """Circuit state per deployment and key states per provider, read when scraped."""

    def __init__(self, circuits: Circuits, keys: KeyStates):
        self._circuits = circuits
        self._keys = keys

    def collect(self) -> Iterator[Metric]:
        circuit = GaugeMetricFamily(
            "tokenyard_circuit_state",
            "1 for the state each deployment's circuit is in (this process's view).",
            labels=["deployment", "state"],
        )
        for deployment, state in sorted(self._circuits().items()):
            for name in CIRCUIT_STATES:
                circuit.add_metric([deployment, name], 1.0 if state == name else 0.0)
        yield circuit
        keys = GaugeMetricFamily(
            "tokenyard_upstream_keys",
            "Upstream keys per provider by state: ready, cooling (after a 429), full (own "
            "RPM/TPM window), refused (after a 401/403) (this process's view).",
            labels=["provider", "state"],
        )
        for provider, states in sorted(self._keys().items()):
            for name in KEY_STATES:
                keys.add_metric([provider, name], float(sum(s == name for s in states)))
        yield keys


class Exposition:
    """Renders a scrape: ``registry`` (single process) or the per-process files."""

    def __init__(
        self,
        registry: CollectorRegistry,
        state: StateCollector,
        *,
        multiprocess_dir: str | None,
        before: Callable[[], None] | None = None,
        runtime: Collector | None = None,
    ):
        """``runtime`` (obs/runtime.py), like ``state``, is read from the answering process."""
        self._before = before
        if multiprocess_dir is None:
            self._registry = registry
        else:
            self._registry = CollectorRegistry()
            MultiProcessCollector(self._registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        self._registry.register(state)
        if runtime is not None:
            self._registry.register(runtime)

    content_type = CONTENT_TYPE_LATEST

    def render(self) -> bytes:
        if self._before is not None:
            self._before()
        return generate_latest(self._registry)


def multiprocess_dir(environ: Mapping[str, str]) -> str | None:
    """The directory prometheus-client keeps per-process values in, when it is on."""
    return environ.get(MULTIPROC_ENV) or None


def use_multiprocess(directory: str) -> None:
    """Turn multi-process mode on for every metric created from now on, in this process and
    the processes it forks. prometheus-client picks its value class when first imported,
    which the composition root has already done by now: pick it again."""
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def forget_process(pid: int, directory: str) -> None:
    """A worker exited: drop its live gauges (its counters stay, as Prometheus expects)."""
    mark_process_dead(pid, path=directory)  # type: ignore[no-untyped-call]
