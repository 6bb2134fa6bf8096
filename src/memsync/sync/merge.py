"""Bringing verified entries of other devices into this vault, so every device converges.

The state is a function of the set of entries: replay in (clock, device, seq) order. New
entries that all come after everything here are applied in that order on top; when some
come earlier (another device wrote while this one did), the state is rebuilt from the
whole log in that order. Both happen inside the caller's write transaction, so a vault
holds the old state or the new one, never half of it. Vectors are derived, not synced:
a rebuild keeps every vector whose text is unchanged and embeds only the new texts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apsw
import numpy as np
import numpy.typing as npt

from memsync.core import Core
from memsync.index.vectors import embed_items, embed_texts, texts_to_embed
from memsync.log.oplog import Entry
from memsync.log.verify import admitted
from memsync.store import state
from memsync.store.forgetting import SHREDDED

__all__ = ["Incoming", "apply_incoming", "embed_incoming"]

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Incoming:
    """A verified entry of another device, its operation and the key that opened it."""

    entry: Entry
    op: dict[str, Any]
    record_key: bytes | None


def _order(e: Entry) -> tuple[int, str, int]:
    return (e.hlc, e.device_id, e.seq)


def apply_incoming(
    core: Core,
    conn: apsw.Connection,
    incoming: Sequence[Incoming],
    known: Mapping[str, Vector] | None = None,
) -> tuple[state.IndexChange, bool]:
    """Store `incoming` in the log and bring the state up to date; returns what changed
    in the index and whether the state was rebuilt. Inside a write transaction; `known`
    holds the vectors of the new texts, embedded before it (see `embed_incoming`)."""
    last = core.log.last()
    ordered = sorted(incoming, key=lambda i: _order(i.entry))
    for item in ordered:
        core.log.store(item.entry, item.record_key)
    # Entries that came without a key because a forget named them: known as shredded.
    core.log.shred([(i.entry.device_id, i.entry.seq) for i in ordered if i.op == SHREDDED])
    if ordered:
        core.log.clock.observe(max(i.entry.hlc for i in ordered))
    revokes = any(i.op.get("op") == "revoke_device" for i in ordered)
    if not revokes and (last is None or all(_order(i.entry) > last for i in ordered)):
        ops = [i.op for i in ordered]
        known = embed_texts(core.embedder, texts_to_embed(ops), known)
        change = state.apply_all(conn, ops)
        embed_items(conn, core.embedder, change.added, known)
        return change, False
    return _rebuild(core, conn, known or {}), True


def embed_incoming(
    core: Core, incoming: Sequence[Incoming], progress: Callable[[int, int], None] | None
) -> dict[str, Vector]:
    """Vectors of the texts `incoming` adds: embedding is most of a sync's time (all of a
    new device's), so it is done before the write lock is taken."""
    return embed_texts(core.embedder, texts_to_embed([i.op for i in incoming]), None, progress)


def _rebuild(core: Core, conn: apsw.Connection, known: Mapping[str, Vector]) -> state.IndexChange:
    # Vectors of texts that survive the rebuild are kept: embedding is the slow part.
    kept = {
        str(text): np.frombuffer(bytes(vec), dtype=np.float32)
        for text, vec in conn.execute("SELECT text, vec FROM items WHERE vec IS NOT NULL")
    }
    kept.update(known)
    state.reset(conn)
    shredded = core.log.shredded()
    entries = [e for e in core.log.entries() if (e.device_id, e.seq) not in shredded]
    ops = [core.log.decrypt(e, core.log_key) for e in entries]
    for op in admitted(entries, ops):
        state.apply(conn, op)
    conn.execute("UPDATE counters SET value=value+1 WHERE name='memories'")
    rowids = [int(r[0]) for r in conn.execute("SELECT rowid FROM items")]
    embed_items(conn, core.embedder, rowids, kept)
    return state.IndexChange(added=tuple(rowids))
