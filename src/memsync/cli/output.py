"""How the CLI shows things: JSON for machines, rich tables for people.

User content (memory text, titles, tags) is always passed to rich as `Text`, never as
markup, so a memory reading "[bold]" or ":smile:" is printed as typed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from rich import box
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from memsync import codec
from memsync.model import Memory, Provenance, SearchHit, Source, Status, Turn
from memsync.retrieve.context import Context

ProgressFn = Callable[[int, int], None]


def console() -> Console:
    """A console on stdout (looked up now, so click's test runner captures it)."""
    return Console(highlight=False, emoji=False, markup=True)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, emoji=False)


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def note(message: str) -> None:
    """A remark for the person at the terminal, on stderr so stdout stays scriptable."""
    click.echo(message, err=True)


def day(dt: datetime | None) -> str:
    """A UTC date, e.g. 2026-03-12 (every time the CLI shows or accepts is UTC)."""
    return "" if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%d")


def when(dt: datetime | None) -> str:
    return "" if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def clip(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def memory_text(m: Memory, width: int | None = None) -> Text:
    if m.status is Status.FORGOTTEN:
        return Text("(forgotten: the text was erased)", style="dim italic")
    return Text(m.text if width is None else clip(m.text, width))


# JSON shapes.


def turn_json(t: Turn) -> dict[str, Any]:
    return {
        "source_id": t.source_id,
        "source_title": t.source_title,
        "index": t.index,
        "role": t.role,
        "text": t.text,
        "timestamp": codec.iso(t.timestamp),
    }


def hit_json(rank: int, hit: SearchHit) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rank": rank,
        "score": hit.score,
        "type": "memory" if hit.memory is not None else "turn",
        "keyword_rank": hit.keyword_rank,
        "vector_rank": hit.vector_rank,
    }
    if hit.memory is not None:
        out["memory"] = codec.memory_to_json(hit.memory)
    if hit.turn is not None:
        out["turn"] = turn_json(hit.turn)
    return out


def context_json(block: Context) -> dict[str, Any]:
    """The block and, per line, the memory (id) or turn (source id and index) it shows."""
    items: list[dict[str, Any]] = []
    for item in block.items:
        out: dict[str, Any] = {}
        if item.memory is not None:
            out = {"type": "memory", "id": item.memory.id}
        if item.turn is not None:
            out = {"type": "turn", "source_id": item.turn.source_id, "index": item.turn.index}
        items.append({**out, "text": item.text, "tokens": item.tokens})
    return {
        "text": block.text,
        "tokens": block.tokens,
        "budget_tokens": block.budget_tokens,
        "items": items,
    }


def source_summary_json(s: Source) -> dict[str, Any]:
    full = codec.source_to_json(s)
    del full["messages"]
    full["message_count"] = len(s.messages)
    return full


# Tables.


def memory_table(items: tuple[Memory, ...] | list[Memory], *, show_status: bool = False) -> Table:
    """One row per memory: id, kind, category, (status,) observed date, text and #tags."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("kind", no_wrap=True)
    table.add_column("category", no_wrap=True)
    if show_status:
        table.add_column("status", no_wrap=True)
    table.add_column("observed", no_wrap=True)
    table.add_column("text  #tags", ratio=1, min_width=24)
    for m in items:
        row: list[Text | str] = [m.id, m.kind.value, m.category or ""]
        if show_status:
            row.append(m.status.value)
        text = memory_text(m, 120)
        if m.tags:
            text.append("  " + " ".join("#" + t for t in m.tags), style="magenta")
        table.add_row(*row, day(m.observed_at), text)
    return table


def _turn_origin(t: Turn) -> Text:
    title = f"“{t.source_title}”" if t.source_title else t.source_id
    return Text(f"from conversation {title}, turn {t.index} ({t.role})", style="dim")


def hits_table(hits: list[SearchHit]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("date", no_wrap=True)
    table.add_column("text", ratio=1)
    for rank, hit in enumerate(hits, start=1):
        if hit.memory is not None:
            m = hit.memory
            table.add_row(
                str(rank),
                f"{hit.score:.4f}",
                "memory",
                m.id,
                day(m.observed_at),
                Text(clip(m.text, 160)),
            )
        elif hit.turn is not None:
            t = hit.turn
            text = Text(clip(t.text, 160))
            text.append("\n")
            text.append_text(_turn_origin(t))
            table.add_row(
                str(rank),
                f"{hit.score:.4f}",
                "turn",
                f"{t.source_id}#{t.index}",
                day(t.timestamp),
                text,
            )
    return table


def provenance_line(p: Provenance) -> str:
    where = "entered by hand" if p.source_id is None else f"source {p.source_id}"
    if p.turn is not None:
        where += f", turn {p.turn}"
    if p.start is not None or p.end is not None:
        where += f", characters {p.start}-{p.end}"
    return f"{where} (extractor {p.extractor} v{p.extractor_version})"


def memory_detail(m: Memory, history: list[Memory]) -> Group:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    fields: list[tuple[str, Text | str]] = [
        ("id", m.id),
        ("text", memory_text(m)),
        ("kind", m.kind.value),
        ("category", m.category or "—"),
        ("tags", Text(", ".join(m.tags) or "—")),
        ("status", m.status.value),
        ("observed", when(m.observed_at)),
        ("valid from", when(m.valid_from) or "—"),
        ("valid until", when(m.valid_until) or "—"),
        ("created", when(m.created_at)),
        ("updated", when(m.updated_at)),
        ("confidence", f"{m.confidence:g}"),
    ]
    if m.supersedes:
        fields.append(("supersedes", m.supersedes))
    if m.superseded_by:
        fields.append(("superseded by", m.superseded_by))
    for i, p in enumerate(m.provenance):
        fields.append(("provenance" if i == 0 else "", provenance_line(p)))
    for key, value in fields:
        grid.add_row(key, value)
    parts: list[Table | Text] = [grid]
    if len(history) > 1:
        parts.append(Text(f"\nhistory ({len(history)} versions, oldest first):", style="bold"))
        chain = Table(box=None, show_header=False, pad_edge=False)
        for col in ("mark", "id", "status", "updated", "text"):
            chain.add_column(col, no_wrap=col != "text", ratio=1 if col == "text" else None)
        for v in history:
            mark = "▶" if v.id == m.id else " "
            label = v.status.value + (" (current)" if v.status is Status.ACTIVE else "")
            chain.add_row(mark, v.id, label, day(v.updated_at), memory_text(v))
        parts.append(chain)
    return Group(*parts)


def source_table(sources: list[Source]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("kind", no_wrap=True)
    table.add_column("date", no_wrap=True)
    table.add_column("messages", justify="right", no_wrap=True)
    table.add_column("title", ratio=1)
    for s in sources:
        table.add_row(
            s.id, s.kind.value, day(s.created_at), str(len(s.messages)), Text(s.title or "")
        )
    return table


def turns_table(s: Source) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("turn", justify="right", no_wrap=True)
    table.add_column("role", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("text", ratio=1)
    for i, msg in enumerate(s.messages):
        role = msg.role + (f" ({msg.name})" if msg.name else "")
        table.add_row(str(i), Text(role), when(msg.timestamp), Text(msg.content))
    return table


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressFn]:
    """A `(done, total)` callback drawing a bar on stderr, only when stderr is a terminal."""
    err = err_console()
    if not err.is_terminal:
        yield lambda done, total: None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
