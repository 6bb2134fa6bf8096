"""Source commands: sources, source."""

from __future__ import annotations

import click
from rich.text import Text

from memsync import codec
from memsync.cli import output
from memsync.cli.options import json_option
from memsync.cli.unlock import open_vault


@click.command("sources")
@json_option
def list_sources(as_json: bool) -> None:
    """List the conversations and documents in the vault.

    Example: memsync sources --json
    """
    with open_vault() as vault:
        sources = vault.sources()
    if as_json:
        output.print_json([output.source_summary_json(s) for s in sources])
    elif not sources:
        click.echo("no sources yet (add one with `memsync ingest FILE`)")
    else:
        output.console().print(output.source_table(sources))


@click.command()
@click.argument("source_id")
@json_option
def source(source_id: str, as_json: bool) -> None:
    """Show a source and its numbered turns.

    Turns are numbered from 0, as search results (`s-…#3`) number them.

    Example: memsync source s-7hq2
    """
    with open_vault() as vault:
        src = vault.get_source(source_id)
    if as_json:
        output.print_json(codec.source_to_json(src))
        return
    con = output.console()
    title = f"“{src.title}”" if src.title else "(untitled)"
    con.print(
        Text(
            f"{src.id}  {src.kind.value}  {title}  {output.when(src.created_at)}  "
            f"{len(src.messages)} messages"
        )
    )
    con.print(output.turns_table(src))
