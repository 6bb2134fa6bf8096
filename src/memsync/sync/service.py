"""This device's remotes and syncing with them; restoring a vault from a remote alone.

Remotes are settings of the device (a table in the encrypted database), not operations
in the log: a laptop may sync through a Dropbox folder and a phone through S3.
`Vault.remotes` and `Vault.sync` call this module; so does `Vault.recover(from_url=…)`.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import dataclasses
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from memsync import codec, forget
from memsync.core import Core, db_key, epoch_ad
from memsync.crypto import phrase, wrap
from memsync.crypto.device import (
    DeviceKeys,
    KdfParams,
    check_passphrase_strength,
    generate_device,
    seal_device,
)
from memsync.errors import (
    BadRecoveryPhrase,
    CryptoError,
    NotFound,
    RemoteError,
    SyncRefused,
    UsageError,
)
from memsync.index.embed import Embedder
from memsync.index.embedders import embedder_for
from memsync.lifecycle import database_for, device_op
from memsync.log.oplog import hlc_millis
from memsync.log.verify import endorsement
from memsync.store import db
from memsync.store.files import (
    Header,
    VaultPaths,
    default_home,
    header_ad,
    remove_home_files,
    write_atomic,
)
from memsync.sync import objects, pairing, recovery, shred
from memsync.sync.anchor import Chain, ChainTarget
from memsync.sync.engine import Progress, Syncer
from memsync.sync.remote import Conflict, Remote
from memsync.sync.report import SyncReport, full_header
from memsync.sync.urls import normalize_url, open_remote

__all__ = ["Evidence", "RemoteInfo", "Remotes", "restore", "sync"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_RETRIES = 3
_T = TypeVar("_T")


@dataclass(frozen=True)
class RemoteInfo:
    """A remote this device syncs with."""

    name: str
    url: str
    added_at: int


@dataclass(frozen=True)
class DeviceInfo:
    """A device of the vault, as `memsync device list` shows it."""

    device_id: str
    name: str | None
    added_at: int
    enrolled_by: str  # a device id, "genesis" or "recovery phrase"
    last_seen: int | None  # the clock of its newest entry here (ms)
    this_device: bool
    revoked_at: int | None = None


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
            names = [objects.root_name(k) for k in self.core.recovery_sign_pubs()]
            ours = names[-1]
            if objects.other_roots(remote.list("r/"), names) and remote.get(ours) is None:
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
            conn.execute("DELETE FROM remotes WHERE name=?", (name,))
            for table in ("sync_pushed", "sync_seen"):
                conn.execute(f"DELETE FROM {table} WHERE remote=?", (name,))

    def approve(self, confirm: Callable[[str], bool], remote: str | None = None) -> pairing.Request:
        """Let in the device waiting on `remote` if `confirm(safety_code)` is true (the
        person saw the same six words on it); see `memsync device approve`."""
        return approve(self.core, remote, confirm)

    def revoke(self, who: str) -> DeviceInfo:
        """Revoke a device (by id or name): a new epoch key, wrapped only to the devices
        that remain and to the recovery identity, encrypts everything written from now on,
        and entries the revoked device writes later count for nothing on any device. What
        it already held, it keeps. Sync afterwards to tell the other devices."""
        core = self.core
        matches = [d for d in self.devices() if who in (d.device_id, d.name)]
        if not matches:
            raise NotFound(f"no device {who} (see `memsync device list`)")
        if len(matches) > 1:
            raise UsageError(f"several devices are named {who}: give the device id")
        target = matches[0]
        if target.this_device:
            raise UsageError("a device cannot revoke itself: revoke it from another one")
        if target.revoked_at is not None:
            raise UsageError(f"device {target.device_id} is already revoked")
        recovery = core.recovery_wrap_pub()
        if recovery is None:
            raise UsageError(
                "this device does not know the recovery key's public half: run "
                "`memsync recover` here once, then revoke"
            )
        with core.db.write() as conn:
            row = conn.execute("SELECT max(epoch) FROM epochs").fetchone()
            epoch = max(int(row[0] or 0), core.header.epoch) + 1
            key = secrets.token_bytes(32)
            ad = epoch_ad(core.header.vault_id, epoch)
            stanzas = [
                wrap.wrap_key(key, pub, kind="device", ad=ad).to_json()
                for device, pub in core.members().items()
                if device != target.device_id
            ]
            stanzas.append(
                wrap.wrap_key(
                    key, X25519PublicKey.from_public_bytes(recovery), kind="recovery", ad=ad
                ).to_json()
            )
            seq = core.log.heads().get(target.device_id, (0, b""))[0]
            core.remember_epoch_key(epoch, key)
            core.commit(
                [
                    {
                        "op": "revoke_device",
                        "device_id": target.device_id,
                        "seq": seq,
                        "epoch": epoch,
                        "stanzas": stanzas,
                        "by": core.device.device_id,
                        "at": codec.to_ms(core.clock()),
                    }
                ]
            )
        return next(d for d in self.devices() if d.device_id == target.device_id)

    def rotate_recovery(self) -> recovery.Rotated:
        """Replace the recovery phrase (shown once, in the result): the old one opens
        nothing written afterwards and endorses no new device; sync to tell the remotes."""
        return recovery.rotate(self.core)

    def devices(self) -> builtins.list[DeviceInfo]:
        """Every device of the vault: its name, when and by whom it was let in, and when
        this device last heard from it."""
        core = self.core
        enrolled = {
            str(d): str(b)
            for d, b in core.conn.execute("SELECT device_id, by_device FROM enrolments")
        }
        out = []
        for device, name, added in core.conn.execute(
            "SELECT device_id, name, added_at FROM devices ORDER BY added_at, device_id"
        ):
            last = core.conn.execute(
                "SELECT max(hlc) FROM oplog WHERE device_id=?", (device,)
            ).fetchone()[0]
            device = str(device)
            by = enrolled.get(device)
            if by is None:
                first = core.log.entry(device, 1)
                op = {} if first is None else core.log.decrypt(first, core.log_key)
                by = "genesis" if "recovery_sign_pub" in op else "recovery phrase"
            revoked = core.conn.execute(
                "SELECT at FROM revocations WHERE device_id=?", (device,)
            ).fetchone()
            out.append(
                DeviceInfo(
                    device,
                    None if name is None else str(name),
                    int(added),
                    by,
                    None if last is None else hlc_millis(int(last)),
                    device == core.device.device_id,
                    None if revoked is None else int(revoked[0]),
                )
            )
        return out

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
    forget.apply_retention(core)  # what `retention.episodic` says is past keeping goes first
    chain = Chain(core)
    reports = []
    for info in targets:
        store = remote if remote is not None else open_remote(info.url)
        reports.append(_sync_one(core, store, info.name, progress, chain))
    note = chain.after_sync()
    if note:
        reports[-1] = dataclasses.replace(reports[-1], chain=(note,))
    return reports


def _sync_one(
    core: Core, remote: Remote, name: str, progress: Progress | None, chain: Chain
) -> SyncReport:
    for attempt in range(_RETRIES):
        try:
            syncer = Syncer(core, remote, name, progress, witness=chain.witness())
            report = syncer.run()
            shred.record_segments(core, name, syncer.segments)
            own = core.device.device_id
            head = core.log.heads().get(own, (0, b""))[0]
            shredded = forget.settle(core)
            if shredded and core.log.heads()[own][0] > head:
                # It named more shredded entries: that goes up before any key object
                # loses their keys, so that readers know why they are missing.
                Syncer(core, remote, name, progress, witness=chain.witness()).push()
            recovery.refresh_header(core)  # a phrase replaced elsewhere: the new one opens here
            written = shred.rewrite_keys(core, remote, name, syncer.keys, syncer.all_keys)
            if written or shredded:
                forget.compact(core)
            return dataclasses.replace(report, bytes_up=report.bytes_up + written)
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
    chain: ChainTarget | None = None,
) -> Core:
    """A vault restored onto this machine from a remote and the recovery phrase alone,
    with a new device enrolled by the recovery key; see `Vault.recover`. With `chain`,
    what the remote serves is checked against the latest on-chain checkpoint first."""
    check_passphrase_strength(new_passphrase)
    paths = VaultPaths(Path(home) if home else default_home())
    paths.require_absent()
    words = phrase.normalize_phrase(recovery_phrase)
    store = remote if remote is not None else open_remote(url)
    signing = phrase.recovery_signing_key(words)
    identity = phrase.recovery_identity(words)
    name = objects.root_name(signing.public_key().public_bytes_raw())
    blob = store.get(name)
    if blob is None:
        if store.list("r/"):
            raise BadRecoveryPhrase(f"this recovery phrase does not open the vault on {url}")
        raise RemoteError(f"{url} holds no vault")
    try:
        root = objects.open_root(blob.data, identity)
    except CryptoError:
        raise BadRecoveryPhrase(f"this recovery phrase does not open the vault on {url}") from None
    header = root.header
    ad = header_ad(header.vault_id, header.epoch)
    try:
        vault_key = wrap.find_and_unwrap(header.stanzas, identity, ad)
    except CryptoError:
        raise SyncRefused(
            f"the root on {url} does not hold the vault key for this phrase"
        ) from None
    keys = generate_device()
    recovery_pub = identity.public_key().public_bytes_raw()

    def endorsed(core: Core) -> dict[str, object]:
        op = device_op(keys, codec.to_ms(core.clock()), "recovered")
        op["endorsement"] = base64.b64encode(
            signing.sign(endorsement(header.vault_id, op))
        ).decode()
        return op

    return _establish(
        paths,
        header,
        vault_key,
        keys,
        recovery_pub,
        store,
        url if remote is None else None,
        endorsed,
        new_passphrase,
        kdf,
        embedder,
        progress,
        identity=identity,
        chain=chain,
    )


def _establish(
    paths: VaultPaths,
    header: Header,
    vault_key: bytes,
    keys: DeviceKeys,
    recovery_pub: bytes | None,
    store: Remote,
    url: str | None,
    declaration: Callable[[Core], dict[str, object]],
    passphrase: str,
    kdf: KdfParams,
    embedder: Embedder | None,
    progress: Progress | None,
    identity: X25519PrivateKey | None = None,
    epoch_keys: dict[int, bytes] | None = None,
    chain: ChainTarget | None = None,
) -> Core:
    """A new home for a vault that exists on `store`: this device's database, filled
    from the remote, its declaration in its own feed, its key file and header, then one
    sync. Nothing is left behind if any step fails."""
    ad = header_ad(header.vault_id, header.epoch)
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
            if recovery_pub is not None:
                db.write_meta(conn, "recovery_wrap_pub", recovery_pub.hex())
        core = Core(paths, database_for(paths, vault_key, conn), local, keys, vault_key, emb)
        with core.db.write() as w:
            w.execute(
                "INSERT INTO remotes(name, url, added_at) VALUES(?,?,?)",
                ("origin", normalize_url(url) if url else store.url, codec.to_ms(core.clock())),
            )
        for epoch, key in (epoch_keys or {}).items():
            core.remember_epoch_key(epoch, key)
        witness = None
        if chain is not None:
            Chain(core).configure(chain.rpc, contract=chain.contract, chain_id=chain.chain_id)
            witness = Chain(core).witness()
        Syncer(core, store, "origin", progress, identity, witness).pull()
        forget.settle(core)  # keys a forget took that the remote still held: gone here too
        core.commit([declaration(core)])
        write_atomic(paths.device_key, seal_device(keys, passphrase, kdf))
        write_atomic(paths.header, local.to_bytes())
        Syncer(core, store, "origin", progress).run()
    except BaseException:
        if core is not None:
            core.close()
        remove_home_files(paths)
        raise
    return core


def join(
    url: str,
    home: str | Path | None,
    passphrase: str,
    *,
    kdf: KdfParams = KdfParams(),
    embedder: Embedder | None = None,
    name: str | None = None,
    show_code: Callable[[str], None],
    timeout: float = 600.0,
    poll: float = 1.0,
    remote: Remote | None = None,
    progress: Progress | None = None,
) -> Core:
    """Join the vault on `url` as a new device, once a device already in approves; see
    `Vault.join`. `show_code(code)` is called with the safety code to compare."""
    check_passphrase_strength(passphrase)
    paths = VaultPaths(Path(home) if home else default_home())
    paths.require_absent()
    store = remote if remote is not None else open_remote(url)
    if not store.list("r/"):
        raise RemoteError(f"{url} holds no vault to join")
    keys = generate_device()
    request = pairing.post_request(store, keys)
    try:
        deadline = time.monotonic() + timeout
        answer = _wait(lambda: pairing.answer_for(store, request), deadline, poll)
        _, approver_sign, code = answer
        show_code(code)
        welcome = _wait(
            lambda: pairing.open_welcome(store, request, keys, approver_sign), deadline, poll
        )
        header_bytes, vault_key, recovery_pub, epoch_keys = welcome
        header = Header.from_bytes(header_bytes)

        def declared(core: Core) -> dict[str, object]:
            return device_op(keys, codec.to_ms(core.clock()), name)

        core = _establish(
            paths,
            header,
            vault_key,
            keys,
            recovery_pub,
            store,
            url if remote is None else None,
            declared,
            passphrase,
            kdf,
            embedder,
            progress,
            epoch_keys=epoch_keys,
        )
    finally:
        with contextlib.suppress(RemoteError):
            pairing.clean_up(store, request)
    return core


def _wait(probe: Callable[[], _T | None], deadline: float, poll: float) -> _T:
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise RemoteError(
                "no device approved the request in time (run `memsync device "
                "approve` on a device that is already in)"
            )
        time.sleep(poll)


def approve(
    core: Core,
    remote_name: str | None,
    confirm: Callable[[str], bool],
    remote: Remote | None = None,
) -> pairing.Request:
    """Answer the pairing request on a remote, and let the device in if `confirm(code)`
    says the person saw the same code on it; see `Remotes.approve`."""
    remotes = Remotes(core)
    infos = [remotes.get(remote_name)] if remote_name else remotes.list()
    if not infos:
        raise UsageError("no remote: add the one the new device joins with `memsync remote add`")
    if len(infos) > 1 and remote is None:
        raise UsageError("several remotes: name the one the new device joins")
    info = infos[0]
    store = remote if remote is not None else open_remote(info.url)
    requests = pairing.pending(store)
    if not requests:
        raise NotFound(
            f"no pairing request on remote {info.name}: run `memsync device join URL` on the "
            "new device first"
        )
    request = requests[0]
    code = pairing.offer(store, request, core.device)
    if not confirm(code):
        store.delete(f"o/{request.id}")
        raise UsageError("the safety codes differ: the new device was not let in")
    pairing.approve_request(core, request)
    _sync_one(core, store, info.name, None, Chain(core))
    pairing.welcome(core, store, request, full_header(core).to_bytes())
    return request
