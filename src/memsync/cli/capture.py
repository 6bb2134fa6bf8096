"""Capture commands: ingest (any supported file) and config (extractor and LLM settings)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from memsync import config
from memsync.capture import Format, ImportBatch, read_any
from memsync.capture.flow import IngestReport
from memsync.cli import output
from memsync.cli.options import json_option
from memsync.cli.unlock import open_vault, vault_paths
from memsync.errors import UnknownFormat, UsageError
from memsync.reconcile.decision import Decision
from memsync.reconcile.session import Outcome

# What a directory argument picks up; other files in it are left alone.
_DIRECTORY_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".pdf", ".json", ".jsonl", ".zip"}


def _read_all(paths: tuple[Path, ...]) -> list[tuple[Path, ImportBatch]]:
    """Every file read and validated. A file named on the command line must be
    importable; in a directory, files of no known format are skipped with a note (the
    vault's own directory and hidden files are never read)."""
    vault_home = vault_paths().home.resolve()
    batches: list[tuple[Path, ImportBatch]] = []
    for path in paths:
        if not path.is_dir():
            batches.append((path, _titled(read_any(path), path)))
            continue
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in _DIRECTORY_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
            and not p.resolve().is_relative_to(vault_home)
        )
        before = len(batches)
        for p in found:
            try:
                batches.append((p, _titled(read_any(p), p)))
            except UnknownFormat as exc:
                output.note(f"skipped {exc}")
        if len(batches) == before:
            raise UsageError(f"{path}: no files memsync can import in this directory")
    return batches


def report_json(path: Path, batch: ImportBatch, report: IngestReport) -> dict[str, Any]:
    return {
        "file": str(path),
        "format": None if batch.format is None else batch.format.value,
        "conversations": report.conversations,
        "documents": report.documents,
        "unchanged_sources": report.unchanged_sources,
        "messages": report.messages,
        "memories": {
            "added": report.memories_added,
            "updated": report.memories_updated,
            "unchanged": report.memories_unchanged,
            **{d.value: report.count(d) for d in Decision},
        },
        "sources": list(report.sources),
        "outcomes": [
            {
                "decision": o.decision.value,
                "memory": o.memory_id,
                "target": o.target_id,
                "text": o.text,
                "reason": o.reason,
            }
            for o in report.outcomes
        ],
    }


def _summary(path: Path, batch: ImportBatch, report: IngestReport) -> str:
    fmt = batch.format.value if batch.format else "file"
    parts = []
    if batch.conversations:
        parts.append(f"{report.conversations} conversations, {report.messages} messages")
    if batch.documents:
        parts.append(f"{report.documents} documents")
    if batch.memories:
        parts.append(f"{len(batch.memories)} {fmt} memories read")
    if report.unchanged_sources:
        parts.append(f"{report.unchanged_sources} already in the vault")
    memories = (
        f"memories: {report.memories_added} added, {report.memories_updated} updated, "
        f"{report.memories_unchanged} unchanged"
    )
    extra = [
        f"{report.count(d)} {label}"
        for d, label in (
            (Decision.INVALIDATE, "replaced older ones"),
            (Decision.PROMOTE, "promoted"),
        )
        if report.count(d)
    ]
    if extra:
        memories += f" ({', '.join(extra)})"
    return f"{path} ({fmt}): {'; '.join(parts) or 'nothing to import'}; {memories}"


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--no-extract", is_flag=True, help="Store the sources only; make no memories.")
@click.option("--title", help="A title for a single conversation or document.")
@click.option("-v", "--verbose", is_flag=True, help="List every memory decision.")
@json_option
def ingest(
    paths: tuple[Path, ...], no_extract: bool, title: str | None, verbose: bool, as_json: bool
) -> None:
    """Import conversations, documents or another tool's memories, and make memories.

    Each PATH is a ChatGPT or Claude.ai data export (the zip or its conversations.json),
    OpenAI-style messages (JSON or JSON Lines), a mem0 export, or a Markdown, text or PDF
    document; the format is recognised from the content. A directory imports every such
    file in it. Every file is read and checked completely before anything is written.

    What the user says becomes memories (with the extractor chosen by `memsync config
    extractor`), reconciled with the vault: duplicates add nothing, changed facts replace
    old ones, history is kept. Importing the same file again adds nothing; an
    interrupted import resumes where it stopped.

    Example: memsync ingest ~/Downloads/chatgpt-export.zip notes/
    """
    batches = _read_all(paths)  # before the vault is unlocked: a bad file writes nothing
    if title is not None:
        if len(batches) != 1:
            raise UsageError("--title needs exactly one file")
        f, b = batches[0]
        if len(b.conversations) + len(b.documents) != 1:
            raise UsageError("--title needs a file with exactly one conversation or document")
        batches = [(f, _retitled(b, title))]
    results = []
    with open_vault() as vault:
        for path, batch in batches:
            with output.progress_bar(f"importing {path.name}") as progress:
                report = vault.ingest_batch(batch, extract=not no_extract, progress=progress)
            results.append((path, batch, report))
            if not as_json:
                click.echo(_summary(path, batch, report))
                if verbose:
                    output.console().print(decisions_table(report.outcomes))
    if as_json:
        output.print_json([report_json(p, b, r) for p, b, r in results])


def _titled(batch: ImportBatch, path: Path) -> ImportBatch:
    """A conversation file without a title of its own is named after the file."""
    if batch.format is Format.OPENAI and len(batch.conversations) == 1:
        (conv,) = batch.conversations
        if conv.title is None:
            return replace(batch, conversations=(replace(conv, title=path.stem),))
    return batch


def _retitled(batch: ImportBatch, title: str) -> ImportBatch:
    if batch.conversations:
        return replace(batch, conversations=(replace(batch.conversations[0], title=title),))
    return replace(batch, documents=(replace(batch.documents[0], title=title),))


def decisions_table(outcomes: Sequence[Outcome]) -> Table:
    """One row per memory decision: what was added, matched or replaced, and why."""
    table = Table(box=None, show_header=True, pad_edge=False)
    for col in ("decision", "memory", "acts on", "text", "why"):
        table.add_column(col, no_wrap=col in ("decision", "memory", "acts on"))
    for o in outcomes:
        other = o.target_id if o.target_id != o.memory_id else "(same)"
        table.add_row(o.decision.value, o.memory_id, other or "", Text(o.text), o.reason)
    return table


@click.command("config")
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Reset KEY to its default.")
@json_option
def config_command(key: str | None, value: str | None, unset: bool, as_json: bool) -> None:
    """Show or change this device's settings (kept encrypted inside the vault).

    With no KEY, lists every setting. With KEY, shows it; with KEY VALUE, sets it.

    \b
    Keys:
      extractor      rules (offline, the default) or llm
      llm.base_url   an OpenAI-compatible API root (Ollama, vLLM, OpenAI, a proxy)
      llm.model      the model name to ask
      llm.api_key    a bearer token, if the endpoint needs one (never shown)
      llm.timeout    seconds to wait for one answer (default 60)
      reconcile.llm  let the model decide hard duplicate cases (default true)
      profile.llm    let the model write the profile's summaries (default true)
      proxy.upstream the OpenAI-compatible API root `memsync serve` forwards chats to
      proxy.api_key  the upstream's key (never shown; apps send their memsync token)
      proxy.budget   tokens of memory added to each proxied chat (default 1000)
      proxy.timeout  seconds to wait for the upstream to connect or send (default 120)
      proxy.capture  store proxied exchanges and extract memories (default false)

    A VALUE of - is read from standard input (or asked for, hidden, at a terminal), so
    an API key stays out of the shell history.

    Example: memsync config llm.base_url http://localhost:11434/v1
    """
    if unset and (key is None or value is not None):
        raise UsageError("--unset takes a KEY and no VALUE")
    if value == "-" and key is not None:
        value = _secret_value(key)
    with open_vault() as vault:
        if key is not None and (value is not None or unset):
            settings = vault.configure(key, None if unset else value)
        else:
            settings = vault.settings()
    rows = config.describe(settings)
    if key is not None:
        config.parse_value(settings, key, None)  # an unknown key fails here
        rows = [r for r in rows if r[0] == key]
    if as_json:
        output.print_json({name: shown for name, shown, _ in rows})
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    for col in ("key", "value", "help"):
        table.add_column(col, style="dim" if col == "help" else None)
    for name, shown, help_text in rows:
        table.add_row(name, Text(shown), help_text)
    output.console().print(table)


def _secret_value(key: str) -> str:
    if sys.stdin.isatty():
        return str(click.prompt(key, hide_input=True, err=True))
    return sys.stdin.readline().strip()
