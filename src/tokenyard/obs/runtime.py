"""What this process holds right now, read when scraped: the gauges that show a leak.

A request that ends — however it ends: answered, failed, cancelled by a client that left —
must let go of everything it took: its asyncio tasks, its upstream connection, its slot
among the requests in flight (its hold on the wallet is ``tokenyard_reservations_active``,
obs/metrics.py). These gauges make that countable from outside, so that a test (or an
operator's alert) can compare them with the idle baseline after a fault.

They cost nothing per request: nothing is counted on the request path; the values are read
by :class:`RuntimeCollector` only when ``/metrics`` is scraped (on the event loop that
answers the scrape, which is the one serving requests). Like the circuit and key states,
they are this process's view, also with ``--workers N``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONNECTION_STATES = ("in_use", "idle")


class RuntimeCollector(Collector):
    """``in_flight`` counts the requests being served (a scrape on the main port counts
    itself); ``connections`` the upstream connections by state (one of
    CONNECTION_STATES): carrying a request, or idle in a keep-alive pool."""

    def __init__(
        self, *, in_flight: Callable[[], int], connections: Callable[[], Mapping[str, int]]
    ):
        self._in_flight = in_flight
        self._connections = connections

    def collect(self) -> Iterator[Metric]:
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # scraped off the event loop: there is nothing to count
            tasks = None
        if tasks is not None:
            yield GaugeMetricFamily(
                "tokenyard_event_loop_tasks",
                "asyncio tasks alive on this process's event loop (the scrape's own included).",
                value=tasks,
            )
        yield GaugeMetricFamily(
            "tokenyard_requests_in_flight",
            "Requests this process is serving, streams to their last byte (this process).",
            value=self._in_flight(),
        )
        connections = GaugeMetricFamily(
            "tokenyard_upstream_connections",
            "Upstream HTTP connections of this process by state: in_use (carrying a request) "
            "or idle (kept alive for the next one).",
            labels=["state"],
        )
        counts = self._connections()
        for state in CONNECTION_STATES:
            connections.add_metric([state], float(counts.get(state, 0)))
        yield connections
