"""Live health of each deployment, for the scheduler: smoothed speed and a circuit breaker.

One :class:`HealthBook` per gateway keeps, per deployment key (``"provider/upstream-model"``):

* EWMAs of request latency, time to first token and output tokens per second;
* the successes and retryable failures of the last ``window_s`` seconds;
* a circuit breaker. CLOSED opens after ``consecutive_failures`` retryable failures in a row,
  or when at least ``min_requests`` results in the window fail at a rate ≥ ``failure_rate``.
  OPEN lasts a cool-off (``open_s``, doubled after each failed probe, at most ``max_open_s``),
  then turns HALF_OPEN: :meth:`HealthBook.acquire` lets exactly one probe through at a time.
  The probe's success closes the circuit and resets it; its failure opens it again.

Only failures another upstream could fix count (``retryable=True``). A non-retryable failure —
the client's own bad request — is neither success nor failure; like :meth:`HealthBook.release`
it only frees a probe slot. While HALF_OPEN, the first verdict reported while a probe is out is
taken as the probe's; results reported when no probe is out (stragglers started before the
circuit opened) feed the statistics but move nothing. The caller must end every acquired
attempt with ``success``, ``failure`` or ``release`` (in a ``finally``), or the probe slot
stays taken.

Across processes (with Redis) the *state* is shared, not the evidence: each process opens a
circuit on what it saw itself, and announces every open and close through ``on_change``;
:meth:`HealthBook.apply` takes in what another process announced. The process that opened a
circuit probes it first: the others wait half a cool-off longer before they probe, in case it
died (docs/decisions/0009).

Pure: the clock is injected, nothing here does I/O or keeps global state.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from tokenyard.errors import ConfigError
from tokenyard.immutable import immutable


class Circuit(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@immutable
class HealthPolicy:
    alpha: float = 0.2
    window_s: float = 60.0
    consecutive_failures: int = 5
    failure_rate: float = 0.5
    min_requests: int = 10
    open_s: float = 30.0
    max_open_s: float = 300.0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.alpha <= 1.0:
            problems.append(f"health.alpha: must be in (0, 1], got {self.alpha}")
        if not self.window_s > 0.0:
            problems.append(f"health.window_s: must be positive, got {self.window_s}")
        if self.consecutive_failures < 1:
            problems.append(
                f"health.consecutive_failures: must be at least 1, got {self.consecutive_failures}"
            )
        if not 0.0 < self.failure_rate <= 1.0:
            problems.append(f"health.failure_rate: must be in (0, 1], got {self.failure_rate}")
        if self.min_requests < 1:
            problems.append(f"health.min_requests: must be at least 1, got {self.min_requests}")
        if not self.open_s > 0.0:
            problems.append(f"health.open_s: must be positive, got {self.open_s}")
        if not self.max_open_s >= self.open_s:
            problems.append(
                f"health.max_open_s: must be at least open_s ({self.open_s}), got {self.max_open_s}"
            )
        if problems:
            raise ConfigError(problems)


@immutable
class Snapshot:
    circuit: Circuit
    latency_ms: float | None
    ttft_ms: float | None
    tokens_per_s: float | None
    requests: int
    failures: int
    error_rate: float
    retry_at: float | None  # when OPEN: the clock reading at which the cool-off ends


def _ewma(previous: float | None, sample: float, alpha: float) -> float:
    if previous is None:
        return sample
    return alpha * sample + (1.0 - alpha) * previous


@dataclass(slots=True)
class _State:
    """The mutable record of one deployment; only :class:`HealthBook` touches it."""

    name: str
    open_s: float
    circuit: Circuit = Circuit.CLOSED
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    results: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, succeeded)
    failures: int = 0  # failed entries in ``results``
    consecutive: int = 0
    retry_at: float | None = None
    probing: bool = False


_DEFAULT_POLICY = HealthPolicy()
REMOTE_GRACE = 1.5
"""A circuit opened elsewhere is probed here only after this many of its cool-offs."""

CircuitListener = Callable[[str, Circuit, float], None]
"""Told (deployment, OPEN or CLOSED, cool-off seconds) when this process moves a circuit."""


class HealthBook:
    def __init__(
        self,
        policy: HealthPolicy = _DEFAULT_POLICY,
        clock: Callable[[], float] = time.monotonic,
        on_change: CircuitListener | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._states: dict[str, _State] = {}
        self.on_change = on_change

    def reconfigure(self, policy: HealthPolicy) -> None:
        """New thresholds from a config reload; what each deployment went through stays."""
        self._policy = policy

    # -- asking ---------------------------------------------------------------------------

    def available(self, deployment: str) -> bool:
        """Whether an attempt could go to ``deployment`` now; reserves nothing."""
        state = self._states.get(deployment)
        if state is None:
            return True
        self._advance(state, self._clock())
        if state.circuit is Circuit.CLOSED:
            return True
        if state.circuit is Circuit.HALF_OPEN:
            return not state.probing
        return False

    def acquire(self, deployment: str) -> bool:
        """Like :meth:`available`, but takes the single HALF_OPEN probe slot when granted."""
        if not self.available(deployment):
            return False
        state = self._states.get(deployment)
        if state is not None and state.circuit is Circuit.HALF_OPEN:
            state.probing = True
        return True

    def snapshot(self, deployment: str) -> Snapshot:
        state = self._states.get(deployment)
        if state is None:
            return Snapshot(Circuit.CLOSED, None, None, None, 0, 0, 0.0, None)
        now = self._clock()
        self._advance(state, now)
        self._forget(state, now)
        requests = len(state.results)
        return Snapshot(
            circuit=state.circuit,
            latency_ms=state.latency_ms,
            ttft_ms=state.ttft_ms,
            tokens_per_s=state.tokens_per_s,
            requests=requests,
            failures=state.failures,
            error_rate=state.failures / requests if requests else 0.0,
            retry_at=state.retry_at if state.circuit is Circuit.OPEN else None,
        )

    def snapshots(self) -> dict[str, Snapshot]:
        return {deployment: self.snapshot(deployment) for deployment in self._states}

    # -- reporting ------------------------------------------------------------------------

    def success(
        self,
        deployment: str,
        *,
        latency_ms: float,
        ttft_ms: float | None = None,
        output_tokens: int = 0,
    ) -> None:
        state = self._state(deployment)
        now = self._clock()
        self._advance(state, now)
        alpha = self._policy.alpha
        state.latency_ms = _ewma(state.latency_ms, latency_ms, alpha)
        if ttft_ms is not None:
            state.ttft_ms = _ewma(state.ttft_ms, ttft_ms, alpha)
            generating_s = (latency_ms - ttft_ms) / 1000.0
            if generating_s > 0.0 and output_tokens > 0:
                state.tokens_per_s = _ewma(state.tokens_per_s, output_tokens / generating_s, alpha)
        if state.circuit is Circuit.HALF_OPEN and state.probing:
            self._close(state)  # and start a fresh window with this success in it
        self._record(state, now, succeeded=True)
        state.consecutive = 0

    def generated(self, deployment: str, output_tokens: int, seconds: float) -> None:
        """A finished answer's generation speed: ``output_tokens`` in ``seconds`` after the
        answer started (a stream's first chunk). Known only when the answer ends, so it is
        reported apart from :meth:`success`."""
        if output_tokens > 0 and seconds > 0.0:
            state = self._state(deployment)
            state.tokens_per_s = _ewma(
                state.tokens_per_s, output_tokens / seconds, self._policy.alpha
            )

    def failure(self, deployment: str, *, retryable: bool) -> None:
        if not retryable:
            self.release(deployment)
            return
        state = self._state(deployment)
        now = self._clock()
        self._advance(state, now)
        self._record(state, now, succeeded=False)
        if state.circuit is Circuit.HALF_OPEN and state.probing:
            self._open(state, now, open_s=min(state.open_s * 2.0, self._policy.max_open_s))
            return
        if state.circuit is not Circuit.CLOSED:
            return  # a straggler that started before the circuit opened
        state.consecutive += 1
        if state.consecutive >= self._policy.consecutive_failures or self._failing(state):
            self._open(state, now, open_s=state.open_s)

    def release(self, deployment: str) -> None:
        """An attempt ended without a verdict (cancelled, the client's own error)."""
        state = self._states.get(deployment)
        if state is not None:
            state.probing = False

    def apply(self, deployment: str, circuit: Circuit, open_s: float = 0.0) -> None:
        """Take in a circuit move another process announced (never announced again)."""
        state = self._state(deployment)
        now = self._clock()
        if circuit is Circuit.OPEN:
            retry_at = now + open_s * REMOTE_GRACE
            if state.circuit is not Circuit.OPEN or (state.retry_at or 0.0) < retry_at:
                state.circuit, state.retry_at = Circuit.OPEN, retry_at
                state.open_s = max(state.open_s, open_s)
                state.consecutive, state.probing = 0, False
        elif state.circuit is not Circuit.CLOSED:
            self._close(state, announce=False)

    # -- internals ------------------------------------------------------------------------

    def _state(self, deployment: str) -> _State:
        state = self._states.get(deployment)
        if state is None:
            state = self._states[deployment] = _State(deployment, open_s=self._policy.open_s)
        return state

    def _advance(self, state: _State, now: float) -> None:
        """OPEN turns HALF_OPEN once its cool-off has elapsed."""
        if state.circuit is Circuit.OPEN and state.retry_at is not None and now >= state.retry_at:
            state.circuit = Circuit.HALF_OPEN
            state.retry_at = None
            state.probing = False

    def _forget(self, state: _State, now: float) -> None:
        horizon = now - self._policy.window_s
        while state.results and state.results[0][0] <= horizon:
            _, succeeded = state.results.popleft()
            if not succeeded:
                state.failures -= 1

    def _record(self, state: _State, now: float, *, succeeded: bool) -> None:
        self._forget(state, now)
        state.results.append((now, succeeded))
        if not succeeded:
            state.failures += 1

    def _failing(self, state: _State) -> bool:
        requests = len(state.results)
        return (
            requests >= self._policy.min_requests
            and state.failures >= self._policy.failure_rate * requests
        )

    def _open(self, state: _State, now: float, *, open_s: float) -> None:
        state.circuit = Circuit.OPEN
        state.open_s = open_s
        state.retry_at = now + open_s
        state.consecutive = 0
        state.probing = False
        self._announce(state, Circuit.OPEN, open_s)

    def _close(self, state: _State, *, announce: bool = True) -> None:
        state.circuit = Circuit.CLOSED
        state.open_s = self._policy.open_s
        state.retry_at = None
        state.consecutive = 0
        state.probing = False
        state.results.clear()
        state.failures = 0
        if announce:
            self._announce(state, Circuit.CLOSED, 0.0)

    def _announce(self, state: _State, circuit: Circuit, open_s: float) -> None:
        if self.on_change is not None:
            self.on_change(state.name, circuit, open_s)
