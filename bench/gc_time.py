"""The cyclic garbage collector's time in a gateway under load (decision 0016).

Usage, as the gateway of a ``run.py`` row::

    GC_TIME=/tmp/gc.txt .venv/bin/python bench/run.py --concurrency 16 --requests 20000 \\
        --min-time 0 --gateway-cmd ".venv/bin/python bench/gc_time.py"

Runs ``tokenyard`` (its arguments: ``serve ...``) in this interpreter with a
``gc.callbacks`` hook that counts every collection, per generation, and adds up the time
it took. Collections in the first ``SKIP_S`` seconds (start-up) are not counted. At exit it
writes one line to the file named by ``GC_TIME``: collections and seconds per generation.
Set ``PYTHONPATH=<tree>/src`` to measure another build.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time

SKIP_S = 4.0  # the start-up collection and the readiness polls

counts = [0, 0, 0]
seconds = [0.0, 0.0, 0.0]
began = [0.0]  # when the running collection started
start = time.monotonic()


def _on_collection(phase: str, info: dict[str, int]) -> None:
    if time.monotonic() - start < SKIP_S:
        return
    if phase == "start":
        began[0] = time.perf_counter()
        return
    counts[info["generation"]] += 1
    seconds[info["generation"]] += time.perf_counter() - began[0]


def _write() -> None:
    line = " ".join(f"gen{g}={counts[g]}/{seconds[g] * 1000:.1f}ms" for g in range(3))
    with open(os.environ["GC_TIME"], "w") as out:
        out.write(f"{line} total={sum(seconds) * 1000:.1f}ms\n")


if __name__ == "__main__":
    if "GC_TIME" not in os.environ:
        sys.exit("set GC_TIME to the file to write")
    gc.callbacks.append(_on_collection)
    atexit.register(_write)
    from tokenyard.cli.main import main

    sys.exit(main())
