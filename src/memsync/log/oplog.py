"""The operation log: per-device signed, hash-chained feeds of encrypted operations.

Each device appends to its own feed. An entry carries its sequence number, the hash of
the previous entry of the same feed, a hybrid logical clock, the vault key epoch, the
heads it has seen of other feeds, the encrypted (padded) operation and an Ed25519
signature over all of it. The materialised tables are a function of these entries.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import apsw

from memsync.crypto import aead
from memsync.crypto.device import DeviceKeys, sign, verify
from memsync.errors import CryptoError, IntegrityError
from memsync.model import LogProblem

ZERO_HASH = bytes(32)
_LOGICAL_BITS = 16


@dataclass(frozen=True)
class Entry:
    """One signed entry of a device's feed, as stored and as it will travel to remotes."""

    device_id: str
    seq: int
    prev_hash: bytes
    hlc: int
    epoch: int
    heads: tuple[tuple[str, int, str], ...]
    ciphertext: bytes
    signature: bytes

    def body(self, vault_id: str) -> bytes:
        """The signed bytes: every field but the signature, length-prefixed."""
        heads = _heads_json(self.heads).encode()
        parts = [
            b"memsync/v1/entry",
            vault_id.encode(),
            self.device_id.encode(),
            struct.pack(">QQQ", self.seq, self.hlc, self.epoch),
            self.prev_hash,
            heads,
            self.ciphertext,
        ]
        return b"".join(struct.pack(">I", len(p)) + p for p in parts)

    def hash(self, vault_id: str) -> bytes:
        return hashlib.sha256(self.body(vault_id) + self.signature).digest()


def _heads_json(heads: tuple[tuple[str, int, str], ...]) -> str:
    """The one encoding of an entry's heads, as signed and as stored."""
    return json.dumps([list(h) for h in heads], separators=(",", ":"))


def entry_ad(vault_id: str, device_id: str, seq: int, epoch: int) -> bytes:
    """Associated data binding an operation's ciphertext to its place in the log."""
    return aead.record_ad(vault_id, f"op/{device_id}", seq, epoch)


class HybridClock:
    """A hybrid logical clock: wall milliseconds in the high bits, a counter in the low."""

    def __init__(self, last: int = 0) -> None:
        self._last = last
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            wall = int(time.time() * 1000) << _LOGICAL_BITS
            self._last = max(wall, self._last + 1)
            return self._last

    def observe(self, other: int) -> None:
        with self._lock:
            self._last = max(self._last, other)


def hlc_millis(hlc: int) -> int:
    return hlc >> _LOGICAL_BITS


def encode_op(op: dict[str, Any]) -> bytes:
    return json.dumps(op, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def decode_op(data: bytes) -> dict[str, Any]:
    try:
        op = json.loads(data)
    except ValueError as exc:
        raise CryptoError(f"operation is not valid JSON: {exc}") from None
    if not isinstance(op, dict) or not isinstance(op.get("op"), str):
        raise CryptoError("operation has no type")
    return op


_COLUMNS = "device_id, seq, prev_hash, hlc, epoch, heads, ciphertext, signature"


_MAX_U64 = (1 << 64) - 1


def _row_to_entry(row: tuple[Any, ...]) -> Entry:
    """An entry from its stored row; IntegrityError if the row cannot be one (tampered)."""
    try:
        heads = tuple((str(d), int(s), str(h)) for d, s, h in json.loads(row[5]))
        entry = Entry(
            device_id=str(row[0]),
            seq=int(row[1]),
            prev_hash=bytes(row[2]),
            hlc=int(row[3]),
            epoch=int(row[4]),
            heads=heads,
            ciphertext=bytes(row[6]),
            signature=bytes(row[7]),
        )
    except (TypeError, ValueError):
        raise IntegrityError(f"log entry {row[0]!r}/{row[1]!r} is malformed") from None
    if not all(0 <= n <= _MAX_U64 for n in (entry.seq, entry.hlc, entry.epoch)):
        raise IntegrityError(f"log entry {row[0]!r}/{row[1]!r} has a number out of range")
    return entry


class OpLog:
    """Appends to this device's feed and reads every feed back, inside the vault database.

    `connect()` gives the connection to use (the calling thread's). `append` must run
    inside a write transaction that took the write lock at its start
    (`store.connections.Database.write`): the feed's head, read there, then cannot move
    before the entry commits, whichever process writes next.
    """

    def __init__(
        self, connect: Callable[[], apsw.Connection], vault_id: str, keys: DeviceKeys
    ) -> None:
        self._connect = connect
        self.vault_id = vault_id
        self.keys = keys
        self.clock = HybridClock()

    @property
    def conn(self) -> apsw.Connection:
        return self._connect()

    def _head(self, device_id: str) -> tuple[int, bytes, int]:
        """(seq, hash, clock) of the last entry of a feed; zeros for an empty one."""
        row = self.conn.execute(
            "SELECT seq, hash, hlc FROM oplog WHERE device_id=? ORDER BY seq DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        return (0, ZERO_HASH, 0) if row is None else (int(row[0]), bytes(row[1]), int(row[2]))

    def heads(self) -> dict[str, tuple[int, bytes]]:
        return {d: (s, h) for d, (s, h, _) in self._heads().items()}

    def _heads(self) -> dict[str, tuple[int, bytes, int]]:
        # Every feed starts with its device's registration, so the devices table names
        # all feeds; one index seek per device keeps appends O(devices), not O(log).
        rows = self.conn.execute("SELECT device_id FROM devices").fetchall()
        heads = {str(d): self._head(str(d)) for (d,) in rows}
        own = self.keys.device_id
        if own not in heads:
            # Before its declaration is applied, a new device is not in `devices` yet.
            heads[own] = self._head(own)
        return {d: h for d, h in heads.items() if h[0] > 0}

    def append(self, op: dict[str, Any], key: bytes, epoch: int) -> Entry:
        """Encrypt, sign and store `op` as the next entry of this device's feed; see
        `append_all`."""
        return self.append_all([op], key, epoch)[0]

    def append_all(self, ops: Sequence[dict[str, Any]], key: bytes, epoch: int) -> list[Entry]:
        """Encrypt, sign and store `ops` as the next entries of this device's feed.

        Must run inside the caller's write transaction so the entries and their effect
        on the materialised state commit together: the feed's head read here cannot
        move before they do.
        """
        device = self.keys.device_id
        heads = self._heads()
        # Another process on this device may have written since this one last did: the
        # clock must not run behind any entry in the log (each feed's head holds the
        # largest clock of its feed).
        self.clock.observe(max((h for _, _, h in heads.values()), default=0))
        seq, prev, _ = heads.pop(device, (0, ZERO_HASH, 0))
        others = tuple(sorted((d, s, h.hex()) for d, (s, h, _) in heads.items()))
        entries = []
        for op in ops:
            seq += 1
            # Each entry is sealed under a key of its own (its record key), never under
            # the shared log key: forgetting a record can then destroy the one key that
            # opens it, in every copy of the log, even on storage that never deletes.
            record_key = secrets.token_bytes(aead.KEY_BYTES)
            plaintext = aead.pad(encode_op(op))
            ad = entry_ad(self.vault_id, device, seq, epoch)
            ciphertext = aead.seal(record_key, plaintext, ad)
            unsigned = Entry(device, seq, prev, self.clock.now(), epoch, others, ciphertext, b"")
            entry = replace(unsigned, signature=sign(self.keys, unsigned.body(self.vault_id)))
            prev = self.store(entry, record_key)
            entries.append(entry)
        return entries

    def store(self, entry: Entry, record_key: bytes | None = None) -> bytes:
        """Insert `entry` as it is (signed already), with the key its operation is sealed
        under when there is one; returns its hash."""
        heads = _heads_json(entry.heads)
        digest = entry.hash(self.vault_id)
        self.conn.execute(
            f"INSERT INTO oplog({_COLUMNS}, hash) VALUES(?,?,?,?,?,?,?,?,?)",
            (
                entry.device_id,
                entry.seq,
                entry.prev_hash,
                entry.hlc,
                entry.epoch,
                heads,
                entry.ciphertext,
                entry.signature,
                digest,
            ),
        )
        if record_key is not None:
            self.store_key(entry.device_id, entry.seq, record_key)
        return digest

    def store_key(self, device_id: str, seq: int, record_key: bytes) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO entry_keys(device_id, seq, key) VALUES(?,?,?)",
            (device_id, seq, record_key),
        )

    def record_key(self, device_id: str, seq: int) -> bytes | None:
        """The key entry (device_id, seq) is sealed under; None for an entry written
        before entries had keys of their own (it opens with the log key)."""
        row = self.conn.execute(
            "SELECT key FROM entry_keys WHERE device_id=? AND seq=?", (device_id, seq)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def shred(self, entries: Sequence[tuple[str, int]]) -> None:
        """Destroy the record keys of `entries` (inside the caller's write): their
        operations can then be read by nobody, from any copy of the log. The database
        zeroes what it frees (`secure_delete`), so no old page keeps a key."""
        self.conn.executemany("DELETE FROM entry_keys WHERE device_id=? AND seq=?", list(entries))
        self.conn.executemany(
            "INSERT OR IGNORE INTO shredded(device_id, seq) VALUES(?,?)", list(entries)
        )

    def shredded(self) -> set[tuple[str, int]]:
        """The entries whose record keys are destroyed here (or never came: shredded)."""
        rows = self.conn.execute("SELECT device_id, seq FROM shredded").fetchall()
        return {(str(d), int(s)) for d, s in rows}

    def entry(self, device_id: str, seq: int) -> Entry | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM oplog WHERE device_id=? AND seq=?", (device_id, seq)
        ).fetchone()
        return None if row is None else _row_to_entry(row)

    def feed(self, device_id: str, after: int = 0) -> list[Entry]:
        """The entries of one feed after sequence number `after`, in order."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM oplog WHERE device_id=? AND seq>? ORDER BY seq",
            (device_id, after),
        ).fetchall()
        return [_row_to_entry(r) for r in rows]

    def last(self) -> tuple[int, str, int] | None:
        """The (clock, device, seq) of the entry that replays last, or None if empty."""
        row = self.conn.execute(
            "SELECT hlc, device_id, seq FROM oplog ORDER BY hlc DESC, device_id DESC, "
            "seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), int(row[2]))

    def entries(self) -> list[Entry]:
        """Every entry of every feed, in replay order (hybrid clock, then device, then seq)."""
        try:
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM oplog ORDER BY hlc, device_id, seq"
            ).fetchall()
        except UnicodeDecodeError:
            raise IntegrityError("the operation log holds text that is not UTF-8") from None
        return [_row_to_entry(r) for r in rows]

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM oplog").fetchone()[0])

    def decrypt(self, entry: Entry, key: bytes, record_key: bytes | None = None) -> dict[str, Any]:
        """The operation of `entry`, opened with its record key (from the argument, else
        the table), or with the log `key` for an entry that has none."""
        if record_key is None:
            record_key = self.record_key(entry.device_id, entry.seq)
        return open_entry(self.vault_id, entry, record_key or key)


def open_entry(vault_id: str, entry: Entry, key: bytes) -> dict[str, Any]:
    """Decrypt and decode the operation of `entry` with `key`; CryptoError if it fails."""
    ad = entry_ad(vault_id, entry.device_id, entry.seq, entry.epoch)
    return decode_op(aead.unpad(aead.open_sealed(key, entry.ciphertext, ad)))


def verify_signature(entry: Entry, vault_id: str, sign_pub: bytes) -> bool:
    return verify(sign_pub, entry.signature, entry.body(vault_id))


def verify_feeds(
    entries: list[Entry], vault_id: str, sign_keys: dict[str, bytes]
) -> list[LogProblem]:
    """Check signatures, sequence numbers and hash chains of every feed.

    `entries` may arrive in any order; each feed must be complete from seq 1 with each
    entry naming its predecessor's hash. Returns every problem found (empty means sound).
    """
    problems: list[LogProblem] = []
    feeds: dict[str, list[Entry]] = {}
    for e in entries:
        feeds.setdefault(e.device_id, []).append(e)
    for device, feed in sorted(feeds.items()):
        public = sign_keys.get(device)
        if public is None:
            problems.append(LogProblem(f"feed {device}", "written by an unknown device"))
            continue
        feed.sort(key=lambda e: e.seq)
        prev_hash = ZERO_HASH
        prev_hlc = -1
        for expected, e in enumerate(feed, start=1):
            where = f"feed {device} entry {e.seq}"
            if e.seq != expected:
                problems.append(LogProblem(where, f"sequence gap: expected {expected}"))
                break
            if not verify(public, e.signature, e.body(vault_id)):
                problems.append(LogProblem(where, "bad signature"))
            if e.prev_hash != prev_hash:
                problems.append(LogProblem(where, "hash chain broken"))
            if e.hlc <= prev_hlc:
                problems.append(LogProblem(where, "clock went backwards"))
            prev_hash = e.hash(vault_id)
            prev_hlc = e.hlc
    return problems


def require_sound(problems: list[LogProblem]) -> None:
    if problems:
        first = problems[0]
        raise IntegrityError(f"operation log rejected: {first.where}: {first.what}")
