"""Forgetting as crypto-shredding: a forgotten memory or source can be read by nobody,
from any copy of anything, ever again.

Every log entry is sealed under its own record key, which lives only where it can be
deleted: this database and the overwritable key objects on remotes. Forgetting writes a
signed forget operation that names the versions (or the source), the disclosures to
redact and every entry whose content is about them; then it destroys those entries'
keys here (the database zeroes what it frees; the write-ahead log is truncated), and
every other device destroys them when the forget reaches it (`settle`), and rewrites
the key objects on its remotes (`memsync.sync.shred`). What was derived goes with the
state: the index rows (FTS5 with secure-delete), vectors, the stored profile.
Ciphertext that storage keeps forever stays, unreadable: its keys exist nowhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import apsw

from memsync import codec, config
from memsync.core import Core
from memsync.errors import CryptoError, NotFound, UsageError
from memsync.model import Status
from memsync.store import db, ledger, records, state
from memsync.store.forgetting import FORGET_OPS, concerns, counts_for_nothing

__all__ = [
    "Forgetting",
    "apply_retention",
    "expired",
    "forget_memories",
    "forget_source",
    "settle",
    "written_by",
]

Entries = list[tuple[str, int]]


def _keyed(conn: apsw.Connection, after: int = 0) -> list[tuple[Any, ...]]:
    """Entries that still have their record key (inserted after log row `after`)."""
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT o.rowid, o.device_id, o.seq FROM oplog o JOIN entry_keys k "
        "ON k.device_id=o.device_id AND k.seq=o.seq WHERE o.rowid>? ORDER BY o.rowid",
        (after,),
    ).fetchall()


class _Index:
    """What each entry that still has its key is about, read once per forget."""

    def __init__(self, core: Core, conn: apsw.Connection) -> None:
        self.about: list[tuple[tuple[str, int], set[str], set[str]]] = [
            (key, *concerns(op)) for _, key, op in _opened(core, _keyed(conn))
        ]

    def entries(self, memories: set[str], sources: set[str]) -> Entries:
        """Every entry whose content is about one of these records."""
        return [k for k, m, s in self.about if m & memories or s & sources]


def _redactions(
    conn: apsw.Connection, memories: set[str], sources: set[str]
) -> list[dict[str, Any]]:
    """Each disclosure of a forgotten record as it stays: who was shown what else, and
    when, without its query (which may quote what is forgotten)."""
    out = []
    for doc in ledger.docs(conn, memories, sources):
        items = doc.pop("items")
        del doc["query"]
        gone = [i for i in items if i.get("memory") in memories or i.get("source") in sources]
        out.append({**doc, "items": [i for i in items if i not in gone]})
    return out


def _versions(conn: apsw.Connection, memory_id: str) -> list[str]:
    return [m.id for m in records.chain(conn, state.get_memory(conn, memory_id))]


class _Plan:
    """The forget operations of one transaction, and the entries they shred."""

    def __init__(self, core: Core, conn: apsw.Connection) -> None:
        self.core = core
        self.conn = conn
        self.index = _Index(core, conn)
        self.at = codec.to_ms(core.clock())
        self.ops: list[dict[str, Any]] = []
        self.shredded: Entries = []
        self.taken: set[str] = set()

    def memory(self, memory_id: str) -> None:
        versions = [v for v in _versions(self.conn, memory_id) if v not in self.taken]
        if versions:
            self.taken |= set(versions)
            op = {"op": "forget_memory", "id": versions[0], "versions": versions}
            self._add(op, set(versions), set())

    def source(self, source_id: str, digest: str) -> None:
        self._add({"op": "forget_source", "id": source_id, "digest": digest}, set(), {source_id})

    def _add(self, op: dict[str, Any], memories: set[str], sources: set[str]) -> None:
        entries = [e for e in self.index.entries(memories, sources) if e not in self.shredded]
        self.shredded += entries
        redact = _redactions(self.conn, memories, sources)
        self.ops.append(
            {**op, "at": self.at, "redact": redact, "shred": [list(e) for e in entries]}
        )

    def commit(self) -> None:
        self.core.commit(self.ops)
        _shred(self.core, self.conn, self.shredded)


def forget_memories(core: Core, memory_ids: Sequence[str]) -> int:
    """Forget each memory (full ids) and every version in its history; returns how many
    entries' keys were destroyed. See `Vault.forget`."""
    with core.db.write() as conn:
        plan = _Plan(core, conn)
        for memory_id in memory_ids:
            current = state.get_memory(conn, memory_id)
            gone = conn.execute("SELECT 1 FROM forgotten WHERE id=?", (current.id,)).fetchone()
            if current.status is Status.FORGOTTEN and gone:
                raise UsageError(f"memory {current.id} is already forgotten")
            plan.memory(memory_id)
        plan.commit()
    compact(core)
    return len(plan.shredded)


def forget_source(core: Core, source_id: str) -> tuple[int, int]:
    """Forget a conversation or document and every memory drawn only from it; returns
    (memories forgotten, entries shredded)."""
    with core.db.write() as conn:
        row = conn.execute("SELECT digest FROM sources WHERE id=?", (source_id,)).fetchone()
        if row is None:
            raise NotFound(f"no source with id {source_id}")
        only = [
            str(m)
            for (m,) in conn.execute(
                "SELECT DISTINCT p.memory_id FROM provenance p JOIN memories m ON m.id=p.memory_id "
                "WHERE p.source_id=? AND m.status!=? AND NOT EXISTS (SELECT 1 FROM provenance q "
                "WHERE q.memory_id=p.memory_id AND (q.source_id IS NULL OR q.source_id!=?))",
                (source_id, Status.FORGOTTEN.value, source_id),
            )
        ]
        plan = _Plan(core, conn)
        for memory_id in only:
            plan.memory(memory_id)
        plan.source(source_id, str(row[0]))
        plan.commit()
    compact(core)
    return len(plan.ops) - 1, len(plan.shredded)


def _shred(core: Core, conn: apsw.Connection, entries: Entries) -> None:
    """Destroy the keys of `entries` here, and note each remote's key objects to rewrite."""
    if not entries:
        return
    core.log.shred(entries)
    remotes = [str(r[0]) for r in conn.execute("SELECT name FROM remotes")]
    conn.executemany(
        "INSERT OR IGNORE INTO shred_pending(remote, device_id, seq) VALUES(?,?,?)",
        [(r, d, s) for r in remotes for d, s in entries],
    )
    # The stored profile may quote what was forgotten: it is rebuilt when next asked for.
    conn.execute("DELETE FROM meta WHERE key='profile'")


def settle(core: Core) -> int:
    """Destroy, here, the keys of entries a forget took: those a forget or shred names,
    and those about a forgotten record that arrived after it (an edit made elsewhere
    before that device heard). The second kind is named in a `shred` operation of this
    device's own, so that readers accept them without keys. Returns how many."""
    with core.db.write() as conn:
        mark = int(db.read_meta(conn, "shred_scan") or 0)
        fresh = _opened(core, _keyed(conn, mark))
        if mark and any(op.get("op") in FORGET_OPS for _, _, op in fresh):
            # A forget arrived: it may take entries that were here before it.
            fresh = _opened(core, _keyed(conn, 0))
        if not fresh:
            return 0
        names = {
            (str(d), int(s)) for d, s in conn.execute("SELECT device_id, seq FROM shred_names")
        }
        found: Entries = [
            key
            for _, key, op in fresh
            if key in names or (op.get("op") not in FORGET_OPS and counts_for_nothing(conn, op))
        ]
        unnamed = [e for e in found if e not in names]
        if unnamed:
            at = codec.to_ms(core.clock())
            core.commit([{"op": "shred", "shred": [list(e) for e in unnamed], "at": at}])
        _shred(core, conn, found)
        db.write_meta(conn, "shred_scan", str(max(r for r, _, _ in fresh)))
    if found:
        compact(core)
    return len(found)


def _opened(
    core: Core, rows: Iterable[tuple[Any, ...]]
) -> list[tuple[int, tuple[str, int], dict[str, Any]]]:
    out = []
    for rowid, device, seq in rows:
        entry = core.log.entry(str(device), int(seq))
        if entry is None:
            continue
        with contextlib.suppress(CryptoError):
            out.append((int(rowid), (str(device), int(seq)), core.log.decrypt(entry, core.log_key)))
    return out


def compact(core: Core) -> None:
    """Push what forgetting freed out of the write-ahead log: old page images there
    could otherwise still hold a destroyed key until the next checkpoint."""
    with contextlib.suppress(apsw.Error):
        core.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def written_by(core: Core, app: str) -> tuple[list[str], list[str]]:
    """(memories, sources) that app `app` wrote: what it added or edited (the newest
    version of each), and what it ingested."""
    conn = core.conn
    rows = conn.execute(
        "SELECT DISTINCT x.memory_id FROM disclosed x JOIN disclosures d ON d.rowid=x.disclosure "
        "WHERE d.app=? AND d.action IN ('add', 'edit') AND x.memory_id IS NOT NULL",
        (app,),
    ).fetchall()
    memories: dict[str, None] = {}
    for (memory_id,) in rows:
        with contextlib.suppress(NotFound):
            chain = records.chain(conn, state.get_memory(conn, str(memory_id)))
            if chain[-1].status is not Status.FORGOTTEN:
                memories[chain[-1].id] = None
    sources = [
        str(s) for (s,) in conn.execute("SELECT id FROM sources WHERE origin=? ORDER BY id", (app,))
    ]
    return list(memories), sources


def expired(core: Core, days: int) -> list[str]:
    """Episodic memories (current versions) that ended more than `days` days ago; one
    with no end counts from when it was observed."""
    cutoff = codec.to_ms(core.clock()) - days * 86_400_000
    return [
        str(m)
        for (m,) in core.conn.execute(
            "SELECT id FROM memories WHERE kind='episodic' AND status IN ('active', 'invalidated') "
            "AND coalesce(valid_until, valid_from, observed_at) < ? ORDER BY id",
            (cutoff,),
        )
    ]


def apply_retention(core: Core) -> int:
    """Forget what `retention.episodic` says is past keeping; how many memories."""
    days = config.load(core.conn).retention_episodic
    if not days:
        return 0
    due = expired(core, days)
    if due:
        forget_memories(core, due)
    return len(due)


class Forgetting:
    """What to forget, found (`Vault.forgetting`): by app, by age, by the retention policy."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def written_by(self, app: str) -> tuple[list[str], list[str]]:
        return written_by(self.core, app)

    def expired(self, days: int) -> list[str]:
        return expired(self.core, days)

    def apply_retention(self) -> int:
        return apply_retention(self.core)
