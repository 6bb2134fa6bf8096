"""The stored vector of each indexed item (a memory or a turn): computed with the vault's
embedder in batches and written to `items.vec`, where `search.VectorIndex` loads them.

An assistant's replies are indexed for keyword search only. They are long (a median of
~1,700 characters in LongMemEval's chats against ~190 for what the user wrote), so they
cost about four times a user turn to embed and made embedding 96% of ingest time, while
what a person asks their memory about is what they said; a reply still matches on its
words, and points to the user turn it answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import apsw
import numpy as np
import numpy.typing as npt

from memsync.retrieval.embed import Embedder
from memsync.store import state

Progress = Callable[[int, int], None]
BATCH = 64  # items per embed call
KEYWORD_ONLY_ROLES = ("assistant", "tool", "function")

__all__ = ["BATCH", "KEYWORD_ONLY_ROLES", "embed_items"]


def embed_items(
    conn: apsw.Connection,
    embedder: Embedder,
    rowids: Sequence[int],
    progress: Progress | None = None,
    known: Mapping[str, npt.NDArray[np.float32]] | None = None,
) -> None:
    """Embed the items `rowids` and store their vectors. `known` holds vectors already
    computed for some texts, which are stored as they are instead of being recomputed."""
    known = known or {}
    for start in range(0, len(rowids), BATCH):
        chunk = list(rowids[start : start + BATCH])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT i.rowid, i.text FROM items i LEFT JOIN messages m ON i.type=? "
            f"AND m.rowid=i.ref WHERE i.rowid IN ({marks}) "
            f"AND (m.role IS NULL OR m.role NOT IN ({','.join('?' * len(KEYWORD_ONLY_ROLES))}))",
            [state.ITEM_TURN, *chunk, *KEYWORD_ONLY_ROLES],
        ).fetchall()
        todo = [str(r[1]) for r in rows if str(r[1]) not in known]
        fresh = (
            dict(zip(todo, embedder.embed(todo).astype(np.float32), strict=True)) if todo else {}
        )
        conn.executemany(
            "UPDATE items SET vec=? WHERE rowid=?",
            [
                (
                    np.asarray(known.get(str(r[1]), fresh.get(str(r[1]))), np.float32).tobytes(),
                    int(r[0]),
                )
                for r in rows
            ],
        )
        if progress:
            progress(min(start + BATCH, len(rowids)), len(rowids))
