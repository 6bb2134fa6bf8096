"""The search index's rows (`items`): their types, and what an operation did to them."""

from __future__ import annotations

from dataclasses import dataclass

import apsw

__all__ = ["ITEM_MEMORY", "ITEM_TURN", "IndexChange", "item_rowid"]

ITEM_MEMORY = 0
ITEM_TURN = 1


@dataclass(frozen=True)
class IndexChange:
    """What an applied operation did to the search index, for the in-memory vector cache."""

    added: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    updated: tuple[int, ...] = ()


def item_rowid(conn: apsw.Connection, item_type: int, ref: int) -> int | None:
    row = conn.execute(
        "SELECT rowid FROM items WHERE type=? AND ref=?", (item_type, ref)
    ).fetchone()
    return None if row is None else int(row[0])
