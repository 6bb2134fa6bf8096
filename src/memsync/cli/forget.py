"""`memsync forget`: forget for good, by id, by source, by query, by app or by age."""

from __future__ import annotations

import click

from memsync.cli import output, unlock
from memsync.cli.options import json_option
from memsync.cli.unlock import open_vault
from memsync.errors import UsageError
from memsync.model import Memory, SearchFilters, SearchMode, Source, Status


@click.command("forget")
@click.argument("memory_ids", nargs=-1)
@click.option("--source", "source_ids", multiple=True, help="A conversation or document.")
@click.option("--query", help="Every memory whose words match (shown first; confirm).")
@click.option("--app", help="Everything this app wrote or ingested.")
@click.option(
    "--older-than",
    type=click.IntRange(1),
    metavar="DAYS",
    help="Episodic memories that ended more than DAYS days ago.",
)
@click.option("--dry-run", is_flag=True, help="Only show what would be forgotten.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
def forget_command(
    memory_ids: tuple[str, ...],
    source_ids: tuple[str, ...],
    query: str | None,
    app: str | None,
    older_than: int | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Forget memories for good: their keys are destroyed on every device and remote, so
    no copy anywhere (a backup, a versioned bucket, the chain) can be read again.

    A source goes with every memory drawn only from it. Several ways can be combined.

    Example: memsync forget --query "old address" --dry-run
    """
    if not (memory_ids or source_ids or query or app or older_than):
        raise UsageError("say what to forget: IDs, --source, --query, --app or --older-than")
    with open_vault() as vault:
        memories: dict[str, Memory] = {}
        sources: dict[str, Source] = {}
        for memory_id in memory_ids:
            m = vault.get(memory_id)
            memories[m.id] = m
        for source_id in source_ids:
            s = vault.get_source(source_id)
            sources[s.id] = s
        if query:
            filters = SearchFilters(statuses=(Status.ACTIVE, Status.INVALIDATED))
            for hit in vault.search(query, k=1000, filters=filters, mode=SearchMode.KEYWORD):
                if hit.memory is not None:
                    memories[hit.memory.id] = hit.memory
        if app:
            by_app, from_app = vault.forgetting.written_by(app)
            memories.update({m: vault.get(m) for m in by_app})
            sources.update({s: vault.get_source(s) for s in from_app})
        if older_than:
            memories.update({m: vault.get(m) for m in vault.forgetting.expired(older_than)})
        live = {i: m for i, m in memories.items() if m.status is not Status.FORGOTTEN}
        if as_json and dry_run:
            output.print_json({"memories": list(live), "sources": list(sources)})
            return
        for m in live.values():
            click.echo(f"{m.id}  {output.clip(m.text, 70)}", err=True)
        for s in sources.values():
            click.echo(f"{s.id}  {output.clip(s.title or '(untitled)', 70)} (source)", err=True)
        if not live and not sources:
            click.echo("nothing to forget", err=True)
            return
        if dry_run:
            click.echo(f"would forget {len(live)} memories and {len(sources)} sources", err=True)
            return
        bulk = bool(query or app or older_than) or len(live) + len(sources) > 1
        if not yes:
            if not unlock.is_interactive():
                if bulk:
                    raise UsageError("forgetting several things needs --yes without a terminal")
            else:
                click.confirm("Forget these for good?", abort=True, err=True)
        drawn = 0
        for source_id in sources:
            drawn += vault.forget_source(source_id)[0]
        left = [i for i, m in live.items() if vault.get(i).status is not Status.FORGOTTEN]
        if left:
            vault.forget(*left)
    if as_json:
        output.print_json({"memories": left, "sources": list(sources), "drawn": drawn})
        return
    click.echo(f"forgotten {len(left) + drawn} memories and {len(sources)} sources")
