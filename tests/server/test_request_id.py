"""Request ids: unique, and ordered by the time they were made (the indexes they key are
appended to, not written at random: server/middleware.py)."""

from __future__ import annotations

import time

from tokenyard.server.middleware import new_request_id


def test_ids_are_unique() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)


def test_ids_sort_in_the_order_they_were_made() -> None:
    made = []
    for _ in range(5):
        made.append(new_request_id())
        time.sleep(0.002)
    assert sorted(made) == made


def test_id_shape() -> None:
    request_id = new_request_id()
    assert request_id.startswith("req_")
    assert len(request_id) == 4 + 12 + 16
    int(request_id[4:], 16)  # hex throughout
    stamp_ms = int(request_id[4:16], 16)
    assert abs(stamp_ms - time.time_ns() // 1_000_000) < 5_000
