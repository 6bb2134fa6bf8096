"""The profile kept up to date: the stored one (a derived cache in the encrypted `meta`
table) is the starting point, so only sections whose memories changed are rewritten and a
configured LLM is asked again only about those. `Vault.profile` calls `refresh`."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import datetime

import apsw

from memsync.errors import InvalidInput
from memsync.extract.profile import (
    Profile,
    Summarizer,
    build_profile,
    profile_from_json,
    profile_to_json,
)
from memsync.model import Kind, Status
from memsync.store import db, state

__all__ = ["BIO_CHARS", "bio_override", "refresh"]

BIO_CHARS = 2000


def refresh(
    conn: apsw.Connection,
    *,
    now: datetime,
    summarizer: Summarizer,
    rebuild: bool,
    lock: threading.RLock,
) -> Profile:
    """The profile brought up to date (from scratch if `rebuild`), stored if it changed;
    `lock` is the vault's write lock."""
    stored = db.read_meta(conn, "profile")
    previous = None
    if stored is not None and not rebuild:
        try:
            previous = profile_from_json(json.loads(stored))
        except (InvalidInput, ValueError):
            previous = None  # a derived cache: rebuild rather than fail
    memories = state.query_memories(
        conn, "m.status=? AND m.kind=?", [Status.ACTIVE.value, Kind.SEMANTIC.value], ""
    )
    built = build_profile(memories, now=now, previous=previous, summarizer=summarizer)
    if previous is None or replace(built, built_at=previous.built_at) != previous:
        with lock, conn:
            db.write_meta(conn, "profile", json.dumps(profile_to_json(built)))
    written = bio_override(conn)
    return built if written is None else replace(built, bio=written, bio_memory_ids=())


def bio_override(conn: apsw.Connection) -> str | None:
    """The bio the person wrote (`Vault.set_bio`), if any."""
    row = conn.execute("SELECT text FROM bio").fetchone()
    return None if row is None else str(row[0])
