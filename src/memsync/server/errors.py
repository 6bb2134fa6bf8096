"""Errors as JSON with a stable code: `{"error": {"code": "not_found", "message": …}}`.

The codes are part of the API; clients branch on them, not on the message.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsync.errors import (
    AccessDenied,
    EmbedderError,
    InvalidInput,
    LLMError,
    MemsyncError,
    NotFound,
    RateLimited,
    Unauthenticated,
    UsageError,
)

__all__ = ["ApiError", "api_error", "error_body"]


@dataclass(frozen=True)
class ApiError:
    """An error as the HTTP API reports it."""

    status: int
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def api_error(exc: MemsyncError) -> ApiError:
    """The status, code and headers for one of memsync's own errors."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, Unauthenticated):
        return ApiError(401, "unauthenticated", message, (("WWW-Authenticate", "Bearer"),))
    if isinstance(exc, AccessDenied):
        return ApiError(403, "forbidden", message)
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", message)
    if isinstance(exc, RateLimited):
        retry = str(max(1, round(exc.retry_after + 0.5)))
        return ApiError(429, "rate_limited", message, (("Retry-After", retry),))
    if isinstance(exc, UsageError | InvalidInput):
        return ApiError(422, "invalid_request", message)
    if isinstance(exc, LLMError):
        return ApiError(502, "llm_unavailable", message)
    if isinstance(exc, EmbedderError):
        return ApiError(503, "embedder_unavailable", message)
    # A damaged vault or a bug: say so without details a client has no use for.
    return ApiError(500, "internal_error", "the vault could not serve this request")
