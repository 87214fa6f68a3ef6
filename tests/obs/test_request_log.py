"""The request log sink's conversion of a record into its row (obs/request_log.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from tokenyard.obs.record import AttemptRecord, RequestRecord
from tokenyard.obs.request_log import to_row


def full_record() -> RequestRecord:
    """Every field a different value, so that a field put in another's place shows."""
    record = RequestRecord("req_1", "chat", started=1_900_000_000.123456, stream=True)
    record.account_id, record.key_id, record.key_prefix = "acct_1", "key_1", "sk-ty-ab"
    record.requested_model, record.model, record.provider = "auto", "m", "p"
    record.input_tokens, record.cached_tokens, record.output_tokens = 12, 3, 7
    record.cost_nano, record.status = 123_456_789, 502
    record.latency_ms, record.ttft_ms = 12.54, 3.26
    record.error_type, record.error_code = "upstream_error", "bad_gateway"
    record.capture, record.prompt, record.completion = True, "[question]", "answer"
    attempt = AttemptRecord("p", "m", "m-upstream", "p#1")
    attempt.duration_ms, attempt.outcome, attempt.error, attempt.upstream_status = (
        41.26,
        "failed",
        "bad_gateway",
        502,
    )
    record.attempts.append(attempt)
    return record


def test_every_field_of_the_row_comes_from_its_own_fact() -> None:
    row = to_row(full_record(), prompts=True)
    assert row.id == "req_1"
    assert row.started == datetime.fromtimestamp(1_900_000_000.123456, UTC)
    assert (row.operation, row.status, row.stream) == ("chat", 502, True)
    assert (row.account_id, row.key_id, row.key_prefix) == ("acct_1", "key_1", "sk-ty-ab")
    assert (row.requested_model, row.model, row.provider) == ("auto", "m", "p")
    assert (row.input_tokens, row.cached_tokens, row.output_tokens) == (12, 3, 7)
    assert row.cost_nano == 123_456_789
    assert (row.latency_ms, row.ttft_ms) == (12.5, 3.3)
    assert row.attempts == 1
    assert row.attempt_log == [
        {
            "provider": "p",
            "model": "m-upstream",
            "key": "p#1",
            "outcome": "failed",
            "error": "bad_gateway",
            "status": 502,
            "duration_ms": 41.3,
        }
    ]
    assert (row.error_type, row.error_code) == ("upstream_error", "bad_gateway")
    assert (row.prompt, row.completion) == ("[question]", "answer")


def test_a_row_without_attempts_ttft_or_prompts_allowed() -> None:
    record = full_record()
    record.attempts.clear()
    record.ttft_ms = None
    row = to_row(record, prompts=False)
    assert (row.attempts, row.attempt_log, row.ttft_ms) == (0, None, None)
    assert (row.prompt, row.completion) == (None, None)
