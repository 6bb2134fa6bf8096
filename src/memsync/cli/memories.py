"""Memory commands: add, list, show, edit, rm, search, context."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import click

from memsync import codec
from memsync.cli import apps, output, unlock
from memsync.cli.editor import edit_in_editor
from memsync.cli.options import (
    CATEGORIES,
    KINDS,
    TIME,
    filter_options,
    json_option,
)
from memsync.cli.unlock import open_vault
from memsync.errors import UsageError
from memsync.model import Category, Kind, SearchFilters, Status
from memsync.retrieve.context import MIN_BUDGET


@click.command()
@click.argument("text")
@click.option(
    "--kind",
    type=KINDS,
    default="semantic",
    show_default=True,
    help="semantic: a lasting fact or preference; episodic: an event or plan.",
)
@click.option("--category", type=CATEGORIES, help="One of the ten categories.")
@click.option("--tag", "tags", multiple=True, help="A free tag (repeatable).")
@click.option("--valid-from", type=TIME, help="When it starts being true.")
@click.option("--valid-until", type=TIME, help="When it stops being true.")
@click.option("--confidence", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True)
@json_option
def add(
    text: str,
    kind: str,
    category: str | None,
    tags: tuple[str, ...],
    valid_from: datetime | None,
    valid_until: datetime | None,
    confidence: float,
    as_json: bool,
) -> None:
    """Add a memory and print its id.

    Example: memsync add "Flying to Lisbon on 12 March" --kind episodic --category travel
    --valid-until 2027-03-13 --tag trip
    """
    with open_vault() as vault:
        memory = vault.add(
            text,
            kind=Kind(kind),
            category=None if category is None else Category(category),
            tags=tags,
            valid_from=valid_from,
            valid_until=valid_until,
            confidence=confidence,
        )
    if as_json:
        output.print_json(codec.memory_to_json(memory))
    else:
        click.echo(memory.id)


@click.command("list")
@filter_options
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@json_option
def list_memories(filters: SearchFilters, limit: int, offset: int, as_json: bool) -> None:
    """List memories, newest first, one page at a time.

    Example: memsync list --category travel --status all --limit 50
    """
    with open_vault() as vault:
        page = vault.list(filters, limit=limit, offset=offset)
    if as_json:
        output.print_json(
            {
                "items": [codec.memory_to_json(m) for m in page.items],
                "total": page.total,
                "offset": page.offset,
                "limit": page.limit,
            }
        )
        return
    if not page.items:
        click.echo(
            "no memories match"
            if page.total == 0
            else f"no memories on this page (total {page.total})"
        )
        return
    con = output.console()
    con.print(output.memory_table(page.items, show_status=filters.statuses != (Status.ACTIVE,)))
    first = page.offset + 1
    con.print(f"showing {first}-{page.offset + len(page.items)} of {page.total}", style="dim")


@click.command()
@click.argument("memory_id")
@json_option
def show(memory_id: str, as_json: bool) -> None:
    """Show a memory: every field, its provenance, its history and which apps have seen
    it (any version of it).

    Example: memsync show m-3k9x
    """
    with open_vault() as vault:
        memory = vault.get(memory_id)
        history = vault.history(memory.id)
        found = {d.id: d for m in history for d in vault.disclosures(memory_id=m.id)}
        seen = sorted(found.values(), key=lambda d: d.at, reverse=True)
    if as_json:
        output.print_json(
            {
                "memory": codec.memory_to_json(memory),
                "history": [codec.memory_to_json(m) for m in history],
                "seen_by": [apps.disclosure_json(d) for d in seen],
            }
        )
        return
    con = output.console()
    con.print(output.memory_detail(memory, history))
    if not seen:
        con.print("\nno app has been given this memory", style="dim")
        return
    who = sorted({d.app for d in seen})
    con.print(f"\nseen by {len(who)} app(s): {', '.join(who)}", style="bold")
    con.print(apps.disclosure_table(seen, show_items=False))


@click.command()
@click.argument("memory_id")
@click.option("--text", help="The new text (without it, opens $EDITOR in a terminal).")
@click.option("--kind", type=KINDS)
@click.option("--category", type=CATEGORIES)
@click.option("--tag", "tags", multiple=True, help="Replace the tags (repeatable).")
@click.option("--valid-until", type=TIME)
@json_option
def edit(
    memory_id: str,
    text: str | None,
    kind: str | None,
    category: str | None,
    tags: tuple[str, ...],
    valid_until: datetime | None,
    as_json: bool,
) -> None:
    """Change a memory; the old version is kept as superseded.

    Prints the new id. Without --text or other options, opens $EDITOR in a terminal.

    Example: memsync edit m-3k9x --text "Prefers short answers; bullet points are fine"
    """
    with open_vault() as vault:
        old = vault.get(memory_id)
        nothing_else = kind is None and category is None and not tags and valid_until is None
        if text is None and nothing_else:
            if not unlock.is_interactive():
                raise UsageError("nothing to change: pass --text or another option")
            if old.status is not Status.ACTIVE:  # say so before opening an editor
                raise UsageError(
                    f"memory {old.id} is {old.status.value}; only active ones can be edited"
                )
            text = edit_in_editor(old.text)
            if text is None:
                raise UsageError("nothing to change: the text was left as it was")
        new = vault.edit(
            old.id,
            text=text,
            kind=None if kind is None else Kind(kind),
            category=None if category is None else Category(category),
            tags=tags or None,
            valid_until=valid_until,
        )
    if as_json:
        output.print_json(codec.memory_to_json(new))
        return
    click.echo(new.id)
    output.note(f"{old.id} is superseded by {new.id}; `memsync show {new.id}` shows the history")


@click.command()
@click.argument("memory_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def rm(memory_id: str, yes: bool) -> None:
    """Forget a memory for good (as `memsync forget ID`): its keys are destroyed on
    every device and remote, so no copy of it can be read again.

    Example: memsync rm m-3k9x --yes
    """
    with open_vault() as vault:
        memory = vault.get(memory_id)
        if not yes and unlock.is_interactive() and memory.status is not Status.FORGOTTEN:
            click.echo(f"{memory.id}: {output.clip(memory.text, 70)}", err=True)
            click.confirm("Forget this memory for good?", abort=True, err=True)
        vault.forget(memory.id)
    click.echo(f"forgotten {memory.id}")


@click.command()
@click.argument("query")
@click.option(
    "-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many results."
)
@filter_options
@click.option("--memories-only", is_flag=True, help="Leave conversation turns out.")
@json_option
def search(
    query: str,
    k: int,
    filters: SearchFilters,
    memories_only: bool,
    as_json: bool,
) -> None:
    """Search memories and conversation turns by meaning and by keyword.

    Example: memsync search "food allergies" -k 5 --category health
    """
    filters = replace(filters, include_turns=not memories_only)
    with open_vault() as vault:
        hits = vault.search(query, k=k, filters=filters)
    if as_json:
        output.print_json([output.hit_json(rank, h) for rank, h in enumerate(hits, start=1)])
        return
    if not hits:
        click.echo("no results")
        return
    output.console().print(output.hits_table(hits))


@click.command()
@click.argument("query")
@click.option(
    "--budget",
    type=int,
    default=1000,
    show_default=True,
    help=f"Most tokens the block may take (at least {MIN_BUDGET}).",
)
@filter_options
@click.option("--memories-only", is_flag=True, help="Leave conversation turns out.")
@json_option
def context(
    query: str, budget: int, filters: SearchFilters, memories_only: bool, as_json: bool
) -> None:
    """Print the best memories and turns for QUERY as one block for a model's prompt.

    The block fits in --budget tokens (estimated the same way everywhere), best first;
    --json also lists which memories and turns went in.

    Example: memsync context "plan a dinner for Friday" --budget 300 > context.txt
    """
    filters = replace(filters, include_turns=not memories_only)
    with open_vault() as vault:
        block = vault.context(query, budget_tokens=budget, filters=filters)
    if as_json:
        output.print_json(output.context_json(block))
        return
    if not block.items:
        output.note("nothing in the vault matches")
        return
    click.echo(block.text)
