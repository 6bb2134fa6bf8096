"""Whole-vault commands: info, check, export, import."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from memsync.cli import output
from memsync.cli.options import json_option
from memsync.cli.unlock import open_vault
from memsync.errors import IntegrityError
from memsync.export import export_to_path, import_from_path


@click.command()
@json_option
def info(as_json: bool) -> None:
    """Show where the vault is, its ids, embedder and counts.

    Example: memsync info
    """
    with open_vault() as vault:
        details = vault.info()
    if as_json:
        output.print_json(asdict(details))
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in asdict(details).items():
        grid.add_row(key.replace("_", " "), Text(str(value)))
    output.console().print(grid)


@click.command()
@json_option
def check(as_json: bool) -> None:
    """Verify the signed log and rebuild the state from it.

    Checks every signature and hash chain, replays the log into a fresh state and compares.

    Exits with status 5 when anything is wrong.

    Example: memsync check
    """
    with open_vault() as vault, output.progress_bar("replaying the log") as progress:
        report = vault.check(progress)
    problems = [{"where": p.where, "what": p.what} for p in report.problems]
    if as_json:
        output.print_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "devices": report.devices,
                "problems": problems,
                "state_digest": report.state_digest,
                "rebuilt_digest": report.rebuilt_digest,
            }
        )
    else:
        click.echo(f"log entries: {report.entries}")
        click.echo(f"devices: {report.devices}")
        for p in report.problems:
            click.echo(f"problem: {p.where}: {p.what}")
        if report.ok:
            click.echo("ok: signatures, hash chains and the rebuilt state all check out")
    if not report.ok:
        n = len(report.problems) or 1
        raise IntegrityError(f"check failed: {n} problem{'s' if n != 1 else ''} found")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@json_option
def export(path: Path, force: bool, as_json: bool) -> None:
    """Export memories and sources to PATH as PLAINTEXT JSON Lines.

    Forgotten memories are left out. `memsync import` reads the file back.

    Example: memsync export backup.jsonl
    """
    with open_vault() as vault:
        n_sources, n_memories = export_to_path(vault, path, overwrite=force)
    # Said once the file exists, so a refused or failed export prints only its error.
    output.note(
        f"warning: {path} holds your memories in PLAINTEXT, readable by anyone who "
        "can read that file; delete it when you no longer need it"
    )
    if as_json:
        output.print_json({"path": str(path), "sources": n_sources, "memories": n_memories})
    else:
        click.echo(f"exported {n_sources} sources and {n_memories} memories to {path}")


@click.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def import_(path: Path, as_json: bool) -> None:
    """Import a file written by `memsync export`. Records already here are skipped.

    Example: memsync import backup.jsonl
    """
    with open_vault() as vault, output.progress_bar("importing") as progress:
        report = import_from_path(vault, path, progress=progress)
    if as_json:
        output.print_json(asdict(report))
        return
    click.echo(f"sources: {report.sources_added} added, {report.sources_skipped} already here")
    click.echo(f"memories: {report.memories_added} added, {report.memories_skipped} already here")
