"""The time now as SQLite columns hold it, made cheaply on the request path.

SQLAlchemy stores a ``DateTime`` on SQLite as naive UTC text, ``YYYY-MM-DD HH:MM:SS.ffffff``.
The hold and the charge each write one, inline, and made with ``datetime.isoformat`` that
text costs ~1.4 µs, most of it C string formatting of seven fields. Here the part up to the
second is formatted once a second and only the microseconds each time (~0.4 µs). What is
read back through SQLAlchemy is the same either way (tests/store/test_timestamps.py).
"""

from __future__ import annotations

import time


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
