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
    """Whether a revocation among `ops` (verified entries) wraps `key` for `epoch`."""
    for op in ops:
        if op.get("op") == "revoke_device" and int(op.get("epoch", -1)) == epoch:
            stanzas = [wrap.Stanza.from_json(x) for x in op["stanzas"]]
            if _unwrap(core, stanzas, epoch, identity) == key:
                return True
    return False


def to_publish(core: Core, remote: Remote, base: SyncKeys) -> list[tuple[str, bytes]]:
    """The epoch objects this device started (by revoking a device) that the remote
    lacks, sealed and signed."""
    rows = core.conn.execute(
        "SELECT e.epoch, e.stanzas FROM epochs e JOIN revocations r ON r.epoch=e.epoch "
        "WHERE r.by_device=?",
        (core.device.device_id,),
    ).fetchall()
    out = []
    for epoch, stanzas in rows:
        name = base.name("e", "epoch", str(epoch))
        if remote.get(name) is None:
            blob = objects.seal_epoch(
                base, core.device, core.header.vault_id, int(epoch), json.loads(stanzas)
            )
            out.append((name, blob))
    return out
