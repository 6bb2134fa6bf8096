"""The disclosure ledger: every memory (and conversation excerpt) handed to an app.

Each disclosure is an operation in the log, so the record is signed, travels with the
vault to every device and cannot be edited after the fact. `memsync disclosures` and
`memsync show ID` read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import apsw

from memsync import codec
from memsync.ids import new_id
from memsync.model import Memory, Turn

__all__ = ["Disclosed", "Disclosure", "docs"]

# Queries are kept whole up to this many characters (a proxy query can be a long chat).
QUERY_CHARS = 500


@dataclass(frozen=True)
class Disclosed:
    """One thing handed over: a memory, or one turn of a stored conversation."""

    memory_id: str | None = None
    source_id: str | None = None
    turn: int | None = None

    @classmethod
    def of(cls, memory: Memory | None, turn: Turn | None) -> Disclosed:
        """What a search hit or a context line handed over: its memory, else its turn."""
        if memory is not None:
            return cls(memory.id)
        assert turn is not None
        return cls(None, turn.source_id, turn.index)


@dataclass(frozen=True)
class Disclosure:
    """What `app` was given at `at`, by which action (search, context, get, list, …) and
    for which query."""

    id: str
    app: str
    at: datetime
    action: str
    query: str | None
    items: tuple[Disclosed, ...]

    @property
    def memory_ids(self) -> tuple[str, ...]:
        return tuple(i.memory_id for i in self.items if i.memory_id is not None)


def op(
    app: str, action: str, query: str | None, items: Sequence[Disclosed], at: datetime
) -> dict[str, Any]:
    """The log operation recording one disclosure."""
    return {
        "op": "disclose",
        "id": new_id("d"),
        "app": app,
        "action": action,
        "query": None if query is None else query[:QUERY_CHARS],
        "at": codec.to_ms(at),
        "items": [{"memory": i.memory_id, "source": i.source_id, "turn": i.turn} for i in items],
    }


def docs(
    conn: apsw.Connection, memories: set[str] | None = None, sources: set[str] | None = None
) -> list[dict[str, Any]]:
    """Disclosures as a `disclose` operation carries them (what `apply` takes), oldest
    first; with `memories` or `sources`, only those that showed one of them."""
    where, params = "1", []
    if memories is not None or sources is not None:
        m, s = sorted(memories or ()), sorted(sources or ())
        where = (
            "d.rowid IN (SELECT disclosure FROM disclosed WHERE "
            f"memory_id IN ({','.join('?' * len(m))}) OR source_id IN ({','.join('?' * len(s))}))"
        )
        params = [*m, *s]
    found: dict[int, dict[str, Any]] = {}
    for rowid, did, app, at, action, query, mem, src, turn in conn.execute(
        "SELECT d.rowid, d.id, d.app, d.at, d.action, d.query, x.memory_id, x.source_id, "
        f"x.turn FROM disclosures d LEFT JOIN disclosed x ON x.disclosure=d.rowid WHERE {where} "
        "ORDER BY d.at, d.id, x.ord",
        params,
    ):
        doc = found.setdefault(
            int(rowid),
            {"id": did, "app": app, "at": at, "action": action, "query": query, "items": []},
        )
        item = {
            k: v for k, v in (("memory", mem), ("source", src), ("turn", turn)) if v is not None
        }
        if item:
            doc["items"].append(item)
    return list(found.values())


def apply(conn: apsw.Connection, op: dict[str, Any]) -> None:
    if conn.execute("SELECT 1 FROM disclosures WHERE id=?", (op["id"],)).fetchone():
        return
    conn.execute(
        "INSERT INTO disclosures(id, app, at, action, query) VALUES(?,?,?,?,?)",
        (str(op["id"]), str(op["app"]), int(op["at"]), str(op["action"]), op.get("query")),
    )
    rowid = conn.last_insert_rowid()
    conn.executemany(
        "INSERT INTO disclosed(disclosure, ord, memory_id, source_id, turn) VALUES(?,?,?,?,?)",
        [
            (rowid, n, item.get("memory"), item.get("source"), item.get("turn"))
            for n, item in enumerate(op["items"])
        ],
    )


def query(
    conn: apsw.Connection,
    *,
    app: str | None = None,
    since: datetime | None = None,
    memory_id: str | None = None,
    limit: int | None = None,
) -> list[Disclosure]:
    """Disclosures, newest first, by app, from a time, or of one memory."""
    where: list[str] = ["1"]
    params: list[Any] = []
    if app is not None:
        where.append("d.app=?")
        params.append(app)
    if since is not None:
        where.append("d.at>=?")
        params.append(codec.to_ms(since))
    if memory_id is not None:
        where.append("d.rowid IN (SELECT disclosure FROM disclosed WHERE memory_id=?)")
        params.append(memory_id)
    tail = "" if limit is None else f" LIMIT {int(limit)}"
    rows = conn.execute(
        "SELECT d.rowid, d.id, d.app, d.at, d.action, d.query FROM disclosures d "
        f"WHERE {' AND '.join(where)} ORDER BY d.at DESC, d.rowid DESC{tail}",
        params,
    ).fetchall()
    items: dict[int, list[Disclosed]] = {int(r[0]): [] for r in rows}
    if items:
        marks = ",".join("?" * len(items))
        for d, memory, source, turn in conn.execute(
            "SELECT disclosure, memory_id, source_id, turn FROM disclosed "
            f"WHERE disclosure IN ({marks}) ORDER BY disclosure, ord",
            list(items),
        ):
            items[int(d)].append(Disclosed(memory, source, turn))
    return [
        Disclosure(
            id=str(r[1]),
            app=str(r[2]),
            at=codec.from_ms(int(r[3])),
            action=str(r[4]),
            query=r[5],
            items=tuple(items[int(r[0])]),
        )
        for r in rows
    ]
