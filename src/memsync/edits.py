"""Changing memories directly: add, edit (a new version supersedes the old), forget, bulk
records and the bio. Each is one `Core.commit`; `Vault` and `AppSession` both call these.

An edit or a forget reads the memory inside the write transaction it then writes in, so
no other process can change the memory between the two: two edits of one memory become
two versions in a row, never two successors of one version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from memsync import codec
from memsync.core import Core
from memsync.errors import UsageError
from memsync.index.vectors import embed_texts, texts_to_embed
from memsync.model import Category, Kind, Memory, Provenance, Source
from memsync.profile.cache import BIO_CHARS
from memsync.store import records, state

__all__ = ["add", "edit", "import_records", "set_bio"]


def add(
    core: Core,
    text: str,
    *,
    kind: Kind = Kind.SEMANTIC,
    category: Category | None = None,
    tags: Iterable[str] = (),
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    observed_at: datetime | None = None,
    confidence: float = 1.0,
    provenance: Sequence[Provenance] = (),
) -> Memory:
    """Add one memory and return it as stored; see `Vault.add`."""
    memory = records.new_memory(
        text,
        kind=kind,
        category=category,
        tags=tags,
        valid_from=valid_from,
        valid_until=valid_until,
        observed_at=observed_at,
        confidence=confidence,
        provenance=provenance,
        clock=core.clock,
    )
    core.commit([{"op": "add_memory", "memory": codec.memory_to_json(memory)}])
    return state.get_memory(core.conn, memory.id)


def edit(
    core: Core,
    memory_id: str,
    *,
    text: str | None = None,
    kind: Kind | None = None,
    category: Category | None = None,
    tags: Iterable[str] | None = None,
    valid_until: datetime | None = None,
) -> Memory:
    """Supersede the memory `memory_id` (a full id) with an edited copy; see `Vault.edit`."""

    with core.db.write() as conn:
        old = state.get_memory(conn, memory_id)
        new = records.edited(
            old,
            text=text,
            kind=kind,
            category=category,
            tags=tags,
            valid_until=valid_until,
            clock=core.clock,
        )
        core.commit([{"op": "edit_memory", "old": old.id, "memory": codec.memory_to_json(new)}])
    return state.get_memory(core.conn, new.id)


def import_records(
    core: Core,
    memories: Sequence[Memory],
    sources: Sequence[Source],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Add the records whose ids are new here, in one transaction; returns (sources,
    memories) added. See `Vault.import_records`."""
    # Embedding a large import takes minutes: it is done before the write lock is taken,
    # for every record that is new now; what is new is decided again under the lock.
    ops, _ = records.new_record_ops(core.conn, memories, sources)
    known = embed_texts(core.embedder, texts_to_embed(ops), None, progress)
    with core.db.write() as conn:
        ops, n_sources = records.new_record_ops(conn, memories, sources)
        if ops:
            core.commit(ops, vectors=known)
    return n_sources, len(ops) - n_sources


def set_bio(core: Core, text: str | None) -> None:
    """Show `text` as the bio instead of the derived one (`None` goes back to it)."""
    cleaned = None if text is None else " ".join(text.split())
    if cleaned is not None and not 0 < len(cleaned) <= BIO_CHARS:
        raise UsageError(f"a bio has 1 to {BIO_CHARS} characters")
    core.commit([{"op": "set_bio", "text": cleaned, "at": codec.to_ms(core.clock())}])
