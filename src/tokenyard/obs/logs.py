"""Structured JSON logs on stderr. Keys and prompt text are never passed to a logger."""

from __future__ import annotations

import logging
import sys

from tokenyard.wire.json import dumps

_QUIET = (
    "aiohttp.access",
    "stripe",  # logs request bodies at DEBUG
    "aiosqlite",  # logs every statement with its parameters at DEBUG: key hashes, and the
    # request log's prompt text when logging.prompts is on
    "sqlalchemy.engine",  # with echo, statements and parameters at INFO
)
"""Loggers held at WARNING whatever ``logging.level`` says: at lower levels they write the
data tokenyard keeps out of logs (tests/e2e/test_secrets.py runs at debug to prove it)."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
        return dumps(entry).decode()


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
