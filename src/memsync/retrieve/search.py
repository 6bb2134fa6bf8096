"""Hybrid search: candidates from SQLite FTS5 BM25 and from dense vectors, ranked by
`rank`, returned as hits (`search`).

Both halves search the same `items` table (memories and conversation turns) and apply
the same filters (`index.filters`), the keyword half in SQL and the vector half over the
in-memory copy of the vectors (`index.vectors.VectorIndex`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import datetime

import apsw

from memsync.core import Core
from memsync.errors import UsageError
from memsync.index.filters import Conditions, resolve_filters
from memsync.index.vectors import helpers
from memsync.model import SearchFilters, SearchHit, SearchMode
from memsync.retrieve import rank as ranking
from memsync.retrieve import when
from memsync.retrieve.rank import Ranked, Weights
from memsync.scope import Scope
from memsync.store import records, state

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


def keyword_search(conn: apsw.Connection, query: str, cond: Conditions, depth: int) -> list[int]:
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


# From this many indexed items a search runs its keyword half beside its vector half.
PARALLEL_ITEMS = 20_000


def keyword_half(
    core: Core, query: str, cond: Conditions, depth: int
) -> tuple[list[int], dict[int, ranking.Item]]:
    """`keyword_search` and what ranking needs of its hits, on the calling thread's own
    connection to `core` (whose pages it has just read)."""
    found = keyword_search(core.conn, query, cond, depth)
    return found, ranking.describe(core.conn, found)


def search(
    core: Core,
    query: str,
    *,
    k: int = 10,
    filters: SearchFilters = SearchFilters(),
    now: datetime | None = None,
    mode: SearchMode = SearchMode.HYBRID,
    weights: Weights = Weights(),
    scope: Scope | None = None,
) -> list[SearchHit]:
    """The `k` best memories and turns for `query`; see `Vault.search`."""
    if k < 1:
        raise UsageError("k must be at least 1")
    conn = core.conn
    now = now or core.clock()
    depth = max(50, k * 5)
    cond = resolve_filters(conn, records.stored_form(filters), now, scope)
    index = core.vector_index()
    halves = mode is SearchMode.HYBRID and query.strip()
    # On a large vault the keyword half (SQLite) runs on a helper thread, with its own
    # connection, while this one embeds the query and scans the vectors.
    aside = (
        helpers().submit(keyword_half, core, query, cond, depth)
        if halves and len(index) >= PARALLEL_ITEMS
        else None
    )
    if aside is not None or mode is SearchMode.VECTOR:
        keyword: list[int] = []
    else:
        keyword = keyword_search(conn, query, cond, depth)
    qvec = (
        core.embedder.embed([query])[0]
        if query.strip() and mode is not SearchMode.KEYWORD
        else None
    )
    vector = [] if qvec is None else index.search(qvec, cond, depth)
    if aside is None:
        items = ranking.describe(conn, list(dict.fromkeys([*keyword, *vector])))
    else:
        items = ranking.describe(conn, vector)
        keyword, described = aside.result()
        items |= described
    window = when.time_window(query, now)
    span = None if window is None else (window.start, window.end)
    ranked = ranking.rank(keyword, vector, items, weights, span)[:k]
    return hydrate(conn, ranked)
