"""The Vault: the one public API that the CLI and every other adapter call.

Every change is written as an operation to this device's signed feed and applied to the
materialised tables in the same transaction, so the log and the state never disagree.
"""

from __future__ import annotations

import base64
import builtins
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import apsw
import numpy as np
import numpy.typing as npt

from memsync import capture, codec, keystore
from memsync import config as settings_
from memsync.capture import IngestReport, IngestResult, Outcome
from memsync.crypto import aead, phrase, wrap
from memsync.crypto.device import (
    DeviceKeys,
    KdfParams,
    check_passphrase_strength,
    device_public_info,
    generate_device,
    open_device,
    seal_device,
    verify,
)
from memsync.errors import (
    AmbiguousId,
    BadRecoveryPhrase,
    CorruptVault,
    CryptoError,
    IntegrityError,
    InvalidInput,
    MemsyncError,
    NotFound,
    UsageError,
    VaultExists,
)
from memsync.explain import Explanation, explain
from memsync.extract.base import Extractor
from memsync.extract.profile import (
    KeepPrivateLocal,
    Profile,
    RuleSummarizer,
    Summarizer,
    build_profile,
    profile_from_json,
    profile_to_json,
)
from memsync.extract.reconcile import Judge, Neighbour
from memsync.extract.rules import RuleExtractor
from memsync.ingest.types import ImportBatch, ImportedDocument, ImportedMemory
from memsync.model import (
    Category,
    CheckReport,
    Kind,
    LogProblem,
    Memory,
    Message,
    Page,
    Provenance,
    SearchFilters,
    SearchHit,
    Source,
    SourceKind,
    Status,
    VaultInfo,
)
from memsync.retrieval import search as hybrid
from memsync.retrieval.embed import Embedder
from memsync.retrieval.embedders import embedder_for
from memsync.store import db, oplog, state
from memsync.store.files import (
    Header,
    VaultPaths,
    default_home,
    header_ad,
    read_file,
    write_atomic,
)

if TYPE_CHECKING:
    from memsync.llm import ChatModel

Progress = Callable[[int, int], None]
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """A short random id such as `m-3k9x0a7q2f`: 50 bits, readable, easy to type."""
    return prefix + "-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewVault:
    """What `Vault.create` returns: the open vault and the recovery phrase, shown once."""

    vault: Vault
    recovery_phrase: str


def _db_key(vault_key: bytes) -> bytes:
    return aead.hkdf(vault_key, b"memsync/v1/sqlite")


def _log_key(vault_key: bytes) -> bytes:
    return aead.hkdf(vault_key, b"memsync/v1/oplog")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _device_op(keys: DeviceKeys, at: int, name: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "op": "add_device",
        "device_id": keys.device_id,
        "wrap_pub": _b64(keys.wrap_public.public_bytes_raw()),
        "sign_pub": _b64(keys.sign_public.public_bytes_raw()),
        "name": name,
        "at": at,
        **extra,
    }


def _endorsement(vault_id: str, op: dict[str, Any]) -> bytes:
    return b"|".join(
        [
            b"memsync/v1/endorse",
            vault_id.encode(),
            op["device_id"].encode(),
            op["wrap_pub"].encode(),
            op["sign_pub"].encode(),
        ]
    )


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
        self._log_key = _log_key(vault_key)
        self.embedder = embedder
        self.clock = clock
        self.log = oplog.OpLog(conn, header.vault_id, keys)
        self._lock = threading.RLock()
        self._vectors: hybrid.VectorIndex | None = None
        self._vectors_version = -1  # PRAGMA data_version when the cache was loaded

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
        check_passphrase_strength(passphrase)
        paths = VaultPaths(Path(home) if home else default_home())
        if paths.header.exists() or paths.database.exists():
            raise VaultExists(f"a vault already exists at {paths.home}")
        words = (
            phrase.normalize_phrase(recovery_phrase)
            if recovery_phrase
            else (phrase.new_recovery_phrase())
        )
        emb = embedder or embedder_for(None)
        keys = generate_device()
        vault_id = "v-" + secrets.token_hex(8)
        vault_key = secrets.token_bytes(aead.KEY_BYTES)
        ad = header_ad(vault_id, 0)
        header = Header(
            vault_id,
            0,
            (
                wrap.wrap_key(vault_key, keys.wrap_public, kind="device", ad=ad),
                wrap.wrap_key(
                    vault_key, phrase.recovery_identity(words).public_key(), kind="recovery", ad=ad
                ),
            ),
        )
        paths.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            conn = db.open_encrypted(paths.database, _db_key(vault_key), create=True)
            with conn:
                db.write_meta(conn, "vault_id", vault_id)
                db.write_meta(conn, "embedder", emb.name)
            vault = cls(paths, conn, header, keys, vault_key, emb)
            recovery_pub = phrase.recovery_signing_key(words).public_key().public_bytes_raw()
            vault._commit(
                _device_op(
                    keys,
                    codec.to_ms(vault.clock()),
                    device_name,
                    recovery_sign_pub=_b64(recovery_pub),
                )
            )
            write_atomic(paths.device_key, seal_device(keys, passphrase, kdf))
            write_atomic(paths.header, header.to_bytes())
        except BaseException:
            for p in (paths.header, paths.device_key, paths.database):
                p.unlink(missing_ok=True)
            for suffix in ("-wal", "-shm"):
                Path(str(paths.database) + suffix).unlink(missing_ok=True)
            raise
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
        paths = VaultPaths(Path(home) if home else default_home())
        paths.require()
        header = Header.from_bytes(read_file(paths.header, "vault header"))
        blob = read_file(paths.device_key, "device key")
        if device_secret is not None:
            device_id = device_public_info(blob)[0]
            keys = DeviceKeys.from_secret_bytes(device_id, device_secret)
        elif passphrase is not None:
            keys = open_device(blob, passphrase)
        else:
            raise UsageError("a passphrase or a device secret is needed to open the vault")
        vault_key = wrap.find_and_unwrap(
            header.stanzas, keys.wrap_key, header_ad(header.vault_id, header.epoch)
        )
        return cls._attach(paths, header, keys, vault_key, embedder)

    @classmethod
    def _attach(
        cls,
        paths: VaultPaths,
        header: Header,
        keys: DeviceKeys,
        vault_key: bytes,
        embedder: Embedder | None,
    ) -> Vault:
        conn = db.open_encrypted(paths.database, _db_key(vault_key), create=False)
        try:
            if db.read_meta(conn, "vault_id") != header.vault_id:
                raise IntegrityError("the vault database belongs to another vault")
            emb = embedder or embedder_for(db.read_meta(conn, "embedder"))
            vault = cls(paths, conn, header, keys, vault_key, emb)
            if db.read_meta(conn, "embedder") != emb.name:
                vault.reindex()
        except apsw.Error as exc:
            # A damaged page past the first is only found when a query first reads it.
            conn.close()
            raise CorruptVault(
                f"cannot read the vault database ({type(exc).__name__}): damaged"
            ) from None
        except BaseException:
            conn.close()
            raise
        return vault

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
        check_passphrase_strength(new_passphrase)
        paths = VaultPaths(Path(home) if home else default_home())
        paths.require()
        words = phrase.normalize_phrase(recovery_phrase)
        header = Header.from_bytes(read_file(paths.header, "vault header"))
        ad = header_ad(header.vault_id, header.epoch)
        try:
            vault_key = wrap.find_and_unwrap(header.stanzas, phrase.recovery_identity(words), ad)
        except CryptoError:
            raise BadRecoveryPhrase("this recovery phrase does not open this vault") from None
        keys = generate_device()
        vault = cls._attach(paths, header, keys, vault_key, embedder)
        op = _device_op(keys, codec.to_ms(vault.clock()), "recovered")
        op["endorsement"] = _b64(
            phrase.recovery_signing_key(words).sign(_endorsement(header.vault_id, op))
        )
        stanzas = (
            *(s for s in header.stanzas if s.kind != "device"),
            wrap.wrap_key(vault_key, keys.wrap_public, kind="device", ad=ad),
        )
        new_header = replace(header, stanzas=stanzas)
        vault._commit(op)
        write_atomic(paths.device_key, seal_device(keys, new_passphrase, kdf))
        write_atomic(paths.header, new_header.to_bytes())
        vault.header = new_header
        return vault

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
                        self.log.append(op, self._log_key, self.header.epoch)
                        change = state.apply(self.conn, op)
                        added += change.added
                        removed += change.removed
                        updated += change.updated
                    self._embed_items(added, progress, vectors)
            except BaseException:
                self._vectors = None  # it may hold rows the rollback removed
                raise
            if self._vectors is not None:
                self._vectors.remove(removed)
                self._vectors.upsert(self.conn, [*added, *updated])
        return state.IndexChange(tuple(added), tuple(removed), tuple(updated))

    def _embed_items(
        self,
        rowids: Sequence[int],
        progress: Progress | None = None,
        known: Mapping[str, npt.NDArray[np.float32]] | None = None,
    ) -> None:
        batch = 64
        known = known or {}
        for start in range(0, len(rowids), batch):
            chunk = list(rowids[start : start + batch])
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT rowid, text FROM items WHERE rowid IN ({marks})", chunk
            ).fetchall()
            todo = [str(r[1]) for r in rows if str(r[1]) not in known]
            fresh = (
                dict(zip(todo, self.embedder.embed(todo).astype(np.float32), strict=True))
                if todo
                else {}
            )
            self.conn.executemany(
                "UPDATE items SET vec=? WHERE rowid=?",
                [
                    (
                        np.asarray(
                            known.get(str(r[1]), fresh.get(str(r[1]))), np.float32
                        ).tobytes(),
                        int(r[0]),
                    )
                    for r in rows
                ],
            )
            if progress:
                progress(min(start + batch, len(rowids)), len(rowids))

    def reindex(self, progress: Progress | None = None) -> int:
        """Re-embed every indexed item with this vault's embedder (after a model change)."""
        with self._lock, self.conn:
            rowids = [int(r[0]) for r in self.conn.execute("SELECT rowid FROM items")]
            self._embed_items(rowids, progress)
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
        _validate(text, valid_from, valid_until, confidence)
        now = self.clock()
        memory = Memory(
            id=new_id("m"),
            text=text.strip(),
            kind=Kind(kind),
            category=None if category is None else Category(category),
            tags=_clean_tags(tags),
            created_at=now,
            updated_at=now,
            observed_at=observed_at or now,
            valid_from=valid_from,
            valid_until=valid_until,
            confidence=confidence,
            provenance=tuple(provenance) or (Provenance(),),
        )
        self._commit({"op": "add_memory", "memory": codec.memory_to_json(memory)})
        return self.get(memory.id)

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the memory or source that `id_or_prefix` names uniquely."""
        key = id_or_prefix.strip()
        if not key:
            raise NotFound("no id given")
        pattern = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.conn.execute(
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

    def get(self, memory_id: str) -> Memory:
        return state.get_memory(self.conn, self.resolve(memory_id))

    def history(self, memory_id: str) -> list[Memory]:
        """The memory's whole chain of versions, oldest first.

        A link to a version this vault does not hold (a forgotten one is left out of an
        export, so an imported chain can have a gap) ends the walk there.
        """

        def linked(memory_id: str | None) -> Memory | None:
            try:
                return None if memory_id is None else state.get_memory(self.conn, memory_id)
            except NotFound:
                return None

        current = self.get(memory_id)
        while (older := linked(current.supersedes)) is not None:
            current = older
        chain = [current]
        while (newer := linked(chain[-1].superseded_by)) is not None:
            chain.append(newer)
        return chain

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
        if old.status is not Status.ACTIVE:
            raise UsageError(
                f"memory {old.id} is {old.status.value}; only active ones can be edited"
            )
        now = self.clock()
        new = replace(
            old,
            id=new_id("m"),
            text=(text or old.text).strip(),
            kind=kind or old.kind,
            category=category or old.category,
            tags=old.tags if tags is None else _clean_tags(tags),
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
        _validate(new.text, new.valid_from, new.valid_until, new.confidence)
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
        self, filters: SearchFilters = SearchFilters(), *, limit: int = 50, offset: int = 0
    ) -> Page:
        """Memories matching `filters`, newest first, one page at a time."""
        filters = _stored_form(filters)
        where: builtins.list[str] = ["1"]
        params: builtins.list[Any] = []
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
            params.append(codec.to_ms(self.clock()))
        clause = " AND ".join(where)
        total = int(
            self.conn.execute(f"SELECT count(*) FROM memories m WHERE {clause}", params).fetchone()[
                0
            ]
        )
        items = state.query_memories(
            self.conn,
            clause,
            params,
            f"ORDER BY m.observed_at DESC, m.id LIMIT {int(limit)} OFFSET {int(offset)}",
        )
        return Page(tuple(items), total, offset, limit)

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
    ) -> builtins.list[SearchHit]:
        """The `k` best memories and turns for `query`: BM25 and vectors, fused by rank."""
        if k < 1:
            raise UsageError("k must be at least 1")
        depth = max(50, k * 5)
        cond = hybrid.resolve_filters(self.conn, _stored_form(filters), now or self.clock())
        keyword = hybrid.keyword_search(self.conn, query, cond, depth)
        qvec = self.embedder.embed([query])[0] if query.strip() else None
        vector = [] if qvec is None else self.vector_index().search(qvec, cond, depth)
        fused = hybrid.fuse([keyword, vector])[:k]
        return hybrid.hydrate(self.conn, fused, keyword, vector)

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
        if not messages:
            raise UsageError("a conversation needs at least one message")
        digest = capture.digest_messages(messages)
        existing = self._source_by_digest(digest)
        if existing is not None:
            return IngestResult(existing, added=False)
        stamps = [m.timestamp for m in messages if m.timestamp is not None]
        now = self.clock()
        source = Source(
            id=new_id("s"),
            kind=SourceKind.CONVERSATION,
            title=title,
            origin=origin,
            created_at=created_at or (min(stamps) if stamps else now),
            captured_at=now,
            messages=tuple(messages),
            digest=digest,
            external_id=external_id,
        )
        candidates = (
            capture.extract(
                extractor or self.extractor(),
                messages,
                now=source.created_at,
                first_turn=self._turns_seen(origin, external_id, messages),
            )
            if extract
            else []
        )
        outcomes = capture.store(self, source, candidates, judge=self.judge(), progress=progress)
        return IngestResult(self.get_source(source.id), True, tuple(outcomes))

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
        if not document.chunks:
            raise UsageError("the document has no text")
        messages = tuple(
            Message("document", c.text, name=" > ".join(c.heading) or None) for c in document.chunks
        )
        offsets = tuple(c.start for c in document.chunks)
        digest = capture.digest_messages(messages, offsets)
        existing = self._source_by_digest(digest)
        if existing is not None:
            return IngestResult(existing, added=False)
        now = self.clock()
        created = document.created_at or now
        source = Source(
            id=new_id("s"),
            kind=SourceKind.DOCUMENT,
            title=title or document.title,
            origin=document.origin,
            created_at=created,
            captured_at=now,
            messages=messages,
            digest=digest,
            external_id=document.external_id,
            offsets=offsets,
        )
        as_user = [Message("user", c.text, timestamp=created) for c in document.chunks]
        candidates = (
            capture.extract(extractor or self.extractor(), as_user, now=created) if extract else []
        )
        outcomes = capture.store(self, source, candidates, judge=self.judge(), progress=progress)
        return IngestResult(self.get_source(source.id), True, tuple(outcomes))

    def import_memories(
        self, memories: Sequence[ImportedMemory], *, title: str | None = None
    ) -> IngestResult:
        """Bring in memories from another tool (a mem0 export), reconciled like extracted
        ones; they are kept as a source so each memory's provenance points at its record."""
        if not memories:
            raise UsageError("no memories to import")
        messages = tuple(
            Message("document", m.text, timestamp=m.updated_at or m.created_at, name=m.external_id)
            for m in memories
        )
        digest = capture.digest_messages(messages)
        existing = self._source_by_digest(digest)
        if existing is not None:
            return IngestResult(existing, added=False)
        now = self.clock()
        stamps = [m.timestamp for m in messages if m.timestamp is not None]
        origin = memories[0].origin
        source = Source(
            id=new_id("s"),
            kind=SourceKind.DOCUMENT,
            title=title or f"{origin} memories",
            origin=origin,
            created_at=min(stamps) if stamps else now,
            captured_at=now,
            messages=messages,
            digest=digest,
        )
        candidates = [
            (capture.imported_candidate(m, i, now), m.tags) for i, m in enumerate(memories)
        ]
        outcomes = capture.store(self, source, candidates, judge=self.judge())
        return IngestResult(self.get_source(source.id), True, tuple(outcomes))

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
        chosen = (extractor or self.extractor()) if extract else None
        report = IngestReport()
        total = len(batch.conversations) + len(batch.documents) + (1 if batch.memories else 0)
        done = 0
        for conv in batch.conversations:
            if conv.messages:
                report = report.with_result(
                    self.ingest(
                        conv.messages,
                        title=conv.title,
                        origin=conv.origin,
                        created_at=conv.created_at,
                        external_id=conv.external_id,
                        extract=extract,
                        extractor=chosen,
                    )
                )
            done += 1
            if progress:
                progress(done, total)
        for doc in batch.documents:
            report = report.with_result(
                self.ingest_document(doc, extract=extract, extractor=chosen)
            )
            done += 1
            if progress:
                progress(done, total)
        if batch.memories:
            report = report.with_result(self.import_memories(batch.memories))
            if progress:
                progress(total, total)
        return report

    def similar_memories(
        self, vector: npt.NDArray[np.float32], k: int = 8
    ) -> builtins.list[Neighbour]:
        """The `k` active memories nearest to `vector` (by cosine), expired ones included."""
        return capture.memory_neighbours(self, vector, k)

    def _source_by_digest(self, digest: str) -> Source | None:
        row = self.conn.execute("SELECT id FROM sources WHERE digest=?", (digest,)).fetchone()
        return None if row is None else state.get_source(self.conn, str(row[0]))

    def _turns_seen(
        self, origin: str | None, external_id: str | None, messages: Sequence[Message]
    ) -> int:
        """How many leading turns of `messages` an earlier import of the same conversation
        (same origin and external id) already read."""
        if external_id is None:
            return 0
        seen = 0
        for (sid,) in self.conn.execute(
            "SELECT id FROM sources WHERE external_id=? AND origin IS ?", (external_id, origin)
        ).fetchall():
            old = state.get_source(self.conn, str(sid)).messages
            n = 0
            while n < min(len(old), len(messages)) and old[n] == messages[n]:
                n += 1
            seen = max(seen, n)
        return seen

    def why(self, memory_id: str) -> Explanation:
        """Where a memory came from (source turns or document spans, with dates) and its
        history. `memsync why ID` calls this."""
        return explain(self, memory_id)

    # The profile.

    def profile(self, *, rebuild: bool = False) -> Profile:
        """The profile (bio, a summary per category, insights), brought up to date.

        Only sections whose memories changed since the stored profile are rewritten, so
        a configured LLM is asked again only about what changed. `rebuild` starts afresh.
        """
        stored = db.read_meta(self.conn, "profile")
        previous = None
        if stored is not None and not rebuild:
            try:
                previous = profile_from_json(json.loads(stored))
            except (InvalidInput, ValueError):
                previous = None  # a derived cache: rebuild rather than fail
        memories = state.query_memories(
            self.conn, "m.status=? AND m.kind=?", [Status.ACTIVE.value, Kind.SEMANTIC.value], ""
        )
        built = build_profile(
            memories, now=self.clock(), previous=previous, summarizer=self.summarizer()
        )
        if previous is None or replace(built, built_at=previous.built_at) != previous:
            with self._lock, self.conn:
                db.write_meta(self.conn, "profile", json.dumps(profile_to_json(built)))
        return built

    def summarizer(self) -> Summarizer:
        """Who writes the profile: the configured LLM, or the offline rules. Private
        memories are always summarised on this device."""
        s = self.settings()
        if not (s.llm_configured and s.profile_with_llm):
            return RuleSummarizer()
        from memsync.llm import LLMSummarizer

        return KeepPrivateLocal(LLMSummarizer(self._chat_model(s, "profile.llm is on")))

    # Settings and the backends they choose.

    def settings(self) -> settings_.Settings:
        """This device's settings (stored encrypted in the vault, not synced)."""
        return settings_.decode(db.read_meta(self.conn, "settings"))

    def configure(self, name: str, value: str | None) -> settings_.Settings:
        """Set one setting (`None` resets it); `memsync config KEY VALUE` calls this."""
        updated = settings_.parse_value(self.settings(), name, value)
        with self._lock, self.conn:
            db.write_meta(self.conn, "settings", settings_.encode(updated))
        return updated

    def extractor(self) -> Extractor:
        """The extractor the settings choose: the offline rules, or the configured LLM."""
        s = self.settings()
        if s.extractor != "llm":
            return RuleExtractor()
        from memsync.llm import LLMExtractor

        return LLMExtractor(self._chat_model(s, "extractor is llm"))

    def judge(self) -> Judge | None:
        """The LLM that decides hard reconciliation cases, when one is configured."""
        s = self.settings()
        if not (s.llm_configured and s.reconcile_with_llm):
            return None
        from memsync.llm import LLMJudge

        return LLMJudge(self._chat_model(s, "reconcile.llm is on"))

    def _chat_model(self, s: settings_.Settings, why: str) -> ChatModel:
        if not s.llm_configured:
            raise UsageError(
                f"{why} but no model is configured: set llm.base_url and llm.model "
                "with `memsync config`"
            )
        from memsync.llm import LLMSettings, OpenAIChat

        assert s.llm_base_url is not None and s.llm_model is not None
        return OpenAIChat(
            LLMSettings(
                base_url=s.llm_base_url,
                model=s.llm_model,
                api_key=s.llm_api_key,
                timeout=s.llm_timeout,
            )
        )

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
            known_sources = {str(r[0]) for r in self.conn.execute("SELECT id FROM sources")}
            known_digests = {str(r[0]) for r in self.conn.execute("SELECT digest FROM sources")}
            known_memories = {str(r[0]) for r in self.conn.execute("SELECT id FROM memories")}
            ops: builtins.list[dict[str, Any]] = []
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
            if ops:
                self._commit_many(ops, progress)
        return n_sources, len(ops) - n_sources

    # Verification.

    def check(self, progress: Progress | None = None) -> CheckReport:
        """Verify every feed (signatures, hash chains, device endorsements) and rebuild.

        The state is rebuilt from the log alone into memory and its digest compared with
        the live state's.
        """
        problems: builtins.list[LogProblem] = []
        try:
            integrity = self.conn.execute("PRAGMA integrity_check").fetchall()
        except apsw.Error as exc:
            return CheckReport(0, 0, (LogProblem("database", f"unreadable: {exc}"),))
        if integrity != [("ok",)]:
            problems.append(LogProblem("database", "; ".join(str(r[0]) for r in integrity[:3])))
        try:
            entries = self.log.entries()
            stored = {
                (str(r[0]), int(r[1])): bytes(r[2])
                for r in self.conn.execute("SELECT device_id, seq, hash FROM oplog")
            }
        except (IntegrityError, UnicodeDecodeError, TypeError, ValueError) as exc:
            problems.append(LogProblem("log", f"unreadable: {exc}"))
            return CheckReport(0, 0, tuple(problems), state.digest(self.conn), "")
        # One slot per entry (None where it does not decrypt), so ops stay beside entries.
        decrypted: builtins.list[dict[str, Any] | None] = []
        for e in entries:
            if stored.get((e.device_id, e.seq)) != e.hash(self.header.vault_id):
                problems.append(LogProblem(f"feed {e.device_id} entry {e.seq}", "hash mismatch"))
            try:
                decrypted.append(self.log.decrypt(e, self._log_key))
            except CryptoError as exc:
                decrypted.append(None)
                problems.append(LogProblem(f"feed {e.device_id} entry {e.seq}", str(exc)))
        ops = [op for op in decrypted if op is not None]
        sign_keys, device_problems = self._trusted_devices(entries, decrypted)
        problems += device_problems
        problems += oplog.verify_feeds(entries, self.header.vault_id, sign_keys)
        rebuilt = db.open_memory()
        try:
            for i, op in enumerate(ops):
                state.apply(rebuilt, op)
                if progress:
                    progress(i + 1, len(ops))
            rebuilt_digest = state.digest(rebuilt)
        except (MemsyncError, KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(LogProblem("rebuild", f"replay failed: {exc!r}"))
            rebuilt_digest = ""
        finally:
            rebuilt.close()
        live = state.digest(self.conn)
        if rebuilt_digest and rebuilt_digest != live:
            problems.append(LogProblem("rebuild", "state rebuilt from the log differs"))
        return CheckReport(len(entries), len(sign_keys), tuple(problems), live, rebuilt_digest)

    def _trusted_devices(
        self, entries: builtins.list[oplog.Entry], ops: builtins.list[dict[str, Any] | None]
    ) -> tuple[dict[str, bytes], builtins.list[LogProblem]]:
        """Signing keys of the devices the log proves belong to this vault.

        The genesis device declares the recovery key; any later device must carry an
        endorsement by it. A device's declaration must be the first entry of its feed.
        `ops[i]` is the decrypted operation of `entries[i]`, or None if it did not decrypt.
        """
        keys: dict[str, bytes] = {}
        problems: builtins.list[LogProblem] = []
        recovery_pub: bytes | None = None
        for e, op in zip(entries, ops, strict=True):
            if op is None or op.get("op") != "add_device":
                continue
            where = f"feed {e.device_id} entry {e.seq}"
            try:
                if op["device_id"] != e.device_id or e.seq != 1:
                    problems.append(LogProblem(where, "device declared outside its own feed"))
                    continue
                if recovery_pub is None and "recovery_sign_pub" in op and not keys:
                    recovery_pub = base64.b64decode(op["recovery_sign_pub"], validate=True)
                elif recovery_pub is None or not _verify_endorsement(
                    recovery_pub, op, self.header.vault_id
                ):
                    problems.append(LogProblem(where, "device not endorsed by the recovery key"))
                    continue
                keys[e.device_id] = base64.b64decode(op["sign_pub"], validate=True)
            except (KeyError, TypeError, ValueError, AttributeError):
                problems.append(LogProblem(where, "malformed device declaration"))
        return keys, problems

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


def _verify_endorsement(public: bytes, op: dict[str, Any], vault_id: str) -> bool:
    sig = op.get("endorsement")
    return isinstance(sig, str) and verify(
        public, base64.b64decode(sig), _endorsement(vault_id, op)
    )


def _validate(
    text: str, valid_from: datetime | None, valid_until: datetime | None, confidence: float
) -> None:
    """The checks every new version of a memory passes, whether added or edited."""
    if not text.strip():
        raise UsageError("a memory needs some text")
    if not 0.0 <= confidence <= 1.0:
        raise UsageError("confidence must be between 0 and 1")
    if valid_from and valid_until and valid_until < valid_from:
        raise UsageError("valid-until is before valid-from")


def _clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    cleaned = {t.strip().lower() for t in tags if t.strip()}
    return tuple(sorted(cleaned))


def _stored_form(filters: SearchFilters) -> SearchFilters:
    """`filters` with its tags written the way tags are stored (trimmed, lower case)."""
    if not filters.tags:
        return filters
    return replace(filters, tags=_clean_tags(filters.tags))


def remember_device(vault: Vault) -> None:
    """Keep this device's secret in the OS keyring so the vault opens without a prompt."""
    keystore.store(vault.header.vault_id, vault.device.device_id, vault.device.secret_bytes())


__all__ = ["IngestReport", "IngestResult", "NewVault", "Outcome", "Vault", "new_id"]
