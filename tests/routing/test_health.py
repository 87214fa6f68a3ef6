import pytest

from tokenyard.errors import ConfigError
from tokenyard.routing.health import Circuit, HealthBook, HealthPolicy, Snapshot

D = "openai/gpt-4o"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def book(clock: FakeClock, **policy: float) -> HealthBook:
    return HealthBook(HealthPolicy(**policy), clock)  # type: ignore[arg-type]


def fail(health: HealthBook, times: int, deployment: str = D) -> None:
    for _ in range(times):
        health.failure(deployment, retryable=True)


def succeed(health: HealthBook, times: int, deployment: str = D) -> None:
    for _ in range(times):
        health.success(deployment, latency_ms=100.0)


def open_circuit(health: HealthBook, clock: FakeClock) -> None:
    fail(health, 5)
    assert health.snapshot(D).circuit is Circuit.OPEN


# -- statistics -------------------------------------------------------------------------


def test_an_unknown_deployment_is_closed_and_empty() -> None:
    health = HealthBook(clock=FakeClock())
    assert health.available("x/y")
    assert health.acquire("x/y")
    health.release("x/y")
    assert health.snapshot("x/y") == Snapshot(Circuit.CLOSED, None, None, None, 0, 0, 0.0, None)
    assert health.snapshots() == {}


def test_the_default_policy_is_the_documented_one() -> None:
    assert HealthPolicy() == HealthPolicy(0.2, 60.0, 5, 0.5, 10, 30.0, 300.0)


def test_latency_ewma_starts_at_the_first_sample_then_smooths() -> None:
    health = HealthBook(clock=FakeClock())
    health.success(D, latency_ms=100.0)
    assert health.snapshot(D).latency_ms == 100.0
    health.success(D, latency_ms=200.0)
    assert health.snapshot(D).latency_ms == pytest.approx(0.2 * 200 + 0.8 * 100)  # 120
    health.success(D, latency_ms=50.0)
    assert health.snapshot(D).latency_ms == pytest.approx(0.2 * 50 + 0.8 * 120)  # 106


def test_alpha_is_configurable() -> None:
    health = book(FakeClock(), alpha=0.5)
    health.success(D, latency_ms=100.0)
    health.success(D, latency_ms=300.0)
    assert health.snapshot(D).latency_ms == 200.0


def test_alpha_one_keeps_only_the_last_sample() -> None:
    health = book(FakeClock(), alpha=1.0)
    health.success(D, latency_ms=100.0, ttft_ms=10.0, output_tokens=9)
    health.success(D, latency_ms=300.0, ttft_ms=100.0, output_tokens=50)
    snap = health.snapshot(D)
    assert (snap.latency_ms, snap.ttft_ms, snap.tokens_per_s) == (300.0, 100.0, 250.0)


def test_ttft_and_tokens_per_second_from_streams() -> None:
    health = HealthBook(clock=FakeClock())
    # 100 tokens in (1100 - 100) ms = 100 tok/s
    health.success(D, latency_ms=1100.0, ttft_ms=100.0, output_tokens=100)
    snap = health.snapshot(D)
    assert (snap.latency_ms, snap.ttft_ms, snap.tokens_per_s) == (1100.0, 100.0, 100.0)
    # 100 tokens in 500 ms = 200 tok/s
    health.success(D, latency_ms=700.0, ttft_ms=200.0, output_tokens=100)
    snap = health.snapshot(D)
    assert snap.latency_ms == pytest.approx(0.2 * 700 + 0.8 * 1100)
    assert snap.ttft_ms == pytest.approx(0.2 * 200 + 0.8 * 100)
    assert snap.tokens_per_s == pytest.approx(0.2 * 200 + 0.8 * 100)


def test_without_ttft_there_is_no_ttft_or_speed() -> None:
    health = HealthBook(clock=FakeClock())
    health.success(D, latency_ms=500.0, output_tokens=100)
    snap = health.snapshot(D)
    assert snap.ttft_ms is None
    assert snap.tokens_per_s is None


@pytest.mark.parametrize(
    ("latency_ms", "ttft_ms", "output_tokens"),
    [(500.0, 500.0, 10), (400.0, 500.0, 10), (900.0, 100.0, 0)],
)
def test_speed_needs_positive_generation_time_and_tokens(
    latency_ms: float, ttft_ms: float, output_tokens: int
) -> None:
    health = HealthBook(clock=FakeClock())
    health.success(D, latency_ms=latency_ms, ttft_ms=ttft_ms, output_tokens=output_tokens)
    snap = health.snapshot(D)
    assert snap.ttft_ms == ttft_ms
    assert snap.tokens_per_s is None


def test_a_speedless_sample_does_not_disturb_the_speed_ewma() -> None:
    health = HealthBook(clock=FakeClock())
    health.success(D, latency_ms=1100.0, ttft_ms=100.0, output_tokens=100)
    health.success(D, latency_ms=300.0)
    health.success(D, latency_ms=300.0, ttft_ms=300.0, output_tokens=5)
    assert health.snapshot(D).tokens_per_s == 100.0


def test_counts_and_error_rate() -> None:
    health = HealthBook(clock=FakeClock())
    succeed(health, 3)
    fail(health, 1)
    snap = health.snapshot(D)
    assert (snap.requests, snap.failures, snap.error_rate) == (4, 1, 0.25)
    assert snap.circuit is Circuit.CLOSED
    assert snap.retry_at is None


def test_failures_carry_no_latency() -> None:
    health = HealthBook(clock=FakeClock())
    fail(health, 2)
    snap = health.snapshot(D)
    assert snap.latency_ms is None
    assert snap.requests == 2


def test_deployments_are_tracked_apart() -> None:
    health = HealthBook(clock=FakeClock())
    fail(health, 5, "a/x")
    succeed(health, 1, "b/y")
    snaps = health.snapshots()
    assert set(snaps) == {"a/x", "b/y"}
    assert snaps["a/x"].circuit is Circuit.OPEN
    assert snaps["b/y"].circuit is Circuit.CLOSED
    assert not health.available("a/x")
    assert health.available("b/y")


def test_two_books_share_nothing() -> None:
    clock = FakeClock()
    first, second = HealthBook(clock=clock), HealthBook(clock=clock)
    fail(first, 5)
    assert not first.available(D)
    assert second.available(D)


# -- the sliding window ---------------------------------------------------------------


def test_window_expiry_forgets_old_results() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    fail(health, 2)
    clock.advance(30)
    succeed(health, 1)
    assert health.snapshot(D).requests == 3
    clock.advance(30)  # the two failures are now exactly 60 s old
    snap = health.snapshot(D)
    assert (snap.requests, snap.failures, snap.error_rate) == (1, 0, 0.0)
    clock.advance(30)
    snap = health.snapshot(D)
    assert (snap.requests, snap.failures, snap.error_rate) == (0, 0, 0.0)
    assert snap.latency_ms == 100.0  # the EWMA is not windowed


def test_expired_failures_do_not_count_towards_the_rate() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    for _ in range(4):
        fail(health, 1)
        succeed(health, 1)
    clock.advance(61)
    for _ in range(4):
        fail(health, 1)
        succeed(health, 2)
    fail(health, 1)
    # the window holds 5 failures of 13 (< 0.5); the older 4 of 8 are forgotten
    assert health.snapshot(D).circuit is Circuit.CLOSED
    assert health.snapshot(D).requests == 13


def test_window_length_is_configurable() -> None:
    clock = FakeClock()
    health = book(clock, window_s=5.0)
    fail(health, 1)
    clock.advance(4.9)
    assert health.snapshot(D).failures == 1
    clock.advance(0.1)
    assert health.snapshot(D).failures == 0


# -- opening --------------------------------------------------------------------------


def test_opens_after_consecutive_retryable_failures() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    fail(health, 4)
    assert health.available(D)
    assert health.snapshot(D).circuit is Circuit.CLOSED
    fail(health, 1)
    snap = health.snapshot(D)
    assert snap.circuit is Circuit.OPEN
    assert snap.retry_at == 1030.0
    assert not health.available(D)
    assert not health.acquire(D)


def test_a_success_resets_the_consecutive_count() -> None:
    health = HealthBook(clock=FakeClock())
    fail(health, 4)
    succeed(health, 1)
    fail(health, 4)
    assert health.snapshot(D).circuit is Circuit.CLOSED
    fail(health, 1)
    assert health.snapshot(D).circuit is Circuit.OPEN


def test_consecutive_threshold_is_configurable() -> None:
    health = book(FakeClock(), consecutive_failures=2)
    fail(health, 1)
    assert health.available(D)
    fail(health, 1)
    assert not health.available(D)


def test_opens_on_failure_rate_over_enough_requests() -> None:
    health = HealthBook(clock=FakeClock())
    for _ in range(4):
        succeed(health, 1)
        fail(health, 1)
    succeed(health, 1)
    assert health.snapshot(D).circuit is Circuit.CLOSED  # 4 of 9: too few requests
    fail(health, 1)  # 5 of 10 = 0.5 ≥ 0.5
    snap = health.snapshot(D)
    assert snap.circuit is Circuit.OPEN
    assert (snap.requests, snap.failures, snap.error_rate) == (10, 5, 0.5)


def test_a_rate_below_the_threshold_stays_closed() -> None:
    health = HealthBook(clock=FakeClock())
    for _ in range(10):
        succeed(health, 2)
        fail(health, 1)
    snap = health.snapshot(D)
    assert snap.circuit is Circuit.CLOSED
    assert snap.error_rate == pytest.approx(1 / 3)


def test_does_not_open_on_rate_below_min_requests() -> None:
    health = HealthBook(clock=FakeClock())
    for _ in range(4):
        fail(health, 1)
        succeed(health, 1)
    fail(health, 1)  # 5 of 9 fail, but 9 < 10 requests and never 5 in a row
    snap = health.snapshot(D)
    assert snap.error_rate > 0.5
    assert snap.circuit is Circuit.CLOSED


def test_rate_threshold_and_minimum_are_configurable() -> None:
    health = book(FakeClock(), failure_rate=0.25, min_requests=4)
    succeed(health, 3)
    fail(health, 1)  # 1 of 4 = 0.25
    assert health.snapshot(D).circuit is Circuit.OPEN


def test_non_retryable_failures_are_ignored() -> None:
    health = HealthBook(clock=FakeClock())
    for _ in range(20):
        health.failure(D, retryable=False)
    snap = health.snapshot(D)
    assert snap.circuit is Circuit.CLOSED
    assert (snap.requests, snap.failures) == (0, 0)


def test_non_retryable_failures_do_not_break_a_run_of_failures() -> None:
    health = HealthBook(clock=FakeClock())
    fail(health, 4)
    health.failure(D, retryable=False)
    assert health.snapshot(D).circuit is Circuit.CLOSED
    fail(health, 1)
    assert health.snapshot(D).circuit is Circuit.OPEN


# -- cool-off and the half-open probe -------------------------------------------------


def test_open_until_the_cool_off_elapses_then_half_open() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(29.9)
    assert not health.available(D)
    assert health.snapshot(D).retry_at == 1030.0
    clock.advance(0.1)
    snap = health.snapshot(D)
    assert snap.circuit is Circuit.HALF_OPEN
    assert snap.retry_at is None
    assert health.available(D)


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(30)
    assert health.available(D)
    assert health.available(D)  # available reserves nothing
    assert health.acquire(D)
    assert not health.acquire(D)  # the probe is out
    assert not health.available(D)
    assert health.snapshot(D).circuit is Circuit.HALF_OPEN


def test_acquire_turns_an_elapsed_open_circuit_half_open() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(45)
    assert health.acquire(D)  # no available() or snapshot() in between
    assert not health.acquire(D)


def test_a_probe_success_closes_and_resets() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(30)
    assert health.acquire(D)
    health.success(D, latency_ms=80.0)
    snap = health.snapshot(D)
    assert snap.circuit is Circuit.CLOSED
    assert snap.retry_at is None
    assert (snap.requests, snap.failures) == (1, 0)  # a fresh window
    assert health.acquire(D)
    assert health.acquire(D)  # CLOSED: no single-slot limit
    fail(health, 4)
    assert health.available(D)  # the run of failures starts again from zero
    fail(health, 1)
    assert health.snapshot(D).retry_at == clock.now + 30.0  # cool-off back to the start


def test_a_probe_failure_reopens_with_a_doubled_cool_off() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(30)
    assert health.acquire(D)
    fail(health, 1)
    snap = health.snapshot(D)
    assert snap.circuit is Circuit.OPEN
    assert snap.retry_at == clock.now + 60.0
    clock.advance(59)
    assert not health.available(D)
    clock.advance(1)
    assert health.acquire(D)


def test_the_cool_off_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    cool_offs = []
    for _ in range(6):
        retry_at = health.snapshot(D).retry_at
        assert retry_at is not None
        cool_offs.append(retry_at - clock.now)
        clock.now = retry_at
        assert health.acquire(D)
        fail(health, 1)
    assert cool_offs == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]


def test_cool_off_and_cap_are_configurable() -> None:
    clock = FakeClock()
    health = book(clock, open_s=1.0, max_open_s=3.0)
    fail(health, 5)
    assert health.snapshot(D).retry_at == clock.now + 1.0
    for expected in (2.0, 3.0, 3.0):
        clock.advance(10)
        assert health.acquire(D)
        fail(health, 1)
        assert health.snapshot(D).retry_at == clock.now + expected


def test_release_frees_the_probe_slot() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(30)
    assert health.acquire(D)
    health.release(D)
    snap = health.snapshot(D)
    assert snap.circuit is Circuit.HALF_OPEN  # no verdict: neither closed nor reopened
    assert health.available(D)
    assert health.acquire(D)
    assert not health.acquire(D)


def test_a_non_retryable_probe_failure_only_frees_the_slot() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(30)
    assert health.acquire(D)
    health.failure(D, retryable=False)
    assert health.snapshot(D).circuit is Circuit.HALF_OPEN
    assert health.acquire(D)


def test_release_when_closed_changes_nothing() -> None:
    health = HealthBook(clock=FakeClock())
    fail(health, 4)
    health.release(D)
    fail(health, 1)
    assert health.snapshot(D).circuit is Circuit.OPEN


def test_stragglers_while_open_move_nothing() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(10)
    health.success(D, latency_ms=100.0)  # an attempt started before the circuit opened
    fail(health, 3)
    snap = health.snapshot(D)
    assert snap.circuit is Circuit.OPEN
    assert snap.retry_at == 1030.0
    assert (snap.requests, snap.failures) == (9, 8)  # still counted in the statistics


def test_stragglers_while_half_open_without_a_probe_move_nothing() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(30)
    fail(health, 1)
    health.success(D, latency_ms=100.0)
    assert health.snapshot(D).circuit is Circuit.HALF_OPEN
    assert health.acquire(D)


def test_a_probe_failure_counts_once_the_straggler_window_is_gone() -> None:
    clock = FakeClock()
    health = HealthBook(clock=clock)
    open_circuit(health, clock)
    clock.advance(120)
    assert health.snapshot(D).requests == 0
    assert health.acquire(D)
    fail(health, 1)
    snap = health.snapshot(D)
    assert (snap.circuit, snap.requests, snap.failures) == (Circuit.OPEN, 1, 1)


# -- policy validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha", 0.0),
        ("alpha", 1.5),
        ("window_s", 0.0),
        ("consecutive_failures", 0),
        ("failure_rate", 0.0),
        ("failure_rate", 1.1),
        ("min_requests", 0),
        ("open_s", -1.0),
        ("max_open_s", 10.0),
    ],
)
def test_a_bad_policy_is_a_config_error(field: str, value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        HealthPolicy(**{field: value})  # type: ignore[arg-type]
    assert caught.value.problems[0].startswith(f"health.{field}:")


def test_the_circuit_reads_as_its_value() -> None:
    assert isinstance(Circuit.HALF_OPEN, str)
    assert str(Circuit.HALF_OPEN) == "half_open"
    assert Circuit("open") is Circuit.OPEN


# -- sharing with other processes --------------------------------------------------------


def test_opens_and_closes_are_announced_but_applied_moves_are_not() -> None:
    clock = FakeClock()
    moves: list[tuple[str, Circuit, float]] = []
    health = HealthBook(HealthPolicy(open_s=10.0), clock, on_change=lambda *m: moves.append(m))
    open_circuit(health, clock)
    assert moves == [(D, Circuit.OPEN, 10.0)]
    clock.advance(10.0)
    assert health.acquire(D)  # the probe
    succeed(health, 1)
    assert moves[-1] == (D, Circuit.CLOSED, 0.0)
    health.apply("other/model", Circuit.OPEN, 5.0)
    health.apply("other/model", Circuit.CLOSED)
    assert len(moves) == 2


def test_a_circuit_opened_elsewhere_is_skipped_and_probed_here_only_after_a_grace() -> None:
    clock = FakeClock()
    health = book(clock)
    health.apply(D, Circuit.OPEN, 10.0)
    assert not health.available(D)
    clock.advance(10.0)
    assert not health.available(D)  # the process that opened it probes first
    clock.advance(5.0)
    assert health.acquire(D)  # it did not close it in time (died?): probe from here
    assert not health.available(D)


def test_a_close_announced_elsewhere_closes_here_at_once() -> None:
    clock = FakeClock()
    health = book(clock)
    open_circuit(health, clock)
    health.apply(D, Circuit.CLOSED)
    assert health.available(D)
    assert health.snapshot(D).circuit is Circuit.CLOSED


def test_an_earlier_remote_open_never_shortens_a_local_one() -> None:
    clock = FakeClock()
    health = book(clock, open_s=100.0, max_open_s=100.0)
    open_circuit(health, clock)
    health.apply(D, Circuit.OPEN, 1.0)
    clock.advance(50.0)
    assert not health.available(D)


def test_generation_speed_is_a_smoothed_tokens_per_second() -> None:
    clock = FakeClock()
    health = book(clock, alpha=0.5)
    health.generated(D, output_tokens=100, seconds=2.0)
    assert health.snapshot(D).tokens_per_s == 50.0
    health.generated(D, output_tokens=300, seconds=2.0)
    assert health.snapshot(D).tokens_per_s == 100.0  # (150 + 50) / 2
    health.generated(D, output_tokens=0, seconds=2.0)  # nothing generated: no sample
    health.generated(D, output_tokens=10, seconds=0.0)
    assert health.snapshot(D).tokens_per_s == 100.0
