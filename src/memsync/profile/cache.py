"""The profile kept up to date: the stored one (a derived cache in the encrypted `meta`
table) is the starting point, so only sections whose memories changed are rewritten and a
configured LLM is asked again only about those; and `ProfileKeeper` keeps the last one in
memory until some process changes a memory or the bio, so a server does not rebuild it
from every memory per request."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import apsw

from memsync.core import Core
from memsync.errors import InvalidInput
from memsync.model import Kind, Status
from memsync.profile.build import (
    Profile,
    Summarizer,
    build_profile,
    profile_from_json,
    profile_to_json,
)
from memsync.store import db, state

__all__ = ["BIO_CHARS", "ProfileKeeper", "bio_override", "refresh"]

BIO_CHARS = 2000
# Fresh for a minute at most even when nothing changed: time alone can expire a memory.
_TTL = timedelta(minutes=1)


def refresh(core: Core, *, now: datetime, summarizer: Summarizer, rebuild: bool) -> Profile:
    """The profile brought up to date (from scratch if `rebuild`), stored if it changed.

    The summarizer (perhaps a model behind the network) runs with no lock held; only
    storing the result takes the write lock.
    """
    conn = core.conn
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
        with core.db.write() as writing:
            db.write_meta(writing, "profile", json.dumps(profile_to_json(built)))
    written = bio_override(conn)
    return built if written is None else replace(built, bio=written, bio_memory_ids=())


def bio_override(conn: apsw.Connection) -> str | None:
    """The bio the person wrote (`Vault.set_bio`), if any."""
    row = conn.execute("SELECT text FROM bio").fetchone()
    return None if row is None else str(row[0])


class ProfileKeeper:
    """The last profile built in this process, handed out again while it is current.

    It is current while no process has changed a memory or the bio (the database's
    `memories` counter), this device's settings are the same (`summarizer_for` turns
    them, as stored, into the profile's writer), and it is less than a minute old;
    `max_age` accepts an older one even if memories changed.
    """

    def __init__(self, core: Core, summarizer_for: Callable[[str | None], Summarizer]) -> None:
        self.core = core
        self.summarizer_for = summarizer_for
        self._last: tuple[tuple[int, str | None], datetime, Profile] | None = None
        # One build at a time: a server's first requests all want the profile at once,
        # and building it reads every lasting memory (about a second at 10k). Callers
        # that accept an older profile (`max_age`, as search answers do) never wait here.
        self._building = threading.Lock()

    def _current(
        self, key: tuple[int, str | None], now: datetime, max_age: timedelta | None
    ) -> Profile | None:
        last = self._last
        if last is None:
            return None
        age = now - last[1]
        if (last[0] == key and age < _TTL) or (max_age is not None and age < max_age):
            return last[2]
        return None

    def get(self, *, rebuild: bool = False, max_age: timedelta | None = None) -> Profile:
        now = self.core.clock()
        settings = db.read_meta(self.core.conn, "settings")
        key = (self.core.memories_version(), settings)
        if not rebuild and (current := self._current(key, now, max_age)) is not None:
            return current
        with self._building:
            if not rebuild and (current := self._current(key, now, max_age)) is not None:
                return current  # built by another thread meanwhile
            return self._build(key, now, settings, rebuild)

    def _build(
        self, key: tuple[int, str | None], now: datetime, settings: str | None, rebuild: bool
    ) -> Profile:
        summarizer = self.summarizer_for(settings)
        built = refresh(self.core, now=now, summarizer=summarizer, rebuild=rebuild)
        # Keyed by what the counter said before reading, so a change made meanwhile
        # makes the next call build again rather than be missed.
        self._last = (key, now, built)
        return built
