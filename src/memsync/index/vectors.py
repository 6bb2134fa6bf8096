"""The vectors of the search index: each indexed item's embedding (a memory or a turn),
computed with the vault's embedder and stored in `items.vec`, and `VectorIndex`, the
in-memory copy every search scans.

An assistant's replies are indexed for keyword search only. They are long (a median of
~1,700 characters in LongMemEval's chats against ~190 for what the user wrote), so they
cost about four times a user turn to embed and made embedding 96% of ingest time, while
what a person asks their memory about is what they said; a reply still matches on its
words, and points to the user turn it answers.

Embedding is slow next to everything else a write does, so `texts_to_embed` says, from
the operations alone, which texts a write will index: the vectors are computed before
the write lock is taken, and the transaction only stores them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import apsw
import numpy as np
import numpy.typing as npt

from memsync.index.embed import Embedder
from memsync.index.filters import Conditions
from memsync.store import state

Progress = Callable[[int, int], None]
Vector = npt.NDArray[np.float32]
BATCH = 64  # items per embed call
KEYWORD_ONLY_ROLES = ("assistant", "tool", "function")
_NO_LIMIT = np.iinfo(np.int64).max
_ROW = "rowid, type, status, kind, category, ts, valid_until, vec"

__all__ = [
    "BATCH",
    "KEYWORD_ONLY_ROLES",
    "VectorIndex",
    "embed_items",
    "embed_texts",
    "embeddable",
    "texts_to_embed",
]


def texts_to_embed(ops: Iterable[dict[str, Any]]) -> list[str]:
    """The distinct texts that applying `ops` adds to the index with a vector: memories
    (not forgotten ones) and conversation turns other than replies and instructions."""
    found: dict[str, None] = {}
    for op in ops:
        kind = op.get("op")
        if kind in ("add_memory", "edit_memory"):
            memory = op["memory"]
            if memory.get("status") != "forgotten" and str(memory.get("text", "")).strip():
                found[str(memory["text"])] = None
        elif kind == "add_source":
            for m in op["source"].get("messages", ()):
                role, content = m.get("role"), str(m.get("content", ""))
                if (
                    role not in state.UNINDEXED_ROLES
                    and role not in KEYWORD_ONLY_ROLES
                    and content.strip()
                ):
                    found[content] = None
    return list(found)


def embed_texts(
    embedder: Embedder,
    texts: Sequence[str],
    known: Mapping[str, Vector] | None = None,
    progress: Progress | None = None,
) -> dict[str, Vector]:
    """Vectors for `texts`, in batches; those in `known` are taken as they are."""
    known = known or {}
    out = {t: known[t] for t in texts if t in known}
    todo = [t for t in dict.fromkeys(texts) if t not in out]
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        out.update(zip(chunk, embedder.embed(chunk).astype(np.float32), strict=True))
        if progress:
            progress(min(start + BATCH, len(todo)), len(todo))
    return out


def embeddable(conn: apsw.Connection, rowids: Sequence[int]) -> list[tuple[int, str]]:
    """(rowid, text) of the items among `rowids` that get a vector: all but replies."""
    out: list[tuple[int, str]] = []
    roles = ",".join("?" * len(KEYWORD_ONLY_ROLES))
    for start in range(0, len(rowids), 500):
        chunk = list(rowids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        out += [
            (int(r[0]), str(r[1]))
            for r in conn.execute(
                f"SELECT i.rowid, i.text FROM items i LEFT JOIN messages m ON i.type=? "
                f"AND m.rowid=i.ref WHERE i.rowid IN ({marks}) "
                f"AND (m.role IS NULL OR m.role NOT IN ({roles}))",
                [state.ITEM_TURN, *chunk, *KEYWORD_ONLY_ROLES],
            )
        ]
    return out


def embed_items(
    conn: apsw.Connection,
    embedder: Embedder,
    rowids: Sequence[int],
    known: Mapping[str, Vector] | None = None,
) -> None:
    """Store the vectors of the items `rowids`. `known` holds vectors already computed
    for their texts (`embed_texts`); any other text is embedded here."""
    rows = embeddable(conn, rowids)
    vectors = embed_texts(embedder, [text for _, text in rows], known)
    conn.executemany(
        "UPDATE items SET vec=? WHERE rowid=?",
        [(np.asarray(vectors[text], np.float32).tobytes(), rowid) for rowid, text in rows],
    )


# From this many vectors a scan first picks CANDIDATES rows (at least 20 per result
# wanted) in PROJECTED_DIMS dimensions, then scores only those in all of them.
PROJECT_ROWS = 50_000
PROJECTED_DIMS = 128
CANDIDATES = 1000
# Above this many rows a scan is split in two halves scored side by side (numpy lets go
# of the GIL while it multiplies): the scan reads every vector, 150 MB at 100k items.
SPLIT_ROWS = 40_000
_helpers: ThreadPoolExecutor | None = None
_helpers_lock = threading.Lock()


def helpers() -> ThreadPoolExecutor:
    """The process's two helper threads for the halves of one search (made on first use).

    Two: on a small machine more only queue, and a server's concurrent searches already
    use every core; for one search alone the halves keep both cores busy."""
    global _helpers
    with _helpers_lock:
        if _helpers is None:
            _helpers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="memsync-search")
        return _helpers


def _scores(vecs: npt.NDArray[np.float32], query: Vector) -> npt.NDArray[np.float32]:
    """Cosine of every row with `query`. vecdot runs a row at a time on the calling
    thread: a BLAS matrix-vector product would start threads of its own, which on a small
    machine fight the embedder's and end up slower; a large scan is split in two."""
    n = len(vecs)
    if n < SPLIT_ROWS:
        out: npt.NDArray[np.float32] = np.vecdot(vecs, query)
        return out
    half = n // 2
    other = helpers().submit(np.vecdot, vecs[half:], query)
    first = np.vecdot(vecs[:half], query)
    joined: npt.NDArray[np.float32] = np.concatenate([first, other.result()])
    return joined


def _at_least(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Positions of at least the `k` highest scores, in no order: the rows at or above a
    threshold that a 1-in-10 sample puts about 1.5 k rows over (a tenth of the cost of
    partitioning all of them); all of the top k when the sample guessed too high."""
    n = scores.size
    stride = max(1, n // 10_000)
    sample = scores[::stride]
    want = min(sample.size, -(-3 * k // (2 * stride)))
    threshold = np.partition(sample, sample.size - want)[sample.size - want]
    above = np.flatnonzero(scores >= threshold)
    if above.size >= k:
        return above
    top: npt.NDArray[np.intp] = np.argpartition(scores, n - k)[n - k :]
    return top


def _among(column: npt.NDArray[np.int64], values: Sequence[int]) -> npt.NDArray[np.bool_]:
    """`np.isin(column, values)` for a handful of small codes: one comparison per value,
    several times cheaper than `np.isin` on 100k rows."""
    mask = np.zeros(column.shape, dtype=np.bool_)
    for value in values:
        mask |= column == value
    return mask


def _top(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Positions of the `k` highest scores, best first, equal scores in position order.

    On a large index the rows scoring at least the 4th best of a 1-in-(n/40k) sample
    are a few hundred that must hold the top k, so only those are partitioned; when they
    are too few the whole array is.
    """
    n = scores.size
    candidates: npt.NDArray[np.intp] | None = None
    if n > 100 * k:
        sample = scores[:: n // (40 * k)]
        threshold = np.partition(sample, sample.size - 4)[sample.size - 4]
        above = np.flatnonzero(scores >= threshold)
        if above.size >= k:
            candidates = above
    if candidates is None:
        candidates = np.arange(n)
    part = scores[candidates]
    best = np.argpartition(part, part.size - k)[part.size - k :]
    top = candidates[best]
    order: npt.NDArray[np.intp] = top[np.lexsort((top, -scores[top]))]
    return order


class VectorIndex:
    """The vectors and filter columns of every indexed item, in RAM, grown in place."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._lock = threading.Lock()
        self._n = 0
        self._pos: dict[int, int] = {}
        self._seen = -1  # the last item_changes entry applied; -1: never loaded
        # Above PROJECT_ROWS vectors, each also kept in PROJECTED_DIMS dimensions (its
        # main components), in which a scan picks candidates that are then scored exactly.
        self._basis: npt.NDArray[np.float32] | None = None
        self._fitted_at = 0
        self.low: npt.NDArray[np.float32] = np.zeros((0, PROJECTED_DIMS), np.float32)
        self._alloc(1024)

    def _alloc(self, capacity: int) -> None:
        def grow(old: npt.NDArray[Any] | None, shape: tuple[int, ...], dtype: Any) -> Any:
            new = np.zeros(shape, dtype=dtype)
            if old is not None:
                new[: self._n] = old[: self._n]
            return new

        get = self.__dict__.get
        self.vecs: npt.NDArray[np.float32] = grow(get("vecs"), (capacity, self.dim), np.float32)
        self.rowid: npt.NDArray[np.int64] = grow(get("rowid"), (capacity,), np.int64)
        self.cols: npt.NDArray[np.int64] = grow(get("cols"), (capacity, 7), np.int64)
        if self._basis is not None:
            self.low = grow(get("low"), (capacity, PROJECTED_DIMS), np.float32)
        self.capacity = capacity

    def __len__(self) -> int:
        return self._n

    def sync(self, conn: apsw.Connection) -> None:
        """Bring the index up to date with what `conn` sees: the changes logged in
        `item_changes` since the last sync, or everything when those were pruned away.

        Cheap when nothing changed (one indexed read), so every search calls it; it is
        what keeps each process's copy in step with the writes of every other process.
        """
        with self._lock:
            row = conn.execute("SELECT max(seq) FROM item_changes").fetchone()
            latest = int(row[0] or 0)
            if latest == self._seen:
                return
            oldest = conn.execute("SELECT min(seq) FROM item_changes").fetchone()[0]
            if self._seen < 0 or oldest is None or int(oldest) > self._seen + 1:
                self._load(conn, latest)
                return
            changes = conn.execute(
                "SELECT seq, item FROM item_changes WHERE seq > ? ORDER BY seq", (self._seen,)
            ).fetchall()
            items = sorted({int(r[1]) for r in changes})
            present: set[int] = set()
            for start in range(0, len(items), 500):
                chunk = items[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {_ROW} FROM items WHERE rowid IN ({marks}) AND vec IS NOT NULL",
                    chunk,
                ).fetchall()
                present.update(int(r[0]) for r in rows)
                self._put_rows(rows)
            self._drop([i for i in items if i not in present])
            self._seen = max([latest, *(int(r[0]) for r in changes)])

    def _load(self, conn: apsw.Connection, latest: int) -> None:
        # `latest` was read before the rows: a change committed in between is replayed by
        # the next sync (putting a row twice is harmless), never skipped.
        rows = conn.execute(
            f"SELECT {_ROW} FROM items WHERE vec IS NOT NULL ORDER BY rowid"
        ).fetchall()
        self._n = 0
        self._pos = {}
        self._basis = None
        self._alloc(max(1024, len(rows) * 5 // 4))
        self._put_rows(rows)
        self._seen = latest

    def _project_if_large(self) -> None:
        """Fit the projection once the index is large (again when it has doubled since),
        from a fixed sample of rows, and project every row."""
        n = self._n
        if n < PROJECT_ROWS or (self._basis is not None and n < 2 * self._fitted_at):
            return
        sample = self.vecs[:n][np.random.default_rng(0).choice(n, min(n, 10_000), replace=False)]
        _, vectors = np.linalg.eigh(np.cov(sample.T))
        basis = np.ascontiguousarray(vectors[:, ::-1][:, :PROJECTED_DIMS], dtype=np.float32)
        low = np.zeros((self.capacity, PROJECTED_DIMS), np.float32)
        low[:n] = self.vecs[:n] @ basis
        self.low, self._basis, self._fitted_at = low, basis, n

    def _put_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if self._n + len(rows) > self.capacity:
            self._alloc(max(self.capacity * 2, self._n + len(rows)))
        if not rows:
            return
        positions = np.empty(len(rows), dtype=np.int64)
        for i, r in enumerate(rows):
            rowid = int(r[0])
            pos = self._pos.get(rowid)
            if pos is None:
                pos = self._n
                self._n += 1
                self._pos[rowid] = pos
            positions[i] = pos
        # Whole-array assignments: a row at a time costs seconds on a 100k vault's load.
        self.rowid[positions] = [int(r[0]) for r in rows]
        self.cols[positions] = [
            (r[1], r[2], r[3], r[4], r[5], _NO_LIMIT if r[6] is None else r[6], 1) for r in rows
        ]
        vecs = np.frombuffer(b"".join(r[7] for r in rows), dtype=np.float32).reshape(
            len(rows), self.dim
        )
        self.vecs[positions] = vecs
        if self._basis is not None:
            self.low[positions] = vecs @ self._basis
        self._project_if_large()

    def _drop(self, rowids: Sequence[int]) -> None:
        for rowid in rowids:
            pos = self._pos.pop(rowid, None)
            if pos is not None:
                self.cols[pos, 6] = 0  # dead; the slot is reclaimed at the next load

    def search(self, query: npt.NDArray[np.float32], cond: Conditions, depth: int) -> list[int]:
        return [rowid for rowid, _ in self.nearest(query, cond, depth)]

    def nearest(
        self, query: npt.NDArray[np.float32], cond: Conditions, depth: int
    ) -> list[tuple[int, float]]:
        """The `depth` items most similar to `query` that pass `cond`, as (rowid, cosine).

        Only taking the arrays is done under the lock, so searches in several threads
        score at once. A row a concurrent sync rewrites may be scored as it was or as it
        is; growing the arrays replaces them, so a search keeps a consistent view.
        """
        with self._lock:
            n = self._n
            if n == 0:
                return []
            cols = self.cols[:n]
            vecs = self.vecs[:n]
            rowids = self.rowid[:n]
            basis = self._basis
            low = self.low[:n] if basis is not None else None
        mask = cols[:, 6] == 1
        mask &= _among(cols[:, 0], cond.types)
        mask &= _among(cols[:, 1], cond.statuses)
        if cond.kinds:
            mask &= _among(cols[:, 2], cond.kinds)
        if cond.categories:
            mask &= _among(cols[:, 3], cond.categories)
        if cond.since is not None:
            mask &= cols[:, 4] >= cond.since
        if cond.until is not None:
            mask &= cols[:, 4] < cond.until
        if cond.not_expired_at is not None:
            mask &= cols[:, 5] > cond.not_expired_at
        if cond.tagged is not None:
            mask &= np.isin(rowids, np.fromiter(cond.tagged, dtype=np.int64))
        if cond.scope_kinds is not None and cond.scope_categories is not None:
            mask &= (cols[:, 0] == state.ITEM_TURN) | (
                _among(cols[:, 2], cond.scope_kinds) & _among(cols[:, 3], cond.scope_categories)
            )
        wanted = int(np.count_nonzero(mask))
        if wanted == 0:
            return []
        # Filtered-out rows score -inf, so the top `wanted` or fewer are all wanted rows;
        # cheaper than gathering the wanted rows' scores first.
        candidates = max(CANDIDATES, 20 * depth)
        if basis is not None and low is not None and wanted > candidates:
            # The scan reads a third of the bytes; the candidates are scored exactly, so
            # only the choice of them is approximate (bench/README.md: recall 1.0 at 100k).
            rough = np.where(mask, _scores(low, query @ basis), -np.inf)
            chosen = _at_least(rough, candidates)
            exact = np.vecdot(vecs[chosen], query)
            order = np.lexsort((chosen, -exact))[: min(depth, wanted)]
            picked = zip(rowids[chosen[order]], exact[order], strict=True)
            return [(int(r), float(c)) for r, c in picked]
        scores = np.where(mask, _scores(vecs, query), -np.inf)
        top = _top(scores, min(depth, wanted))
        return [(int(r), float(c)) for r, c in zip(rowids[top], scores[top], strict=True)]
