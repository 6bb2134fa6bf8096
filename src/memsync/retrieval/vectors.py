"""The stored vector of each indexed item (a memory or a turn): computed with the vault's
embedder in batches and written to `items.vec`, where `search.VectorIndex` loads them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import apsw
import numpy as np
import numpy.typing as npt

from memsync.retrieval.embed import Embedder

Progress = Callable[[int, int], None]
BATCH = 64  # items per embed call

__all__ = ["BATCH", "embed_items"]


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
            f"SELECT rowid, text FROM items WHERE rowid IN ({marks})", chunk
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
