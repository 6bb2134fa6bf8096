"""Search filters resolved to the codes the index stores, usable both as SQL (the keyword
half) and as numpy masks over the in-memory vectors (the vector half), so both halves of
a search apply exactly the same filters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import apsw

from memsync import codec
from memsync.model import SearchFilters, Status
from memsync.scope import Scope
from memsync.store import state

__all__ = ["Conditions", "resolve_filters"]


@dataclass(frozen=True)
class Conditions:
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
) -> Conditions:
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
    return Conditions(
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
