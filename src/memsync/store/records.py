"""Memory and source records as the vault reads and checks them: ids named by a prefix,
pages of memories, a memory's chain of versions, new and edited memories, and the records
of an export that are new here. `Vault` calls these; writing stays with it (see `Vault.commit_ops`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import apsw

from memsync import codec
from memsync.errors import AmbiguousId, NotFound, UsageError
from memsync.ids import new_id
from memsync.model import Category, Kind, Memory, Page, Provenance, SearchFilters, Source, Status
from memsync.scope import Scope
from memsync.store import state

__all__ = [
    "chain",
    "clean_tags",
    "edited",
    "list_page",
    "new_memory",
    "new_record_ops",
    "resolve",
    "stored_form",
    "validate",
]


def validate(
    text: str, valid_from: datetime | None, valid_until: datetime | None, confidence: float
) -> None:
    """The checks every new version of a memory passes, whether added or edited."""
    if not text.strip():
        raise UsageError("a memory needs some text")
    if not 0.0 <= confidence <= 1.0:
        raise UsageError("confidence must be between 0 and 1")
    if valid_from and valid_until and valid_until < valid_from:
        raise UsageError("valid-until is before valid-from")


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    cleaned = {t.strip().lower() for t in tags if t.strip()}
    return tuple(sorted(cleaned))


def stored_form(filters: SearchFilters) -> SearchFilters:
    """`filters` with its tags written the way tags are stored (trimmed, lower case)."""
    if not filters.tags:
        return filters
    return replace(filters, tags=clean_tags(filters.tags))


def resolve(conn: apsw.Connection, id_or_prefix: str) -> str:
    """The full id of the memory or source that `id_or_prefix` names uniquely."""
    key = id_or_prefix.strip()
    if not key:
        raise NotFound("no id given")
    pattern = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = conn.execute(
        "SELECT id FROM memories WHERE id LIKE ? ESCAPE '\\' "
        "UNION ALL SELECT id FROM sources WHERE id LIKE ? ESCAPE '\\' LIMIT 3",
        (pattern, pattern),
    ).fetchall()
    exact = [r[0] for r in rows if r[0] == key]
    if exact:
        return str(exact[0])
    if not rows:
        raise NotFound(f"no memory or source with id {key}")
    if len(rows) > 1:
        raise AmbiguousId(f"id prefix {key} matches more than one record; type more of it")
    return str(rows[0][0])


def chain(conn: apsw.Connection, memory: Memory) -> list[Memory]:
    """`memory`'s whole chain of versions, oldest first; see `Vault.history`."""

    def linked(memory_id: str | None) -> Memory | None:
        try:
            return None if memory_id is None else state.get_memory(conn, memory_id)
        except NotFound:
            return None

    current = memory
    while (older := linked(current.supersedes)) is not None:
        current = older
    versions = [current]
    while (newer := linked(versions[-1].superseded_by)) is not None:
        versions.append(newer)
    return versions


def new_memory(
    text: str,
    *,
    kind: Kind,
    category: Category | None,
    tags: Iterable[str],
    valid_from: datetime | None,
    valid_until: datetime | None,
    observed_at: datetime | None,
    confidence: float,
    provenance: Sequence[Provenance],
    clock: Callable[[], datetime],
) -> Memory:
    """A new memory, checked, observed now unless `observed_at` says when; see
    `Vault.add`."""
    validate(text, valid_from, valid_until, confidence)
    now = clock()
    return Memory(
        id=new_id("m"),
        text=text.strip(),
        kind=Kind(kind),
        category=None if category is None else Category(category),
        tags=clean_tags(tags),
        created_at=now,
        updated_at=now,
        observed_at=observed_at or now,
        valid_from=valid_from,
        valid_until=valid_until,
        confidence=confidence,
        provenance=tuple(provenance) or (Provenance(),),
    )


def edited(
    old: Memory,
    *,
    text: str | None,
    kind: Kind | None,
    category: Category | None,
    tags: Iterable[str] | None,
    valid_until: datetime | None,
    clock: Callable[[], datetime],
) -> Memory:
    """The checked copy of `old` with these changes, made to supersede it; see
    `Vault.edit`."""
    if old.status is not Status.ACTIVE:
        raise UsageError(f"memory {old.id} is {old.status.value}; only active ones can be edited")
    now = clock()
    new = replace(
        old,
        id=new_id("m"),
        text=(text or old.text).strip(),
        kind=kind or old.kind,
        category=category or old.category,
        tags=old.tags if tags is None else clean_tags(tags),
        valid_until=valid_until or old.valid_until,
        created_at=now,
        updated_at=now,
        supersedes=old.id,
        superseded_by=None,
    )
    if new.text == old.text and (new.kind, new.category, new.tags, new.valid_until) == (
        old.kind,
        old.category,
        old.tags,
        old.valid_until,
    ):
        raise UsageError("nothing to change")
    validate(new.text, new.valid_from, new.valid_until, new.confidence)
    return new


def list_page(
    conn: apsw.Connection,
    filters: SearchFilters,
    *,
    now: datetime,
    limit: int | None,
    offset: int,
    scope: Scope | None = None,
) -> Page:
    """Memories matching `filters` (in stored form) and readable in `scope`, newest first;
    see `Vault.list`."""
    where: list[str] = ["1"]
    params: list[Any] = []
    if scope is not None:
        where.append(f"m.kind IN ({','.join('?' * len(scope.kinds)) or 'NULL'})")
        params += sorted(k.value for k in scope.kinds)
        cats = f"m.category IN ({','.join('?' * len(scope.read)) or 'NULL'})"
        where.append(f"({cats} OR m.category IS NULL)" if scope.reads_uncategorised else cats)
        params += sorted(c.value for c in scope.read)
    statuses = filters.statuses or tuple(Status)
    where.append(f"m.status IN ({','.join('?' * len(statuses))})")
    params += [s.value for s in statuses]
    for col, values in (("kind", filters.kinds), ("category", filters.categories)):
        if values:
            where.append(f"m.{col} IN ({','.join('?' * len(values))})")
            params += [v.value for v in values]
    if filters.tags:
        where.append(
            "m.id IN (SELECT memory_id FROM memory_tags WHERE tag IN "
            f"({','.join('?' * len(filters.tags))}))"
        )
        params += list(filters.tags)
    if filters.since:
        where.append("m.observed_at >= ?")
        params.append(codec.to_ms(filters.since))
    if filters.until:
        where.append("m.observed_at < ?")
        params.append(codec.to_ms(filters.until))
    if not filters.include_expired:
        where.append("(m.valid_until IS NULL OR m.valid_until > ?)")
        params.append(codec.to_ms(now))
    clause = " AND ".join(where)
    total = int(
        conn.execute(f"SELECT count(*) FROM memories m WHERE {clause}", params).fetchone()[0]
    )
    items = state.query_memories(
        conn,
        clause,
        params,
        # LIMIT -1 is SQLite's "no limit".
        f"ORDER BY m.observed_at DESC, m.id LIMIT {-1 if limit is None else int(limit)} "
        f"OFFSET {int(offset)}",
    )
    return Page(tuple(items), total, offset, len(items) if limit is None else limit)


def new_record_ops(
    conn: apsw.Connection, memories: Sequence[Memory], sources: Sequence[Source]
) -> tuple[list[dict[str, Any]], int]:
    """The operations that add the records whose ids (or, for sources, digests) are new
    here, sources first, and how many of them add sources; see `Vault.import_records`."""
    known_sources = {str(r[0]) for r in conn.execute("SELECT id FROM sources")}
    known_digests = {str(r[0]) for r in conn.execute("SELECT digest FROM sources")}
    known_memories = {str(r[0]) for r in conn.execute("SELECT id FROM memories")}
    ops: list[dict[str, Any]] = []
    for s in sources:
        if s.id in known_sources or (s.digest and s.digest in known_digests):
            continue
        known_sources.add(s.id)
        known_digests.add(s.digest)
        ops.append({"op": "add_source", "source": codec.source_to_json(s)})
    n_sources = len(ops)
    for m in memories:
        if m.id in known_memories:
            continue
        known_memories.add(m.id)
        ops.append({"op": "add_memory", "memory": codec.memory_to_json(m)})
    return ops, n_sources
