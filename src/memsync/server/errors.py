"""Errors as JSON with a stable code, one shape for REST, MCP's door and the proxy:
`{"error": {"code": "not_found", "message": …, "type": …}}`. `type` is OpenAI's error
type for the status, so OpenAI clients of the proxy read our errors like theirs.

The codes are part of the API; clients branch on them, not on the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.responses import JSONResponse

from memsync.errors import (
    AccessDenied,
    EmbedderError,
    InvalidInput,
    LLMError,
    MemsyncError,
    NotFound,
    RateLimited,
    StorageError,
    Unauthenticated,
    UsageError,
    VaultBusy,
)

__all__ = ["ApiError", "api_error", "error_body", "error_response", "refusal"]

_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


@dataclass(frozen=True)
class ApiError:
    """An error as the HTTP API reports it."""

    status: int
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


def error_body(status: int, code: str, message: str) -> dict[str, dict[str, str]]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"code": code, "message": message, "type": kind}}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status, dict(headers or {}))


def refusal(exc: MemsyncError) -> JSONResponse:
    """The response for one of memsync's own errors."""
    err = api_error(exc)
    return error_response(err.status, err.code, err.message, dict(err.headers))


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
    if isinstance(exc, VaultBusy):
        retry = str(max(1, round(exc.retry_after + 0.5)))
        return ApiError(503, "vault_busy", message, (("Retry-After", retry),))
    if isinstance(exc, StorageError):
        return ApiError(503, "storage_error", message, (("Retry-After", "30"),))
    # A damaged vault or a bug: say so without details a client has no use for.
    return ApiError(500, "internal_error", "the vault could not serve this request")
