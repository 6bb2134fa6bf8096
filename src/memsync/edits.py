"""Changing memories directly: add, edit (a new version supersedes the old), forget, bulk
records and the bio. Each is one `Core.commit`; `Vault` and `AppSession` both call these.

An edit or a forget is decided on the memory as read; the write checks, under the write
lock, that no other process changed it in between, and reads it again if one did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

import apsw

from memsync import codec
from memsync.core import Core, Stale, expecting
from memsync.errors import UsageError, VaultBusy
from memsync.model import Category, Kind, Memory, Provenance, Source, Status
from memsync.profile.cache import BIO_CHARS
from memsync.store import records, state

__all__ = ["add", "edit", "forget", "import_records", "set_bio"]

ATTEMPTS = 3
_T = TypeVar("_T")


def _retrying(attempt: Callable[[], _T]) -> _T:
    """`attempt()` again while other processes keep changing what it was decided on."""
    for _ in range(ATTEMPTS - 1):
        try:
            return attempt()
        except Stale:
            continue
    try:
        return attempt()
    except Stale:
        raise VaultBusy(
            "the memory kept changing (other processes are editing it); nothing was written"
        ) from None


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

    def attempt() -> Memory:
        old = state.get_memory(core.conn, memory_id)
        new = records.edited(
            old,
            text=text,
            kind=kind,
            category=category,
            tags=tags,
            valid_until=valid_until,
            clock=core.clock,
        )
        op = {"op": "edit_memory", "old": old.id, "memory": codec.memory_to_json(new)}
        core.commit([op], guard=expecting({old.id: old.status}))
        return state.get_memory(core.conn, new.id)

    return _retrying(attempt)


def forget(core: Core, memory_id: str) -> None:
    """Tombstone the memory `memory_id` (a full id) and every version in its history;
    see `Vault.forget`."""

    def attempt() -> None:
        old = state.get_memory(core.conn, memory_id)
        if old.status is Status.FORGOTTEN:
            raise UsageError(f"memory {old.id} is already forgotten")
        history = records.chain(core.conn, old)
        at = codec.to_ms(core.clock())
        living = [m for m in history if m.status is not Status.FORGOTTEN]
        core.commit(
            [{"op": "forget_memory", "id": m.id, "at": at} for m in living],
            guard=expecting({m.id: m.status for m in living}),
        )

    _retrying(attempt)


def import_records(
    core: Core,
    memories: Sequence[Memory],
    sources: Sequence[Source],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Add the records whose ids are new here, in one transaction; returns (sources,
    memories) added. See `Vault.import_records`."""
    ops, n_sources = records.new_record_ops(core.conn, memories, sources)
    if not ops:
        return 0, 0

    def none_added(conn: apsw.Connection) -> None:
        # Another process importing the same file meanwhile: decide again on what is new.
        again, _ = records.new_record_ops(core.conn, memories, sources)
        if len(again) != len(ops):
            raise Stale("records were added while this import was being prepared")

    try:
        core.commit(ops, progress, guard=none_added)
    except Stale:
        ops, n_sources = records.new_record_ops(core.conn, memories, sources)
        if ops:
            core.commit(ops, progress)
    return n_sources, len(ops) - n_sources


def set_bio(core: Core, text: str | None) -> None:
    """Show `text` as the bio instead of the derived one (`None` goes back to it)."""
    cleaned = None if text is None else " ".join(text.split())
    if cleaned is not None and not 0 < len(cleaned) <= BIO_CHARS:
        raise UsageError(f"a bio has 1 to {BIO_CHARS} characters")
    core.commit([{"op": "set_bio", "text": cleaned, "at": codec.to_ms(core.clock())}])
