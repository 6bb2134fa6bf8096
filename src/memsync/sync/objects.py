"""What a vault puts on a remote: four kinds of object, all encrypted and padded.

- `s/<hash>` a segment: consecutive entries of one device's feed, exactly as signed, with
  the name of the feed's previous segment. Immutable and content-addressed (the name is
  the hash of the bytes), so storage that keeps it forever keeps only ciphertext: each
  entry's operation is sealed under its own record key, which is not in the segment.
- `k/<mac>` the record keys of one segment's entries. Overwritable, so forgetting a
  record can remove its key from every copy the remote holds.
- `c/<mac>` a device's checkpoint: every feed head it has verified, a Merkle root over
  them, the newest segment of its own feed and a version that only grows, signed by the
  device. Readers refuse a remote that serves an older one (rollback) or two different
  ones of one version (a fork). The chain records the same root later.
- `r/<hash>` the root: the vault header (vault id, epoch, the vault key wrapped to each
  device and to the recovery identity), wrapped once more so that nothing in it is
  readable; its name derives from the recovery key, so `recover --from` finds it.

Names are hashes or MACs under a key derived from the vault key: a listing shows how
many objects there are of each kind and their padded sizes, and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from memsync.crypto import aead, wrap
from memsync.crypto.device import DeviceKeys, sign, verify
from memsync.errors import CorruptVault, CryptoError, SyncRefused
from memsync.log.oplog import Entry
from memsync.store.files import Header

__all__ = [
    "Checkpoint",
    "Root",
    "Segment",
    "SyncKeys",
    "merkle_root",
    "open_root",
    "root_name",
    "seal_root",
]

FORMAT = 1
# What a client accepts at least, whatever a remote's objects say: a remote cannot talk
# a device down to an older format.
MIN_FORMAT = 1
SEGMENT_MAGIC = b"memsync/segment/v1"
ROOT_AD = b"memsync/v1/root"
CHECKPOINT_AD = b"memsync/v1/checkpoint"
_NAME_HEX = 40


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64")
    return base64.b64decode(text, validate=True)


@dataclass(frozen=True)
class SyncKeys:
    """The keys of one epoch that seal objects and derive their names."""

    epoch: int
    objects: bytes
    names: bytes

    @classmethod
    def derive(cls, vault_key: bytes, epoch: int, epoch_key: bytes) -> SyncKeys:
        """Objects are sealed under the epoch's key (a revoked device cannot open what is
        written after it); names derive from the vault key, so they stay the same."""
        return cls(
            epoch,
            aead.hkdf(epoch_key, b"memsync/v1/sync/objects"),
            aead.hkdf(vault_key, b"memsync/v1/sync/names"),
        )

    @classmethod
    def base(cls, vault_key: bytes) -> SyncKeys:
        """Epoch 0's keys (from the vault key): what checkpoints, epoch and anchor
        objects are sealed under, since every device of the vault holds them."""
        return cls.derive(vault_key, 0, vault_key)

    def name(self, kind: str, *parts: str) -> str:
        mac = hmac.new(self.names, "\x00".join(parts).encode(), hashlib.sha256)
        return f"{kind}/{mac.hexdigest()[:_NAME_HEX]}"

    def seal(self, plaintext: bytes, ad: bytes) -> bytes:
        return aead.seal(self.objects, aead.pad(plaintext), ad)

    def open(self, blob: bytes, ad: bytes) -> bytes:
        return aead.unpad(aead.open_sealed(self.objects, blob, ad))

    def checkpoint_name(self, device_id: str) -> str:
        return self.name("c", "checkpoint", device_id)

    def keys_name(self, segment: str) -> str:
        return self.name("k", "keys", segment)


def hex_heads(heads: Mapping[str, tuple[int, bytes]]) -> dict[str, tuple[int, str]]:
    """Feed heads as checkpoints and anchors write them: (seq, entry hash in hex)."""
    return {d: (s, h.hex()) for d, (s, h) in heads.items()}


def content_name(blob: bytes) -> str:
    return "s/" + hashlib.sha256(blob).hexdigest()[:_NAME_HEX]


def root_name(recovery_sign_pub: bytes) -> str:
    return "r/" + hashlib.sha256(b"memsync/v1/root-name" + recovery_sign_pub).hexdigest()[:40]


def other_roots(roots: Sequence[str], ours: str | Sequence[str]) -> bool:
    """Whether a remote's listing of roots shows a vault other than the one named `ours`
    (one remote, one vault: a second would be refused); `ours` may list every name the
    vault's roots have had (one per recovery phrase)."""
    names = {ours} if isinstance(ours, str) else set(ours)
    return any(r not in names for r in roots)


# Segments.


def _pack(*fields: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def field(self) -> bytes:
        if self.at + 4 > len(self.data):
            raise ValueError("truncated")
        (n,) = struct.unpack_from(">I", self.data, self.at)
        start = self.at + 4
        if start + n > len(self.data):
            raise ValueError("truncated")
        self.at = start + n
        return self.data[start : self.at]


def _encode_entry(e: Entry) -> bytes:
    heads = json.dumps([list(h) for h in e.heads], separators=(",", ":")).encode()
    return _pack(
        e.device_id.encode(),
        struct.pack(">QQQ", e.seq, e.hlc, e.epoch),
        e.prev_hash,
        heads,
        e.ciphertext,
        e.signature,
    )


def _decode_entry(data: bytes) -> Entry:
    r = _Reader(data)
    device = r.field().decode()
    seq, hlc, epoch = struct.unpack(">QQQ", r.field())
    prev = r.field()
    heads = tuple((str(d), int(s), str(h)) for d, s, h in json.loads(r.field()))
    return Entry(device, seq, prev, hlc, epoch, heads, r.field(), r.field())


@dataclass(frozen=True)
class Segment:
    """Consecutive entries of one feed and the name of the feed's segment before them."""

    entries: tuple[Entry, ...]
    previous: str | None

    def seal(self, keys: SyncKeys) -> bytes:
        body = _pack(
            SEGMENT_MAGIC,
            (self.previous or "").encode(),
            *(_encode_entry(e) for e in self.entries),
        )
        return keys.seal(body, b"memsync/v1/segment")

    @classmethod
    def open(cls, name: str, blob: bytes, keys: Sequence[SyncKeys]) -> Segment:
        """A segment read back under `name`; SyncRefused if it is not what the name says."""
        if content_name(blob) != name:
            raise SyncRefused(f"segment {name} is altered or truncated (its hash differs)")
        body = _open_any(blob, b"memsync/v1/segment", keys, f"segment {name}")
        try:
            r = _Reader(body)
            if r.field() != SEGMENT_MAGIC:
                raise ValueError("not a segment")
            previous = r.field().decode() or None
            entries = []
            while r.at < len(body):
                entries.append(_decode_entry(r.field()))
        except (ValueError, UnicodeDecodeError, struct.error, TypeError) as exc:
            raise SyncRefused(f"segment {name} is malformed: {exc}") from None
        if not entries:
            raise SyncRefused(f"segment {name} is empty")
        return cls(tuple(entries), previous)


def opens(blob: bytes, keys: Sequence[SyncKeys]) -> bool:
    """Whether a segment opens under one of `keys`."""
    try:
        _open_any(blob, b"memsync/v1/segment", keys, "segment")
    except SyncRefused:
        return False
    return True


def _open_any(blob: bytes, ad: bytes, keys: Sequence[SyncKeys], what: str) -> bytes:
    for k in keys:
        try:
            return k.open(blob, ad)
        except CryptoError:
            continue
    raise SyncRefused(f"{what} does not open with this vault's keys (altered, or foreign)")


def segments(entries: list[Entry], most: int) -> list[list[Entry]]:
    """Consecutive entries cut into segments of at most `most` entries, one epoch each."""
    out: list[list[Entry]] = []
    for e in entries:
        if not out or len(out[-1]) >= most or out[-1][-1].epoch != e.epoch:
            out.append([])
        out[-1].append(e)
    return out


# Record keys.


def seal_keys(keys: SyncKeys, segment: str, record_keys: dict[int, bytes]) -> bytes:
    doc = {"segment": segment, "keys": {str(s): _b64(k) for s, k in sorted(record_keys.items())}}
    return keys.seal(json.dumps(doc).encode(), b"memsync/v1/keys/" + segment.encode())


def open_keys(blob: bytes, segment: str, keys: Sequence[SyncKeys]) -> dict[int, bytes]:
    body = _open_any(blob, b"memsync/v1/keys/" + segment.encode(), keys, f"keys of {segment}")
    try:
        doc = json.loads(body)
        if doc["segment"] != segment:
            raise ValueError("for another segment")
        return {int(s): _unb64(k) for s, k in doc["keys"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SyncRefused(f"keys of segment {segment} are malformed: {exc}") from None


# Checkpoints.


def merkle_root(heads: dict[str, tuple[int, str]]) -> str:
    """A Merkle root over the feed heads, in device order (the chain witnesses it)."""
    level = [
        hashlib.sha256(f"{d}\x00{s}\x00{h}".encode()).digest()
        for d, (s, h) in sorted(heads.items())
    ] or [hashlib.sha256(b"").digest()]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [
            hashlib.sha256(a + b).digest() for a, b in zip(level[::2], level[1::2], strict=True)
        ]
    return level[0].hex()


@dataclass(frozen=True)
class Checkpoint:
    """A device's signed view of the vault at one push."""

    vault_id: str
    device_id: str
    version: int
    hlc: int
    heads: dict[str, tuple[int, str]]  # feed → (seq, entry hash hex)
    segment: str | None  # the newest segment of the device's own feed
    segment_first: int  # the sequence number of that segment's first entry
    format: int = FORMAT

    @property
    def root(self) -> str:
        return merkle_root(self.heads)

    def body(self) -> bytes:
        doc = {
            "format": self.format,
            "vault": self.vault_id,
            "device": self.device_id,
            "version": self.version,
            "hlc": self.hlc,
            "heads": {d: [s, h] for d, (s, h) in sorted(self.heads.items())},
            "segment": self.segment,
            "segment_first": self.segment_first,
            "root": self.root,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> bytes:
        return hashlib.sha256(self.body()).digest()

    def seal(self, keys: SyncKeys, device: DeviceKeys) -> bytes:
        body = self.body()
        doc = {"body": _b64(body), "sig": _b64(sign(device, b"memsync/v1/checkpoint" + body))}
        return keys.seal(json.dumps(doc).encode(), CHECKPOINT_AD)

    @classmethod
    def open(cls, name: str, blob: bytes, keys: Sequence[SyncKeys]) -> tuple[Checkpoint, bytes]:
        """The checkpoint stored as `name` and its signature, not yet verified (the
        signer's key may only become known from the entries it points to)."""
        what = f"checkpoint {name}"
        raw = _open_any(blob, CHECKPOINT_AD, keys, what)
        try:
            doc = json.loads(raw)
            body, sig = _unb64(doc["body"]), _unb64(doc["sig"])
            d = json.loads(body)
            cp = cls(
                vault_id=str(d["vault"]),
                device_id=str(d["device"]),
                version=int(d["version"]),
                hlc=int(d["hlc"]),
                heads={str(k): (int(v[0]), str(v[1])) for k, v in d["heads"].items()},
                segment=None if d["segment"] is None else str(d["segment"]),
                segment_first=int(d["segment_first"]),
                format=int(d["format"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise SyncRefused(f"{what} is malformed: {exc}") from None
        if cp.body() != body:
            raise SyncRefused(f"{what} is not in its canonical form")
        if not any(k.checkpoint_name(cp.device_id) == name for k in keys):
            raise SyncRefused(f"{what} is stored under another device's name")
        if cp.format < MIN_FORMAT or cp.format > FORMAT:
            raise SyncRefused(f"{what} has format {cp.format}; this client reads {FORMAT}")
        return cp, sig

    def verify(self, signature: bytes, sign_pub: bytes) -> bool:
        return verify(sign_pub, signature, b"memsync/v1/checkpoint" + self.body())


# Epoch keys.


def seal_epoch(
    keys: SyncKeys, device: DeviceKeys, vault_id: str, epoch: int, stanzas: list[dict[str, str]]
) -> bytes:
    """The key of a new epoch, wrapped to each device that remains and to the recovery
    identity, signed by the device that revoked another (sealed under the oldest epoch's
    object key, so every device can read the envelope and only recipients the key)."""
    body = json.dumps(
        {"vault": vault_id, "epoch": epoch, "by": device.device_id, "stanzas": stanzas},
        sort_keys=True,
    ).encode()
    doc = {"body": _b64(body), "sig": _b64(sign(device, b"memsync/v1/epoch" + body))}
    return keys.seal(json.dumps(doc).encode(), b"memsync/v1/epoch")


@dataclass(frozen=True)
class EpochKeys:
    vault_id: str
    epoch: int
    by: str
    stanzas: list[wrap.Stanza]
    body: bytes
    signature: bytes

    def verify(self, sign_pub: bytes) -> bool:
        return verify(sign_pub, self.signature, b"memsync/v1/epoch" + self.body)


def open_epoch(blob: bytes, keys: SyncKeys) -> EpochKeys:
    raw = _open_any(blob, b"memsync/v1/epoch", [keys], "an epoch key object")
    try:
        doc = json.loads(raw)
        body, sig = _unb64(doc["body"]), _unb64(doc["sig"])
        d = json.loads(body)
        stanzas = [wrap.Stanza.from_json(x) for x in d["stanzas"]]
        return EpochKeys(str(d["vault"]), int(d["epoch"]), str(d["by"]), stanzas, body, sig)
    except (ValueError, KeyError, TypeError, CorruptVault) as exc:
        raise SyncRefused(f"an epoch key object is malformed: {exc}") from None


# The root.


@dataclass(frozen=True)
class Root:
    """What a root object holds: the vault header and the recovery identity's public
    wrapping key (so every device can wrap later keys to it), and to whom it is sealed."""

    header: Header
    recovery_wrap_pub: bytes | None
    recipients: list[str]


def seal_root(
    header_bytes: bytes, recovery_wrap_pub: bytes | None, recipients: Sequence[X25519PublicKey]
) -> bytes:
    """The header, sealed under a fresh key wrapped to each X25519 public key given."""
    key = secrets.token_bytes(aead.KEY_BYTES)
    stanzas = [wrap.wrap_key(key, r, kind="device", ad=ROOT_AD).to_json() for r in recipients]
    inner = {
        "header": _b64(header_bytes),
        "recovery_wrap_pub": None if recovery_wrap_pub is None else _b64(recovery_wrap_pub),
    }
    body = aead.seal(key, aead.pad(json.dumps(inner).encode()), ROOT_AD)
    return aead.pad(json.dumps({"to": stanzas, "body": _b64(body)}).encode())


def open_root(blob: bytes, identity: X25519PrivateKey) -> Root:
    """A root object opened with an X25519 private key it is sealed to."""
    try:
        doc = json.loads(aead.unpad(blob))
        stanzas = [wrap.Stanza.from_json(s) for s in doc["to"]]
        body = _unb64(doc["body"])
    except (CryptoError, CorruptVault, ValueError, KeyError, TypeError) as exc:
        raise SyncRefused(f"the remote's root object is malformed: {exc}") from None
    key = wrap.find_and_unwrap(stanzas, identity, ROOT_AD)
    try:
        inner = json.loads(aead.unpad(aead.open_sealed(key, body, ROOT_AD)))
        header = Header.from_bytes(_unb64(inner["header"]))
        pub = inner["recovery_wrap_pub"]
        recovery = None if pub is None else _unb64(pub)
    except (CryptoError, CorruptVault, ValueError, KeyError, TypeError) as exc:
        raise SyncRefused(f"the remote's root object is malformed: {exc}") from None
    return Root(header, recovery, sorted(s.recipient for s in stanzas))
