"""The one error hierarchy of tokenyard.

Every failure a client can see is a :class:`TokenyardError` carrying its HTTP status and
the OpenAI error ``type``/``code`` from SPEC §4; one handler in ``server`` renders them.

* :class:`ClientError` — the request itself is wrong or not allowed (4xx). Never retried.
* :class:`UpstreamError` — a provider failed. ``retryable`` says whether another upstream
  (another key, deployment or model) could succeed; the gateway reads that flag, never the
  message. ``status`` is what the client sees when no attempt is left.
* :class:`ConfigError` — the configuration is invalid; raised at start, never per request.

Foreign exceptions (aiohttp, SQLAlchemy, asyncio timeouts) are translated into these where
they enter the code base.
"""

from __future__ import annotations


class TokenyardError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class ClientError(TokenyardError):
    """The request cannot succeed as sent; retrying elsewhere would not help."""


class InvalidRequest(ClientError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationFailed(ClientError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class InsufficientQuota(ClientError):
    status = 402
    type = "insufficient_quota"
    code = "insufficient_quota"


class PermissionDenied(ClientError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFound(ClientError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(ClientError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTooLarge(ClientError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(ClientError):
    """The request body did not arrive in time (a slow or stalled client)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class RateLimited(ClientError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int = 1):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UpstreamError(TokenyardError):
    """A provider failed. ``retryable`` is True when another upstream could succeed."""

    status = 502
    type = "upstream_error"
    code = "upstream_failed"
    upstream_status: int | None = None
    """The HTTP status the upstream answered, when it answered one (for the key pool)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message, code=code)
        self.retryable = retryable
        if status is not None:
            self.status = status
        self.retry_after_s = retry_after_s


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


class UpstreamRejected(UpstreamError):
    """The upstream refused the request itself (its 4xx): the client gets it as a 400-class
    error of its own, and no other upstream is tried."""

    type = "invalid_request_error"

    def __init__(self, message: str, *, status: int = 400, code: str | None = None):
        super().__init__(message, retryable=False, status=status, code=code)


class NoUpstreamAvailable(UpstreamError):
    status = 503
    code = "no_upstream_available"

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


class ServiceUnavailable(TokenyardError):
    """A dependency of the gateway itself (the database) is unreachable."""

    status = 503
    type = "server_error"
    code = "service_unavailable"


class ConfigError(Exception):
    """The configuration is invalid. ``problems`` holds one line per bad field."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems
