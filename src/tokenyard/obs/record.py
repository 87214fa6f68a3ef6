"""One record per client request: what metrics, the request log and traces are made of.

The server opens a :class:`RequestRecord` when a request to the client API arrives and
makes it *current* (a context variable, so every task the request starts — hedges included
— writes into the same record). The layers below fill in what only they know: who called
(server), each upstream attempt (gateway/attempts.py), the model, provider, tokens and cost
that were charged (gateway/flow.py), when the first byte went out (server). When the
response is done the server stamps status and latency and hands the record to the
:class:`Sink` s — after the response, on the next loop turn, so that no sink ever delays an
answer.

A record never holds a secret: the key's visible prefix, never the key; an upstream key's
label (``deepseek#1``), never the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class AttemptRecord:
    """One upstream call."""

    provider: str
    model: str  # the public model
    upstream_model: str
    key: str | None  # the upstream key's label
    started: float = field(default_factory=time.time)  # wall clock, seconds
    started_mono: float = field(default_factory=time.monotonic)
    duration_ms: float = 0.0
    error: str | None = None  # None: it answered; else the error code
    upstream_status: int | None = None
    outcome: str = "pending"  # ok | failed | cancelled

    def end(self, outcome: str, error: str | None = None, status: int | None = None) -> None:
        self.duration_ms = (time.monotonic() - self.started_mono) * 1000
        self.outcome, self.error, self.upstream_status = outcome, error, status


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    operation: str  # chat | embeddings | messages
    started: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    stream: bool = False
    account_id: str | None = None
    key_id: str | None = None
    key_prefix: str | None = None
    requested_model: str | None = None
    model: str | None = None  # the public model that answered
    provider: str | None = None
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_nano: int = 0
    charged: bool = False
    status: int = 0
    error_type: str | None = None
    error_code: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    traceparent: str | None = None  # the caller's W3C trace context headers, as received
    tracestate: str | None = None
    capture: bool = False
    """Keep this request's prompt and completion text (``logging.prompts`` is on and the
    key did not opt out); decided by the gateway, read by whoever sees the text."""
    prompt: str | None = None  # the request's messages, as JSON text
    completion: str | None = None  # the answer's text

    def keep_prompt(self, text: str) -> None:
        if self.capture:
            self.prompt = text[:MAX_TEXT]

    def keep_completion(self, text: str | None) -> None:
        if self.capture and text is not None:
            self.completion = text[:MAX_TEXT]

    def first_byte(self) -> None:
        """The first byte of the answer is going out (streams: the first chunk)."""
        if self.ttft_ms is None:
            self.ttft_ms = (time.monotonic() - self.started_mono) * 1000

    def finish(self, status: int) -> None:
        self.status = status
        self.latency_ms = (time.monotonic() - self.started_mono) * 1000
        if self.ttft_ms is None and status < 400:
            self.ttft_ms = self.latency_ms  # an unstreamed answer's first byte is all of it

    def fail(self, error_type: str, error_code: str | None) -> None:
        self.error_type, self.error_code = error_type, error_code

    @property
    def calls(self) -> int:
        return len(self.attempts)


MAX_TEXT = 100_000
"""Characters of prompt or completion text kept per request, at most: a log is not an
archive, and a 30 MB image prompt must not ride through memory to the database."""

CURRENT: ContextVar[RequestRecord | None] = ContextVar("tokenyard_request", default=None)


current: Callable[[], RequestRecord | None] = CURRENT.get
"""The record of the request being served, if any (None in background work). The context
variable's own ``get``, not a function around it: it is asked about five times a request,
and a Python frame for each cost more than the look-up."""


def start_attempt(provider: str, model: str, upstream_model: str, key: str | None) -> AttemptRecord:
    """An upstream call, added to the current request's record (outside a request, in
    background work, it is recorded nowhere)."""
    attempt = AttemptRecord(provider, model, upstream_model, key)
    record = CURRENT.get()
    if record is not None:
        record.attempts.append(attempt)
    return attempt


class Sink(Protocol):
    """Takes finished records. ``emit`` must not block: it may queue, never wait."""

    def emit(self, record: RequestRecord) -> None: ...
