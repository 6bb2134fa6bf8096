"""The Vault: the one public API that the CLI and every other adapter call.

Every change is written as an operation to this device's signed feed and applied to the
materialised tables in the same transaction, so the log and the state never disagree.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import apsw
import numpy as np
import numpy.typing as npt

from memsync import (
    access,
    capture,
    codec,
    ingest_flow,
    keystore,
    ledger,
    lifecycle,
    profile_cache,
    records,
)
from memsync import apps as apps_
from memsync import config as settings_
from memsync.access import AppSession
from memsync.apps import App, Scope
from memsync.capture import IngestReport, IngestResult, Outcome
from memsync.crypto.device import DeviceKeys, KdfParams, check_passphrase_strength, seal_device
from memsync.errors import UsageError
from memsync.explain import Explanation, explain
from memsync.extract.base import Extractor
from memsync.extract.profile import Profile, Summarizer
from memsync.extract.reconcile import Judge, Neighbour
from memsync.ids import new_id
from memsync.ingest.types import ImportBatch, ImportedDocument, ImportedMemory
from memsync.ledger import Disclosure
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
    Status,
    VaultInfo,
)
from memsync.retrieval import rank as ranking
from memsync.retrieval import search as hybrid
from memsync.retrieval import vectors as vectors_
from memsync.retrieval import when
from memsync.retrieval.context import Context, build_context
from memsync.retrieval.embed import Embedder
from memsync.retrieval.rank import Weights
from memsync.store import db, oplog, state, verify
from memsync.store.files import Header, VaultPaths, write_atomic

Progress = Callable[[int, int], None]
# Operations that change neither memories nor the bio.
_LEDGER_OPS = frozenset({"disclose", "add_app", "revoke_app"})
_PROFILE_TTL = timedelta(minutes=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


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

    def __init__(
        self,
        paths: VaultPaths,
        conn: apsw.Connection,
        header: Header,
        keys: DeviceKeys,
        vault_key: bytes,
        embedder: Embedder,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.paths = paths
        self.conn = conn
        self.header = header
        self.device = keys
        self._log_key = lifecycle.log_key(vault_key)
        self.embedder = embedder
        self.clock = clock
        self.log = oplog.OpLog(conn, header.vault_id, keys)
        self._lock = threading.RLock()
        self._vectors: hybrid.VectorIndex | None = None
        self._vectors_version = -1  # PRAGMA data_version when the cache was loaded
        # Bumped by every commit that may change memories or the bio, so a server can
        # hand out the profile without rebuilding it from every memory per request.
        self._memory_generation = 0
        self._profile: tuple[tuple[int, int], datetime, Profile] | None = None

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
        vault, words = lifecycle.create(
            cls,
            home,
            passphrase,
            embedder=embedder,
            kdf=kdf,
            device_name=device_name,
            recovery_phrase=recovery_phrase,
        )
        return NewVault(vault, words)

    @classmethod
    def open(
        cls,
        home: str | Path | None = None,
        passphrase: str | None = None,
        *,
        device_secret: bytes | None = None,
        embedder: Embedder | None = None,
    ) -> Vault:
        """Unlock an existing vault with the passphrase (or a remembered device secret).

        Nothing is written unless the unlock succeeds.
        """
        return lifecycle.open_vault(
            cls, home, passphrase, device_secret=device_secret, embedder=embedder
        )

    @classmethod
    def recover(
        cls,
        home: str | Path | None,
        recovery_phrase: str,
        new_passphrase: str,
        *,
        kdf: KdfParams = KdfParams(),
        embedder: Embedder | None = None,
    ) -> Vault:
        """Open the vault with its recovery phrase and enrol this device anew.

        The old device key (lost with its passphrase) is replaced by a fresh one, sealed
        with `new_passphrase`; the new device is endorsed in the log by the recovery key.
        """
        return lifecycle.recover(
            cls, home, recovery_phrase, new_passphrase, kdf=kdf, embedder=embedder
        )

    def change_passphrase(self, new_passphrase: str, kdf: KdfParams = KdfParams()) -> None:
        check_passphrase_strength(new_passphrase)
        write_atomic(self.paths.device_key, seal_device(self.device, new_passphrase, kdf))

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # The write path.

    def _commit(self, op: dict[str, Any]) -> state.IndexChange:
        """Log `op`, apply it and index what it added, all in one transaction."""
        return self._commit_many([op])

    def commit_ops(
        self,
        ops: Sequence[dict[str, Any]],
        progress: Progress | None = None,
        *,
        vectors: Mapping[str, npt.NDArray[np.float32]] | None = None,
    ) -> state.IndexChange:
        """Log and apply `ops` in one transaction, embedding what they add in batches.

        `vectors` holds embeddings already computed for some texts (reconciliation
        embeds candidates before they become memories), so they are not computed twice.
        """
        return self._commit_many(ops, progress, vectors)

    def _commit_many(
        self,
        ops: Sequence[dict[str, Any]],
        progress: Progress | None = None,
        vectors: Mapping[str, npt.NDArray[np.float32]] | None = None,
    ) -> state.IndexChange:
        added: list[int] = []
        removed: list[int] = []
        updated: list[int] = []
        with self._lock:
            try:
                with self.conn:
                    for op in ops:
                        if op["op"] not in _LEDGER_OPS:
                            self._memory_generation += 1
                        self.log.append(op, self._log_key, self.header.epoch)
                        change = state.apply(self.conn, op)
                        added += change.added
                        removed += change.removed
                        updated += change.updated
                    vectors_.embed_items(self.conn, self.embedder, added, progress, vectors)
            except BaseException:
                self._vectors = None  # it may hold rows the rollback removed
                raise
            if self._vectors is not None:
                self._vectors.remove(removed)
                self._vectors.upsert(self.conn, [*added, *updated])
        return state.IndexChange(tuple(added), tuple(removed), tuple(updated))

    def reindex(self, progress: Progress | None = None) -> int:
        """Re-embed every indexed item with this vault's embedder (after a model change)."""
        with self._lock, self.conn:
            rowids = [int(r[0]) for r in self.conn.execute("SELECT rowid FROM items")]
            vectors_.embed_items(self.conn, self.embedder, rowids, progress)
            db.write_meta(self.conn, "embedder", self.embedder.name)
            self._vectors = None
        return len(rowids)

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
        memory = records.new_memory(
            text,
            kind=kind,
            category=category,
            tags=tags,
            valid_from=valid_from,
            valid_until=valid_until,
            observed_at=observed_at,
            confidence=confidence,
            provenance=provenance,
            clock=self.clock,
        )
        self._commit({"op": "add_memory", "memory": codec.memory_to_json(memory)})
        return self.get(memory.id)

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
        old = self.get(memory_id)
        new = records.edited(
            old,
            text=text,
            kind=kind,
            category=category,
            tags=tags,
            valid_until=valid_until,
            clock=self.clock,
        )
        self._commit({"op": "edit_memory", "old": old.id, "memory": codec.memory_to_json(new)})
        return self.get(new.id)

    def forget(self, memory_id: str) -> None:
        """Tombstone a memory and every version in its history: their text leaves the
        state and the index for good. `memsync rm ID` calls this."""
        old = self.get(memory_id)
        if old.status is Status.FORGOTTEN:
            raise UsageError(f"memory {old.id} is already forgotten")
        at = codec.to_ms(self.clock())
        self._commit_many(
            [
                {"op": "forget_memory", "id": m.id, "at": at}
                for m in self.history(old.id)
                if m.status is not Status.FORGOTTEN
            ]
        )

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

    def vector_index(self) -> hybrid.VectorIndex:
        with self._lock:
            # data_version changes only when another connection (another process or Vault
            # on this file) commits; our own writes keep the cache in step themselves.
            version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
            if self._vectors is None or version != self._vectors_version:
                index = hybrid.VectorIndex(self.embedder.dim)
                index.load(self.conn)
                self._vectors = index
                self._vectors_version = version
            return self._vectors

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
        if k < 1:
            raise UsageError("k must be at least 1")
        now = now or self.clock()
        depth = max(50, k * 5)
        cond = hybrid.resolve_filters(self.conn, records.stored_form(filters), now, scope)
        keyword = (
            []
            if mode is SearchMode.VECTOR
            else hybrid.keyword_search(self.conn, query, cond, depth)
        )
        qvec = (
            self.embedder.embed([query])[0]
            if query.strip() and mode is not SearchMode.KEYWORD
            else None
        )
        vector = [] if qvec is None else self.vector_index().search(qvec, cond, depth)
        items = ranking.describe(self.conn, list(dict.fromkeys([*keyword, *vector])))
        window = when.time_window(query, now)
        span = None if window is None else (window.start, window.end)
        ranked = ranking.rank(keyword, vector, items, weights, span)[:k]
        return hybrid.hydrate(self.conn, ranked)

    # Sources.

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
        return ingest_flow.ingest_conversation(
            self,
            messages,
            title=title,
            origin=origin,
            created_at=created_at,
            external_id=external_id,
            extract=extract,
            extractor=extractor,
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
        return ingest_flow.ingest_document(
            self, document, title=title, extract=extract, extractor=extractor, progress=progress
        )

    def import_memories(
        self, memories: Sequence[ImportedMemory], *, title: str | None = None
    ) -> IngestResult:
        """Bring in memories from another tool (a mem0 export), reconciled like extracted
        ones; they are kept as a source so each memory's provenance points at its record."""
        return ingest_flow.import_memories(self, memories, title=title)

    def ingest_batch(
        self,
        batch: ImportBatch,
        *,
        extract: bool = True,
        extractor: Extractor | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Store everything `memsync.ingest.read_any` read from one file, one source per
        transaction; `progress(done, total)` counts sources. Running it again after an
        interruption skips what was stored and carries on."""
        return ingest_flow.ingest_batch(
            self, batch, extract=extract, extractor=extractor, progress=progress
        )

    def similar_memories(
        self, vector: npt.NDArray[np.float32], k: int = 8
    ) -> builtins.list[Neighbour]:
        """The `k` active memories nearest to `vector` (by cosine), expired ones included."""
        return capture.memory_neighbours(self, vector, k)

    def context(
        self,
        query: str,
        *,
        budget_tokens: int = 1000,
        now: datetime | None = None,
        filters: SearchFilters = SearchFilters(),
    ) -> Context:
        """The best memories and conversation turns for `query` as one block of text that
        fits in `budget_tokens` (as `memsync.retrieval.context.count_tokens` counts them),
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
        return explain(self, memory_id)

    # The profile.

    def profile(self, *, rebuild: bool = False, max_age: timedelta | None = None) -> Profile:
        """The profile (bio, a summary per category, insights), brought up to date.

        Only sections whose memories changed since the stored profile are rewritten, so
        a configured LLM is asked again only about what changed. `rebuild` starts afresh.
        With `max_age`, a profile built that recently is returned even if memories changed
        since (building it reads every lasting memory: about a second at 10k).
        """
        with self._lock:
            now = self.clock()
            version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
            key = (self._memory_generation, version)
            cached = self._profile
            if cached and not rebuild:
                age = now - cached[1]
                # Fresh for a minute at most even when nothing changed: time alone can
                # expire a memory.
                if (cached[0] == key and age < _PROFILE_TTL) or (max_age and age < max_age):
                    return cached[2]
            built = profile_cache.refresh(
                self.conn, now=now, summarizer=self.summarizer(), rebuild=rebuild, lock=self._lock
            )
            self._profile = (key, now, built)
            return built

    def set_bio(self, text: str | None) -> Profile:
        """Show `text` as the bio instead of the derived one (`None` goes back to it)."""
        cleaned = None if text is None else " ".join(text.split())
        if cleaned is not None and not 0 < len(cleaned) <= profile_cache.BIO_CHARS:
            raise UsageError(f"a bio has 1 to {profile_cache.BIO_CHARS} characters")
        self._commit({"op": "set_bio", "text": cleaned, "at": codec.to_ms(self.clock())})
        return self.profile()

    def summarizer(self) -> Summarizer:
        """Who writes the profile: the configured LLM, or the offline rules. Private
        memories are always summarised on this device."""
        return settings_.summarizer_for(self.settings())

    # Settings and the backends they choose.

    def settings(self) -> settings_.Settings:
        """This device's settings (stored encrypted in the vault, not synced)."""
        return settings_.decode(db.read_meta(self.conn, "settings"))

    def configure(self, name: str, value: str | None) -> settings_.Settings:
        """Set one setting (`None` resets it); `memsync config KEY VALUE` calls this."""
        updated = settings_.parse_value(self.settings(), name, value)
        with self._lock, self.conn:
            db.write_meta(self.conn, "settings", settings_.encode(updated))
            self._memory_generation += 1  # the profile's writer may have changed
        return updated

    def extractor(self) -> Extractor:
        """The extractor the settings choose: the offline rules, or the configured LLM."""
        return settings_.extractor_for(self.settings())

    def judge(self) -> Judge | None:
        """The LLM that decides hard reconciliation cases, when one is configured."""
        return settings_.judge_for(self.settings())

    def get_source(self, source_id: str) -> Source:
        return state.get_source(self.conn, self.resolve(source_id))

    def sources(self) -> builtins.list[Source]:
        ids = [str(r[0]) for r in self.conn.execute("SELECT id FROM sources ORDER BY created_at")]
        return [state.get_source(self.conn, i) for i in ids]

    def import_records(
        self,
        memories: Sequence[Memory],
        sources: Sequence[Source],
        progress: Progress | None = None,
    ) -> tuple[int, int]:
        """Add records whose ids are new here, in one transaction; returns (sources,
        memories) added. Used by `memsync import` and by bulk loaders."""
        with self._lock:
            ops, n_sources = records.new_record_ops(self.conn, memories, sources)
            if ops:
                self._commit_many(ops, progress)
        return n_sources, len(ops) - n_sources

    # Apps, their scopes and the disclosure ledger (`memsync.access`).

    def add_app(
        self, name: str, scope: Scope = Scope(), *, rate_per_minute: int = apps_.DEFAULT_RATE
    ) -> tuple[App, str]:
        """Register an app; returns it and its bearer token, which is not stored anywhere
        (only its hash is) and so is shown once. `memsync app add NAME` calls this."""
        return access.add_app(self, name, scope, rate_per_minute)

    def apps(self) -> builtins.list[App]:
        return apps_.all_apps(self.conn)

    def revoke_app(self, name: str) -> App:
        """Stop an app from connecting; what it was given stays in the ledger."""
        return access.revoke_app(self, name)

    def as_app(self, app: str | App) -> AppSession:
        """The vault as one app sees it: its scope enforced, every disclosure recorded."""
        found = apps_.get_app(self.conn, app) if isinstance(app, str) else app
        return AppSession(self, found)

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

    @property
    def lock(self) -> threading.RLock:
        """Held by every write. A server holds it around each request, so no request sees
        another's transaction half done."""
        return self._lock

    # Verification.

    def check(self, progress: Progress | None = None) -> CheckReport:
        """Verify every feed (signatures, hash chains, device endorsements) and rebuild.

        The state is rebuilt from the log alone into memory and its digest compared with
        the live state's.
        """
        return verify.check(self.conn, self.log, self._log_key, self.header.vault_id, progress)

    def info(self) -> VaultInfo:
        def count(sql: str) -> int:
            return int(self.conn.execute(sql).fetchone()[0])

        return VaultInfo(
            vault_id=self.header.vault_id,
            device_id=self.device.device_id,
            path=str(self.paths.home),
            epoch=self.header.epoch,
            embedder=self.embedder.name,
            memories=count("SELECT count(*) FROM memories WHERE status='active'"),
            sources=count("SELECT count(*) FROM sources"),
            log_entries=self.log.count(),
        )


def remember_device(vault: Vault) -> None:
    """Keep this device's secret in the OS keyring so the vault opens without a prompt."""
    keystore.store(vault.header.vault_id, vault.device.device_id, vault.device.secret_bytes())


__all__ = ["IngestReport", "IngestResult", "NewVault", "Outcome", "Vault", "new_id"]
