"""Forgetting in the state: what a forget operation leaves, and which operations count for
nothing once a record is forgotten.

A forget names the versions (or the source) it forgets, the disclosures it redacts and
the log entries whose record keys it destroys. Those entries may later be unreadable
anywhere, so the state must come out the same whether they are read or not: a forgotten
version keeps a tombstone made from the forget alone (its id, its place in the chain,
when it was forgotten; no text, kind, category or times of its own), and whatever an
entry about a forgotten record did is undone by the forget or never done after it.
"""

from __future__ import annotations

from typing import Any

import apsw

from memsync.model import Kind, Status
from memsync.store import ledger
from memsync.store.items import ITEM_MEMORY, ITEM_TURN, IndexChange, item_rowid

__all__ = [
    "FORGET_OPS",
    "SHREDDED",
    "apply_forget_memory",
    "apply_forget_source",
    "apply_shred",
    "concerns",
    "counts_for_nothing",
    "named",
]

# What the sync hands the state for an entry that arrived without its key because a
# forget destroyed it: it does nothing (it never goes in the log as such).
SHREDDED: dict[str, Any] = {"op": "shredded"}
FORGET_OPS = frozenset({"forget_memory", "forget_source", "shred"})


def concerns(op: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The (memory ids, source ids) an operation's content is about."""
    kind = op.get("op")
    if kind == "add_memory":
        return {str(op["memory"]["id"])}, set()
    if kind == "edit_memory":
        return {str(op["memory"]["id"]), str(op["old"])}, set()
    if kind in ("set_status", "add_provenance"):
        return {str(op["id"])}, set()
    if kind == "add_source":
        return set(), {str(op["source"]["id"])}
    if kind == "disclose":
        items = op.get("items", [])
        return (
            {str(i["memory"]) for i in items if i.get("memory")},
            {str(i["source"]) for i in items if i.get("source")},
        )
    return set(), set()


def named(op: dict[str, Any]) -> list[tuple[str, int]]:
    """The entries a forget or shred operation names for shredding."""
    if op.get("op") not in FORGET_OPS:
        return []
    return [(str(d), int(s)) for d, s in op.get("shred", ())]


def _forgotten(conn: apsw.Connection, ids: set[str]) -> bool:
    return any(conn.execute("SELECT 1 FROM forgotten WHERE id=?", (i,)).fetchone() for i in ids)


def _memory_exists(conn: apsw.Connection, memory_id: str) -> bool:
    return conn.execute("SELECT 1 FROM memories WHERE id=?", (memory_id,)).fetchone() is not None


def counts_for_nothing(conn: apsw.Connection, op: dict[str, Any]) -> bool:
    """Whether `op` is about a record a forget took (or about a version it dropped): it
    then changes nothing, and its entry is one to shred."""
    kind = op.get("op")
    if kind == "shredded":
        return True
    memories, sources = concerns(op)
    if _forgotten(conn, memories | sources):
        return True
    if kind == "add_source":
        digest = op["source"].get("digest")
        return digest is not None and bool(
            conn.execute("SELECT 1 FROM forgotten WHERE digest=?", (digest,)).fetchone()
        )
    if kind == "edit_memory":
        return not _memory_exists(conn, str(op["old"]))
    if kind in ("set_status", "add_provenance"):
        return not _memory_exists(conn, str(op["id"]))
    if kind == "disclose":
        return any(not _memory_exists(conn, m) for m in memories)
    return False


def _drop_memory(conn: apsw.Connection, memory_id: str) -> list[int]:
    """Remove a version and all derived from it; the index rows it had."""
    row = conn.execute("SELECT rowid FROM memories WHERE id=?", (memory_id,)).fetchone()
    removed: list[int] = []
    if row is not None:
        item = item_rowid(conn, ITEM_MEMORY, int(row[0]))
        if item is not None:
            conn.execute("DELETE FROM items WHERE rowid=?", (item,))
            removed.append(item)
        conn.execute("DELETE FROM memories WHERE rowid=?", (int(row[0]),))
    conn.execute("DELETE FROM memory_tags WHERE memory_id=?", (memory_id,))
    conn.execute("DELETE FROM provenance WHERE memory_id=?", (memory_id,))
    return removed


def _chain(conn: apsw.Connection, versions: list[str]) -> list[str]:
    """Every version linked to `versions` (either way) here: edits made elsewhere that
    the forgetting device had not seen may sit between or after the ones it named."""
    found = list(versions)
    queue = list(versions)
    while queue:
        current = queue.pop()
        row = conn.execute(
            "SELECT supersedes, superseded_by FROM memories WHERE id=?", (current,)
        ).fetchone()
        successors = conn.execute(
            "SELECT id FROM memories WHERE supersedes=?", (current,)
        ).fetchall()
        for linked in (*(row or ()), *(r[0] for r in successors)):
            if linked is not None and str(linked) not in found:
                found.append(str(linked))
                queue.append(str(linked))
    return found


def _redact(
    conn: apsw.Connection, op: dict[str, Any], memories: set[str], sources: set[str]
) -> None:
    """Disclosures of what is forgotten: those the forget redacts keep who saw what and
    when, without the query or the forgotten items; any other goes (its entry is shred)."""
    redacted = {str(d["id"]): d for d in op.get("redact", ())}
    rows = conn.execute(
        "SELECT DISTINCT d.rowid, d.id FROM disclosures d JOIN disclosed x ON x.disclosure=d.rowid "
        f"WHERE x.memory_id IN ({','.join('?' * len(memories)) or 'NULL'}) "
        f"OR x.source_id IN ({','.join('?' * len(sources)) or 'NULL'})",
        [*memories, *sources],
    ).fetchall()
    for rowid, _ in rows:
        conn.execute("DELETE FROM disclosed WHERE disclosure=?", (int(rowid),))
        conn.execute("DELETE FROM disclosures WHERE rowid=?", (int(rowid),))
    for did, doc in sorted(redacted.items()):
        if not conn.execute("SELECT 1 FROM disclosures WHERE id=?", (did,)).fetchone():
            ledger.apply(conn, {**doc, "query": None})


def _name(conn: apsw.Connection, op: dict[str, Any]) -> None:
    conn.executemany("INSERT OR IGNORE INTO shred_names(device_id, seq) VALUES(?,?)", named(op))


def apply_forget_memory(conn: apsw.Connection, op: dict[str, Any]) -> IndexChange:
    """A forget that names its versions: each becomes a bare tombstone, linked in order;
    versions made elsewhere that the forgetting device had not seen (linked to them
    here, between or after) go."""
    at = int(op["at"])
    versions = [str(v) for v in op["versions"]]
    removed: list[int] = []
    later = [v for v in _chain(conn, versions) if v not in versions]
    for v in later:
        removed += _drop_memory(conn, v)
    for i, version in enumerate(versions):
        removed += _drop_memory(conn, version)
        conn.execute(
            "INSERT INTO memories(id, text, kind, category, created_at, updated_at, "
            "observed_at, valid_from, valid_until, confidence, status, supersedes, "
            "superseded_by) VALUES(?, '', ?, NULL, ?, ?, ?, NULL, NULL, 0, ?, ?, ?)",
            (
                version, Kind.SEMANTIC.value, at, at, at, Status.FORGOTTEN.value,
                versions[i - 1] if i else None,
                versions[i + 1] if i + 1 < len(versions) else None,
            ),
        )  # fmt: skip
        conn.execute(
            "INSERT OR IGNORE INTO forgotten(id, what, at) VALUES(?, 'memory', ?)", (version, at)
        )
    _redact(conn, op, set(versions) | set(later), set())
    _name(conn, op)
    return IndexChange(removed=tuple(removed))


def apply_forget_source(conn: apsw.Connection, op: dict[str, Any]) -> IndexChange:
    """A forgotten conversation or document: its turns, index rows and every provenance
    that points into it go; its digest stays, so importing it again brings nothing back."""
    source_id, at = str(op["id"]), int(op["at"])
    removed: list[int] = []
    for (rowid,) in conn.execute(
        "SELECT rowid FROM messages WHERE source_id=?", (source_id,)
    ).fetchall():
        item = item_rowid(conn, ITEM_TURN, int(rowid))
        if item is not None:
            conn.execute("DELETE FROM items WHERE rowid=?", (item,))
            removed.append(item)
    conn.execute("DELETE FROM messages WHERE source_id=?", (source_id,))
    conn.execute("DELETE FROM sources WHERE id=?", (source_id,))
    conn.execute("DELETE FROM provenance WHERE source_id=?", (source_id,))
    conn.execute(
        "INSERT OR IGNORE INTO forgotten(id, what, at, digest) VALUES(?, 'source', ?, ?)",
        (source_id, at, op.get("digest")),
    )
    _redact(conn, op, set(), {source_id})
    _name(conn, op)
    return IndexChange(removed=tuple(removed))


def apply_shred(conn: apsw.Connection, op: dict[str, Any]) -> IndexChange:
    """A device names more entries it shredded (edits of a forgotten memory it learnt of
    late): readers then accept those entries without their keys."""
    _name(conn, op)
    return IndexChange()
