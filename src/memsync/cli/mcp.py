"""`memsync mcp`: the MCP server over stdio, and `memsync mcp config` for the clients that
start it (Claude Desktop, Cursor, VS Code, Claude Code)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import click

from memsync.cli import unlock
from memsync.disclose.access import AppSession
from memsync.errors import NotFound, Unauthenticated, UsageError
from memsync.server import mcp_config
from memsync.store.apps import check_name
from memsync.store.files import default_home
from memsync.vault import Vault

APP_ENV = "MEMSYNC_APP"
_CLIENT_NAMES = {
    "claude-desktop": "Claude Desktop",
    "cursor": "Cursor",
    "vscode": "VS Code",
    "claude-code": "Claude Code",
}


def app_session(vault: Vault, name: str) -> AppSession:
    """The session of registered, active app `name`, or an error saying what to do."""
    name = check_name(name)
    app = {a.name: a for a in vault.apps()}.get(name)
    if app is None:
        raise NotFound(f"no app named {name!r}: register it with `memsync app add {name}`")
    if not app.active:
        raise Unauthenticated(
            f"app {name!r} has been revoked: register it again with `memsync app add {name}`"
        )
    return vault.as_app(app)


@click.group(invoke_without_command=True)
@click.option(
    "--app",
    "app_name",
    envvar=APP_ENV,
    metavar="NAME",
    help=f"The registered app to serve as (or ${APP_ENV}).",
)
@click.pass_context
def mcp(ctx: click.Context, app_name: str | None) -> None:
    """Serve the vault to an MCP client over stdio, as one registered app.

    The client starts this command itself (`memsync mcp config` writes its entry). It
    sees only what the app's scope allows, and every memory it is given is recorded
    (`memsync disclosures`). The vault must open without a prompt: run `memsync unlock
    --remember` once, or set $MEMSYNC_PASSPHRASE. Logs go to stderr; stdout is the
    protocol.

    Example: memsync mcp --app claude-desktop
    """
    if ctx.invoked_subcommand is not None:
        return
    if not app_name:
        raise UsageError(
            f"say which app to serve as: memsync mcp --app NAME (or ${APP_ENV}); "
            "register one with `memsync app add NAME`"
        )
    from memsync.server.mcp import serve_stdio  # the SDK loads only when serving

    with unlock.open_vault(prompt=False) as vault:
        session = app_session(vault, app_name)
        click.echo(f"memsync: serving MCP over stdio as app {session.name!r}", err=True)
        serve_stdio(session)


@mcp.command("config")
@click.option(
    "--client",
    "client",
    type=click.Choice(mcp_config.CLIENTS),
    required=True,
    help="The MCP client to configure.",
)
@click.option("--app", "app_name", metavar="NAME", help="The app to serve as [default: CLIENT].")
@click.option("--write", is_flag=True, help="Merge the entry into the client's config file.")
@click.option(
    "--path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The config file for --write [default: the client's usual one].",
)
def config(client: str, app_name: str | None, write: bool, path: Path | None) -> None:
    """Print the entry that makes an MCP client start memsync, or --write it.

    The entry runs this installation's `memsync mcp --app NAME` with $MEMSYNC_HOME set;
    it never holds your passphrase. --write adds it to the client's config file (Claude
    Desktop's claude_desktop_config.json, ~/.cursor/mcp.json, .vscode/mcp.json here,
    ~/.claude.json for Claude Code), keeping every other server and setting and a backup
    of the old file. A file that is not valid JSON is left untouched.

    Example: memsync mcp config --client claude-desktop --app claude-desktop --write
    """
    name = cast(mcp_config.ClientName, client)
    app = check_name(app_name or client)
    if path is not None and not write:
        raise UsageError("--path is where --write writes: add --write, or leave --path out")
    launch = mcp_config.launch_for(app, default_home())
    if write:
        written = mcp_config.merge_into(path or mcp_config.default_path(name), name, launch)
        what = "replaced the memsync server in" if written.replaced else "added memsync to"
        click.echo(f"{what} {written.path}")
        if written.backup is not None:
            click.echo(f"the old file is kept as {written.backup}")
    else:
        click.echo(json.dumps(mcp_config.snippet(name, launch), indent=2))
    _explain(name, app)


def _explain(client: mcp_config.ClientName, app: str) -> None:
    # On stderr, so the printed snippet stays clean for a pipe.
    who = _CLIENT_NAMES[client]
    for line in (
        f"{who} starts memsync without a terminal, so the vault must open without a "
        "passphrase: run `memsync unlock --remember` once (the passphrase is never put in "
        "a config file).",
        f"the app must be registered: `memsync app add {app}` (choose what it may read and write).",
        f"then restart {who} (or reload its MCP servers).",
    ):
        click.echo(f"note: {line}", err=True)
