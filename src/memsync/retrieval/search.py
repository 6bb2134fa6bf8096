"""Hybrid search: candidates from SQLite FTS5 BM25 and from dense vectors (ranked in `rank`).

Both halves search the same `items` table (memories and conversation turns) and apply
the same filters, the keyword half in SQL and the vector half over an in-memory copy of
the vectors and filter columns that is kept in step with every write.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import apsw
import numpy as np
import numpy.typing as npt

from memsync import codec
from memsync.apps import Scope
from memsync.model import SearchFilters, SearchHit, Status
from memsync.retrieval.rank import Ranked
from memsync.store import state

_NO_LIMIT = np.iinfo(np.int64).max
_WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to help BM25; dropping them keeps keyword search fast on large vaults.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
    # Pieces of contractions ("don't" is the tokens "don" and "t"), which match nearly
    # every item and carry no meaning of their own.
    + """d ll m re s t ve aren couldn didn doesn don hadn hasn haven isn shouldn wasn weren
    wouldn""".split()
)


def query_terms(text: str) -> list[str]:
    """The query's distinct lower-cased words in order, stopwords dropped (all of them
    kept if that leaves none): what keyword search matches and context excerpts look for."""
    words = [w.lower() for w in _WORD.findall(text)]
    return list(dict.fromkeys([w for w in words if w not in STOPWORDS] or words))


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression: the query's words, quoted, joined by OR."""
    unique = query_terms(text)[:32]
    if not unique:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in unique)


@dataclass(frozen=True)
class _Conditions:
    """Filters resolved to codes, usable both as SQL and as numpy masks."""

    types: tuple[int, ...]
    statuses: tuple[int, ...]
    kinds: tuple[int, ...]
    categories: tuple[int, ...]
    since: int | None
    until: int | None
    not_expired_at: int | None
    tagged: frozenset[int] | None  # item rowids carrying a wanted tag
    # An app's scope: memories must have one of these kinds and categories (turns, which
    # have neither, are let through or left out by `types`). None: no scope.
    scope_kinds: tuple[int, ...] | None = None
    scope_categories: tuple[int, ...] | None = None

    def sql(self) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []

        def among(col: str, values: Sequence[int]) -> None:
            parts.append(f"{col} IN ({','.join('?' * len(values))})")
            params.extend(values)

        among("i.type", self.types)
        among("i.status", self.statuses)
        if self.kinds:
            among("i.kind", self.kinds)
        if self.categories:
            among("i.category", self.categories)
        if self.since is not None:
            parts.append("i.ts >= ?")
            params.append(self.since)
        if self.until is not None:
            parts.append("i.ts < ?")
            params.append(self.until)
        if self.not_expired_at is not None:
            parts.append("(i.valid_until IS NULL OR i.valid_until > ?)")
            params.append(self.not_expired_at)
        if self.tagged is not None:
            among("i.rowid", sorted(self.tagged))
        if self.scope_kinds is not None and self.scope_categories is not None:
            kinds = ",".join("?" * len(self.scope_kinds)) or "NULL"
            cats = ",".join("?" * len(self.scope_categories)) or "NULL"
            parts.append(
                f"(i.type={state.ITEM_TURN} OR (i.kind IN ({kinds}) AND i.category IN ({cats})))"
            )
            params.extend([*self.scope_kinds, *self.scope_categories])
        return " AND ".join(parts) or "1", params


def resolve_filters(
    conn: apsw.Connection, f: SearchFilters, now: datetime, scope: Scope | None = None
) -> _Conditions:
    """`f` as codes; with a `scope`, also only what that app may read."""
    memory_only = bool(f.kinds or f.categories or f.tags)
    turns = f.include_turns and not memory_only and (scope is None or scope.conversations)
    types = (state.ITEM_MEMORY, state.ITEM_TURN) if turns else (state.ITEM_MEMORY,)
    scope_kinds = scope_categories = None
    if scope is not None:
        scope_kinds = tuple(state.KIND_CODE[k] for k in sorted(scope.kinds))
        scope_categories = tuple(state.CATEGORY_CODE[c] for c in sorted(scope.read))
        if scope.reads_uncategorised:
            scope_categories += (state.NO_CODE,)
    tagged: frozenset[int] | None = None
    if f.tags:
        marks = ",".join("?" * len(f.tags))
        rows = conn.execute(
            "SELECT i.rowid FROM items i JOIN memories m ON i.type=? AND m.rowid=i.ref "
            f"JOIN memory_tags t ON t.memory_id=m.id WHERE t.tag IN ({marks})",
            [state.ITEM_MEMORY, *f.tags],
        ).fetchall()
        tagged = frozenset(int(r[0]) for r in rows)
    return _Conditions(
        types=types,
        statuses=tuple(state.STATUS_CODE[s] for s in f.statuses or tuple(Status)),
        kinds=tuple(state.KIND_CODE[k] for k in f.kinds),
        categories=tuple(state.CATEGORY_CODE[c] for c in f.categories),
        since=codec.opt_ms(f.since),
        until=codec.opt_ms(f.until),
        not_expired_at=None if f.include_expired else codec.to_ms(now),
        tagged=tagged,
        scope_kinds=scope_kinds,
        scope_categories=scope_categories,
    )


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
        self.capacity = capacity

    def __len__(self) -> int:
        return self._n

    def load(self, conn: apsw.Connection) -> None:
        rows = conn.execute(
            "SELECT rowid, type, status, kind, category, ts, valid_until, vec FROM items "
            "WHERE vec IS NOT NULL ORDER BY rowid"
        ).fetchall()
        with self._lock:
            self._n = 0
            self._pos = {}
            self._alloc(max(1024, len(rows) * 5 // 4))
            self._put_rows(rows)

    def upsert(self, conn: apsw.Connection, rowids: Sequence[int]) -> None:
        if not rowids:
            return
        marks = ",".join("?" * len(rowids))
        rows = conn.execute(
            "SELECT rowid, type, status, kind, category, ts, valid_until, vec FROM items "
            f"WHERE rowid IN ({marks}) AND vec IS NOT NULL",
            list(rowids),
        ).fetchall()
        with self._lock:
            self._put_rows(rows)

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
        self.vecs[positions] = np.frombuffer(
            b"".join(r[7] for r in rows), dtype=np.float32
        ).reshape(len(rows), self.dim)

    def remove(self, rowids: Sequence[int]) -> None:
        with self._lock:
            for rowid in rowids:
                pos = self._pos.pop(rowid, None)
                if pos is not None:
                    self.cols[pos, 6] = 0  # dead; the slot is reclaimed at the next load

    def search(self, query: npt.NDArray[np.float32], cond: _Conditions, depth: int) -> list[int]:
        return [rowid for rowid, _ in self.nearest(query, cond, depth)]

    def nearest(
        self, query: npt.NDArray[np.float32], cond: _Conditions, depth: int
    ) -> list[tuple[int, float]]:
        """The `depth` items most similar to `query` that pass `cond`, as (rowid, cosine)."""
        with self._lock:
            n = self._n
            if n == 0:
                return []
            cols = self.cols[:n]
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
                mask &= np.isin(self.rowid[:n], np.fromiter(cond.tagged, dtype=np.int64))
            if cond.scope_kinds is not None and cond.scope_categories is not None:
                mask &= (cols[:, 0] == state.ITEM_TURN) | (
                    _among(cols[:, 2], cond.scope_kinds) & _among(cols[:, 3], cond.scope_categories)
                )
            wanted = int(np.count_nonzero(mask))
            if wanted == 0:
                return []
            # vecdot runs on this thread alone: a BLAS matrix-vector product would use a
            # second thread, which on a small machine fights the embedder's threads and
            # ends up slower. Filtered-out rows score -inf, so the top `wanted` or fewer
            # are all wanted rows; cheaper than gathering the wanted rows' scores first.
            scores = np.where(mask, np.vecdot(self.vecs[:n], query), -np.inf)
            top = _top(scores, min(depth, wanted))
            return [(int(r), float(c)) for r, c in zip(self.rowid[top], scores[top], strict=True)]


def keyword_search(conn: apsw.Connection, query: str, cond: _Conditions, depth: int) -> list[int]:
    """The rowids of the `depth` items matching `cond` that BM25 ranks best, best first.

    FTS5 ranks its matches on its own, and the filters are then checked on the best
    candidates a chunk at a time until `depth` pass. Joining every match to `items` before
    ranking gives the same list but reads each matching row (its vector included) from
    the encrypted database, which on a large vault costs far more than the ranking.
    """
    match = fts_query(query)
    if match is None:
        return []
    where, params = cond.sql()
    ranked = conn.execute(
        "SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY rank", (match,)
    )
    found: list[int] = []
    try:
        chunk = depth + depth // 4 + 8  # most candidates pass the usual filters
        while len(found) < depth:
            batch = [int(r[0]) for r in itertools.islice(ranked, chunk)]
            if not batch:
                break
            marks = ",".join("?" * len(batch))
            passing = {
                int(r[0])
                for r in conn.execute(
                    # NOT INDEXED: else SQLite may scan the (type, ref) index for the type
                    # filter instead of looking up these few rowids.
                    "SELECT i.rowid FROM items i NOT INDEXED "
                    f"WHERE i.rowid IN ({marks}) AND {where}",
                    [*batch, *params],
                )
            }
            found.extend(rowid for rowid in batch if rowid in passing)
            if len(batch) < chunk:
                break
            chunk *= 2
    finally:
        ranked.close()
    return found[:depth]


def hydrate(conn: apsw.Connection, ranked: Sequence[Ranked]) -> list[SearchHit]:
    """Turn ranked item rowids into hits carrying their memory or turn."""
    if not ranked:
        return []
    ids = [r.rowid for r in ranked]
    marks = ",".join("?" * len(ids))
    refs = {
        int(r[0]): (int(r[1]), int(r[2]))
        for r in conn.execute(f"SELECT rowid, type, ref FROM items WHERE rowid IN ({marks})", ids)
    }
    memories = state.memories_by_rowid(
        conn, [ref for t, ref in refs.values() if t == state.ITEM_MEMORY]
    )
    turns = state.turns_by_rowid(conn, [ref for t, ref in refs.values() if t == state.ITEM_TURN])
    hits = []
    for r in ranked:
        if r.rowid not in refs:
            continue
        t, ref = refs[r.rowid]
        hits.append(
            SearchHit(
                score=r.score,
                memory=memories.get(ref) if t == state.ITEM_MEMORY else None,
                turn=turns.get(ref) if t == state.ITEM_TURN else None,
                keyword_rank=r.keyword_rank,
                vector_rank=r.vector_rank,
            )
        )
    return hits
