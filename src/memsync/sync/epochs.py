"""Key epochs on a remote: a revocation starts a new epoch whose key is wrapped only to
the devices that remain and to the recovery identity (`e/<mac>` objects, signed by the
revoking device). A device takes a newer epoch's key from there; one that cannot yet
tell who signed it (it is new to the vault) uses the key to read and keeps it only if the
revocation in the log, once verified, wraps the very same key to it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from memsync.core import Core, epoch_ad
from memsync.crypto import wrap
from memsync.errors import CryptoError, SyncRefused
from memsync.sync import objects
from memsync.sync.objects import SyncKeys
from memsync.sync.remote import Remote

__all__ = ["learn", "to_publish", "vouched"]


def learn(
    core: Core, remote: Remote, base: SyncKeys, identity: X25519PrivateKey | None
) -> dict[int, bytes]:
    """Keep the newer epoch keys a trusted device signed; return those whose signer is
    not known here yet (provisional, see `vouched`)."""
    provisional: dict[int, bytes] = {}
    signers = {
        str(d): bytes(p)
        for d, p in core.conn.execute(
            "SELECT device_id, sign_pub FROM devices WHERE device_id NOT IN "
            "(SELECT device_id FROM revocations)"
        )
    }
    for name in remote.list("e/"):
        blob = remote.get(name)
        if blob is None:
            continue
        try:
            found = objects.open_epoch(blob.data, base)
        except SyncRefused:
            continue
        if found.vault_id != core.header.vault_id or core.epoch_key(found.epoch):
            continue
        known = found.by in signers
        if known and not found.verify(signers[found.by]):
            continue
        key = _unwrap(core, found.stanzas, found.epoch, identity)
        if key is None:
            continue
        if known:
            core.remember_epoch_key(found.epoch, key)
        else:
            provisional[found.epoch] = key
    return provisional


def _unwrap(
    core: Core, stanzas: Sequence[wrap.Stanza], epoch: int, identity: X25519PrivateKey | None
) -> bytes | None:
    ad = epoch_ad(core.header.vault_id, epoch)
    for who in (core.device.wrap_key, identity):
        if who is not None:
            with contextlib.suppress(CryptoError):
                return wrap.find_and_unwrap(stanzas, who, ad)
    return None


def vouched(
    core: Core,
    ops: Sequence[dict[str, Any]],
    epoch: int,
    key: bytes,
    identity: X25519PrivateKey | None,
) -> bool:
    """Whether a revocation or rotation among `ops` (verified entries) wraps `key` for
    `epoch` (a rotation also wraps the older epochs' keys to the new phrase)."""
    for op in ops:
        kind = op.get("op")
        if kind in ("revoke_device", "rotate_recovery") and int(op.get("epoch", -1)) == epoch:
            stanzas = [wrap.Stanza.from_json(x) for x in op["stanzas"]]
        elif kind == "rotate_recovery" and str(epoch) in op.get("rewrapped", {}):
            stanzas = [wrap.Stanza.from_json(op["rewrapped"][str(epoch)])]
        else:
            continue
        if _unwrap(core, stanzas, epoch, identity) == key:
            return True
    return False


def to_publish(core: Core, remote: Remote, base: SyncKeys) -> list[tuple[str, bytes]]:
    """The epoch objects this device started (by revoking a device) that the remote
    lacks, sealed and signed."""
    me = core.device.device_id
    rows: list[tuple[str, int, list[dict[str, str]]]] = [
        (base.name("e", "epoch", str(epoch)), int(epoch), json.loads(stanzas))
        for epoch, stanzas in core.conn.execute(
            "SELECT e.epoch, e.stanzas FROM epochs e WHERE e.epoch IN (SELECT epoch FROM "
            "revocations WHERE by_device=? UNION SELECT epoch FROM rotations WHERE by_device=?)",
            (me, me),
        )
    ]
    # A rotation's copies of the older epochs' keys, for the new phrase alone to restore.
    for sign_pub, rewrapped in core.conn.execute(
        "SELECT sign_pub, rewrapped FROM rotations WHERE by_device=?", (me,)
    ).fetchall():
        for epoch, stanza in json.loads(rewrapped).items():
            name = base.name("e", "epoch", epoch, "again", str(sign_pub))
            rows.append((name, int(epoch), [stanza]))
    out = []
    for name, epoch, stanzas in rows:
        if remote.get(name) is None:
            blob = objects.seal_epoch(base, core.device, core.header.vault_id, epoch, stanzas)
            out.append((name, blob))
    return out
