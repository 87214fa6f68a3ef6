"""What one request may spend before its first byte reaches the client, and what it has spent.

Failing over must end even when every upstream is slow or failing: a deadline bounds the
time of all attempts together, and a number of upstream calls (key retries and hedges
included) bounds the calls. When trying ends without an answer, the error says why: the
last upstream failure, the spent budget of calls, or the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenyard.errors import NoUpstreamAvailable, UpstreamError, UpstreamTimeout
from tokenyard.immutable import immutable
from tokenyard.pool.keys import KeysExhausted
from tokenyard.routing.catalog import PublicModel


@immutable
class Budget:
    """What one request may spend before its first byte: time and upstream calls."""

    deadline_s: float = 600.0
    max_attempts: int = 5


@dataclass(slots=True)
class Tries:
    """What the attempts of one request have done so far."""

    max_calls: int
    calls: int = 0
    last: UpstreamError | None = None
    overflowed: PublicModel | None = None  # a model whose window the prompt overflowed
    overflow: UpstreamError | None = None
    spent: bool = False  # the budget of calls ended the walk
    hedged: bool = False  # the one hedge of this request has started

    def may_call(self) -> bool:
        """Whether the budget allows one more upstream call (noting when it does not)."""
        if self.calls < self.max_calls:
            return True
        self.spent = True
        return False

    def final_error(self, name: str) -> UpstreamError:
        if self.overflow is not None and self.last is None:
            return self.overflow
        if self.last is None:
            return NoUpstreamAvailable(f"no deployment of {name!r} can serve this request")
        tried = (
            f"the retry budget of {self.max_calls} upstream calls is used up"
            if self.spent
            else f"{self.calls} tried"
        )
        if isinstance(self.last, KeysExhausted):
            # Every key of the last provider is cooling down or at its limit: nothing is
            # available now (503), and the client learns when a key frees up.
            return UpstreamError(
                f"no upstream for {name!r} has a key free right now ({tried})",
                retryable=False,
                status=503,
                code=self.last.code,
                retry_after_s=self.last.retry_after_s,
            )
        if isinstance(self.last, UpstreamTimeout):
            return UpstreamTimeout(f"every upstream for {name!r} timed out ({tried})")
        # An upstream that said it is overloaded (its adapter made that a 503: Anthropic's
        # 529) means none is available right now, and the client learns when to come back.
        overloaded = self.last.status == 503
        return UpstreamError(
            f"every upstream for {name!r} failed ({tried}); last: {self.last.message}",
            retryable=False,
            status=503 if overloaded else 502,
            code=self.last.code,
            retry_after_s=self.last.retry_after_s if overloaded else None,
        )

    def deadline_error(self, name: str, deadline_s: float) -> UpstreamTimeout:
        last = f"; last: {self.last.message}" if self.last is not None else ""
        return UpstreamTimeout(
            f"no upstream for {name!r} answered within the request's deadline of "
            f"{deadline_s:g} s ({self.calls} tried){last}"
        )
