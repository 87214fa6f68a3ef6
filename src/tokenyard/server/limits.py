"""What one client connection and request may send, read on every request.

The ``server:`` section of the config is a pydantic model, and pydantic models define
``__getattr__``: every attribute read on one goes through CPython's slow path for such
classes (~1,000 instructions). Our server reads these limits ~20 times a request (each
header's size, the body's, the JSON depth, the timers), which came to ~2 % of a request.
So the server reads them from this plain record, made once from the config.
"""

from __future__ import annotations

from tokenyard.config.schema import ServerConfig
from tokenyard.immutable import immutable


@immutable
class ServerLimits:
    max_body_bytes: int
    body_timeout_s: float
    header_timeout_s: float
    max_header_bytes: int
    max_headers: int
    max_messages: int
    max_json_depth: int
    shutdown_timeout_s: float

    @classmethod
    def of(cls, config: ServerConfig) -> ServerLimits:
        return cls(
            max_body_bytes=config.max_body_bytes,
            body_timeout_s=config.body_timeout_s,
            header_timeout_s=config.header_timeout_s,
            max_header_bytes=config.max_header_bytes,
            max_headers=config.max_headers,
            max_messages=config.max_messages,
            max_json_depth=config.max_json_depth,
            shutdown_timeout_s=config.shutdown_timeout_s,
        )
