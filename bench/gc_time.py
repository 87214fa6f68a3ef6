"""The cyclic garbage collector's time in a gateway under load (decision 0016).

Usage, as the gateway of a ``run.py`` row::

    GC_TIME=/tmp/gc.txt .venv/bin/python bench/run.py --concurrency 16 --requests 20000 \\
        --min-time 0 --gateway-cmd ".venv/bin/python bench/gc_time.py"

Runs ``tokenyard`` (``instrumented.py``) with a ``gc.callbacks`` hook that counts every
collection, per generation, and adds up the time it took. Collections that start in the
first ``SKIP_S`` seconds (start-up) are not counted. At exit it writes one line to the file
named by ``GC_TIME``: collections and milliseconds per generation.
"""

from __future__ import annotations

import gc
import time

from instrumented import serve

SKIP_S = 4.0  # the start-up collection and the readiness polls

counts = [0, 0, 0]
seconds = [0.0, 0.0, 0.0]
began = [0.0]  # when the running collection started
counting_from = time.perf_counter() + SKIP_S


def _on_collection(phase: str, info: dict[str, int]) -> None:
    now = time.perf_counter()
    if phase == "start":
        began[0] = now
    elif began[0] >= counting_from:
        counts[info["generation"]] += 1
        seconds[info["generation"]] += now - began[0]


def _report() -> str:
    line = " ".join(f"gen{g}={counts[g]}/{seconds[g] * 1000:.1f}ms" for g in range(3))
    return f"{line} total={sum(seconds) * 1000:.1f}ms\n"


if __name__ == "__main__":
    serve("GC_TIME", lambda: gc.callbacks.append(_on_collection), _report)
