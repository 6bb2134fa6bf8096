"""Conversation commands: ingest, sources, source."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from memsync import codec
from memsync.cli import output
from memsync.cli.options import json_option
from memsync.cli.unlock import open_vault
from memsync.ingest.messages import read_conversation


@click.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--title", help="A title for the conversation (default: its own, or the file name).")
@json_option
def ingest(file: Path, title: str | None, as_json: bool) -> None:
    """Store a conversation file as a source whose turns are searchable.

    FILE is JSON or JSON Lines: a list of OpenAI-style messages (role, content, and
    optionally timestamp and name), or an object with "messages" and "title".

    Ingesting the same conversation again adds nothing.

    Example: memsync ingest chat.json --title "Trip planning"
    """
    conversation = read_conversation(file)  # a malformed file fails before any unlock
    with open_vault() as vault, output.progress_bar("embedding turns") as progress:
        result = vault.ingest(
            conversation.messages, title=title or conversation.title or file.stem, progress=progress
        )
    src = result.source
    if as_json:
        output.print_json({"source": output.source_summary_json(src), "added": result.added})
        return
    if result.added:
        click.echo(f"{src.id}: ingested {len(src.messages)} messages")
    else:
        click.echo(f"{src.id}: already ingested ({len(src.messages)} messages); nothing added")


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
