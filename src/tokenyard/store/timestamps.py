"""Times as SQLite columns hold them, written on the request path without SQLAlchemy.

SQLAlchemy stores a ``DateTime`` on SQLite as naive UTC text, ``YYYY-MM-DD HH:MM:SS.ffffff``.
The hold, the charge and the request-log row each write one through the SQLite writer, so
that text is made here, the same as SQLAlchemy's (tests/store/test_timestamps.py,
tests/store/test_request_log.py).

For the hold and the charge, the time is now: made with ``datetime.isoformat`` that text
cost ~1.4 µs, most of it C string formatting of seven fields. Here the part up to the second
is formatted once a second and only the microseconds each time (~0.4 µs).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class _Cache:
    """The last second formatted, and its text: one tuple, replaced whole, because the SQLite
    writer's thread formats too (sqlite_writer.py)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = (0, "1970-01-01 00:00:00")


_cache = _Cache()


def sqlite_timestamp(nanoseconds: int) -> str:
    """``nanoseconds`` since the epoch as SQLite's ``DateTime`` text (to the microsecond
    below)."""
    second, rest = divmod(nanoseconds, 1_000_000_000)
    last = _cache.last
    if second != last[0]:
        last = _cache.last = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second)))
    return f"{last[1]}.{rest // 1000:06d}"


def sqlite_now() -> str:
    """The time now, as :func:`sqlite_timestamp` writes it."""
    return sqlite_timestamp(time.time_ns())


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive one is UTC already (SQLite hands back naive datetimes, and
    everything stored is UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_datetime(value: datetime) -> str:
    """``value`` as SQLite's ``DateTime`` text, in UTC, the microseconds even when they are
    0 (``isoformat`` then leaves them out unless told)."""
    return utc(value).isoformat(" ", "microseconds")[:26]
