"""The MCP server: the vault as tools, a profile resource and a prompt, for one app.

Over stdio the app is fixed (`memsync mcp --app NAME`); over streamable HTTP it is the app
whose bearer token came with each request. Either way every call goes through that app's
`AppSession`, so the scope and the disclosure ledger are the same as for REST.

The tools (`mcp_tools`, with their models in `mcp_models`) are plain functions: the SDK
runs them on worker threads, so a slow search or ingest never blocks the event loop. They
find the caller's session in a context variable that a server middleware sets for each
request (static resources get no `Context`, so this is the one way that reaches them too).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from memsync import __version__
from memsync.disclose.access import AppSession
from memsync.errors import MemsyncError, Unauthenticated
from memsync.server import mcp_tools
from memsync.server.errors import refusal
from memsync.server.gate import Gate
from memsync.server.mcp_models import profile_markdown

__all__ = ["McpHttp", "build_server", "http_app", "serve_stdio", "server_for"]

# Where the HTTP adapter leaves the authenticated session in the ASGI scope.
SCOPE_KEY = "memsync.session"

SessionFor = Callable[[Any], AppSession]
"""The caller's session, given the HTTP request the message came in (None off HTTP)."""

INSTRUCTIONS = """\
memsync is the user's own memory vault, shared by the AI assistants they use. It holds \
short statements about the user (facts, preferences, plans), each with a category.

- Before answering anything that depends on who the user is, what they like, or what \
they said before, call search_memories (or read memory://profile for the overview).
- When the user states a lasting fact or preference about themselves, save it with \
add_memory as one short statement ("Works as a nurse in Porto"); for a whole finished \
conversation, use ingest_conversation and let the vault pick out the facts.
- If a memory is wrong or outdated, fix it with update_memory; remove it with \
delete_memory only when the user asks.
- Never store secrets: passwords, keys, card or account numbers, one-time codes.
- This app sees only the categories the user granted it; anything else is invisible \
(a missing id and an unreadable one look the same). Every memory handed to you is \
recorded in the user's disclosure ledger."""

USE_MEMORY = """\
You have access to the user's memsync vault: their own memory, which they share between \
assistants and can inspect at any time. Use it like this.

1. Look before you answer. When a question touches the user personally (their work, \
people, health, plans, tastes, past conversations), call search_memories with a short \
query first, and use what you find. Say so when something came from memory.
2. Keep it current. When the user tells you something lasting about themselves, call \
add_memory with one short statement in the third person without a subject ("Is \
vegetarian", "Has a daughter named Ana"). Use kind "episodic" with valid_from or \
valid_until for time-bound plans and events.
3. Correct, don't pile up. If a memory is wrong or has changed, call update_memory on \
it instead of adding a contradicting one. Delete only when the user asks you to forget.
4. Never store secrets (passwords, API keys, card or bank numbers, one-time codes) or \
things the user asks you not to remember.
5. Don't over-share. Mention memories only when they help with the request at hand."""


class _Server(MCPServer):
    """MCPServer whose argument errors are one line (pydantic's span several)."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ValidationError):
                raise
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in cause.errors(include_url=False)
            )
            raise ToolError(
                f"Error executing tool {name}: invalid arguments: {problems}"
            ) from cause


def build_server(session_for: SessionFor) -> MCPServer:
    """The MCP server, each request served as the app `session_for(request)` returns."""

    async def with_session(
        ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        token = mcp_tools.current.set(session_for(ctx.request))
        try:
            return await call_next(ctx)
        finally:
            mcp_tools.current.reset(token)

    server = _Server(
        "memsync",
        title="memsync",
        description="The user's own encrypted memory, shared by their AI assistants.",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
        middleware=[with_session],
    )
    for tool in mcp_tools.TOOLS:
        server.add_tool(tool.fn, title=tool.title, annotations=tool.annotations)

    @server.resource(
        "memory://profile",
        name="profile",
        title="Profile",
        description="Who the user is, as far as this app may read: bio, a summary per "
        "category and what they like or dislike.",
        mime_type="text/markdown",
    )
    def profile() -> str:
        try:
            with mcp_tools.tool_errors():
                return profile_markdown(mcp_tools.current_session().profile())
        except ToolError as exc:
            raise ResourceError(str(exc)) from None

    @server.prompt(name="use_memory", title="Use my memory")
    def use_memory() -> str:
        """How to use the memsync vault: search first, save lasting facts, no secrets."""
        return USE_MEMORY

    return server


def server_for(session: AppSession) -> MCPServer:
    """The MCP server for one fixed app (stdio, and tests in-process)."""
    return build_server(lambda _request: session)


def serve_stdio(session: AppSession) -> None:
    """Serve `session`'s app over stdin/stdout until the client hangs up.

    The SDK points file descriptor 1 at stderr while it serves, so a stray print cannot
    corrupt the protocol; logging goes to stderr too.
    """
    anyio.run(server_for(session).run_stdio_async)


# HTTP.


@dataclass(frozen=True)
class McpHttp:
    """MCP over streamable HTTP: the ASGI app to mount at /mcp and the lifespan that
    runs its session manager."""

    app: ASGIApp
    lifespan: Callable[[], AbstractAsyncContextManager[None]]


class _Authenticated:
    """Lets a request through to MCP only with a valid token, within the rate limit.

    Refusals are plain HTTP (401 with `WWW-Authenticate: Bearer`, 429 with `Retry-After`),
    in the JSON error shape of the REST API; the app's session travels on in the scope.
    """

    def __init__(self, gate: Gate, inner: ASGIApp) -> None:
        self.gate = gate
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            # The gate reads the app registry from the database: not on the event loop.
            session = await anyio.to_thread.run_sync(
                self.gate.session, headers.get("authorization"), headers.get("x-api-key")
            )
        except MemsyncError as exc:
            await refusal(exc)(scope, receive, send)
            return
        await self.inner({**scope, SCOPE_KEY: session}, receive, send)


def _session_in_scope(request: Any) -> AppSession:
    session = getattr(request, "scope", {}).get(SCOPE_KEY)
    if not isinstance(session, AppSession):
        raise Unauthenticated("request did not come through the token check")
    return session


def http_app(gate: Gate) -> McpHttp:
    """MCP over streamable HTTP for every app the gate admits.

    Stateless with JSON responses: each POST stands alone, so which app is asking is
    decided per request by its token, and no session outlives a revoked one. DNS
    rebinding protection is off because every request needs a bearer token anyway, and
    it would refuse hosts other than localhost when `memsync serve` binds elsewhere.
    """
    server = build_server(_session_in_scope)
    server.streamable_http_app(
        streamable_http_path="/",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    return McpHttp(_Authenticated(gate, manager.handle_request), manager.run)
