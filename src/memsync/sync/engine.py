"""One sync with one remote: push this device's new entries, pull and verify the others'.

Push: new entries go up as a segment (after its record keys), then a new checkpoint
replaces the old one; a crash in between leaves a segment no reader looks at. Pull: every
checkpoint is checked against what this device verified before (`sync_seen`, the log),
the segments it points to are fetched, and every entry is checked (content hash,
signature by a device the log trusts, sequence and hash chain, the record key that opens
it, or a forget that names it) before all of it is applied in one transaction. A remote
that rolls back, forks, skips or alters anything (against this device or the chain) is
refused with `SyncRefused`, the proof stored, nothing changed; what is only not visible
yet waits for the next sync.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from typing import NoReturn

import apsw
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from memsync import codec
from memsync.core import Core
from memsync.errors import CryptoError, RemoteUnreachable, SyncRefused
from memsync.index.vectors import VectorIndex
from memsync.log import oplog, verify
from memsync.log.oplog import ZERO_HASH, Entry
from memsync.store.forgetting import SHREDDED
from memsync.sync import epochs, objects, roots, shred, trust
from memsync.sync.merge import Incoming, apply_incoming, embed_incoming
from memsync.sync.objects import Checkpoint, Segment, SyncKeys
from memsync.sync.remote import Conflict, Remote
from memsync.sync.report import FeedChange, SyncReport, changes_of
from memsync.sync.witness import Witness

__all__ = ["FeedChange", "SyncReport", "Syncer"]

SEGMENT_ENTRIES = 2000
Progress = Callable[[str, int, int], None]


class Syncer:
    """Sync `core` with `remote`, known on this device as `name`."""

    def __init__(
        self,
        core: Core,
        remote: Remote,
        name: str,
        progress: Progress | None = None,
        identity: X25519PrivateKey | None = None,
        witness: Witness | None = None,
    ):
        self.core = core
        self.remote = remote
        self.name = name
        self.progress = progress
        self.base = SyncKeys.base(core.vault_key)
        self.identity = identity
        self.witness = witness  # the chain, when one is configured
        self.provisional: dict[int, bytes] = {}
        self.locked_out = False
        self._learn_epochs(identity)
        numbers = {0, *self.provisional}
        numbers |= {int(r[0]) for r in core.conn.execute("SELECT epoch FROM epochs")}
        numbers |= {int(r[0]) for r in core.conn.execute("SELECT epoch FROM epoch_keys")}
        held = [
            (e, k)
            for e in sorted(numbers)
            if (k := core.epoch_key(e) or self.provisional.get(e)) is not None
        ]
        # Newest first: what this device writes under, then what it can still read.
        self.all_keys = [SyncKeys.derive(core.vault_key, e, k) for e, k in reversed(held)]
        self.keys = self.all_keys[0]
        self.up = 0
        self.down = 0
        self.repaired: list[str] = []
        self.published: Checkpoint | None = None  # this device's checkpoint, as it now is
        self.segments: list[tuple[str, int, int, str]] = []  # (feed, first, last, name) read

    def _learn_epochs(self, identity: X25519PrivateKey | None) -> None:
        self.provisional = epochs.learn(self.core, self.remote, self.base, identity)

    def _publish_epochs(self) -> None:
        for name, blob in epochs.to_publish(self.core, self.remote, self.base):
            self._upload(name, blob, overwrite=False)

    # Remote I/O, counted.

    def _get(self, name: str) -> tuple[bytes, str] | None:
        blob = self.remote.get(name)
        if blob is None:
            return None
        self.down += len(blob.data)
        return blob.data, blob.tag

    def _create(self, name: str, data: bytes) -> None:
        self.up += len(data)
        self.remote.create(name, data)

    def _upload(self, name: str, data: bytes, overwrite: bool) -> None:
        """Write an object and read it back: a checkpoint may only point at what the
        remote is seen to hold whole (a store may drop or cut a write and say nothing)."""
        for _ in range(3):
            if overwrite:
                try:
                    self._replace(name, data)
                except Conflict:
                    continue
            else:
                self._create(name, data)
            got = self.remote.get(name)
            if got is not None and got.data == data:
                return
            if got is not None and not overwrite:
                # A damaged copy sits under the name: replace it with the right bytes.
                with contextlib.suppress(Conflict):
                    self.up += len(data)
                    self.remote.replace(name, data, got.tag)
                    again = self.remote.get(name)
                    if again is not None and again.data == data:
                        return
        raise RemoteUnreachable(f"remote {self.name} did not keep object {name} whole")

    def _replace(self, name: str, data: bytes) -> None:
        # Conditional on what is there now: two processes of one device pushing at once
        # cannot overwrite each other unseen; the loser reads again and retries.
        current = self.remote.get(name)
        self.up += len(data)
        self.remote.replace(name, data, None if current is None else current.tag)

    def ensure_root(self) -> None:
        """Put the vault's root on the remote (up to date); refuse another vault's."""
        self.up += roots.ensure_root(self.core, self.remote, self.name)

    # Push.

    def push(self) -> int:
        core = self.core
        own = core.device.device_id
        remote_cp = self._own_checkpoint()
        row = core.conn.execute(
            "SELECT seq, segment FROM sync_pushed WHERE remote=? ORDER BY seq DESC LIMIT 1",
            (self.name,),
        ).fetchone()
        pushed, previous = (0, None) if row is None else (int(row[0]), str(row[1]))
        if remote_cp is not None and remote_cp.heads.get(own, (0, ""))[0] > pushed:
            # An earlier push got the checkpoint out but crashed before recording it.
            pushed = remote_cp.heads[own][0]
            previous, first = remote_cp.segment, remote_cp.segment_first
            with core.db.write() as w:
                w.execute(
                    "INSERT OR REPLACE INTO sync_pushed(remote, seq, segment, first) "
                    "VALUES(?,?,?,?)",
                    (self.name, pushed, previous, first),
                )
        entries = core.log.feed(own, after=pushed)
        total = len(entries)
        first_seq = pushed + 1
        by_epoch = {k.epoch: k for k in self.all_keys}
        done = 0
        for chunk in objects.segments(entries, SEGMENT_ENTRIES):
            # A segment holds entries of one epoch, under that epoch's key: a device
            # revoked in between can read the older ones only.
            keys = by_epoch.get(chunk[0].epoch, self.keys)
            blob = Segment(tuple(chunk), previous).seal(keys)
            seg_name = objects.content_name(blob)
            record_keys = {
                e.seq: k for e in chunk if (k := core.log.record_key(own, e.seq)) is not None
            }
            keys_blob = objects.seal_keys(keys, seg_name, record_keys)
            self._upload(self.keys.keys_name(seg_name), keys_blob, overwrite=True)
            self._upload(seg_name, blob, overwrite=False)
            first_seq = chunk[0].seq
            with core.db.write() as w:
                w.execute(
                    "INSERT OR REPLACE INTO sync_pushed(remote, seq, segment, first) "
                    "VALUES(?,?,?,?)",
                    (self.name, chunk[-1].seq, seg_name, first_seq),
                )
            previous = seg_name
            done += len(chunk)
            if self.progress:
                self.progress("push", done, total)
        self._publish(previous, first_seq if entries else None, remote_cp)
        return total

    def _own_checkpoint(self) -> Checkpoint | None:
        """This device's checkpoint as the remote serves it, or None if it has none or
        one this device cannot stand by: then the remote lost or damaged what this device
        published, which is kept as evidence, and the whole feed is pushed again."""
        own = self.core.device.device_id
        name = self.keys.checkpoint_name(own)
        got = self._get(name)
        seen = self._seen(own)
        problem: str | None = None
        cp: Checkpoint | None = None
        if got is None:
            if seen is not None:
                problem = f"no longer has this device's checkpoint (version {seen[0]})"
        else:
            try:
                cp, sig = Checkpoint.open(name, got[0], self.all_keys)
                if not cp.verify(sig, self.core.device.sign_public.public_bytes_raw()):
                    problem = "serves this device's checkpoint with a bad signature"
                elif seen is not None and cp.version < seen[0]:
                    problem = f"serves version {cp.version} of this device's checkpoint, "
                    problem += f"which published version {seen[0]}"
            except SyncRefused as exc:
                problem = f"serves a damaged checkpoint of this device ({exc})"
        if problem is None:
            return cp
        self._evidence("rollback", f"remote {self.name} {problem}", {"device": own})
        self.repaired.append(f"remote {self.name} {problem}: this device's feed was pushed again")
        with self.core.db.write() as w:
            w.execute("DELETE FROM sync_pushed WHERE remote=?", (self.name,))
        return None

    def _publish(
        self, segment: str | None, first: int | None, remote_cp: Checkpoint | None
    ) -> None:
        core = self.core
        own = core.device.device_id
        heads = objects.hex_heads(core.log.heads())
        if remote_cp is not None and remote_cp.heads == heads:
            self.published = remote_cp
            return  # nothing new to say
        if segment is None and remote_cp is not None:
            segment, first = remote_cp.segment, remote_cp.segment_first
        seen = self._seen(own)
        version = max(seen[0] if seen else 0, remote_cp.version if remote_cp else 0) + 1
        cp = Checkpoint(
            vault_id=core.header.vault_id,
            device_id=own,
            version=version,
            hlc=core.log.clock.now(),
            heads=heads,
            segment=segment,
            segment_first=first or 0,
        )
        # Under the oldest key: it holds only hashes, and a revoked device must see feeds move.
        blob = cp.seal(self.base, core.device)
        self._upload(self.keys.checkpoint_name(own), blob, overwrite=True)
        self._remember(cp)
        self.published = cp

    # What this device has seen.

    def _seen(self, device_id: str) -> tuple[int, bytes] | None:
        row = self.core.conn.execute(
            "SELECT version, digest FROM sync_seen WHERE remote=? AND device_id=?",
            (self.name, device_id),
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def _remember(self, cp: Checkpoint) -> None:
        with self.core.db.write() as w:
            _remember_in(w, self.name, cp)

    def _check_against_seen(self, cp: Checkpoint, blob: bytes) -> None:
        seen = self._seen(cp.device_id)
        if seen is None:
            return
        version, digest = seen
        if cp.version < version:
            self._refuse(
                "rollback",
                f"remote {self.name} serves checkpoint {cp.version} of device {cp.device_id}; "
                f"this device has already seen version {version}",
                {"device": cp.device_id, "served": cp.version, "seen": version},
            )
        if cp.version == version and cp.digest() != digest:
            self._refuse(
                "fork",
                f"remote {self.name} serves two different checkpoints {version} of device "
                f"{cp.device_id}",
                {
                    "device": cp.device_id,
                    "version": version,
                    "served": base64.b64encode(blob).decode(),
                },
            )

    def _refuse(self, what: str, message: str, detail: dict[str, object]) -> NoReturn:
        self._evidence(what, message, detail)
        raise SyncRefused(
            f"sync refused ({what}): {message}; nothing changed here, and "
            "`memsync sync --evidence` shows the proof"
        )

    def _evidence(self, what: str, message: str, detail: dict[str, object]) -> None:
        with self.core.db.write() as w:
            w.execute(
                "INSERT INTO sync_evidence(remote, at, what, detail) VALUES(?,?,?,?)",
                (
                    self.name,
                    codec.to_ms(self.core.clock()),
                    what,
                    json.dumps({"message": message, **detail}, sort_keys=True),
                ),
            )

    # Pull.

    def pull(self) -> tuple[int, tuple[FeedChange, ...], bool, tuple[str, ...]]:
        core = self.core
        own = core.device.device_id
        names = set(self.remote.list("c/"))
        known = [str(r[0]) for r in core.conn.execute("SELECT device_id FROM devices")]
        names |= {self.keys.checkpoint_name(d) for d in known}
        names.discard(self.keys.checkpoint_name(own))
        checkpoints: dict[str, tuple[Checkpoint, bytes, bytes]] = {}
        waiting: list[str] = []
        for name in sorted(names):
            got = self._get(name)
            if got is None:
                continue
            cp, sig = Checkpoint.open(name, got[0], self.all_keys)
            if cp.vault_id != core.header.vault_id:
                self._refuse("foreign", f"checkpoint {name} belongs to another vault", {})
            self._check_against_seen(cp, got[0])
            checkpoints[cp.device_id] = (cp, sig, got[0])
        local = core.log.heads()
        fetched: dict[str, list[Entry]] = {}
        record_keys: dict[tuple[str, int], bytes] = {}
        for device, (cp, _, _) in sorted(checkpoints.items()):
            mine = local.get(device, (0, ZERO_HASH))
            theirs = cp.heads.get(device, (0, ""))
            if theirs[0] < mine[0]:
                self._refuse(
                    "rollback",
                    f"remote {self.name} serves feed {device} up to entry {theirs[0]}; this "
                    f"device has verified up to {mine[0]}",
                    {"device": device, "served": theirs[0], "verified": mine[0]},
                )
            if theirs[0] == mine[0]:
                if theirs[1] != mine[1].hex():
                    self._fork(device, mine[0], theirs[1])
                continue
            got_feed = self._fetch_feed(cp, mine[0], record_keys)
            if got_feed is None and self.locked_out:
                waiting.append(f"feed {device}: under a key this device does not hold")
                continue
            if got_feed is None:
                waiting.append(f"feed {device}: segments not visible yet")
                continue
            fetched[device] = got_feed
        incoming = self._verify(fetched, record_keys, checkpoints, local)
        self._cross_check(checkpoints, local, fetched)
        if self.witness is not None:
            self.witness(self, checkpoints, local, fetched)
        self._confirm_provisional(incoming)
        changes = changes_of(core, incoming)
        rebuilt = False
        bar = self.progress  # the slow part of a new device's first sync: its own index
        vectors = embed_incoming(core, incoming, bar and (lambda d, t: bar("index", d, t)))
        if incoming or checkpoints:
            with core.db.write() as w:
                if incoming and core.log.heads() != local:
                    raise Conflict("the vault changed during sync; sync again")
                if incoming:
                    _, rebuilt = apply_incoming(core, w, incoming, vectors)
                for cp, _, _ in checkpoints.values():
                    _remember_in(w, self.name, cp)
        if rebuilt:
            core.vectors = VectorIndex(core.embedder.dim)
        return len(incoming), changes, rebuilt, tuple(waiting)

    def _confirm_provisional(self, incoming: list[Incoming]) -> None:
        """Keep an epoch key read from the remote only if a verified revocation in the
        log wraps the same key to this device (or the recovery identity)."""
        ops = [i.op for i in incoming]
        for epoch, key in self.provisional.items():
            if not epochs.vouched(self.core, ops, epoch, key, self.identity):
                self._refuse(
                    "forgery",
                    f"remote {self.name} holds a key for epoch {epoch} that no revocation "
                    "in the log vouches for",
                    {"epoch": epoch},
                )
            self.core.remember_epoch_key(epoch, key)

    def _fork(self, device: str, seq: int, other_hash: str) -> NoReturn:
        held = self.core.log.entry(device, seq)
        mine = "" if held is None else held.hash(self.core.header.vault_id).hex()
        self._refuse(
            "fork",
            f"remote {self.name} serves a different entry {seq} of feed {device} than the "
            "one this device verified",
            {"device": device, "seq": seq, "served_hash": other_hash, "verified_hash": mine},
        )

    def _fetch_feed(
        self, cp: Checkpoint, have: int, record_keys: dict[tuple[str, int], bytes]
    ) -> list[Entry] | None:
        """Entries of `cp`'s feed after `have`, walking segments back from its newest;
        None if a segment or its keys are not on the remote (yet)."""
        device = cp.device_id
        chunks: list[tuple[Entry, ...]] = []
        name = cp.segment
        seen: set[str] = set()
        while name is not None and name not in seen:
            seen.add(name)
            got = self._get(name)
            keys_blob = self._get(self.keys.keys_name(name))
            if got is None or keys_blob is None:
                return None
            if objects.content_name(got[0]) == name and not objects.opens(got[0], self.all_keys):
                # Whole, but sealed under an epoch key this device does not hold: it was
                # revoked, or the new key is not visible here yet. Nothing to read; wait.
                self.locked_out = True
                return None
            segment = Segment.open(name, got[0], self.all_keys)
            self.segments.append((device, segment.entries[0].seq, segment.entries[-1].seq, name))
            keys = objects.open_keys(keys_blob[0], name, self.all_keys)
            for e in segment.entries:
                if e.device_id != device:
                    self._refuse(
                        "forgery",
                        f"segment {name} of feed {device} holds entries of {e.device_id}",
                        {"segment": name},
                    )
                if e.seq in keys:
                    record_keys[(device, e.seq)] = keys[e.seq]
            chunks.append(segment.entries)
            if segment.entries[0].seq <= have + 1:
                break
            name = segment.previous
        entries = sorted((e for c in chunks for e in c), key=lambda e: e.seq)
        for e in entries:
            if e.seq <= have:
                mine = self.core.log.entry(device, e.seq)
                vid = self.core.header.vault_id
                if mine is not None and mine.hash(vid) != e.hash(vid):
                    self._fork(device, e.seq, e.hash(vid).hex())
        return [e for e in entries if e.seq > have]

    def _verify(
        self,
        fetched: dict[str, list[Entry]],
        record_keys: dict[tuple[str, int], bytes],
        checkpoints: dict[str, tuple[Checkpoint, bytes, bytes]],
        local: dict[str, tuple[int, bytes]],
    ) -> list[Incoming]:
        core = self.core
        vid = core.header.vault_id
        decrypted: dict[tuple[str, int], dict[str, object]] = {}
        unkeyed: list[tuple[str, int]] = []
        cutoffs = {
            str(d): int(s) for d, s in core.conn.execute("SELECT device_id, seq FROM revocations")
        }

        def revoked(device: str, seq: int) -> bool:
            return device in cutoffs and seq > cutoffs[device]

        for device, entries in fetched.items():
            seq, prev = local.get(device, (0, ZERO_HASH))
            for e in entries:
                if e.seq != seq + 1:
                    self._refuse(
                        "gap",
                        f"feed {device} on {self.name} skips from entry {seq} to {e.seq}",
                        {"device": device, "after": seq, "next": e.seq},
                    )
                if e.prev_hash != prev:
                    self._refuse(
                        "fork",
                        f"entry {e.seq} of feed {device} on {self.name} does "
                        "not follow the entry before it",
                        {"device": device, "seq": e.seq},
                    )
                seq, prev = e.seq, e.hash(vid)
                if revoked(device, e.seq):
                    continue  # written after its device was revoked: it counts for nothing
                key = record_keys.get((device, e.seq))
                try:
                    decrypted[(device, e.seq)] = core.log.decrypt(e, core.log_key, key)
                except CryptoError:
                    unkeyed.append((device, e.seq))  # shredded if a forget names it
            cp = checkpoints[device][0]
            if device not in cutoffs and (seq, prev.hex()) != cp.heads[device]:
                self._refuse(
                    "altered",
                    f"feed {device} on {self.name} does not end where its checkpoint says",
                    {"device": device},
                )
        for device, seq in shred.unnamed(core, unkeyed, decrypted):
            self._refuse(
                "altered",
                f"entry {seq} of feed {device} on {self.name} does not decrypt",
                {"device": device, "seq": seq},
            )
        decrypted.update(dict.fromkeys(unkeyed, SHREDDED))
        sign_keys = trust.trusted_keys(self.core, fetched, decrypted)
        vouched = [op for (writer, _), op in sorted(decrypted.items()) if writer in sign_keys]
        cutoffs = verify.revocation_cutoffs(vouched, cutoffs)
        for device, entries in fetched.items():
            kept = [e for e in entries if not revoked(device, e.seq)]
            if len(kept) < len(entries):
                self.repaired.append(
                    f"ignored {len(entries) - len(kept)} entries that revoked device {device} "
                    "wrote after its revocation"
                )
            entries[:] = kept
            if not entries:
                continue
            public = sign_keys.get(device)
            if public is None:
                self._refuse(
                    "untrusted",
                    f"feed {device} on {self.name} is written by a device "
                    "this vault does not trust",
                    {"device": device},
                )
            for e in entries:
                if not oplog.verify_signature(e, vid, public):
                    self._refuse(
                        "forgery",
                        f"entry {e.seq} of feed {device} on {self.name} has a bad signature",
                        {"device": device, "seq": e.seq},
                    )
        for device, (cp, sig, _) in checkpoints.items():
            public = sign_keys.get(device)
            if public is None or not cp.verify(sig, public):
                self._refuse(
                    "forgery",
                    f"the checkpoint of {device} on {self.name} is not signed "
                    "by a device of this vault",
                    {"device": device},
                )
        return [
            Incoming(e, dict(decrypted[(d, e.seq)]), record_keys.get((d, e.seq)))
            for d, entries in fetched.items()
            for e in entries
        ]

    def _cross_check(
        self,
        checkpoints: dict[str, tuple[Checkpoint, bytes, bytes]],
        local: dict[str, tuple[int, bytes]],
        fetched: dict[str, list[Entry]],
    ) -> None:
        """Every head a checkpoint names must agree with the entry this device holds at
        that place: otherwise someone was shown a different feed (a fork)."""
        found = trust.disagreement(
            self.core, {d: c[0] for d, c in checkpoints.items()}, local, fetched
        )
        if found is not None:
            signer, feed, seq, theirs, ours = found
            self._refuse(
                "fork",
                f"device {signer} saw a different entry {seq} of feed {feed} than this "
                f"device on {self.name}",
                {"signer": signer, "device": feed, "seq": seq, "theirs": theirs, "ours": ours},
            )

    def run(self) -> SyncReport:
        """Push, then pull; see `Vault.sync`."""
        self.ensure_root()
        self._publish_epochs()
        pushed = self.push()
        pulled, changes, rebuilt, waiting = self.pull()
        if pulled:
            # Publish what was verified, so the other devices can cross-check it.
            self._publish(None, None, self.published)
        notes = (*self.repaired, *waiting)
        return SyncReport(self.name, pushed, pulled, changes, rebuilt, notes, self.up, self.down)


def _remember_in(conn: apsw.Connection, remote: str, cp: Checkpoint) -> None:
    conn.execute(
        "INSERT INTO sync_seen(remote, device_id, version, digest) VALUES(?,?,?,?) "
        "ON CONFLICT(remote, device_id) DO UPDATE SET version=excluded.version, "
        "digest=excluded.digest WHERE excluded.version >= sync_seen.version",
        (remote, cp.device_id, cp.version, cp.digest()),
    )
