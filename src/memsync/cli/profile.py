"""Understanding commands: profile (who the vault says you are) and why (where a memory
came from)."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from memsync import codec
from memsync.cli import output
from memsync.cli.options import json_option
from memsync.cli.unlock import open_vault
from memsync.errors import UsageError
from memsync.profile.build import Profile, profile_to_json
from memsync.profile.insights import InsightKind
from memsync.store.explain import Evidence, Explanation


@click.command()
@click.option("--rebuild", is_flag=True, help="Rewrite every section, not only changed ones.")
@click.option("--bio", "bio", help="Write the bio yourself; apps are shown it instead.")
@click.option("--derived-bio", is_flag=True, help="Go back to the bio written from memories.")
@json_option
def profile(rebuild: bool, bio: str | None, derived_bio: bool, as_json: bool) -> None:
    """Show your profile: a short bio, a summary per category, and insights.

    It is built from your active lasting (semantic) memories, offline by default or by
    the configured model (`memsync config profile.llm`), and only the parts whose
    memories changed are rewritten.

    Example: memsync profile --bio "Nurse in Porto, training for a marathon."
    """
    if bio is not None and derived_bio:
        raise UsageError("use --bio or --derived-bio, not both")
    with open_vault() as vault:
        if bio is not None or derived_bio:
            vault.set_bio(bio)
        built = vault.profile(rebuild=rebuild)
    if as_json:
        output.print_json(profile_to_json(built))
        return
    output.console().print(profile_view(built))


def profile_view(p: Profile) -> Group:
    if not p.memory_count:
        return Group(Text("no lasting memories yet: `memsync ingest` a conversation or export"))
    parts: list[Text | Table] = [Text(p.bio or "(no bio yet)", style="bold"), Text("")]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for section in p.sections:
        grid.add_row(section.category.value, Text(section.summary))
    parts.append(grid)
    labels = {
        InsightKind.LIKE: "likes",
        InsightKind.DISLIKE: "dislikes",
        InsightKind.RECURRING_TOPIC: "recurring topics",
    }
    lines = []
    for kind, label in labels.items():
        items = [i.text for i in p.insights if i.kind is kind]
        if items:
            lines.append(Text.assemble((f"{label}: ", "bold"), ", ".join(items)))
    if lines:
        parts += [Text(""), *lines]
    parts.append(
        Text(
            f"\nfrom {p.memory_count} memories, built {output.when(p.built_at)} by {p.builder}",
            style="dim",
        )
    )
    return Group(*parts)


def evidence_json(e: Evidence) -> dict[str, Any]:
    return {
        "source": e.source_id,
        "source_title": e.source_title,
        "source_kind": None if e.source_kind is None else e.source_kind.value,
        "source_created_at": codec.iso(e.source_created_at),
        "turn": e.provenance.turn,
        "role": e.role,
        "timestamp": codec.iso(e.timestamp),
        "start": e.provenance.start,
        "end": e.provenance.end,
        "quote": e.quote,
        "document_offset": e.offset,
        "heading": e.heading,
        "extractor": e.provenance.extractor,
        "extractor_version": e.provenance.extractor_version,
        "missing": e.missing,
    }


@click.command()
@click.argument("memory_id")
@json_option
def why(memory_id: str, as_json: bool) -> None:
    """Show where a memory came from: the messages or document passages, with dates,
    and every version of it.

    Example: memsync why m-3k9x
    """
    with open_vault() as vault:
        explanation = vault.why(memory_id)
    if as_json:
        output.print_json(
            {
                "memory": codec.memory_to_json(explanation.memory),
                "history": [codec.memory_to_json(m) for m in explanation.history],
                "evidence": [evidence_json(e) for e in explanation.evidence],
            }
        )
        return
    output.console().print(why_view(explanation))


def _evidence_view(e: Evidence) -> Text:
    p = e.provenance
    by = f"{p.extractor} v{p.extractor_version}"
    if e.source_id is None:
        return Text(f"• entered by hand ({by})")
    if e.missing:
        return Text(f"• source {e.source_id} (no longer in this vault) ({by})")
    title = f"“{e.source_title}”" if e.source_title else "(untitled)"
    kind = e.source_kind.value if e.source_kind else "source"
    head = f"• {kind} {e.source_id} {title}, {output.day(e.source_created_at)}"
    if p.turn is not None:
        head += f", {'chunk' if e.offset is not None else 'turn'} {p.turn}"
        if e.role and e.role != "document":
            head += f" ({e.role}"
            head += f", {output.when(e.timestamp)})" if e.timestamp else ")"
    if e.offset is not None:
        head += f", characters {e.offset}-{e.offset + len(e.quote)}"
        if e.heading:
            head += f" under “{e.heading}”"
    text = Text(f"{head} ({by})\n")
    if e.quote:
        before = ("…" if len(e.before) >= 80 else "") + " ".join(e.before.split())
        after = " ".join(e.after.split()) + ("…" if len(e.after) >= 80 else "")
        text.append("    ")
        text.append(before + (" " if before else ""), style="dim")
        text.append(" ".join(e.quote.split()), style="bold")
        text.append((" " if after else "") + after, style="dim")
    return text


def why_view(x: Explanation) -> Group:
    m = x.memory
    parts: list[Text | Group] = [
        Text.assemble(
            (m.id, "bold"),
            f"  {m.kind.value}  {m.category or '—'}  {m.status.value}  ",
            output.memory_text(m),
        ),
        Text(f"\nsaid in ({len(x.evidence)}):", style="bold"),
        *(_evidence_view(e) for e in x.evidence),
    ]
    if len(x.history) > 1:
        parts.append(Text(f"\nhistory ({len(x.history)} versions, oldest first):", style="bold"))
        for v in x.history:
            mark = "▶" if v.id == m.id else " "
            parts.append(
                Text.assemble(
                    f"{mark} {v.id}  {v.status.value:<11}  {output.day(v.updated_at)}  ",
                    output.memory_text(v),
                )
            )
    return Group(*parts)
