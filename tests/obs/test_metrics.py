"""The metrics sink: which records become which samples, with which labels, at what cost."""

from __future__ import annotations

import multiprocessing
import re
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from tokenyard.obs.exposition import Exposition, StateCollector, use_multiprocess
from tokenyard.obs.metrics import MetricsSink, Vocabulary
from tokenyard.obs.record import AttemptRecord, RequestRecord

WORDS = Vocabulary(["gpt-mini", "deepseek-chat", "embed"], ["openai-a", "deepseek", "dead"])


def _sink(*, key_labels: bool = False, reserved: int = 0) -> tuple[MetricsSink, CollectorRegistry]:
    registry = CollectorRegistry()
    return MetricsSink(registry, WORDS, key_labels=key_labels, reserved=lambda: reserved), registry


def _attempt(provider: str, model: str, outcome: str, error: str | None = None) -> AttemptRecord:
    attempt = AttemptRecord(provider, model, "upstream-" + model, f"{provider}#0")
    attempt.end(outcome, error, 502 if error else None)
    return attempt


def _charged(
    model: str = "gpt-mini", provider: str = "openai-a", *, stream: bool = False
) -> RequestRecord:
    record = RequestRecord("req_0123456789abcdef01234567", "chat", stream=stream)
    record.account_id, record.key_id, record.key_prefix = "acc_1", "key_secret_id", "ty-abcd"
    record.requested_model, record.model, record.provider = model, model, provider
    record.input_tokens, record.cached_tokens, record.output_tokens = 120, 20, 31
    record.cost_nano, record.charged = 123_456_789, True
    record.attempts.append(_attempt(provider, model, "ok"))
    record.ttft_ms, record.latency_ms, record.status = 40.0, 340.0, 200
    return record


def test_a_charged_request_counts_tokens_cost_and_latency() -> None:
    sink, registry = _sink()
    sink.emit(_charged(stream=True))
    sink.emit(_charged())
    value = registry.get_sample_value
    labels = {"operation": "chat", "model": "gpt-mini", "provider": "openai-a"}
    assert value("tokenyard_requests_total", {**labels, "status": "200", "error_type": ""}) == 2
    assert value("tokenyard_billed_requests_total", labels) == 2
    assert value("tokenyard_cost_nano_total", labels) == 246_913_578
    assert value("tokenyard_tokens_total", {**labels, "type": "input"}) == 240
    assert value("tokenyard_tokens_total", {**labels, "type": "cached_input"}) == 40
    assert value("tokenyard_tokens_total", {**labels, "type": "output"}) == 62
    gen_ai = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai-a",
        "gen_ai_request_model": "gpt-mini",
        "gen_ai_response_model": "gpt-mini",
    }
    usage = {**gen_ai, "gen_ai_token_type": "output"}
    assert value("gen_ai_client_token_usage_sum", usage) == 62
    assert value("gen_ai_client_token_usage_bucket", {**usage, "le": "64.0"}) == 2
    assert value("gen_ai_client_token_usage_bucket", {**usage, "le": "16.0"}) == 0
    duration = {**gen_ai, "error_type": ""}
    assert value("gen_ai_server_request_duration_seconds_count", duration) == 2
    assert value("gen_ai_server_request_duration_seconds_sum", duration) == 0.68
    assert value("gen_ai_server_time_to_first_token_seconds_count", gen_ai) == 2
    # only the stream: (340 - 40) ms over 30 tokens after the first
    assert value("gen_ai_server_time_per_output_token_seconds_count", gen_ai) == 1
    assert value("gen_ai_server_time_per_output_token_seconds_sum", gen_ai) == 0.01
    attempt = {"provider": "openai-a", "model": "gpt-mini", "outcome": "ok"}
    assert value("tokenyard_upstream_attempts_total", attempt) == 2


def test_failover_and_fallback_are_counted_from_the_attempts() -> None:
    sink, registry = _sink()
    record = _charged("deepseek-chat", "deepseek")
    record.requested_model = "gpt-mini"
    record.attempts[:0] = [
        _attempt("dead", "gpt-mini", "failed", "upstream_failed"),
        _attempt("openai-a", "gpt-mini", "failed", "Weird Code From Upstream!"),
    ]
    sink.emit(record)
    value = registry.get_sample_value
    errors = {"provider": "dead", "model": "gpt-mini", "error": "upstream_failed"}
    assert value("tokenyard_upstream_errors_total", errors) == 1
    odd = {"provider": "openai-a", "model": "gpt-mini", "error": "other"}
    assert value("tokenyard_upstream_errors_total", odd) == 1
    assert value("tokenyard_retries_total", {"operation": "chat", "model": "deepseek-chat"}) == 2
    fallback = {"from_model": "gpt-mini", "to_model": "deepseek-chat"}
    assert value("tokenyard_fallbacks_total", fallback) == 1


def test_refusals_count_as_rejections_and_unknown_names_stay_bounded() -> None:
    sink, registry = _sink()
    for status, error_type, code, model in (
        (402, "insufficient_quota", "insufficient_quota", "gpt-mini"),
        (429, "rate_limit_error", "rate_limit_exceeded", "gpt-mini"),
        (404, "not_found_error", "model_not_found", "no-such-model-" + "x" * 30),
    ):
        record = RequestRecord("req_1", "chat")
        record.requested_model, record.status, record.latency_ms = model, status, 3.0
        record.fail(error_type, code)
        sink.emit(record)
    value = registry.get_sample_value
    for status, code in (("402", "insufficient_quota"), ("429", "rate_limit_exceeded")):
        labels = {"operation": "chat", "model": "gpt-mini", "status": status, "code": code}
        assert value("tokenyard_rejections_total", labels) == 1
    unknown = {
        "operation": "chat",
        "model": "unknown",
        "provider": "none",
        "status": "404",
        "error_type": "not_found_error",
    }
    assert value("tokenyard_requests_total", unknown) == 1
    text = generate_latest(registry).decode()
    assert "no-such-model" not in text
    assert 'status="404"' not in text.split("tokenyard_rejections_total")[-1]


def test_no_key_or_request_id_unless_key_labels_are_asked_for() -> None:
    sink, registry = _sink()
    sink.emit(_charged())
    text = generate_latest(registry).decode()
    for secret in ("req_0123456789abcdef01234567", "key_secret_id", "acc_1", "ty-abcd", "#0"):
        assert secret not in text
    sink, registry = _sink(key_labels=True)
    sink.emit(_charged())
    labels = {"operation": "chat", "model": "gpt-mini", "provider": "openai-a"}
    assert registry.get_sample_value(
        "tokenyard_cost_nano_total", {**labels, "key_prefix": "ty-abcd"}
    )
    assert "key_secret_id" not in generate_latest(registry).decode()


def test_a_scrape_reads_circuits_keys_and_open_holds_at_that_moment() -> None:
    held = [3]
    registry = CollectorRegistry()
    sink = MetricsSink(registry, WORDS, reserved=lambda: held[0])
    state = StateCollector(
        lambda: {"openai-a/gpt-4o-mini": "open", "deepseek/deepseek-chat": "closed"},
        lambda: {"openai-a": ["ready", "cooling", "refused"], "dead": []},
    )
    exposition = Exposition(registry, state, multiprocess_dir=None, before=sink.refresh)
    text = exposition.render().decode()
    assert 'tokenyard_circuit_state{deployment="openai-a/gpt-4o-mini",state="open"} 1.0' in text
    assert 'tokenyard_circuit_state{deployment="openai-a/gpt-4o-mini",state="closed"} 0.0' in text
    assert 'tokenyard_upstream_keys{provider="openai-a",state="cooling"} 1.0' in text
    assert 'tokenyard_upstream_keys{provider="dead",state="ready"} 0.0' in text
    assert "tokenyard_reservations_active 3.0" in text
    held[0] = 0
    assert "tokenyard_reservations_active 0.0" in exposition.render().decode()


def test_emit_in_the_steady_state_adds_to_the_series_it_made() -> None:
    """Once a series exists, emitting adds to it instead of making another (what keeps
    emit cheap; its cost is measured by bench/micro.py, never asserted in a test)."""
    sink, registry = _sink()
    record = _charged(stream=True)
    sink.emit(record)
    series = len([s for m in registry.collect() for s in m.samples])
    for _ in range(99):
        sink.emit(record)
    assert len([s for m in registry.collect() for s in m.samples]) == series
    labels = {"operation": "chat", "model": "gpt-mini", "provider": "openai-a"}
    assert registry.get_sample_value("tokenyard_billed_requests_total", labels) == 100


def _traffic() -> list[RequestRecord]:
    """Records that touch every series kind: streams and not, embeddings, failover and
    fallback, refusals, an unknown model, and values on bucket bounds (10 ms, 64 tokens)."""
    records = [_charged(stream=True), _charged(), _charged("deepseek-chat", "deepseek")]
    edge = _charged()
    edge.latency_ms, edge.ttft_ms, edge.input_tokens, edge.output_tokens = 10.0, 1.0, 64, 1
    embedding = _charged("embed")
    embedding.operation, embedding.cached_tokens = "embeddings", 0
    failover = _charged("deepseek-chat", "deepseek")
    failover.requested_model = "gpt-mini"
    failover.attempts[:0] = [_attempt("dead", "gpt-mini", "failed", "upstream_failed")]
    records += [edge, embedding, failover]
    for status, error_type, code, model in (
        (402, "insufficient_quota", "insufficient_quota", "gpt-mini"),
        (429, "rate_limit_error", "rate_limit_exceeded", "auto"),
        (404, "not_found_error", "model_not_found", "no-such-model"),
    ):
        refused = RequestRecord("req_1", "chat")
        refused.requested_model, refused.status, refused.latency_ms = model, status, 3.0
        refused.fail(error_type, code)
        records.append(refused)
    return records


def _exposition(*, files: bool, key_labels: bool) -> tuple[bytes, bytes]:
    registry = CollectorRegistry(auto_describe=True)
    sink = MetricsSink(registry, WORDS, key_labels=key_labels, reserved=lambda: 2, files=files)
    sink.track_redis()(False)
    for record in _traffic() * 3:
        sink.emit(record)
    sink.refresh()
    created = re.compile(rb"(_created\{[^}]*\}|_created) [0-9.e+]+")
    texts = generate_latest(registry), openmetrics.generate_latest(registry)
    return tuple(created.sub(rb"\1 T", text) for text in texts)  # type: ignore[return-value]


@pytest.mark.parametrize("key_labels", [False, True])
def test_dict_kept_values_render_as_prometheus_client_renders_its_own(key_labels: bool) -> None:
    """One process keeps values in dicts (obs/tally.py); multi-process mode in
    prometheus-client's metrics (here without files: their rendering is the same). Both
    scrapes, Prometheus text and OpenMetrics, are byte for byte alike, ``_created``
    timestamps aside."""
    kept = _exposition(files=False, key_labels=key_labels)
    client = _exposition(files=True, key_labels=key_labels)
    assert b"gen_ai_server_request_duration_seconds_bucket" in kept[0]
    assert b"tokenyard_fallbacks_total" in kept[0]
    assert kept == client


def test_created_is_when_the_series_first_appeared() -> None:
    start = time.time()
    sink, registry = _sink()
    sink.emit(_charged())
    end = time.time()
    time.sleep(0.01)
    sink.emit(_charged())
    labels = {"operation": "chat", "model": "gpt-mini", "provider": "openai-a"}
    created = registry.get_sample_value("tokenyard_billed_requests_created", labels)
    assert created is not None and start <= created <= end


def _worker(directory: str, requests: int, done: Event, leave: Event) -> None:
    """A forked ``--workers`` process: counts ``requests`` records into its own files, then
    stays alive (its values must show while it lives, not only once it has exited)."""
    use_multiprocess(directory)
    sink = MetricsSink(CollectorRegistry(), WORDS, reserved=lambda: requests, files=True)
    for _ in range(requests):
        sink.emit(_charged())
    done.set()
    leave.wait(30)


def test_a_scrape_in_multi_process_mode_sees_every_live_workers_requests(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("fork")
    done, leave = [context.Event(), context.Event()], context.Event()
    workers = [
        context.Process(target=_worker, args=(str(tmp_path), n, d, leave))
        for n, d in zip((3, 5), done, strict=True)
    ]
    for worker in workers:
        worker.start()
    try:
        assert all(d.wait(30) for d in done)
        state = StateCollector(dict, dict)
        text = Exposition(CollectorRegistry(), state, multiprocess_dir=str(tmp_path)).render()
    finally:
        leave.set()
        for worker in workers:
            worker.join(30)
    assert [w.exitcode for w in workers] == [0, 0]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    labels = (("model", "gpt-mini"), ("operation", "chat"), ("provider", "openai-a"))
    assert samples["tokenyard_billed_requests_total", labels] == 8
    assert samples["tokenyard_tokens_total", (*labels, ("type", "input"))] == 8 * 120
    gen_ai = (
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "openai-a"),
        ("gen_ai_request_model", "gpt-mini"),
        ("gen_ai_response_model", "gpt-mini"),
    )
    duration = "gen_ai_server_request_duration_seconds"
    assert samples[f"{duration}_count", (("error_type", ""), *gen_ai)] == 8
    assert samples[f"{duration}_bucket", (("error_type", ""), *gen_ai, ("le", "0.64"))] == 8
    assert samples["tokenyard_reservations_active", ()] == 8  # livesum: 3 + 5
