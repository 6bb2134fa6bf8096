"""This device's remotes and syncing with them; restoring a vault from a remote alone.

Remotes are settings of the device (a table in the encrypted database), not operations
in the log: a laptop may sync through a Dropbox folder and a phone through S3.
`Vault.remotes` and `Vault.sync` call this module; so does `Vault.recover(from_url=…)`.
"""

from __future__ import annotations

import base64
import builtins
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from memsync import codec
from memsync.core import Core, db_key
from memsync.crypto import phrase, wrap
from memsync.crypto.device import KdfParams, check_passphrase_strength, generate_device, seal_device
from memsync.errors import (
    BadRecoveryPhrase,
    CryptoError,
    NotFound,
    RemoteError,
    SyncRefused,
    UsageError,
    VaultExists,
)
from memsync.index.embed import Embedder
from memsync.index.embedders import embedder_for
from memsync.lifecycle import database_for, device_op
from memsync.log.verify import endorsement
from memsync.store import db
from memsync.store.files import Header, VaultPaths, default_home, header_ad, write_atomic
from memsync.sync import objects
from memsync.sync.engine import Progress, Syncer, SyncReport
from memsync.sync.remote import Conflict, Remote
from memsync.sync.urls import normalize_url, open_remote

__all__ = ["Evidence", "RemoteInfo", "Remotes", "restore", "sync"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_RETRIES = 3


@dataclass(frozen=True)
class RemoteInfo:
    """A remote this device syncs with."""

    name: str
    url: str
    added_at: int


@dataclass(frozen=True)
class Evidence:
    """What a refused sync kept as proof: the kind (rollback, fork, gap, altered,
    forgery, untrusted, foreign), when, and the details as JSON."""

    remote: str
    at: int
    what: str
    detail: str


class Remotes:
    """This device's remotes (`Vault.remotes`)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def add(self, name: str, url: str, *, probe: bool = True) -> RemoteInfo:
        """Add a remote after checking it can be listed and holds no other vault.

        >>> vault.remotes.add("usb", "/media/stick/memsync")  # doctest: +SKIP
        """
        if not _NAME.fullmatch(name):
            raise UsageError("a remote name is 1-40 letters, digits, '.', '_' or '-'")
        canonical = normalize_url(url)
        if any(r.name == name for r in self.list()):
            raise UsageError(f"a remote named {name} exists already (remove it first)")
        if probe:
            remote = open_remote(canonical)
            remote.prepare()
            name_here = objects.root_name(self.core.recovery_sign_pub())
            roots = remote.list("r/")
            if roots and name_here not in roots:
                raise RemoteError(f"{url} holds another vault; use an empty folder or prefix")
        info = RemoteInfo(name, canonical, codec.to_ms(self.core.clock()))
        with self.core.db.write() as conn:
            conn.execute(
                "INSERT INTO remotes(name, url, added_at) VALUES(?,?,?)",
                (info.name, info.url, info.added_at),
            )
        return info

    def list(self) -> list[RemoteInfo]:
        return [
            RemoteInfo(str(n), str(u), int(a))
            for n, u, a in self.core.conn.execute(
                "SELECT name, url, added_at FROM remotes ORDER BY name"
            )
        ]

    def get(self, name: str) -> RemoteInfo:
        for r in self.list():
            if r.name == name:
                return r
        raise NotFound(f"no remote named {name} (see `memsync remote list`)")

    def remove(self, name: str) -> None:
        """Forget a remote on this device (what it holds stays there)."""
        self.get(name)
        with self.core.db.write() as conn:
            for table in ("remotes", "sync_pushed", "sync_seen", "sync_segments"):
                column = "name" if table == "remotes" else "remote"
                conn.execute(f"DELETE FROM {table} WHERE {column}=?", (name,))

    def evidence(self, name: str | None = None) -> builtins.list[Evidence]:
        rows = self.core.conn.execute(
            "SELECT remote, at, what, detail FROM sync_evidence "
            "WHERE ?1 IS NULL OR remote=?1 ORDER BY rowid",
            (name,),
        )
        return [Evidence(str(r), int(a), str(w), str(d)) for r, a, w, d in rows]


def sync(
    core: Core,
    name: str | None = None,
    progress: Progress | None = None,
    remote: Remote | None = None,
) -> list[SyncReport]:
    """Sync with the remote `name`, or with every remote; see `Vault.sync`."""
    remotes = Remotes(core)
    targets = [remotes.get(name)] if name else remotes.list()
    if not targets:
        raise UsageError("no remote to sync with: add one with `memsync remote add NAME URL`")
    reports = []
    for info in targets:
        store = remote if remote is not None else open_remote(info.url)
        reports.append(_sync_one(core, store, info.name, progress))
    return reports


def _sync_one(core: Core, remote: Remote, name: str, progress: Progress | None) -> SyncReport:
    for attempt in range(_RETRIES):
        try:
            return Syncer(core, remote, name, progress).run()
        except Conflict:
            # Another process of this device (or the other side) moved while this one
            # synced: what was done stays done, and the next round starts from it.
            if attempt == _RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def restore(
    url: str,
    home: str | Path | None,
    recovery_phrase: str,
    new_passphrase: str,
    *,
    kdf: KdfParams,
    embedder: Embedder | None,
    remote: Remote | None = None,
    progress: Progress | None = None,
) -> Core:
    """A vault restored onto this machine from a remote and the recovery phrase alone,
    with a new device enrolled by the recovery key; see `Vault.recover`."""
    check_passphrase_strength(new_passphrase)
    paths = VaultPaths(Path(home) if home else default_home())
    if paths.header.exists() or paths.database.exists():
        raise VaultExists(f"a vault already exists at {paths.home}")
    words = phrase.normalize_phrase(recovery_phrase)
    store = remote if remote is not None else open_remote(url)
    signing = phrase.recovery_signing_key(words)
    name = objects.root_name(signing.public_key().public_bytes_raw())
    blob = store.get(name)
    if blob is None:
        if store.list("r/"):
            raise BadRecoveryPhrase(f"this recovery phrase does not open the vault on {url}")
        raise RemoteError(f"{url} holds no vault")
    try:
        root = objects.open_root(blob.data, phrase.recovery_identity(words))
    except CryptoError:
        raise BadRecoveryPhrase(f"this recovery phrase does not open the vault on {url}") from None
    header = root.header
    ad = header_ad(header.vault_id, header.epoch)
    try:
        vault_key = wrap.find_and_unwrap(header.stanzas, phrase.recovery_identity(words), ad)
    except CryptoError:
        raise SyncRefused(
            f"the root on {url} does not hold the vault key for this phrase"
        ) from None
    keys = generate_device()
    recovery_stanzas = tuple(s for s in header.stanzas if s.kind == "recovery")
    local = Header(
        header.vault_id,
        header.epoch,
        (*recovery_stanzas, wrap.wrap_key(vault_key, keys.wrap_public, kind="device", ad=ad)),
    )
    paths.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    emb = embedder or embedder_for(None)
    core: Core | None = None
    try:
        conn = db.open_encrypted(paths.database, db_key(vault_key), create=True)
        with conn:
            db.write_meta(conn, "vault_id", header.vault_id)
            db.write_meta(conn, "embedder", emb.name)
            pub = phrase.recovery_identity(words).public_key().public_bytes_raw()
            db.write_meta(conn, "recovery_wrap_pub", pub.hex())
        core = Core(paths, database_for(paths, vault_key, conn), local, keys, vault_key, emb)
        with core.db.write() as w:
            w.execute(
                "INSERT INTO remotes(name, url, added_at) VALUES(?,?,?)",
                (
                    "origin",
                    normalize_url(url) if remote is None else store.url,
                    codec.to_ms(core.clock()),
                ),
            )
        Syncer(core, store, "origin", progress).pull()
        op = device_op(keys, codec.to_ms(core.clock()), "recovered")
        op["endorsement"] = base64.b64encode(
            signing.sign(endorsement(header.vault_id, op))
        ).decode()
        core.commit([op])
        write_atomic(paths.device_key, seal_device(keys, new_passphrase, kdf))
        write_atomic(paths.header, local.to_bytes())
        Syncer(core, store, "origin", progress).run()
    except BaseException:
        if core is not None:
            core.close()
        for p in (paths.header, paths.device_key, paths.database):
            p.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(str(paths.database) + suffix).unlink(missing_ok=True)
        raise
    return core


def evidence_json(items: list[Evidence]) -> str:
    return json.dumps([e.__dict__ for e in items], indent=2)
