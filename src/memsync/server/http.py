"""One ASGI app for everything `memsync serve` offers: the REST API and the memory proxy
under `/v1`, MCP over streamable HTTP at `/mcp`; one vault behind all three."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import apsw
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from memsync import __version__
from memsync.errors import MemsyncError
from memsync.server import mcp, proxy, rest
from memsync.server.background import BackgroundSync
from memsync.server.errors import error_response, refusal
from memsync.server.gate import Gate
from memsync.store.connections import as_memsync_error
from memsync.vault import Vault

__all__ = ["create_app"]

log = logging.getLogger(__name__)

# Threads that serve requests against the vault, each with its own database connection
# (storing conversations has one more of its own: `rest._Ingests`). Beyond about two per
# core they only queue on the GIL and on each other; further requests wait their turn on
# the event loop. With bench/load.py (20 clients, 2 cores) 2, 4 and 6 threads all gave
# 75-100 requests/s, the CPU being the limit; with 4 or more, searches answer in about
# 60 ms at the median while adds queue for their thread; 40 threads gave 2/s.
WORKER_THREADS = max(4, 2 * (os.cpu_count() or 1))

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as `{"error": {"code", "message"}}` with a stable code."""

    @app.exception_handler(MemsyncError)
    async def _memsync(_: Request, exc: MemsyncError) -> JSONResponse:
        return refusal(exc)

    @app.exception_handler(apsw.Error)
    async def _database(_: Request, exc: apsw.Error) -> JSONResponse:
        # A lock held too long by another process, or a disk that refused a write: the
        # client may retry. Anything else is damage or a bug, and says no more than that.
        known = as_memsync_error(exc)
        if known is None:
            log.error("database error: %s: %s", type(exc).__name__, exc)
            return error_response(500, "internal_error", "the vault could not serve this request")
        return refusal(known)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        )
        return error_response(422, "validation_error", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)


# Recent FastAPI releases trace requests with OpenTelemetry when a provider is set up in
# the process or the environment asks for it: no spans, metrics or logs of what apps ask
# the vault, to anyone. (Older releases have no such option, and no such telemetry.)
_NO_TELEMETRY: dict[str, Any] = (
    {
        "telemetry": {
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        }
    }
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def create_app(
    vault: Vault,
    proxy_options: proxy.ProxyOptions | None = None,
    sync_interval: float | None = None,
) -> FastAPI:
    """The whole server for `vault` (opened once, shared by every request). It syncs with
    the vault's remotes in the background every `sync_interval` seconds (default: the
    `sync.interval` setting; 0 is off) and soon after each write."""
    gate = Gate(vault)
    mcp_http = mcp.http_app(gate)
    interval = vault.settings().sync_interval if sync_interval is None else sync_interval
    syncing = BackgroundSync(vault, interval)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        syncing.start()
        try:
            async with mcp_http.lifespan():
                yield
        finally:
            await anyio.to_thread.run_sync(syncing.stop)

    app = FastAPI(
        title="memsync",
        version=__version__,
        description=(
            "Your memsync vault over HTTP. Every request carries an app's token "
            "(`Authorization: Bearer …` or `X-API-Key`); the app sees only its scope, "
            "and every memory returned is recorded in the vault's disclosure ledger."
        ),
        lifespan=lifespan,
        **_NO_TELEMETRY,
        # The interactive docs pages load their scripts from a CDN into a page where a
        # token would be typed; the schema itself stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(
        rest.router(gate, lambda: syncing.state if syncing.state.remotes else None), prefix="/v1"
    )
    app.include_router(
        proxy.router(gate, proxy_options or proxy.ProxyOptions()),
        prefix="/v1",
        include_in_schema=False,
    )
    # Clients are configured with ".../mcp"; answering it directly spares them a redirect
    # to "/mcp/" that not every client follows for a POST.
    app.router.routes.append(Route("/mcp", mcp_http.app, methods=["GET", "POST", "DELETE"]))
    app.mount("/mcp", mcp_http.app)
    return app
