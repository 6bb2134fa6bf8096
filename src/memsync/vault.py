"""The Vault: the one public API that the CLI and every other adapter call.

It composes the narrow `Core` (keys, log, database, embedder, vectors, clock) with the
data flow: capture, reconcile, retrieve, disclose, the profile, edits, sync, the chain.
Any number of processes (and threads) may use one vault: reads run in parallel, writes
take turns, and each sees the others' changes on its next call.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import apsw
import numpy as np
import numpy.typing as npt

from memsync import config, edits, forget, lifecycle
from memsync.capture import flow
from memsync.capture.flow import IngestReport, IngestResult
from memsync.capture.types import ImportBatch, ImportedDocument, ImportedMemory
from memsync.core import Core, Progress
from memsync.crypto.device import DeviceKeys, KdfParams, check_passphrase_strength, seal_device
from memsync.disclose import access
from memsync.disclose.access import AppSession
from memsync.extract.base import Extractor
from memsync.forget import Forgetting
from memsync.ids import new_id
from memsync.index.embed import Embedder
from memsync.index.vectors import VectorIndex
from memsync.log.oplog import OpLog
from memsync.model import (
    Category,
    CheckReport,
    Kind,
    Memory,
    Message,
    Page,
    Provenance,
    SearchFilters,
    SearchHit,
    SearchMode,
    Source,
    VaultInfo,
)
from memsync.profile.build import Profile, Summarizer
from memsync.profile.cache import ProfileKeeper
from memsync.reconcile.decide import Judge, Neighbour
from memsync.reconcile.session import Outcome, memory_neighbours
from memsync.retrieve import search as hybrid
from memsync.retrieve.context import Context, build_context
from memsync.retrieve.rank import Weights
from memsync.scope import App, Scope
from memsync.store import apps as apps_
from memsync.store import db, ledger, records, state
from memsync.store.explain import Explanation, explain
from memsync.store.files import Header, VaultPaths, write_atomic
from memsync.store.ledger import Disclosure
from memsync.sync import service as sync_service
from memsync.sync.anchor import Chain, ChainTarget
from memsync.sync.engine import Progress as SyncProgress
from memsync.sync.engine import SyncReport

Synced = list[SyncReport]
ShowCode = Callable[[str], None]
Home = str | Path | None


@dataclass(frozen=True)
class NewVault:
    """What `Vault.create` returns: the open vault and the recovery phrase, shown once."""

    vault: Vault
    recovery_phrase: str


class Vault:
    """An unlocked vault. Open one with `Vault.create`, `Vault.open` or `Vault.recover`.

    Example:
        >>> made = Vault.create("/tmp/v", "correct horse battery staple")
        >>> m = made.vault.add("Prefers short answers", category=Category.PRODUCTIVITY)
        >>> [h.memory.id for h in made.vault.search("answer length")][:1] == [m.id]
        True
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self._profiles = ProfileKeeper(core, lambda s: config.summarizer_for(config.decode(s)))

    # The core's parts, for tools, tests and benchmarks.

    @property
    def paths(self) -> VaultPaths:
        return self.core.paths

    @property
    def header(self) -> Header:
        return self.core.header

    @property
    def device(self) -> DeviceKeys:
        return self.core.device

    @property
    def embedder(self) -> Embedder:
        return self.core.embedder

    @property
    def conn(self) -> apsw.Connection:
        return self.core.conn  # this thread's

    @property
    def log(self) -> OpLog:
        return self.core.log

    @property
    def clock(self) -> Callable[[], datetime]:
        """What "now" is for this vault (tests set a fixed clock)."""
        return self.core.clock

    @clock.setter
    def clock(self, value: Callable[[], datetime]) -> None:
        self.core.clock = value

    @property
    def lock(self) -> threading.RLock:
        """Held by every write of this process (re-entrant); reads never need it."""
        return self.core.db.lock

    # Opening and closing.

    @classmethod
    def create(
        cls,
        home: str | Path | None,
        passphrase: str,
        *,
        embedder: Embedder | None = None,
        kdf: KdfParams = KdfParams(),
        device_name: str | None = None,
        recovery_phrase: str | None = None,
    ) -> NewVault:
        """Create a vault in `home` (default: `$MEMSYNC_HOME` or the user data dir)."""
        core, words = lifecycle.create(
            home, passphrase, embedder=embedder, kdf=kdf, device_name=device_name,
            recovery_phrase=recovery_phrase,
        )  # fmt: skip
        return NewVault(cls(core), words)

    @classmethod
    def open(
        cls,
        home: str | Path | None = None,
        passphrase: str | None = None,
        *,
        device_secret: bytes | None = None,
        embedder: Embedder | None = None,
    ) -> Vault:
        """Unlock an existing vault with the passphrase (or a remembered device secret);
        nothing is written unless the unlock succeeds."""
        kw = {"device_secret": device_secret, "embedder": embedder}
        return cls(lifecycle.open_vault(home, passphrase, **kw))  # type: ignore[arg-type]

    @classmethod
    def recover(
        cls,
        home: str | Path | None,
        recovery_phrase: str,
        new_passphrase: str,
        *,
        kdf: KdfParams = KdfParams(),
        embedder: Embedder | None = None,
        from_url: str | None = None,
        chain: ChainTarget | None = None,
    ) -> Vault:
        """Open the vault with its recovery phrase and enrol this device anew: a fresh
        key sealed with `new_passphrase`, endorsed in the log by the recovery key.
        `from_url` restores the vault from a remote alone (checked against `chain`)."""
        args = (home, recovery_phrase, new_passphrase)
        if from_url is None:
            return cls(lifecycle.recover(*args, kdf=kdf, embedder=embedder))
        return cls(sync_service.restore(from_url, *args, kdf=kdf, embedder=embedder, chain=chain))

    @classmethod
    def join(cls, url: str, home: Home, passphrase: str, show_code: ShowCode, **kw: Any) -> Vault:
        """Join the vault on remote `url` as a new device: `show_code(words)` gets the
        safety code to compare, and this returns once a device already in approves."""
        return cls(sync_service.join(url, home, passphrase, show_code=show_code, **kw))

    @property
    def remotes(self) -> sync_service.Remotes:
        """This device's remotes and the vault's devices (`add`, `list`, `devices`, …)."""
        return sync_service.Remotes(self.core)

    @property
    def chain(self) -> Chain:
        """The chain: `configure`, `register`, `anchor`, `status`, `history`, …"""
        return Chain(self.core)

    def sync(self, remote: str | None = None, progress: SyncProgress | None = None) -> Synced:
        """Push this device's changes to `remote` (or every remote) and take in the others',
        verified: `vault.sync("usb")`; `SyncRefused` (and no change) if a remote cheats."""
        return sync_service.sync(self.core, remote, progress)

    def change_passphrase(self, new_passphrase: str, kdf: KdfParams = KdfParams()) -> None:
        check_passphrase_strength(new_passphrase)
        write_atomic(self.paths.device_key, seal_device(self.device, new_passphrase, kdf))

    def close(self) -> None:
        """Close every connection this vault opened (in any thread)."""
        self.core.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The write path.

    def commit_ops(
        self,
        ops: Sequence[dict[str, Any]],
        progress: Progress | None = None,
        *,
        vectors: Mapping[str, npt.NDArray[np.float32]] | None = None,
    ) -> state.IndexChange:
        """Log and apply `ops` in one transaction (see `Core.commit`)."""
        return self.core.commit(ops, progress, vectors)

    def reindex(self, progress: Progress | None = None) -> int:
        """Re-embed every indexed item with this vault's embedder (after a model change)."""
        return self.core.reindex(progress)

    # Memories.

    def add(
        self,
        text: str,
        *,
        kind: Kind = Kind.SEMANTIC,
        category: Category | None = None,
        tags: Iterable[str] = (),
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        observed_at: datetime | None = None,
        confidence: float = 1.0,
        provenance: Sequence[Provenance] = (),
    ) -> Memory:
        """Add one memory and return it. `memsync add "Prefers short answers"` calls this."""
        return edits.add(
            self.core,
            text,
            kind=kind,
            category=category,
            tags=tags,
            valid_from=valid_from,
            valid_until=valid_until,
            observed_at=observed_at,
            confidence=confidence,
            provenance=provenance,
        )

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the memory or source that `id_or_prefix` names uniquely."""
        return records.resolve(self.conn, id_or_prefix)

    def get(self, memory_id: str) -> Memory:
        return state.get_memory(self.conn, self.resolve(memory_id))

    def history(self, memory_id: str) -> list[Memory]:
        """The memory's whole chain of versions, oldest first.

        A link to a version this vault does not hold (a forgotten one is left out of an
        export, so an imported chain can have a gap) ends the walk there.
        """
        return records.chain(self.conn, self.get(memory_id))

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
        """Supersede a memory with an edited copy; the old version stays in its history."""
        return edits.edit(
            self.core, self.resolve(memory_id), text=text, kind=kind, category=category,
            tags=tags, valid_until=valid_until,
        )  # fmt: skip

    def forget(self, *memory_ids: str) -> None:
        """Forget memories and every version in their history, for good: the keys of what
        the log holds of them are destroyed everywhere (`memsync.forget`). `memsync rm ID`."""
        forget.forget_memories(self.core, [self.resolve(m) for m in memory_ids])

    @property
    def forgetting(self) -> Forgetting:
        """What to forget: `written_by(app)`, `expired(days)`, `apply_retention()`."""
        return Forgetting(self.core)

    def forget_source(self, source_id: str) -> tuple[int, int]:
        """Forget a source and each memory drawn only from it: (memories, entries shredded)."""
        return forget.forget_source(self.core, source_id)

    def list(
        self,
        filters: SearchFilters = SearchFilters(),
        *,
        limit: int | None = 50,
        offset: int = 0,
        scope: Scope | None = None,
    ) -> Page:
        """Memories matching `filters` (and readable in `scope`), newest first, a page at
        a time (`limit=None`: all of them)."""
        return records.list_page(
            self.conn,
            records.stored_form(filters),
            now=self.clock(),
            limit=limit,
            offset=offset,
            scope=scope,
        )

    # Search.

    def vector_index(self) -> VectorIndex:
        """The in-memory vectors, up to date with every process's writes."""
        return self.core.vector_index()

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: SearchFilters = SearchFilters(),
        now: datetime | None = None,
        mode: SearchMode = SearchMode.HYBRID,
        weights: Weights = Weights(),
        scope: Scope | None = None,
    ) -> builtins.list[SearchHit]:
        """The `k` best memories and turns for `query`.

        BM25 and vectors find candidates; they are fused by rank, and each is credited
        with the evidence around it: the reply to a user turn, the rest of its
        conversation, and whether it falls in a period the query names ("last month",
        judged against `now`). `weights` tunes those credits (`rank.Weights`). With a
        `scope`, only what that app may read is searched.
        """
        return hybrid.search(
            self.core,
            query,
            k=k,
            filters=filters,
            now=now,
            mode=mode,
            weights=weights,
            scope=scope,
        )

    # Sources.

    def _extractor(self, extract: bool, extractor: Extractor | None) -> Extractor | None:
        return (extractor or self.extractor()) if extract else None

    def ingest(
        self,
        messages: Sequence[Message],
        *,
        title: str | None = None,
        origin: str | None = None,
        created_at: datetime | None = None,
        external_id: str | None = None,
        extract: bool = True,
        extractor: Extractor | None = None,
        progress: Progress | None = None,
    ) -> IngestResult:
        """Store a conversation as a source (every turn becomes searchable) and turn what
        the user said into reconciled memories.

        Ingesting the same messages again adds nothing and returns the existing source.
        A conversation with the `external_id` of one already stored that continues it
        (ChatGPT and Claude exports keep a conversation's id as it grows) is stored as a
        new source, but only its new turns are read for memories.
        `extractor` defaults to the configured one (`memsync config extractor`).
        """
        return flow.ingest_conversation(
            self.core,
            messages,
            title=title,
            origin=origin,
            created_at=created_at,
            external_id=external_id,
            extractor=self._extractor(extract, extractor),
            judge=self.judge(),
            progress=progress,
        )

    def ingest_document(
        self,
        document: ImportedDocument,
        *,
        title: str | None = None,
        extract: bool = True,
        extractor: Extractor | None = None,
        progress: Progress | None = None,
    ) -> IngestResult:
        """Store a document (its chunks, with their offsets) and extract memories from it,
        as if the user had written each chunk. Provenance points at a chunk and a span."""
        return flow.ingest_document(
            self.core,
            document,
            title=title,
            extractor=self._extractor(extract, extractor),
            judge=self.judge(),
            progress=progress,
        )

    def import_memories(
        self, memories: Sequence[ImportedMemory], *, title: str | None = None
    ) -> IngestResult:
        """Bring in memories from another tool (a mem0 export), reconciled like extracted
        ones; they are kept as a source so each memory's provenance points at its record."""
        return flow.import_memories(self.core, memories, title=title, judge=self.judge())

    def ingest_batch(
        self,
        batch: ImportBatch,
        *,
        extract: bool = True,
        extractor: Extractor | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Store everything `memsync.capture.read_any` read from one file, one source per
        transaction; `progress(done, total)` counts sources. Running it again after an
        interruption skips what was stored and carries on."""
        # The settings are read (and a configured model's client made) once per file.
        return flow.ingest_batch(
            self.core,
            batch,
            extractor=self._extractor(extract, extractor),
            judge=self.judge(),
            progress=progress,
        )

    def similar_memories(
        self, vector: npt.NDArray[np.float32], k: int = 8
    ) -> builtins.list[Neighbour]:
        """The `k` active memories nearest to `vector` (by cosine), expired ones included."""
        return memory_neighbours(self.core, vector, k)

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 1000,
        now: datetime | None = None,
        filters: SearchFilters = SearchFilters(),
    ) -> Context:
        """The best memories and conversation turns for `query` as one block of text that
        fits in `budget_tokens` (as `memsync.retrieve.context.count_tokens` counts them),
        ready for a system prompt. `items` says exactly which memories and turns went in.
        `memsync context QUERY` calls this.

        Example:
            >>> block = vault.context("what should I cook tonight?", budget_tokens=300)
            >>> print(block.text)
            From the user's memsync vault, most relevant first:
            Memories:
            - Allergic to peanuts (health, since 2026-03-01)
            >>> [i.memory.id for i in block.items if i.memory] == [peanuts.id]
            True
        """
        return build_context(self, query, budget_tokens=budget_tokens, now=now, filters=filters)

    def why(self, memory_id: str) -> Explanation:
        """Where a memory came from (source turns or document spans, with dates) and its
        history. `memsync why ID` calls this."""
        return explain(self.conn, self.resolve(memory_id))

    # The profile.

    def profile(self, *, rebuild: bool = False, max_age: timedelta | None = None) -> Profile:
        """The profile (bio, a summary per category, insights), brought up to date.

        Only sections whose memories changed since the stored profile are rewritten, so
        a configured LLM is asked again only about what changed. `rebuild` starts afresh.
        With `max_age`, a profile built that recently is returned even if memories changed
        since (building it reads every lasting memory: about a second at 10k).
        """
        return self._profiles.get(rebuild=rebuild, max_age=max_age)

    def set_bio(self, text: str | None) -> Profile:
        """Show `text` as the bio instead of the derived one (`None` goes back to it)."""
        edits.set_bio(self.core, text)
        return self.profile()

    def summarizer(self) -> Summarizer:
        """Who writes the profile: the configured LLM, or the offline rules. Private
        memories are always summarised on this device."""
        return config.summarizer_for(self.settings())

    # Settings and the backends they choose.

    def settings(self) -> config.Settings:
        """This device's settings (stored encrypted in the vault, not synced)."""
        return config.load(self.conn)

    def configure(self, name: str, value: str | None) -> config.Settings:
        """Set one setting (`None` resets it); `memsync config KEY VALUE` calls this."""
        with self.core.db.write() as conn:
            updated = config.parse_value(config.load(conn), name, value)
            db.write_meta(conn, "settings", config.encode(updated))
        return updated

    def extractor(self) -> Extractor:
        """The extractor the settings choose: the offline rules, or the configured LLM."""
        return config.extractor_for(self.settings(), lambda: config.owner_from(self.conn))

    def judge(self) -> Judge | None:
        """The LLM that decides hard reconciliation cases, when one is configured."""
        return config.judge_for(self.settings())

    def get_source(self, source_id: str) -> Source:
        return state.get_source(self.conn, self.resolve(source_id))

    def sources(self) -> builtins.list[Source]:
        return state.all_sources(self.conn)

    def import_records(
        self,
        memories: Sequence[Memory],
        sources: Sequence[Source],
        progress: Progress | None = None,
    ) -> tuple[int, int]:
        """Add records whose ids are new here, in one transaction; returns (sources,
        memories) added. Used by `memsync import` and by bulk loaders."""
        return edits.import_records(self.core, memories, sources, progress)

    # Apps, their scopes and the disclosure ledger (`memsync.disclose.access`).

    def add_app(
        self, name: str, scope: Scope = Scope(), *, rate_per_minute: int = apps_.DEFAULT_RATE
    ) -> tuple[App, str]:
        """Register an app; returns it and its bearer token, which is not stored anywhere
        (only its hash is) and so is shown once. `memsync app add NAME` calls this."""
        return access.add_app(self.core, name, scope, rate_per_minute)

    def apps(self) -> builtins.list[App]:
        return apps_.all_apps(self.conn)

    def revoke_app(self, name: str) -> App:
        """Stop an app from connecting; what it was given stays in the ledger."""
        return access.revoke_app(self.core, name)

    def as_app(self, app: str | App) -> AppSession:
        """The vault as one app sees it: its scope enforced, every disclosure recorded."""
        found = apps_.get_app(self.conn, app) if isinstance(app, str) else app
        return AppSession(self.core, self._profiles, found)

    def app_for_token(self, token: str) -> App | None:
        """The active app holding `token`, or None."""
        return apps_.app_for_token(self.conn, token)

    def disclosures(
        self,
        *,
        app: str | None = None,
        since: datetime | None = None,
        memory_id: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[Disclosure]:
        """The ledger, newest first: what each app was given, when and for what query."""
        return ledger.query(self.conn, app=app, since=since, memory_id=memory_id, limit=limit)

    # Verification.

    def check(self, progress: Progress | None = None) -> CheckReport:
        """Verify every feed (signatures, hash chains, device endorsements) and rebuild.

        The state is rebuilt from the log alone into memory and its digest compared with
        the live state's.
        """
        return self.core.check(progress)

    def info(self) -> VaultInfo:
        return self.core.info()


__all__ = ["IngestReport", "IngestResult", "NewVault", "Outcome", "Vault", "new_id"]
