"""Ranking: from the keyword and vector candidate lists to one ordered list of items.

Reciprocal rank fusion of the two lists is only the start. What a person asks about is
usually one moment of one conversation, and the evidence is spread over several items
that point there: the user's turn, the reply to it, the memories extracted from it, the
other turns of the same conversation. So each item's fused score also credits

- the user turn a reply answers (a round is a user turn and its reply), and the turns a
  memory was extracted from (memories are extra keys for their turns);
- every item of a conversation with a share of that conversation's evidence, so a
  conversation that matches in several places outranks a single lucky turn;
- items dated inside the period the query names ("last month", "in May").

All of this uses only the query, the candidates and their stored dates and links.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import apsw

from memsync import codec
from memsync.store import state

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Weights:
    """How much each kind of evidence counts. The defaults were chosen on the first 120
    evaluated questions of LongMemEval S and checked on all 418 (bench/README.md)."""

    keyword: float = 1.0
    vector: float = 1.0
    rrf_k: int = 30
    reply: float = 0.5  # share of a reply's score credited to the user turn it answers
    # Share of a memory's score credited to the turns it came from. Off: on LongMemEval
    # the memory already ranks as itself, and crediting its turn as well pushed other
    # conversations' evidence down (bench/README.md).
    key: float = 0.0
    session: float = 0.6  # share of the conversation's evidence added to each of its items
    session_decay: float = 0.5  # the conversation's 2nd best item counts this much, ...
    in_window: float = 0.3  # boost for items dated inside the query's time window


@dataclass(frozen=True)
class Item:
    """What ranking needs to know about one candidate."""

    rowid: int
    type: int
    ts: int
    # Turns: their own (source, index, role). Memories: the turns they came from.
    points: tuple[tuple[str, int | None], ...] = ()
    role: str | None = None


@dataclass
class Ranked:
    rowid: int
    score: float
    keyword_rank: int | None = None
    vector_rank: int | None = None
    credits: dict[str, float] = field(default_factory=dict)


def describe(conn: apsw.Connection, rowids: Sequence[int]) -> dict[int, Item]:
    """The source, turn and date of each candidate item, in two queries."""
    if not rowids:
        return {}
    marks = ",".join("?" * len(rowids))
    items: dict[int, Item] = {}
    for rowid, typ, ts, source, idx, role in conn.execute(
        "SELECT i.rowid, i.type, i.ts, m.source_id, m.idx, m.role FROM items i "
        f"LEFT JOIN messages m ON i.type=? AND m.rowid=i.ref WHERE i.rowid IN ({marks})",
        [state.ITEM_TURN, *rowids],
    ):
        points: tuple[tuple[str, int | None], ...] = (
            ((str(source), int(idx)),) if source is not None else ()
        )
        items[int(rowid)] = Item(int(rowid), int(typ), int(ts), points, role)
    provenance: dict[int, list[tuple[str, int | None]]] = defaultdict(list)
    for rowid, source, turn in conn.execute(
        # NOT INDEXED: else SQLite walks the (type, ref) index over every memory.
        "SELECT i.rowid, p.source_id, p.turn FROM items i NOT INDEXED JOIN memories mm ON i.type=? "
        f"AND mm.rowid=i.ref JOIN provenance p ON p.memory_id=mm.id WHERE i.rowid IN ({marks}) "
        "ORDER BY i.rowid, p.ord",
        [state.ITEM_MEMORY, *rowids],
    ):
        if source is not None:  # memories added by hand have no source
            provenance[int(rowid)].append((str(source), None if turn is None else int(turn)))
    for rowid, sources in provenance.items():
        it = items[rowid]
        items[rowid] = Item(it.rowid, it.type, it.ts, tuple(dict.fromkeys(sources)), None)
    return items


def rank(
    keyword: Sequence[int],
    vector: Sequence[int],
    items: Mapping[int, Item],
    weights: Weights = Weights(),
    window: tuple[datetime, datetime] | None = None,
) -> list[Ranked]:
    """Every candidate, best first (ties by rowid)."""
    ranked: dict[int, Ranked] = {}
    for rank_no, rowid in enumerate(keyword, start=1):
        r = ranked.setdefault(rowid, Ranked(rowid, 0.0))
        r.keyword_rank = rank_no
        r.score += weights.keyword / (weights.rrf_k + rank_no)
    for rank_no, rowid in enumerate(vector, start=1):
        r = ranked.setdefault(rowid, Ranked(rowid, 0.0))
        r.vector_rank = rank_no
        r.score += weights.vector / (weights.rrf_k + rank_no)
    fused = {rowid: r.score for rowid, r in ranked.items()}

    # User turns by (source, index): what a reply and a memory credit.
    turn_at = {
        it.points[0]: rowid
        for rowid, it in items.items()
        if it.type == state.ITEM_TURN and it.role == "user" and it.points and rowid in ranked
    }

    def credit(target: int | None, amount: float, why: str) -> None:
        if target is not None and target in ranked and amount > 0:
            ranked[target].score += amount
            ranked[target].credits[why] = ranked[target].credits.get(why, 0.0) + amount

    for rowid, score in fused.items():
        it = items.get(rowid)
        if it is None:
            continue
        if it.type == state.ITEM_TURN and it.role != "user" and it.points:
            source, idx = it.points[0]
            if idx is not None:
                credit(turn_at.get((source, idx - 1)), weights.reply * score, "reply")
        elif it.type == state.ITEM_MEMORY:
            for point in it.points:
                credit(turn_at.get(point), weights.key * score, "memory")

    if weights.session:
        # An item without a source (a memory added by hand) is a conversation of its own,
        # so the credit lifts items relative to each other and never punishes those.
        group = {
            rowid: it.points[0][0] if (it := items.get(rowid)) and it.points else f"#{rowid}"
            for rowid in fused
        }
        by_group: dict[str, list[float]] = defaultdict(list)
        for rowid, score in fused.items():
            by_group[group[rowid]].append(score)
        evidence = {
            g: sum(s * weights.session_decay**n for n, s in enumerate(sorted(ss, reverse=True)))
            for g, ss in by_group.items()
        }
        for rowid in fused:
            credit(rowid, weights.session * evidence[group[rowid]], "session")

    if window is not None and weights.in_window:
        start, end = codec.to_ms(window[0]), codec.to_ms(window[1])
        # People talk about an event in the days after it ("the workshop in April", told
        # on May 1st), so the window stays open a little past its end: a quarter of its
        # length, between one and seven days.
        end += min(max((end - start) // 4, DAY_MS), 7 * DAY_MS)
        for rowid, r in ranked.items():
            it = items.get(rowid)
            if it is not None and start <= it.ts < end:
                credit(rowid, weights.in_window * r.score, "time")

    return sorted(ranked.values(), key=lambda r: (-r.score, r.rowid))
