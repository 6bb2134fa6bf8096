"""The materialised state: applying operations to tables, reading records back, digests.

`apply` is the only code that changes memories, sources and the search index, whether an
operation was just written or is being replayed from the log, so a rebuild from the log
always gives the same state as the live path.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import apsw

from memsync import codec
from memsync.errors import IntegrityError, NotFound
from memsync.model import (
    Category,
    Kind,
    Memory,
    Message,
    Provenance,
    Source,
    SourceKind,
    Status,
    Turn,
)
from memsync.store import apps, forgetting, ledger
from memsync.store.items import ITEM_MEMORY as ITEM_MEMORY
from memsync.store.items import ITEM_TURN as ITEM_TURN
from memsync.store.items import IndexChange as IndexChange
from memsync.store.items import item_rowid

STATUS_CODE = {s: i for i, s in enumerate(Status)}
KIND_CODE = {k: i for i, k in enumerate(Kind)}
CATEGORY_CODE = {c: i for i, c in enumerate(Category)}
NO_CODE = -1
# Turns the index leaves out: they are instructions to a model, not what a person said.
UNINDEXED_ROLES = frozenset({"system", "developer"})


_MEMORY_COLS = (
    "id, text, kind, category, created_at, updated_at, observed_at, valid_from, valid_until, "
    "confidence, status, supersedes, superseded_by"
)


def _insert_memory(conn: apsw.Connection, m: Memory) -> int:
    conn.execute(
        f"INSERT INTO memories({_MEMORY_COLS}) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            m.id,
            m.text,
            m.kind.value,
            None if m.category is None else m.category.value,
            codec.to_ms(m.created_at),
            codec.to_ms(m.updated_at),
            codec.to_ms(m.observed_at),
            codec.opt_ms(m.valid_from),
            codec.opt_ms(m.valid_until),
            m.confidence,
            m.status.value,
            m.supersedes,
            m.superseded_by,
        ),
    )
    rowid = int(conn.last_insert_rowid())
    conn.executemany(
        "INSERT OR IGNORE INTO memory_tags(memory_id, tag) VALUES(?, ?)",
        [(m.id, t) for t in m.tags],
    )
    _insert_provenance(conn, m.id, m.provenance)
    if m.status is not Status.FORGOTTEN:
        conn.execute(
            "INSERT INTO items(type, ref, text, status, kind, category, ts, valid_until) "
            "VALUES(?,?,?,?,?,?,?,?)",
            (
                ITEM_MEMORY,
                rowid,
                m.text,
                STATUS_CODE[m.status],
                KIND_CODE[m.kind],
                NO_CODE if m.category is None else CATEGORY_CODE[m.category],
                codec.to_ms(m.observed_at),
                codec.opt_ms(m.valid_until),
            ),
        )
    return rowid


def _insert_provenance(conn: apsw.Connection, memory_id: str, prov: Iterable[Provenance]) -> None:
    row = conn.execute(
        "SELECT coalesce(max(ord), -1) FROM provenance WHERE memory_id=?", (memory_id,)
    ).fetchone()
    start = int(row[0]) + 1
    conn.executemany(
        'INSERT INTO provenance(memory_id, ord, source_id, turn, start, "end", extractor, '
        "extractor_version) VALUES(?,?,?,?,?,?,?,?)",
        [
            (
                memory_id,
                start + i,
                p.source_id,
                p.turn,
                p.start,
                p.end,
                p.extractor,
                p.extractor_version,
            )
            for i, p in enumerate(prov)
        ],
    )


def _memory_rowid(conn: apsw.Connection, memory_id: str) -> int:
    row = conn.execute("SELECT rowid FROM memories WHERE id=?", (memory_id,)).fetchone()
    if row is None:
        raise NotFound(f"no memory with id {memory_id}")
    return int(row[0])


def _set_status(
    conn: apsw.Connection, memory_id: str, status: Status, at: int, **extra: Any
) -> int | None:
    rowid = _memory_rowid(conn, memory_id)
    sets = ", ".join(f"{k}=?" for k in extra)
    conn.execute(
        f"UPDATE memories SET status=?, updated_at=?{', ' + sets if sets else ''} WHERE rowid=?",
        (status.value, at, *extra.values(), rowid),
    )
    item = item_rowid(conn, ITEM_MEMORY, rowid)
    if item is not None:
        conn.execute(
            "UPDATE items SET status=?, valid_until=coalesce(?, valid_until) WHERE rowid=?",
            (STATUS_CODE[status], extra.get("valid_until"), item),
        )
    return item


def _newest_version(conn: apsw.Connection, memory_id: str) -> Memory:
    """The last version of the chain `memory_id` belongs to, from it forward."""
    current = get_memory(conn, memory_id)
    seen = {current.id}
    while current.superseded_by is not None and current.superseded_by not in seen:
        current = get_memory(conn, current.superseded_by)
        seen.add(current.id)
    return current


def _tombstone(conn: apsw.Connection, rowid: int, memory_id: str, at: int) -> list[int]:
    """Forget one version: the tombstone keeps only the id and the chain links."""
    item = item_rowid(conn, ITEM_MEMORY, rowid)
    conn.execute(
        "UPDATE memories SET status=?, text='', updated_at=? WHERE rowid=?",
        (Status.FORGOTTEN.value, at, rowid),
    )
    conn.execute("DELETE FROM memory_tags WHERE memory_id=?", (memory_id,))
    if item is None:
        return []
    conn.execute("DELETE FROM items WHERE rowid=?", (item,))
    return [item]


# Operations that change neither memories nor the bio (the profile's inputs).
_LEDGER_OPS = frozenset(
    {
        "disclose", "add_app", "revoke_app", "add_device", "enrol_device", "revoke_device",
        "shred", "shredded", "rotate_recovery",
    }
)  # fmt: skip
# Operations about a record, which count for nothing once a forget took it.
_RECORD_OPS = frozenset(
    {"add_memory", "edit_memory", "set_status", "add_provenance", "add_source", "disclose"}
)


def apply(conn: apsw.Connection, op: dict[str, Any]) -> IndexChange:
    """Apply one decrypted operation to the tables. Unknown operations are an error."""
    kind = op["op"]
    if kind not in _LEDGER_OPS:
        conn.execute("UPDATE counters SET value=value+1 WHERE name='memories'")
    if kind == "shredded" or (kind in _RECORD_OPS and forgetting.counts_for_nothing(conn, op)):
        return IndexChange()
    if kind == "forget_memory" and "versions" in op:
        return forgetting.apply_forget_memory(conn, op)
    if kind == "forget_source":
        return forgetting.apply_forget_source(conn, op)
    if kind == "shred":
        return forgetting.apply_shred(conn, op)
    if kind == "rotate_recovery":
        conn.execute(
            "INSERT OR IGNORE INTO rotations(epoch, sign_pub, wrap_pub, devices, rewrapped, "
            "by_device, at) VALUES(?,?,?,?,?,?,?)",
            (
                int(op["epoch"]), str(op["recovery_sign_pub"]), str(op["recovery_wrap_pub"]),
                json.dumps(sorted(op["devices"])), json.dumps(op["rewrapped"], sort_keys=True),
                str(op["by"]), int(op["at"]),
            ),
        )  # fmt: skip
        conn.execute(
            "INSERT OR IGNORE INTO epochs(epoch, stanzas, at) VALUES(?,?,?)",
            (int(op["epoch"]), json.dumps(op["stanzas"], sort_keys=True), int(op["at"])),
        )
        return IndexChange()
    if kind == "add_device":
        conn.execute(
            "INSERT OR IGNORE INTO devices(device_id, wrap_pub, sign_pub, name, added_at) "
            "VALUES(?,?,?,?,?)",
            (
                op["device_id"],
                base64.b64decode(op["wrap_pub"]),
                base64.b64decode(op["sign_pub"]),
                op.get("name"),
                int(op["at"]),
            ),
        )
        return IndexChange()
    if kind == "enrol_device":
        conn.execute(
            "INSERT OR IGNORE INTO enrolments(device_id, wrap_pub, sign_pub, by_device, at) "
            "VALUES(?,?,?,?,?)",
            (op["device_id"], op["wrap_pub"], op["sign_pub"], op["by"], int(op["at"])),
        )
        return IndexChange()
    if kind == "revoke_device":
        conn.execute(
            "INSERT OR IGNORE INTO revocations(device_id, seq, epoch, by_device, at) "
            "VALUES(?,?,?,?,?)",
            (op["device_id"], int(op["seq"]), int(op["epoch"]), op["by"], int(op["at"])),
        )
        conn.execute(
            "INSERT OR IGNORE INTO epochs(epoch, stanzas, at) VALUES(?,?,?)",
            (int(op["epoch"]), json.dumps(op["stanzas"], sort_keys=True), int(op["at"])),
        )
        return IndexChange()
    if kind == "add_memory":
        m = codec.memory_from_json(op["memory"])
        if conn.execute("SELECT 1 FROM memories WHERE id=?", (m.id,)).fetchone():
            return IndexChange()  # replays and re-imports are no-ops
        rowid = _insert_memory(conn, m)
        item = item_rowid(conn, ITEM_MEMORY, rowid)
        return IndexChange(added=() if item is None else (item,))
    if kind == "edit_memory":
        new = codec.memory_from_json(op["memory"])
        if conn.execute("SELECT 1 FROM memories WHERE id=?", (new.id,)).fetchone():
            return IndexChange()  # a replay
        # Two devices that edited one version offline each made a successor of it. The
        # log replays in clock order, so the later edit supersedes the newest version
        # there is: the chain stays one line and the earlier edit stays in its history.
        head = _newest_version(conn, str(op["old"]))
        at = codec.to_ms(new.created_at)
        if head.status is Status.FORGOTTEN:
            # Forgetting wins: an edit made without having seen it keeps no text.
            _insert_memory(
                conn, replace(new, supersedes=head.id, text="", tags=(), status=Status.FORGOTTEN)
            )
            conn.execute("UPDATE memories SET superseded_by=? WHERE id=?", (new.id, head.id))
            return IndexChange()
        old_item = _set_status(conn, head.id, Status.SUPERSEDED, at, superseded_by=new.id)
        rowid = _insert_memory(conn, replace(new, supersedes=head.id))
        item = item_rowid(conn, ITEM_MEMORY, rowid)
        return IndexChange(
            added=() if item is None else (item,),
            updated=() if old_item is None else (old_item,),
        )
    if kind == "set_status":
        status = Status(op["status"])
        if status is Status.FORGOTTEN:
            raise IntegrityError("forgetting goes through forget_memory")
        current = get_memory(conn, str(op["id"]))
        if current.status is Status.FORGOTTEN:
            return IndexChange()  # a tombstone always wins
        item = _set_status(
            conn, current.id, status, int(op["at"]), valid_until=op.get("valid_until")
        )
        return IndexChange(updated=() if item is None else (item,))
    if kind == "add_provenance":
        memory_id = str(op["id"])
        _memory_rowid(conn, memory_id)
        prov = [codec.provenance_from_json(p, "provenance") for p in op["provenance"]]
        _insert_provenance(conn, memory_id, prov)
        return IndexChange()
    if kind == "forget_memory":
        # The versions after this one go too: another device may have edited the memory
        # before it learnt that it was forgotten.
        removed: list[int] = []
        version: str | None = str(op["id"])
        while version is not None:
            rowid = _memory_rowid(conn, version)
            row = conn.execute(
                "SELECT status, superseded_by FROM memories WHERE rowid=?", (rowid,)
            ).fetchone()
            if row[0] != Status.FORGOTTEN.value:
                removed += _tombstone(conn, rowid, version, int(op["at"]))
            version = None if row[1] is None else str(row[1])
        return IndexChange(removed=tuple(removed))
    if kind == "add_source":
        return _add_source(conn, codec.source_from_json(op["source"]))
    if kind == "disclose":
        ledger.apply(conn, op)
        return IndexChange()
    if kind == "add_app":
        apps.apply_add(conn, op)
        return IndexChange()
    if kind == "revoke_app":
        apps.apply_revoke(conn, op)
        return IndexChange()
    if kind == "set_bio":
        if op.get("text") is None:
            conn.execute("DELETE FROM bio")
        else:
            conn.execute(
                "INSERT OR REPLACE INTO bio(one, text, updated_at) VALUES(1, ?, ?)",
                (str(op["text"]), int(op["at"])),
            )
        return IndexChange()
    raise IntegrityError(f"unknown operation type {kind!r}")


# The tables the log determines (not the log, its keys, the vectors' sources or the
# device's own settings), children before parents.
_STATE_TABLES = (
    "disclosed",
    "disclosures",
    "apps",
    "bio",
    "provenance",
    "memory_tags",
    "items",
    "messages",
    "sources",
    "memories",
    "devices",
    "enrolments",
    "revocations",
    "epochs",
    "forgotten",
    "shred_names",
    "rotations",
)


def reset(conn: apsw.Connection) -> None:
    """Empty the state, before it is rebuilt from the log (inside a write)."""
    for table in _STATE_TABLES:
        conn.execute(f"DELETE FROM {table}")


def apply_all(conn: apsw.Connection, ops: Iterable[dict[str, Any]]) -> IndexChange:
    """Apply `ops` in order; what they did to the index, together."""
    added: list[int] = []
    removed: list[int] = []
    updated: list[int] = []
    for op in ops:
        change = apply(conn, op)
        added += change.added
        removed += change.removed
        updated += change.updated
    return IndexChange(tuple(added), tuple(removed), tuple(updated))


def _add_source(conn: apsw.Connection, s: Source) -> IndexChange:
    if conn.execute("SELECT 1 FROM sources WHERE id=?", (s.id,)).fetchone():
        return IndexChange()
    conn.execute(
        "INSERT INTO sources(id, kind, title, origin, created_at, captured_at, digest, "
        "external_id) VALUES(?,?,?,?,?,?,?,?)",
        (
            s.id,
            s.kind.value,
            s.title,
            s.origin,
            codec.to_ms(s.created_at),
            codec.to_ms(s.captured_at),
            s.digest,
            s.external_id,
        ),
    )
    added = []
    default_ts = codec.to_ms(s.created_at)
    for i, m in enumerate(s.messages):
        ts = codec.opt_ms(m.timestamp)
        conn.execute(
            "INSERT INTO messages(source_id, idx, role, content, ts, name, start) "
            "VALUES(?,?,?,?,?,?,?)",
            (s.id, i, m.role, m.content, ts, m.name, s.offsets[i] if s.offsets else None),
        )
        if m.role in UNINDEXED_ROLES or not m.content.strip():
            continue
        msg_rowid = int(conn.last_insert_rowid())
        conn.execute(
            "INSERT INTO items(type, ref, text, status, kind, category, ts) VALUES(?,?,?,?,?,?,?)",
            (
                ITEM_TURN,
                msg_rowid,
                m.content,
                STATUS_CODE[Status.ACTIVE],
                NO_CODE,
                NO_CODE,
                default_ts if ts is None else ts,
            ),
        )
        added.append(int(conn.last_insert_rowid()))
    return IndexChange(added=tuple(added))


# Reading records back.


def _memories_from_rows(conn: apsw.Connection, rows: Sequence[tuple[Any, ...]]) -> list[Memory]:
    """Memories from `memories` rows, their tags and provenance read in one query each
    (not two per memory: search and list hydrate many at a time)."""
    ids = [str(r[0]) for r in rows]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    tags: dict[str, list[str]] = {}
    for mid, tag in conn.execute(
        f"SELECT memory_id, tag FROM memory_tags WHERE memory_id IN ({marks}) "
        "ORDER BY memory_id, tag",
        ids,
    ):
        tags.setdefault(str(mid), []).append(str(tag))
    prov: dict[str, list[Provenance]] = {}
    for p in conn.execute(
        'SELECT memory_id, source_id, turn, start, "end", extractor, extractor_version '
        f"FROM provenance WHERE memory_id IN ({marks}) ORDER BY memory_id, ord",
        ids,
    ):
        prov.setdefault(str(p[0]), []).append(
            Provenance(
                source_id=p[1],
                turn=p[2],
                start=p[3],
                end=p[4],
                extractor=p[5],
                extractor_version=p[6],
            )
        )
    return [
        Memory(
            id=mid,
            text=str(row[1]),
            kind=Kind(row[2]),
            category=None if row[3] is None else Category(row[3]),
            tags=tuple(tags.get(mid, ())),
            created_at=codec.from_ms(row[4]),
            updated_at=codec.from_ms(row[5]),
            observed_at=codec.from_ms(row[6]),
            valid_from=codec.opt_from_ms(row[7]),
            valid_until=codec.opt_from_ms(row[8]),
            confidence=float(row[9]),
            status=Status(row[10]),
            supersedes=row[11],
            superseded_by=row[12],
            provenance=tuple(prov.get(mid, ())),
        )
        for mid, row in zip(ids, rows, strict=True)
    ]


def get_memory(conn: apsw.Connection, memory_id: str) -> Memory:
    row = conn.execute(f"SELECT {_MEMORY_COLS} FROM memories WHERE id=?", (memory_id,)).fetchone()
    if row is None:
        raise NotFound(f"no memory with id {memory_id}")
    return _memories_from_rows(conn, [row])[0]


def memories_by_rowid(conn: apsw.Connection, rowids: Iterable[int]) -> dict[int, Memory]:
    ids = list(rowids)
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT rowid, {_MEMORY_COLS} FROM memories WHERE rowid IN ({marks})", ids
    ).fetchall()
    memories = _memories_from_rows(conn, [r[1:] for r in rows])
    return {int(r[0]): m for r, m in zip(rows, memories, strict=True)}


def query_memories(conn: apsw.Connection, where: str, params: list[Any], tail: str) -> list[Memory]:
    rows = conn.execute(
        f"SELECT {_MEMORY_COLS} FROM memories m WHERE {where} {tail}", params
    ).fetchall()
    return _memories_from_rows(conn, rows)


def turns_by_rowid(conn: apsw.Connection, rowids: Iterable[int]) -> dict[int, Turn]:
    ids = list(rowids)
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "SELECT m.rowid, m.source_id, m.idx, m.role, m.content, m.ts, s.title "
        f"FROM messages m JOIN sources s ON s.id = m.source_id WHERE m.rowid IN ({marks})",
        ids,
    ).fetchall()
    return {
        int(r[0]): Turn(
            source_id=r[1],
            index=int(r[2]),
            role=r[3],
            text=r[4],
            timestamp=codec.opt_from_ms(r[5]),
            source_title=r[6],
        )
        for r in rows
    }


def get_source(conn: apsw.Connection, source_id: str) -> Source:
    row = conn.execute(
        "SELECT id, kind, title, origin, created_at, captured_at, digest, external_id "
        "FROM sources WHERE id=?",
        (source_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no source with id {source_id}")
    rows = conn.execute(
        "SELECT role, content, ts, name, start FROM messages WHERE source_id=? ORDER BY idx",
        (source_id,),
    ).fetchall()
    messages = tuple(
        Message(role=r[0], content=r[1], timestamp=codec.opt_from_ms(r[2]), name=r[3]) for r in rows
    )
    offsets = tuple(int(r[4]) for r in rows) if rows and rows[0][4] is not None else ()

    return Source(
        id=row[0],
        kind=SourceKind(row[1]),
        title=row[2],
        origin=row[3],
        created_at=codec.from_ms(row[4]),
        captured_at=codec.from_ms(row[5]),
        messages=messages,
        digest=row[6],
        external_id=row[7],
        offsets=offsets,
    )


def all_sources(conn: apsw.Connection) -> list[Source]:
    ids = [str(r[0]) for r in conn.execute("SELECT id FROM sources ORDER BY created_at")]
    return [get_source(conn, i) for i in ids]


_DIGEST_QUERIES = (
    f"SELECT {_MEMORY_COLS} FROM memories ORDER BY id",
    "SELECT memory_id, tag FROM memory_tags ORDER BY memory_id, tag",
    'SELECT memory_id, ord, source_id, turn, start, "end", extractor, extractor_version '
    "FROM provenance ORDER BY memory_id, ord",
    "SELECT id, kind, title, origin, created_at, captured_at, digest, external_id FROM sources "
    "ORDER BY id",
    "SELECT source_id, idx, role, content, ts, name, start FROM messages ORDER BY source_id, idx",
    "SELECT device_id, wrap_pub, sign_pub, name, added_at FROM devices ORDER BY device_id",
    "SELECT device_id, wrap_pub, sign_pub, by_device, at FROM enrolments ORDER BY device_id",
    "SELECT device_id, seq, epoch, by_device, at FROM revocations ORDER BY device_id",
    "SELECT epoch, stanzas, at FROM epochs ORDER BY epoch",
    "SELECT name, token_hash, scope, rate_per_minute, created_at, revoked_at FROM apps "
    "ORDER BY name",
    "SELECT id, app, at, action, query FROM disclosures ORDER BY id",
    "SELECT d.id, x.ord, x.memory_id, x.source_id, x.turn FROM disclosed x "
    "JOIN disclosures d ON d.rowid=x.disclosure ORDER BY d.id, x.ord",
    "SELECT text, updated_at FROM bio",
    "SELECT id, what, at, digest FROM forgotten ORDER BY id",
    "SELECT device_id, seq FROM shred_names ORDER BY device_id, seq",
    "SELECT epoch, sign_pub, wrap_pub, devices, rewrapped, by_device, at FROM rotations "
    "ORDER BY epoch",
    "SELECT type, text, status, kind, category, ts, valid_until FROM items "
    "ORDER BY type, text, ts, status, kind, category, valid_until",  # every column: no ties
)


def digest(conn: apsw.Connection) -> str:
    """A hash of the whole logical state (not the derived vectors), for rebuild equality."""
    h = hashlib.sha256()
    for query in _DIGEST_QUERIES:
        h.update(query.encode())
        for row in conn.execute(query):
            h.update(
                repr(
                    tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row)
                ).encode()
            )
    return h.hexdigest()
