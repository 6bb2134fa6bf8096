"""The chain as witness of a sync: what an anchor publishes and what a sync checks.

An anchor puts the device's view of the vault (every feed head) on its remotes as one
immutable, padded, sealed object `a/<hash>`, and on chain the Merkle root of those heads
and the object's hash as the pointer. A device syncing later reads the chain's latest
checkpoint, fetches that object from the remote and requires what the remote serves to
extend it: a remote rolled back past an anchor, or hiding the anchored state, is refused
with the on-chain checkpoint as the evidence. The chain alone tells a device that was
offline for months whether the storage is hiding something.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from memsync.core import Core
from memsync.errors import ChainError, CryptoError, SyncRefused
from memsync.log.oplog import Entry
from memsync.sync.objects import Checkpoint, SyncKeys, hex_heads, merkle_root

if TYPE_CHECKING:
    from memsync.chain.contract import Record

__all__ = [
    "Anchor",
    "Kept",
    "Witness",
    "anchor_name",
    "heads_from_json",
    "heads_json",
    "open_anchor",
    "seal_anchor",
]

ANCHOR_AD = b"memsync/v1/anchor"
FORMAT = 1
Heads = dict[str, tuple[int, str]]


@dataclass(frozen=True)
class Anchor:
    """The view of the vault an on-chain checkpoint commits to."""

    vault_id: str
    counter: int
    epoch: int
    heads: Heads

    @property
    def root(self) -> bytes:
        return bytes.fromhex(merkle_root(self.heads))


def heads_json(heads: Heads) -> str:
    return json.dumps({d: [s, h] for d, (s, h) in sorted(heads.items())})


def heads_from_json(text: str) -> Heads:
    return {str(k): (int(v[0]), str(v[1])) for k, v in json.loads(text).items()}


def anchor_name(pointer: bytes) -> str:
    return "a/" + pointer.hex()[:40]


def seal_anchor(base: SyncKeys, anchor: Anchor) -> tuple[str, bytes, bytes]:
    """(name, sealed object, pointer): the pointer is the object's SHA-256."""
    doc = {
        "format": FORMAT,
        "vault": anchor.vault_id,
        "counter": anchor.counter,
        "epoch": anchor.epoch,
        "heads": {d: [s, h] for d, (s, h) in sorted(anchor.heads.items())},
    }
    blob = base.seal(json.dumps(doc, sort_keys=True).encode(), ANCHOR_AD)
    pointer = hashlib.sha256(blob).digest()
    return anchor_name(pointer), blob, pointer


def open_anchor(blob: bytes, base: SyncKeys) -> Anchor:
    try:
        d = json.loads(base.open(blob, ANCHOR_AD))
        heads = {str(k): (int(v[0]), str(v[1])) for k, v in d["heads"].items()}
        return Anchor(str(d["vault"]), int(d["counter"]), int(d["epoch"]), heads)
    except (CryptoError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise SyncRefused(f"the anchored state the chain points to is malformed: {exc}") from None


@dataclass(frozen=True)
class Kept:
    """What a device keeps of the newest on-chain checkpoint it verified: the sealed
    anchored state (to put back on a remote that lacks it) and the heads."""

    blob: bytes | None = None
    heads: Heads | None = None


class Syncer(Protocol):
    """What the witness uses of the sync it checks (`memsync.sync.engine.Syncer`)."""

    name: str
    base: SyncKeys
    repaired: list[str]

    def _get(self, name: str) -> tuple[bytes, str] | None: ...

    def _upload(self, name: str, data: bytes, overwrite: bool) -> None: ...

    def _refuse(self, what: str, message: str, detail: dict[str, object]) -> NoReturn: ...


class Witness:
    """Checks a sync against the chain's latest checkpoint (`Syncer(witness=…)`).

    `read` returns the vault's record on chain (None if not registered) and `where`
    describes the checkpoint for evidence; both come from `memsync.sync.anchor`."""

    def __init__(
        self,
        core: Core,
        read: Callable[[], Record | None],
        where: Callable[[int], dict[str, Any]],
        seen: Callable[[Record, Kept], None],
        kept: Callable[[Record], Kept],
        seen_counter: Callable[[], int],
    ) -> None:
        self.core = core
        self.seen_counter = seen_counter
        self.read = read
        self.where = where
        self.seen = seen
        self.kept = kept  # what this device verified of a checkpoint before

    def __call__(
        self,
        syncer: Syncer,
        checkpoints: dict[str, tuple[Checkpoint, bytes, bytes]],
        local: dict[str, tuple[int, bytes]],
        fetched: dict[str, list[Entry]],
    ) -> None:
        try:
            record = self.read()
        except ChainError as exc:
            syncer.repaired.append(f"not checked against the chain: {exc}")
            return
        verified = self.seen_counter()
        if (record.counter if record else 0) < verified:
            # The node (or the chain) goes back on what this device verified: a lying RPC
            # endpoint or a reorganised chain. Not the remote's doing, but not to be trusted.
            syncer._refuse(
                "chain",
                f"the chain serves checkpoint {record.counter if record else 0} of this vault, "
                f"older than checkpoint {verified} this device verified; check the RPC endpoint",
                {"served": record.counter if record else 0, "verified": verified},
            )
        if record is None or record.counter == 0:
            return
        mine = hex_heads(local)
        claims = dict(mine)
        for cp, _, _ in checkpoints.values():
            for d, (s, h) in cp.heads.items():
                if s > claims.get(d, (0, ""))[0]:
                    claims[d] = (s, h)
        kept = self.kept(record)
        blob = self._anchored_state(syncer, record, kept.blob)
        heads = kept.heads
        if blob is not None:
            anchor = open_anchor(blob, syncer.base)
            if anchor.root != record.root or anchor.vault_id != self.core.header.vault_id:
                self._refuse(
                    syncer, "altered", record,
                    f"the state anchored at chain checkpoint {record.counter} does not match "
                    "the root the chain records",
                    {},
                )  # fmt: skip
            heads = anchor.heads
        # A signed checkpoint (or this device's own view) with the chain's root holds
        # exactly the anchored heads.
        for view in (mine, *(cp.heads for cp, _, _ in checkpoints.values())):
            if heads is None and merkle_root(view) == record.root.hex():
                heads = view
        if heads is None and record.pointer == bytes(32):
            syncer.repaired.append(
                f"chain checkpoint {record.counter} names no anchored state: not compared"
            )
            return
        if heads is None:
            self._refuse(
                syncer, "rollback", record,
                f"remote {syncer.name} does not hold the state the chain records at "
                f"checkpoint {record.counter}: it was rolled back, or is hiding it",
                {},
            )  # fmt: skip
        self._compare(syncer, record, heads, claims, fetched)
        self.seen(record, Kept(blob, heads))

    def _anchored_state(self, syncer: Syncer, record: Record, kept: bytes | None) -> bytes | None:
        """The sealed anchored state, from the remote or (put back there) this device."""
        if record.pointer == bytes(32):
            return None
        name = anchor_name(record.pointer)
        got = syncer._get(name)
        if got is not None and hashlib.sha256(got[0]).digest() == record.pointer:
            return got[0]
        if kept is not None:
            # A remote new to the vault, or one that lost it: this device verified the
            # state before, so it puts it there.
            syncer._upload(name, kept, overwrite=False)
        return kept

    def _compare(
        self,
        syncer: Syncer,
        record: Record,
        heads: Heads,
        claims: Heads,
        fetched: dict[str, list[Entry]],
    ) -> None:
        for device, (seq, digest) in sorted(heads.items()):
            served = claims.get(device, (0, ""))
            if served[0] < seq:
                self._refuse(
                    syncer, "rollback", record,
                    f"remote {syncer.name} serves feed {device} up to entry {served[0]}; "
                    f"chain checkpoint {record.counter} records entry {seq}",
                    {"device": device, "served": served[0], "anchored": seq},
                )  # fmt: skip
            held = _hash_at(self.core, fetched, device, seq)
            if (served[0] == seq and served[1] != digest) or (held not in (None, digest)):
                self._refuse(
                    syncer, "fork", record,
                    f"remote {syncer.name} serves a different entry {seq} of feed {device} "
                    f"than chain checkpoint {record.counter} records",
                    {"device": device, "seq": seq, "anchored_hash": digest},
                )  # fmt: skip

    def _refuse(
        self, syncer: Syncer, what: str, record: Record, message: str, detail: dict[str, Any]
    ) -> NoReturn:
        syncer._refuse(what, message, {"chain": self.where(record.counter), **detail})


def _hash_at(core: Core, fetched: dict[str, list[Entry]], device: str, seq: int) -> str | None:
    vid = core.header.vault_id
    for e in fetched.get(device, ()):
        if e.seq == seq:
            return e.hash(vid).hex()
    mine = core.log.entry(device, seq)
    return None if mine is None else mine.hash(vid).hex()
