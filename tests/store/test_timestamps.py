"""The hold's and the charge's timestamps are the text SQLAlchemy would have stored."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from tokenyard.store.timestamps import sqlite_now, sqlite_timestamp

_DIALECT = sqlite.dialect()
_STORED = DateTime().dialect_impl(_DIALECT).bind_processor(_DIALECT)
_PARSED = DateTime().dialect_impl(_DIALECT).result_processor(_DIALECT, None)
_EPOCH = datetime(1970, 1, 1)

moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1))


def _nanoseconds(moment: datetime, extra_ns: int = 0) -> int:
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return seconds * 1_000_000_000 + delta.microseconds * 1_000 + extra_ns


@given(moments, st.integers(min_value=0, max_value=999))
def test_the_text_is_what_sqlalchemy_stores_and_reads_back(moment: datetime, ns: int) -> None:
    text = sqlite_timestamp(_nanoseconds(moment, ns))  # below the microsecond: dropped
    assert text == _STORED(moment)
    assert _PARSED(text) == moment


@given(st.lists(moments, min_size=2, max_size=20))
def test_a_second_formatted_before_does_not_leak_into_another(seq: list[datetime]) -> None:
    for moment in seq:
        assert sqlite_timestamp(_nanoseconds(moment)) == _STORED(moment)


def test_now_is_the_utc_time() -> None:
    before = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    text = sqlite_now()
    after = datetime.now(UTC).replace(tzinfo=None)
    assert before <= _PARSED(text) <= after


def test_threads_formatting_different_seconds_each_get_their_own() -> None:
    wrong: list[tuple[str, str]] = []

    def format_many(start: datetime) -> None:
        for i in range(20_000):
            moment = start.replace(second=i % 7, microsecond=i)
            got, expected = sqlite_timestamp(_nanoseconds(moment)), _STORED(moment)
            if got != expected:
                wrong.append((got, expected))

    starts = (datetime(2026, 11, 26, 12, 0), datetime(2031, 2, 3, 4, 5))
    threads = [threading.Thread(target=format_many, args=(start,)) for start in starts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
