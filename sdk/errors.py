"""Typed SDK exceptions carrying the server's error code, message and details."""

from __future__ import annotations

from typing import Any


class MetaLakeError(Exception):
    """The MetaLake engine refused or failed the request."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details or {}


class EngineUnreachable(MetaLakeError):
    """The engine could not be reached (is it running? `metalake status`)."""


class BadRequest(MetaLakeError):
    """400: the request is invalid (see `.details`, e.g. a query error's `position`)."""


class Unauthorized(MetaLakeError):
    """401: no valid API key."""


class Forbidden(MetaLakeError):
    """403: the API key lacks the needed scope."""


class NotFound(MetaLakeError):
    """404: no such object."""


class Conflict(MetaLakeError):
    """409: conflicts with the current state."""


class ValidationFailed(MetaLakeError):
    """422: the request body or parameters are malformed."""


class ServerError(MetaLakeError):
    """5xx: the engine failed; the message says whether to retry."""


class NotSupportedYet(MetaLakeError):
    """The call exists for compatibility, but this engine has no such feature yet; the
    message says what to use instead."""


_BY_STATUS: dict[int, type[MetaLakeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: ValidationFailed,
}


def error_for(status: int, body: Any) -> MetaLakeError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message", "")) or f"HTTP {status}"
        code = str(error.get("code", "error"))
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    else:
        message, code, details = f"HTTP {status}: {str(body)[:500]}", "error", {}
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else MetaLakeError)
    return cls(message, code=code, status=status, details=details)
