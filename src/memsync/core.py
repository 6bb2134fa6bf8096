"""The narrow core every step of the data flow works on: this device's keys and log, the
encrypted database (a connection per thread), the embedder, the in-memory vectors and the
clock. `Vault` composes it with the steps (capture, reconcile, retrieve, disclose,
profile); the steps take a `Core`, never the `Vault`.

Every change goes through `Core.commit`: the operations are appended to this device's
signed feed and applied to the tables in one write transaction, so the log and the state
never disagree. What the change will index is embedded first, outside the write lock:
embedding is most of a write's cost, and other writers need not wait for it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import apsw
import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from memsync.crypto import aead, wrap
from memsync.crypto.device import DeviceKeys
from memsync.errors import CorruptVault, CryptoError, IntegrityError, MemsyncError
from memsync.index.embed import Embedder
from memsync.index.vectors import (
    VectorIndex,
    embed_items,
    embed_texts,
    embeddable,
    texts_to_embed,
)
from memsync.log import oplog, verify
from memsync.model import CheckReport, Status, VaultInfo
from memsync.store import db, state
from memsync.store.connections import Database
from memsync.store.files import Header, VaultPaths

__all__ = ["Core", "Guard", "Progress", "Stale", "db_key", "expecting", "log_key"]

Progress = Callable[[int, int], None]
Vector = npt.NDArray[np.float32]
# Index changes kept for other processes to catch up from; one further behind reloads.
_CHANGES_KEPT = 50_000


def db_key(vault_key: bytes) -> bytes:
    """The database's page key, derived from the vault key."""
    return aead.hkdf(vault_key, b"memsync/v1/sqlite")


def epoch_ad(vault_id: str, epoch: int) -> bytes:
    """Associated data of an epoch key's wrapped copies."""
    return f"memsync/v1/epoch-key/{vault_id}/{epoch}".encode()


def log_key(vault_key: bytes) -> bytes:
    """The key that encrypts operations in the log, derived from the vault key."""
    return aead.hkdf(vault_key, b"memsync/v1/oplog")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Stale(MemsyncError):
    """A memory a write was decided on changed before the write could be made (another
    process wrote first); nothing was written."""


Guard = Callable[[apsw.Connection], None]


def expecting(statuses: Mapping[str, Status]) -> Guard:
    """A `Core.commit` guard: each memory named still has the status it was read with."""

    def guard(conn: apsw.Connection) -> None:
        ids = list(statuses)
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        now = {
            str(r[0]): str(r[1])
            for r in conn.execute(f"SELECT id, status FROM memories WHERE id IN ({marks})", ids)
        }
        changed = [i for i in ids if now.get(i) != statuses[i].value]
        if changed:
            raise Stale(f"memory {changed[0]} changed while this write was being prepared")

    return guard


@dataclass
class _Ticket:
    ops: Sequence[dict[str, Any]]
    done: bool = False
    error: BaseException | None = None


class _GroupCommit:
    """Appends that depend on nothing the vault holds (disclosures), from many threads,
    written together: while one transaction commits, the others queue, and the next
    thread to write takes everything queued meanwhile. Each caller returns only once its
    own operations are committed (or raises what their transaction raised).

    One commit instead of one per request matters beyond its own cost: every commit
    makes every other connection discard its page cache.
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        self._cond = threading.Condition()
        self._queue: list[_Ticket] = []
        self._writing = False

    def commit(self, ops: Sequence[dict[str, Any]]) -> None:
        ticket = _Ticket(ops)
        with self._cond:
            self._queue.append(ticket)
            while not ticket.done and self._writing:
                self._cond.wait()
            if ticket.done:
                if ticket.error is not None:
                    raise ticket.error
                return
            self._writing = True
            batch, self._queue = self._queue, []
        try:
            self._core.commit([op for t in batch for op in t.ops])
        except BaseException as exc:
            for t in batch:
                t.error = exc
            raise
        finally:
            with self._cond:
                for t in batch:
                    t.done = True
                self._writing = False
                self._cond.notify_all()


class Core:
    """An unlocked vault's working parts. Built by `memsync.lifecycle`; used through
    `Vault` (and `AppSession`), which most code should call instead."""

    def __init__(
        self,
        paths: VaultPaths,
        database: Database,
        header: Header,
        keys: DeviceKeys,
        vault_key: bytes,
        embedder: Embedder,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.paths = paths
        self.db = database
        self.header = header
        self.device = keys
        self.log_key = log_key(vault_key)
        self.vault_key = vault_key
        self.embedder = embedder
        self.clock = clock
        self.log = oplog.OpLog(lambda: database.conn, header.vault_id, keys)
        self.vectors = VectorIndex(embedder.dim)
        self._commits = 0
        self._recovery_sign_pub: bytes | None = None  # fixed at genesis: read once
        self._appends = _GroupCommit(self)

    @property
    def conn(self) -> apsw.Connection:
        """This thread's connection to the database."""
        return self.db.conn

    def commit(
        self,
        ops: Sequence[dict[str, Any]],
        progress: Progress | None = None,
        vectors: Mapping[str, Vector] | None = None,
        *,
        guard: Guard | None = None,
    ) -> state.IndexChange:
        """Log and apply `ops` in one write transaction and store the vectors of what
        they index. `vectors` holds embeddings already computed for some texts
        (reconciliation embeds candidates before they become memories);
        `progress(done, total)` counts the texts embedded.

        `guard(conn)` runs first inside the transaction, where nothing can change under
        it: it checks that what the operations were decided on is still so (`expecting`)
        and raises, `Stale` or its own error, if not; then nothing is written.
        """
        known = embed_texts(self.embedder, texts_to_embed(ops), vectors, progress)
        with self.db.write() as conn:
            if guard is not None:
                guard(conn)
            self.log.append_all(ops, self.log_key, self.epoch())
            change = state.apply_all(conn, ops)
            added = change.added
            embed_items(conn, self.embedder, added, known)
            self._commits += 1
            if self._commits % 256 == 1 or len(added) > 1000:
                conn.execute(
                    "DELETE FROM item_changes WHERE seq <= (SELECT max(seq) FROM item_changes) - ?",
                    (_CHANGES_KEPT,),
                )
        return change

    def record(self, ops: Sequence[dict[str, Any]]) -> None:
        """Commit `ops` that depend on nothing the vault holds (disclosures): like
        `commit`, but threads recording at the same time share one transaction."""
        if self.db.in_write:
            self.commit(ops)  # joining a batch from inside a write could deadlock
        else:
            self._appends.commit(ops)

    def vector_index(self) -> VectorIndex:
        """The in-memory vectors, brought up to date with every process's writes."""
        index = self.vectors
        index.sync(self.conn)
        if self.db.in_write:
            # It may now hold rows of this transaction, which a rollback would take back
            # (and whose change numbers a later write would reuse): then start afresh.
            self.db.on_rollback(self._fresh_vectors)
        return index

    def _fresh_vectors(self) -> None:
        self.vectors = VectorIndex(self.embedder.dim)

    def memories_version(self) -> int:
        """A number that moves whenever any process changes a memory or the bio."""
        row = self.conn.execute("SELECT value FROM counters WHERE name='memories'").fetchone()
        return 0 if row is None else int(row[0])

    def reindex(self, progress: Progress | None = None) -> int:
        """Re-embed every indexed item with this core's embedder (after a model change)."""
        rowids = [int(r[0]) for r in self.conn.execute("SELECT rowid FROM items")]
        texts = [text for _, text in embeddable(self.conn, rowids)]
        known = embed_texts(self.embedder, texts, None, progress)
        with self.db.write() as conn:
            embed_items(conn, self.embedder, rowids, known)
            db.write_meta(conn, "embedder", self.embedder.name)
        self.vectors = VectorIndex(self.embedder.dim)
        return len(rowids)

    def check(self, progress: Progress | None = None) -> CheckReport:
        """Verify every feed and rebuild the state from the log (`log.verify.check`), all
        in one read transaction so concurrent writers cannot skew the comparison."""
        with self.db.snapshot() as conn:
            return verify.check(conn, self.log, self.log_key, self.header.vault_id, progress)

    def epoch(self) -> int:
        """The newest key epoch whose key this device holds: what it writes under. A
        revoked device never gets the keys of the epochs after its revocation."""
        rows = self.conn.execute("SELECT epoch FROM epochs ORDER BY epoch DESC").fetchall()
        for (epoch,) in rows:
            if self.epoch_key(int(epoch)) is not None:
                return int(epoch)
        return self.header.epoch

    def epoch_key(self, epoch: int) -> bytes | None:
        """The key of `epoch` (0: the vault key), or None if it was not given to this
        device."""
        if epoch == 0:
            return self.vault_key
        row = self.conn.execute("SELECT key FROM epoch_keys WHERE epoch=?", (epoch,)).fetchone()
        if row is not None:
            return bytes(row[0])
        found = self._unwrap_epoch(epoch, self.device.wrap_key)
        if found is not None:
            self.remember_epoch_key(epoch, found)
        return found

    def _unwrap_epoch(self, epoch: int, identity: X25519PrivateKey) -> bytes | None:
        ad = epoch_ad(self.header.vault_id, epoch)
        row = self.conn.execute("SELECT stanzas FROM epochs WHERE epoch=?", (epoch,)).fetchone()
        stanzas: list[dict[str, str]] = [] if row is None else json.loads(row[0])
        try:
            return wrap.find_and_unwrap([wrap.Stanza.from_json(s) for s in stanzas], identity, ad)
        except (CryptoError, CorruptVault):
            return None

    def remember_epoch_key(self, epoch: int, key: bytes) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO epoch_keys(epoch, key) VALUES(?,?)", (epoch, key))

    def take_epoch_keys(self, identity: X25519PrivateKey) -> None:
        """Unwrap and keep every epoch key `identity` (the recovery identity) can open:
        those of the epochs it was given, and older ones a rotation wrapped to it again."""
        for (epoch,) in self.conn.execute("SELECT epoch FROM epochs").fetchall():
            found = self._unwrap_epoch(int(epoch), identity)
            if found is not None:
                self.remember_epoch_key(int(epoch), found)
        for (rewrapped,) in self.conn.execute("SELECT rewrapped FROM rotations").fetchall():
            for epoch, stanza in json.loads(rewrapped).items():
                ad = epoch_ad(self.header.vault_id, int(epoch))
                with contextlib.suppress(CryptoError, CorruptVault):
                    key = wrap.find_and_unwrap([wrap.Stanza.from_json(stanza)], identity, ad)
                    self.remember_epoch_key(int(epoch), key)

    def recovery_sign_pub(self) -> bytes:
        """The recovery identity's signing key: the newest one a rotation declared, or
        the one the genesis device declared."""
        return self.recovery_sign_pubs()[-1]

    def recovery_sign_pubs(self) -> list[bytes]:
        """Every recovery signing key the vault has had, oldest first."""
        if self._recovery_sign_pub is None:
            self._recovery_sign_pub = self._declared_recovery_key()
        rotated = self.conn.execute("SELECT sign_pub FROM rotations ORDER BY at, epoch").fetchall()
        return [self._recovery_sign_pub, *(base64.b64decode(str(r[0])) for r in rotated)]

    def _declared_recovery_key(self) -> bytes:
        # fetchall: a cursor left open would hold a read transaction (and block checkpoints).
        devices = self.conn.execute("SELECT device_id FROM devices ORDER BY added_at").fetchall()
        for (device,) in devices:
            entry = self.log.entry(str(device), 1)
            if entry is None:
                continue
            op = self.log.decrypt(entry, self.log_key)
            if "recovery_sign_pub" in op:
                return base64.b64decode(op["recovery_sign_pub"])
        raise IntegrityError("the log declares no recovery key")

    def members(self) -> dict[str, X25519PublicKey]:
        """The wrapping keys of the devices the vault has not revoked, by device id."""
        return {
            str(d): X25519PublicKey.from_public_bytes(bytes(p))
            for d, p in self.conn.execute(
                "SELECT device_id, wrap_pub FROM devices WHERE device_id NOT IN "
                "(SELECT device_id FROM revocations) ORDER BY device_id"
            )
        }

    def root_recipients(self) -> list[X25519PublicKey]:
        """Who can open the vault's root on a remote: every device, and the recovery
        identity when this vault knows its public key."""
        out = list(self.members().values())
        recovery = self.recovery_wrap_pub()
        if recovery is not None:
            out.append(X25519PublicKey.from_public_bytes(recovery))
        return out

    def recovery_wrap_pub(self) -> bytes | None:
        """The recovery identity's public wrapping key; None in a vault made before it
        was kept (then a root on a remote cannot be opened with the phrase alone)."""
        row = self.conn.execute(
            "SELECT wrap_pub FROM rotations ORDER BY at DESC, epoch DESC LIMIT 1"
        ).fetchone()
        value = str(row[0]) if row is not None else db.read_meta(self.conn, "recovery_wrap_pub")
        return None if value is None else bytes.fromhex(value)

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

    def close(self) -> None:
        self.db.close()
