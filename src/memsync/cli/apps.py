"""`memsync app add|list|revoke` and `memsync disclosures`: who may use the vault, and
what each app was given."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.table import Table

from memsync import codec
from memsync.cli import output
from memsync.cli.options import TIME, json_option
from memsync.cli.unlock import open_vault
from memsync.scope import App, Scope, parse_categories, parse_kinds
from memsync.store.apps import DEFAULT_RATE
from memsync.store.ledger import Disclosure


def app_json(app: App) -> dict[str, Any]:
    return {
        "name": app.name,
        "scope": app.scope.to_json(),
        "rate_per_minute": app.rate_per_minute,
        "created_at": codec.iso(app.created_at),
        "revoked_at": codec.iso(app.revoked_at),
    }


def disclosure_json(d: Disclosure) -> dict[str, Any]:
    return {
        "id": d.id,
        "app": d.app,
        "at": codec.iso(d.at),
        "action": d.action,
        "query": d.query,
        "items": [
            {"memory": i.memory_id}
            if i.memory_id is not None
            else {"source": i.source_id, "turn": i.turn}
            for i in d.items
        ],
    }


def disclosure_table(found: list[Disclosure], *, show_items: bool = True) -> Table:
    table = Table(box=None, pad_edge=False)
    for col in ("when", "app", "action", "query", *(["given"] if show_items else [])):
        table.add_column(col, overflow="fold", ratio=1 if col in ("query", "given") else None)
    for d in found:
        row = [output.when(d.at), d.app, d.action, d.query or "—"]
        if show_items:
            given = [i.memory_id or f"{i.source_id}#{i.turn}" for i in d.items]
            row.append(", ".join(given[:6]) + (f" (+{len(given) - 6})" if len(given) > 6 else ""))
        table.add_row(*row)
    return table


@click.group()
def app() -> None:
    """Register the apps that may use the vault, and what each may read and write.

    Each app gets a token for `memsync serve` (REST, MCP over HTTP, the proxy) and a
    scope; the `private` category is readable only when named. Every memory an app is
    given is recorded: see `memsync disclosures`.

    Example: memsync app add cursor --read career,learning --write career
    """


@app.command("add")
@click.argument("name")
@click.option(
    "--read",
    default="all",
    show_default=True,
    help="Categories it may read: all (every one but private), none, or names with commas; "
    "private only by name (all,private).",
)
@click.option("--write", default="all", show_default=True, help="Categories it may write.")
@click.option("--kinds", default="all", show_default=True, help="semantic, episodic or all.")
@click.option(
    "--conversations",
    is_flag=True,
    help="Also let it read excerpts of stored conversations (they carry no category).",
)
@click.option(
    "--rate",
    type=click.IntRange(min=0),
    default=DEFAULT_RATE,
    show_default=True,
    help="Requests per minute it may make (0: no limit).",
)
@json_option
def add_app(
    name: str, read: str, write: str, kinds: str, conversations: bool, rate: int, as_json: bool
) -> None:
    """Register an app and print its token (shown this once; only its hash is kept).

    Example: memsync app add claude-desktop --read all --write career,interests
    """
    scope = Scope(
        read=parse_categories(read),
        write=parse_categories(write),
        kinds=parse_kinds(kinds),
        conversations=conversations,
    )
    with open_vault() as vault:
        made, token = vault.add_app(name, scope, rate_per_minute=rate)
    if as_json:
        output.print_json({**app_json(made), "token": token})
        return
    click.echo(token)
    output.note(f"app {made.name} registered: {made.scope.describe()}")
    output.note("the token is shown only now; keep it in the app's settings")


@app.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked apps.")
@json_option
def list_apps(show_all: bool, as_json: bool) -> None:
    """List registered apps with their scopes and limits.

    Example: memsync app list --all
    """
    with open_vault() as vault:
        found = [a for a in vault.apps() if show_all or a.active]
    if as_json:
        output.print_json([app_json(a) for a in found])
        return
    if not found:
        output.note("no apps registered (add one with `memsync app add NAME`)")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("name", "scope", "rate/min", "added", "revoked"):
        table.add_column(col, overflow="fold", ratio=1 if col == "scope" else None)
    for a in found:
        table.add_row(
            a.name,
            a.scope.describe(),
            str(a.rate_per_minute or "no limit"),
            output.day(a.created_at),
            output.day(a.revoked_at) or "—",
        )
    output.console().print(table)


@app.command("revoke")
@click.argument("name")
def revoke_app(name: str) -> None:
    """Revoke an app's token at once. What it was given stays in the ledger.

    Example: memsync app revoke cursor
    """
    with open_vault() as vault:
        gone = vault.revoke_app(name)
    output.note(f"app {gone.name} revoked")


@click.command()
@click.option("--app", "app_name", help="Only what this app was given.")
@click.option("--since", type=TIME, help="Only from this time on (ISO 8601, UTC).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
def disclosures(app_name: str | None, since: datetime | None, limit: int, as_json: bool) -> None:
    """Show what apps were given from the vault: when, for which query, which memories.

    Example: memsync disclosures --app cursor --since 2026-11-01
    """
    with open_vault() as vault:
        found = vault.disclosures(app=app_name, since=since, limit=limit)
    if as_json:
        output.print_json([disclosure_json(d) for d in found])
        return
    if not found:
        output.note("nothing has been disclosed" + (f" to {app_name}" if app_name else ""))
        return
    output.console().print(disclosure_table(found))
