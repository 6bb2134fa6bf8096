"""The vault as one app sees it: `AppSession`, which every server adapter goes through.

Each call re-reads the app from the database (so a revocation or a new scope, made by
this process or any other, takes effect at once), keeps to the app's scope and records
in the ledger every memory and conversation excerpt it returns. Memories outside the
scope are invisible: asking for one by id gives the same "no memory" answer as an id
that never existed. Reads hold no lock, so sessions in several threads run at once;
writes go through `Core.commit` like every other.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from memsync import config, edits, forget
from memsync.capture import flow
from memsync.capture.flow import IngestResult
from memsync.core import Core
from memsync.errors import AccessDenied, NotFound, Unauthenticated, UsageError
from memsync.extract.base import Candidate, Extractor
from memsync.extract.classify import guess_category
from memsync.model import (
    Category,
    Kind,
    Memory,
    Message,
    Page,
    SearchFilters,
    SearchHit,
    Status,
)
from memsync.profile.build import BIO_CATEGORIES, Profile, RuleSummarizer, build_profile
from memsync.profile.cache import ProfileKeeper, bio_override
from memsync.retrieve import search as hybrid
from memsync.retrieve.context import Context, build_context
from memsync.scope import App, Scope
from memsync.store import apps as apps_
from memsync.store import ledger, records, state
from memsync.store.ledger import Disclosed

__all__ = ["BIO_MAX_AGE", "AppIngest", "AppSession"]

# How stale the bio in a search answer may be: rebuilding the profile reads every lasting
# memory (about a second at 10k here), too much to pay on the heels of every write.
BIO_MAX_AGE = timedelta(minutes=5)


@dataclass(frozen=True)
class AppIngest:
    """What an app's conversation became: the stored source and decisions (`result`), the
    memories the app may read among those made (`memories`), and how many statements were
    left out because the app may not write their category or kind (`out_of_scope`)."""

    result: IngestResult
    memories: tuple[Memory, ...]
    out_of_scope: int


def add_app(core: Core, name: str, scope: Scope, rate: int) -> tuple[App, str]:
    """Register an app; returns it and its token (shown once). See `Vault.add_app`."""
    name = apps_.check_name(name)
    if rate < 0:
        raise UsageError("a rate limit is a number of requests per minute, 0 for none")
    with core.db.write() as conn:
        if any(a.name == name and a.active for a in apps_.all_apps(conn)):
            raise UsageError(f"an app named {name!r} exists; revoke it first to re-issue")
        token = apps_.new_token()
        core.commit([apps_.add_op(name, token, scope, rate, core.clock())])
    return apps_.get_app(core.conn, name), token


def revoke_app(core: Core, name: str) -> App:
    """Stop an app from connecting; see `Vault.revoke_app`."""
    with core.db.write() as conn:
        app = apps_.get_app(conn, apps_.check_name(name))
        if not app.active:
            raise UsageError(f"app {app.name!r} is already revoked")
        core.commit([apps_.revoke_op(app.name, core.clock())])
    return apps_.get_app(core.conn, app.name)


class _ScopedExtractor:
    """An extractor whose candidates the app may write; it counts the ones dropped."""

    def __init__(self, inner: Extractor, scope: Scope) -> None:
        self.inner = inner
        self.scope = scope
        self.name = inner.name
        self.version = inner.version
        self.dropped = 0

    def extract(
        self, messages: Sequence[Message], *, now: datetime | None = None
    ) -> list[Candidate]:
        found = self.inner.extract(messages, now=now)
        kept = [c for c in found if self.scope.can_write(c.kind, c.category)]
        self.dropped += len(found) - len(kept)
        return kept


class _Searcher:
    """Scoped search that records nothing (a context block records what it kept)."""

    def __init__(self, core: Core, scope: Scope) -> None:
        self.core = core
        self.scope = scope

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters = SearchFilters(),
        now: datetime | None = None,
    ) -> list[SearchHit]:
        return hybrid.search(self.core, query, k=k, filters=filters, now=now, scope=self.scope)


class AppSession:
    """What one app may do with the vault. Get one with `Vault.as_app(name)`.

    Example:
        >>> app, token = vault.add_app("notes", Scope(read=parse_categories("career")))
        >>> session = vault.as_app("notes")
        >>> [h.memory.category for h in session.search("work")]  # career memories only
        [<Category.CAREER: 'career'>]
    """

    def __init__(self, core: Core, profiles: ProfileKeeper, app: App) -> None:
        self.core = core
        self.profiles = profiles
        self.name = app.name

    @property
    def app(self) -> App:
        """The app as registered now; `Unauthenticated` once it is revoked."""
        app = apps_.get_app(self.core.conn, self.name)
        if not app.active:
            raise Unauthenticated(f"app {self.name!r} has been revoked")
        return app

    # Reading.

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters = SearchFilters(),
        now: datetime | None = None,
    ) -> builtins.list[SearchHit]:
        """The `k` best memories (and, if the scope allows, conversation turns) for `query`."""
        scope = self.app.scope
        hits = _Searcher(self.core, scope).search(query, k=k, filters=filters, now=now)
        self._record("search", query, [Disclosed.of(h.memory, h.turn) for h in hits])
        return hits

    def search_with_bio(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters = SearchFilters(),
        now: datetime | None = None,
    ) -> tuple[builtins.list[SearchHit], str | None]:
        """`search` and `bio` at once, as a search answer carries both: the two
        disclosures are recorded in one write."""
        scope = self.app.scope
        hits = _Searcher(self.core, scope).search(query, k=k, filters=filters, now=now)
        profile = self._view(scope, whole=False)
        ops = self._disclosure("search", query, [Disclosed.of(h.memory, h.turn) for h in hits])
        ops += self._disclosure("bio", None, [Disclosed(m) for m in profile.bio_memory_ids])
        if ops:
            self.core.record(ops)
        return hits, profile.bio or None

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 1000,
        filters: SearchFilters = SearchFilters(),
        now: datetime | None = None,
    ) -> Context:
        """A block for a system prompt within `budget_tokens`; only what went in is recorded."""
        searcher = _Searcher(self.core, self.app.scope)
        block = build_context(
            searcher, query, budget_tokens=budget_tokens, now=now, filters=filters
        )
        self._record("context", query, [Disclosed.of(i.memory, i.turn) for i in block.items])
        return block

    def list(
        self, filters: SearchFilters = SearchFilters(), *, limit: int = 50, offset: int = 0
    ) -> Page:
        """A page of the memories the app may read, newest first."""
        if not 1 <= limit <= 1000 or offset < 0:
            raise UsageError("limit is 1 to 1000 and offset at least 0")
        page = self._page(filters, limit=limit, offset=offset, scope=self.app.scope)
        self._record("list", None, [Disclosed(m.id) for m in page.items])
        return page

    def get(self, memory_id: str) -> Memory:
        """One memory by its full id; `NotFound` if it does not exist or is out of scope."""
        memory = self._readable(memory_id, self.app.scope)
        self._record("get", None, [Disclosed(memory.id)])
        return memory

    def profile(self) -> Profile:
        """The profile as far as the app may read: sections of its categories, insights
        drawn only from memories it may read, and the bio if it may read what the bio is
        written from (else one written offline from its memories alone)."""
        profile = self._view(self.app.scope, whole=True)
        ids = dict.fromkeys(
            [
                *profile.bio_memory_ids,
                *(m for s in profile.sections for m in s.memory_ids),
                *(m for i in profile.insights for m in i.memory_ids),
            ]
        )
        self._record("profile", None, [Disclosed(m) for m in ids])
        return profile

    def bio(self) -> str | None:
        """The bio as `profile` would give it, recording only what the bio is written from.

        Search answers carry it, so it is cheap: for an app that may read every category
        the bio draws on it comes from a profile up to `BIO_MAX_AGE` old."""
        profile = self._view(self.app.scope, whole=False)
        self._record("bio", None, [Disclosed(m) for m in profile.bio_memory_ids])
        return profile.bio or None

    def _view(self, scope: Scope, *, whole: bool) -> Profile:
        """The profile cut down to `scope`; without `whole`, only the bio is right."""
        semantic = Kind.SEMANTIC in scope.kinds
        if semantic and set(BIO_CATEGORIES) <= scope.read:
            if not whole:
                return self.profiles.get(max_age=BIO_MAX_AGE)
            full = self.profiles.get()
            readable = self._semantic(scope)
            visible = {m.id for m in readable}
            return replace(
                full,
                sections=tuple(s for s in full.sections if s.category in scope.read),
                insights=tuple(i for i in full.insights if set(i.memory_ids) <= visible),
                # The vault-wide count would tell a narrow app how much it cannot see.
                memory_count=len(readable),
            )
        readable = self._semantic(scope) if semantic else []
        profile = build_profile(readable, now=self.core.clock(), summarizer=RuleSummarizer())
        written = bio_override(self.core.conn)
        if written is not None and Category.IDENTITY in scope.read:
            profile = replace(profile, bio=written, bio_memory_ids=())
        return profile

    # Writing.

    def add(
        self,
        text: str,
        *,
        kind: Kind = Kind.SEMANTIC,
        category: Category | None = None,
        tags: Iterable[str] = (),
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
    ) -> Memory:
        """Add a memory in a category the app may write (guessed from the text if none)."""
        scope = self.app.scope
        category = category or guess_category(text)
        self._may_write(scope, kind, category)
        memory = edits.add(
            self.core,
            text,
            kind=kind,
            category=category,
            tags=tags,
            valid_from=valid_from,
            valid_until=valid_until,
        )
        self._record("add", None, [Disclosed(memory.id)])
        return memory

    def edit(
        self,
        memory_id: str,
        *,
        text: str | None = None,
        kind: Kind | None = None,
        category: Category | None = None,
        tags: Iterable[str] | None = None,
        valid_until: datetime | None = None,
    ) -> Memory:
        """Supersede a memory the app may read and write with an edited copy."""
        scope = self.app.scope
        old = self._readable(memory_id, scope)
        self._may_write(scope, old.kind, old.category)
        self._may_write(scope, kind or old.kind, category or old.category)
        new = edits.edit(
            self.core,
            old.id,
            text=text,
            kind=kind,
            category=category,
            tags=tags,
            valid_until=valid_until,
        )
        self._record("edit", None, [Disclosed(new.id)])
        return new

    def forget(self, memory_id: str) -> None:
        """Forget a memory (and its history) that the app may read and write."""
        scope = self.app.scope
        old = self._readable(memory_id, scope)
        self._may_write(scope, old.kind, old.category)
        forget.forget_memories(self.core, [old.id])

    def ingest(
        self,
        messages: Sequence[Message],
        *,
        title: str | None = None,
        created_at: datetime | None = None,
        external_id: str | None = None,
        extract: bool = True,
    ) -> AppIngest:
        """Store a conversation from the app and extract memories it may write."""
        app = self.app
        if not app.scope.write or not app.scope.kinds:
            raise AccessDenied(f"app {app.name!r} may not write to the vault")
        settings = config.load(self.core.conn)
        extractor = _ScopedExtractor(config.extractor_for(settings), app.scope)
        result = flow.ingest_conversation(
            self.core,
            messages,
            title=title,
            origin=app.name,
            created_at=created_at,
            external_id=external_id,
            extractor=extractor if extract else None,
            judge=config.judge_for(settings),
        )
        made: builtins.list[Memory] = []
        for outcome in result.outcomes:
            try:
                memory = state.get_memory(self.core.conn, outcome.memory_id)
            except NotFound:
                continue
            if memory.status is Status.ACTIVE and app.scope.can_read(memory):
                made.append(memory)
        made = list({m.id: m for m in made}.values())
        self._record("ingest", None, [Disclosed(m.id) for m in made])
        return AppIngest(result, tuple(made), extractor.dropped)

    def set_bio(self, text: str | None) -> Profile:
        """Write the bio (or with `None`, go back to the derived one): needs `identity`."""
        scope = self.app.scope
        if Category.IDENTITY not in scope.write:
            raise AccessDenied(f"app {self.name!r} may not write the bio (needs identity)")
        edits.set_bio(self.core, text)
        return self.profile()

    # Helpers.

    def _page(
        self, filters: SearchFilters, *, limit: int | None, offset: int, scope: Scope
    ) -> Page:
        return records.list_page(
            self.core.conn,
            records.stored_form(filters),
            now=self.core.clock(),
            limit=limit,
            offset=offset,
            scope=scope,
        )

    def _readable(self, memory_id: str, scope: Scope) -> Memory:
        try:
            memory = state.get_memory(self.core.conn, memory_id.strip())
        except NotFound:
            memory = None
        if memory is None or memory.status is Status.FORGOTTEN or not scope.can_read(memory):
            raise NotFound(f"no memory with id {memory_id.strip()}")
        return memory

    def _may_write(self, scope: Scope, kind: Kind, category: Category | None) -> None:
        if not scope.can_write(kind, category):
            what = f"{kind.value} memories in {category.value if category else 'no category'}"
            raise AccessDenied(f"app {self.name!r} may not write {what}")

    def _semantic(self, scope: Scope) -> builtins.list[Memory]:
        filters = SearchFilters(kinds=(Kind.SEMANTIC,))
        page = self._page(filters, limit=None, offset=0, scope=scope)
        return list(page.items)

    def _disclosure(
        self, action: str, query: str | None, items: Sequence[Disclosed]
    ) -> builtins.list[dict[str, Any]]:
        return [ledger.op(self.name, action, query, items, self.core.clock())] if items else []

    def _record(self, action: str, query: str | None, items: Sequence[Disclosed]) -> None:
        ops = self._disclosure(action, query, items)
        if ops:
            self.core.record(ops)
