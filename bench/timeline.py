"""Where one request's time goes inside the gateway, step by step, at concurrency 1.

Usage, as the gateway of a ``run.py`` row::

    TIMELINE=/tmp/timeline.txt .venv/bin/python bench/run.py --concurrency 1 \\
        --modes non-stream --requests 8000 --min-time 0 \\
        --gateway-cmd ".venv/bin/python bench/timeline.py"

Runs ``tokenyard`` (``instrumented.py``) with a few of its methods wrapped to take a
timestamp before or after they run. Each step is the wall time from the previous
timestamp, averaged over requests. A gap over 10 ms is the harness pausing between rows
(or start-up), whatever step it falls in, and is left out. At exit the table goes to the
file that ``TIMELINE`` names. This only makes sense when requests come one at a time: with
more in flight, the steps of different requests interleave. The wrappers add about a
microsecond each.

The steps, in the order a non-stream request meets them:

- ``arrived``: the request's last byte was parsed (the clock starts);
- ``before the hold``: routing to the hold: the route, auth, parsing, plan and prices;
- ``hold``: the hold, its commit included;
- ``upstream answer head``: the attempt up to the upstream's answer head, the wait for the
  upstream included;
- ``upstream body read``: the upstream body read and parsed, then the usage;
- ``charge``: the charge, its commit included;
- ``answer written``: the answer encoded and written to the socket;
- ``after the answer``: the request's record, sinks, and the connection's next step;
- ``between requests``: from there to the next request's last byte: the client's turn,
  two wake-ups, the next request's bytes, and whatever the loop runs meanwhile (the
  request log's batches, checkpoints).

Rows in brackets are parts of the steps above: every commit of the SQLite writer, and
what runs on the loop between an operation's call and its commit.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

from instrumented import serve

IDLE_NS = 10_000_000  # a longer gap is the harness pausing (or start-up): not counted

sums: dict[str, int] = {}
last = [0]
requests = [0]


def mark(step: str) -> None:
    now = time.perf_counter_ns()
    took = now - last[0]
    last[0] = now
    if step == "between requests":
        requests[0] += 1
    if took > IDLE_NS:
        return
    sums[step] = sums.get(step, 0) + took


def wrap(owner: type, name: str, before: str | None, after: str | None) -> None:
    original: Callable[..., Any] = getattr(owner, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            if before:
                mark(before)
            result = await original(*args, **kwargs)
            if after:
                mark(after)
            return result

        setattr(owner, name, timed_async)
        return

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if before:
            mark(before)
        result = original(*args, **kwargs)
        if after:
            mark(after)
        return result

    setattr(owner, name, timed)


def instrument() -> None:
    from tokenyard.billing.wallet import Wallet
    from tokenyard.gateway.flow import Gateway
    from tokenyard.providers.transport.client import HttpClient
    from tokenyard.server.native.connection import Connection
    from tokenyard.server.native.exchange import NativeExchange
    from tokenyard.server.native.service import Service
    from tokenyard.store.sqlite_writer import SqliteWriter

    wrap(Connection, "on_message_complete", "between requests", None)
    wrap(Wallet, "hold", "before the hold", "hold")
    wrap(HttpClient, "post", None, "upstream answer head")
    wrap(Gateway, "_settle", "upstream body read", "charge")
    wrap(NativeExchange, "_answer", None, "answer written")
    wrap(Service, "serve", None, "after the answer")
    wrap(SqliteWriter, "_flush", "[from an operation's call to its turn's flush]", "[commit]")


def table() -> str:
    count = max(requests[0], 1)
    rows = [f"| step | µs per request ({count:,} requests) |", "|---|---:|"]
    rows += [f"| {step} | {total / count / 1000:.1f} |" for step, total in sums.items()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    serve("TIMELINE", instrument, table)
