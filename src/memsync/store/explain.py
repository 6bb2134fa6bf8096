"""Why a memory exists: the messages or document spans it came from, and its history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import apsw

from memsync.errors import NotFound
from memsync.model import Memory, Provenance, Source, SourceKind
from memsync.store import records, state

__all__ = ["Evidence", "Explanation", "explain"]

CONTEXT = 80  # characters of the message shown either side of the quoted span


@dataclass(frozen=True)
class Evidence:
    """One provenance record, resolved: the source, the turn (or chunk) and the span.

    `quote` is the span the memory was read from (the whole message when the extractor
    gave no span); `before`/`after` are up to `CONTEXT` characters around it. For a
    document, `offset` is where the quote starts in the document and `heading` the
    section it sits in. `source_id` is None for a memory added by hand; `missing` is set
    when the source is no longer in this vault.
    """

    provenance: Provenance
    source_id: str | None = None
    source_title: str | None = None
    source_kind: SourceKind | None = None
    source_created_at: datetime | None = None
    role: str | None = None
    timestamp: datetime | None = None
    quote: str = ""
    before: str = ""
    after: str = ""
    offset: int | None = None
    heading: str | None = None
    missing: bool = False


@dataclass(frozen=True)
class Explanation:
    """A memory, every version of it (oldest first) and the evidence behind it."""

    memory: Memory
    history: tuple[Memory, ...]
    evidence: tuple[Evidence, ...]


def _evidence(p: Provenance, source: Source | None) -> Evidence:
    if p.source_id is None:
        return Evidence(p)
    if source is None:
        return Evidence(p, p.source_id, missing=True)
    base = Evidence(
        p,
        source.id,
        source.title,
        source.kind,
        source.created_at,
    )
    if p.turn is None or not 0 <= p.turn < len(source.messages):
        return base
    message = source.messages[p.turn]
    text = message.content
    start = p.start if p.start is not None and 0 <= p.start <= len(text) else 0
    end = p.end if p.end is not None and start <= p.end <= len(text) else len(text)
    offset = None
    if source.offsets and p.turn < len(source.offsets):
        offset = source.offsets[p.turn] + start
    return Evidence(
        p,
        source.id,
        source.title,
        source.kind,
        source.created_at,
        role=message.role,
        timestamp=message.timestamp,
        quote=text[start:end],
        before=text[max(0, start - CONTEXT) : start],
        after=text[end : end + CONTEXT],
        offset=offset,
        # Only a document's chunks carry a heading path in `name` (and have offsets).
        heading=message.name if source.offsets else None,
    )


def explain(conn: apsw.Connection, memory_id: str) -> Explanation:
    """Resolve every provenance record of the memory `memory_id` (a full id), and of its
    earlier versions, which a new version carries over, against the sources in the vault."""
    memory = state.get_memory(conn, memory_id)
    history = tuple(records.chain(conn, memory))
    seen: set[Provenance] = set()
    found: list[Provenance] = []
    for version in (memory, *reversed(history)):
        for p in version.provenance:
            if p not in seen:
                seen.add(p)
                found.append(p)
    sources: dict[str, Source | None] = {}
    for p in found:
        if p.source_id is not None and p.source_id not in sources:
            try:
                sources[p.source_id] = state.get_source(conn, p.source_id)
            except NotFound:
                sources[p.source_id] = None
    evidence = tuple(
        _evidence(p, None if p.source_id is None else sources[p.source_id]) for p in found
    )
    return Explanation(memory, history, evidence)
