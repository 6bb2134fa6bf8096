"""The MCP server (being written)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.types import ASGIApp

from memsync.server.gate import Gate


@dataclass(frozen=True)
class McpHttp:
    """MCP over streamable HTTP: the ASGI app to mount at /mcp and the lifespan that
    runs its session manager."""

    app: ASGIApp
    lifespan: Callable[[], AbstractAsyncContextManager[None]]


def http_app(gate: Gate) -> McpHttp:
    return McpHttp(Starlette(), nullcontext)
