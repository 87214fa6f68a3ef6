"""Counting what is left behind after a fault, from outside the gateway process.

The gateway's side comes from ``/metrics`` (obs/runtime.py and the reservations gauge):
asyncio tasks on its event loop, requests in flight, upstream connections in use and idle,
open reservations. The stand-ins' side from the stand-ins themselves: chat handlers still
running and connections open. Every scrape uses a connection of its own, closed after it,
so that no keep-alive connection of the test's own adds a task to the count.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import ADMIN_KEY, RunningGateway
from tests.upstreams.faulty import FaultyUpstream


@dataclass(frozen=True)
class Counts:
    tasks: int
    in_flight: int
    in_use: int  # upstream connections carrying a request
    idle: int  # upstream connections kept alive in the gateway's pools
    reservations: int
    upstream_active: int  # chat handlers still running on the stand-ins
    upstream_open: int  # connections open on the stand-ins' side


def scrape(gateway: RunningGateway) -> dict[str, float]:
    """The gateway's runtime gauges, ``name`` or ``name{state}``."""
    response = httpx.get(
        gateway.base_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert response.status_code == 200, response.text
    wanted = {
        "tokenyard_event_loop_tasks",
        "tokenyard_requests_in_flight",
        "tokenyard_upstream_connections",
        "tokenyard_reservations_active",
    }
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name in wanted:
                state = sample.labels.get("state")
                values[f"{sample.name}{{{state}}}" if state else sample.name] = sample.value
    return values


@dataclass
class Probe:
    gateway: RunningGateway
    upstreams: Sequence[FaultyUpstream]
    idle: Counts

    @classmethod
    def measured(cls, gateway: RunningGateway, upstreams: Sequence[FaultyUpstream]) -> Probe:
        probe = cls(gateway, upstreams, Counts(0, 0, 0, 0, 0, 0, 0))
        probe.idle = probe.counts()
        assert probe.idle.tasks > 0 and probe.idle.in_flight >= 1  # the scrape itself
        return probe

    def counts(self) -> Counts:
        gauges = scrape(self.gateway)
        return Counts(
            tasks=int(gauges["tokenyard_event_loop_tasks"]),
            in_flight=int(gauges["tokenyard_requests_in_flight"]),
            in_use=int(gauges["tokenyard_upstream_connections{in_use}"]),
            idle=int(gauges["tokenyard_upstream_connections{idle}"]),
            reservations=int(gauges["tokenyard_reservations_active"]),
            upstream_active=sum(u.in_progress for u in self.upstreams),
            upstream_open=sum(u.open_connections() for u in self.upstreams),
        )

    def left_behind(self, now: Counts) -> list[str]:
        """What ``now`` holds beyond the idle baseline. Fewer tasks than at baseline is fine
        (a keep-alive connection timed out); a stand-in connection the gateway's pool does
        not hold for reuse is an orphan."""
        base = self.idle
        problems = []
        if now.tasks > base.tasks:
            problems.append(f"{now.tasks - base.tasks} more asyncio tasks than when idle")
        if now.in_flight > base.in_flight:
            problems.append(f"{now.in_flight - base.in_flight} requests still in flight")
        if now.in_use:
            problems.append(f"{now.in_use} upstream connections still in use")
        if now.reservations:
            problems.append(f"{now.reservations} reservations still open")
        if now.upstream_active:
            problems.append(f"{now.upstream_active} upstream requests still in progress")
        if now.upstream_open > now.idle:
            problems.append(
                f"{now.upstream_open} connections open at the stand-ins, "
                f"only {now.idle} pooled by the gateway"
            )
        return problems

    def nothing_left_behind(self, timeout_s: float = 10.0) -> Counts:
        """Poll until every count is back at the idle baseline; fail saying what is not."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = self.counts()
            problems = self.left_behind(now)
            if not problems:
                return now
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"left behind: {'; '.join(problems)} ({now}, idle {self.idle})"
                )
            time.sleep(0.05)
