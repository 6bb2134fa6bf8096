"""`memsync serve`: REST, MCP over HTTP and the memory proxy on one port, one vault."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
from dataclasses import replace

import click

from memsync.cli import output
from memsync.cli.unlock import open_vault
from memsync.errors import UsageError

DEFAULT_PORT = 8787


def _ignore(sig: int, frame: object) -> None:
    """A signal handler that does nothing (see `serve`)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, opened before the vault so a busy port fails fast and clearly."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other than loopback (tokens then cross the network; put TLS in front).",
)
@click.option("--upstream", help="OpenAI-compatible API root the proxy forwards to.")
@click.option(
    "--capture/--no-capture",
    default=None,
    help="Store the proxy's exchanges as conversations and extract memories from them.",
)
@click.option(
    "--budget", type=click.IntRange(min=50), help="Tokens of memory the proxy adds per request."
)
def serve(
    host: str,
    port: int,
    allow_remote: bool,
    upstream: str | None,
    capture: bool | None,
    budget: int | None,
) -> None:
    """Serve the vault to apps: the REST API (/v1), MCP over streamable HTTP (/mcp) and an
    OpenAI-compatible memory proxy (/v1/chat/completions), until Ctrl-C or SIGTERM.

    Every request needs an app's token (`memsync app add NAME`). The proxy's upstream,
    key and budget come from `memsync config proxy.*`, or from the options here.

    Example: memsync serve --upstream http://localhost:11434/v1 --capture
    """
    import uvicorn

    from memsync.server import proxy
    from memsync.server.http import create_app

    if not is_loopback(host) and not allow_remote:
        raise UsageError(
            f"refusing to listen on {host}: only loopback by default; "
            "add --allow-remote to serve other machines"
        )
    sock = listen(host, port)
    try:
        with open_vault() as vault:
            options = proxy.options_from_settings(vault.settings())
            if upstream is not None:
                options = replace(options, upstream=upstream.rstrip("/"))
            if capture is not None:
                options = replace(options, capture=capture)
            if budget is not None:
                options = replace(options, budget_tokens=budget)
            app = create_app(vault, options)
            bound_host, bound_port = sock.getsockname()[:2]
            if not is_loopback(host):
                output.err_console().print(
                    f"warning: listening on {host}: anyone who can reach this port and holds "
                    "a token can use the vault; tokens travel in clear without TLS",
                    style="yellow",
                )
            url = f"http://{bound_host}:{bound_port}"
            output.note(
                f"memsync serving on {url}: REST {url}/v1, MCP {url}/mcp, "
                f"proxy {url}/v1/chat/completions"
                + (f" -> {options.upstream}" if options.upstream else " (no upstream set)")
            )
            config = uvicorn.Config(app, log_level=logging.WARNING, access_log=False, lifespan="on")
            # uvicorn handles SIGINT and SIGTERM itself: it stops accepting, lets requests
            # in flight finish and runs the lifespan's shutdown. Then it raises the signal
            # again under the handler it found, so that handler must be a quiet one: the
            # `with` still has to close the vault, and a clean stop exits 0.
            quiet = {s: signal.signal(s, _ignore) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                uvicorn.Server(config).run(sockets=[sock])
            finally:
                for sig, handler in quiet.items():
                    signal.signal(sig, handler)
    finally:
        sock.close()
    output.note("memsync server stopped")
