"""Replacing the recovery phrase (`memsync recovery rotate`).

A new phrase is made and shown once. A signed `rotate_recovery` operation names its
recovery keys, starts a new epoch whose key is wrapped only to the devices and the new
phrase (so nothing written afterwards opens with the old one), wraps every older epoch's
key to the new phrase too (so it alone restores the whole vault), and names the devices
it keeps trusting: the old phrase endorses no device from then on. On each remote the
root moves to the new phrase's name, and the old one is deleted; on a configured chain,
the vault's record moves to the new phrase's owner address.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from memsync import codec
from memsync.core import Core, epoch_ad
from memsync.crypto import phrase, wrap
from memsync.errors import ChainError, UsageError
from memsync.store.files import header_ad, write_atomic
from memsync.sync.anchor import Chain

__all__ = ["Rotated", "refresh_header", "rotate"]


@dataclass(frozen=True)
class Rotated:
    """A new recovery phrase (shown once) and what became of the chain's record."""

    recovery_phrase: str
    epoch: int
    chain: str | None  # what happened on chain, if one is configured


def rotate(core: Core) -> Rotated:
    """Replace the recovery phrase; see the module. Sync afterwards to tell the remotes."""
    words = phrase.new_recovery_phrase()
    identity = phrase.recovery_identity(words).public_key()
    signing = phrase.recovery_signing_key(words).public_key().public_bytes_raw()
    vid = core.header.vault_id
    with core.db.write() as conn:
        row = conn.execute("SELECT max(epoch) FROM epochs").fetchone()
        epoch = max(int(row[0] or 0), core.header.epoch) + 1
        key = secrets.token_bytes(32)
        ad = epoch_ad(vid, epoch)
        members = core.members()
        if core.device.device_id not in members:
            raise UsageError("a revoked device cannot replace the recovery phrase")
        stanzas = [
            wrap.wrap_key(key, pub, kind="device", ad=ad).to_json() for pub in members.values()
        ]
        stanzas.append(wrap.wrap_key(key, identity, kind="recovery", ad=ad).to_json())
        older = [int(r[0]) for r in conn.execute("SELECT epoch FROM epochs").fetchall()]
        rewrapped = {}
        for e in sorted(older):
            k = core.epoch_key(e)
            if k is not None:
                stanza = wrap.wrap_key(k, identity, kind="recovery", ad=epoch_ad(vid, e))
                rewrapped[str(e)] = stanza.to_json()
        core.remember_epoch_key(epoch, key)
        core.commit(
            [
                {
                    "op": "rotate_recovery",
                    "recovery_sign_pub": base64.b64encode(signing).decode(),
                    "recovery_wrap_pub": identity.public_bytes_raw().hex(),
                    "epoch": epoch,
                    "stanzas": stanzas,
                    "rewrapped": rewrapped,
                    "devices": sorted(members),
                    "by": core.device.device_id,
                    "at": codec.to_ms(core.clock()),
                }
            ]
        )
    refresh_header(core)
    return Rotated(words, epoch, _move_chain_record(core, words))


def refresh_header(core: Core) -> bool:
    """Make this device's header hold the vault key for the newest recovery phrase (not
    one it replaced), so that `memsync recover` here opens with the new phrase; whether
    it had to change."""
    if not core.conn.execute("SELECT 1 FROM rotations").fetchone():
        return False
    raw = core.recovery_wrap_pub()
    assert raw is not None
    newest = X25519PublicKey.from_public_bytes(raw)
    hdr = core.header
    if any(s.kind == "recovery" and s.recipient == wrap.fingerprint(newest) for s in hdr.stanzas):
        return False
    ad = header_ad(hdr.vault_id, hdr.epoch)
    fresh = wrap.wrap_key(core.vault_key, newest, kind="recovery", ad=ad)
    core.header = replace(hdr, stanzas=(fresh, *(s for s in hdr.stanzas if s.kind != "recovery")))
    write_atomic(core.paths.header, core.header.to_bytes())
    return True


def _move_chain_record(core: Core, words: str) -> str | None:
    chain = Chain(core)
    settings = chain.settings()
    if settings is None or settings.contract is None:
        return None
    new_key = phrase.evm_owner_key(words)
    from memsync.chain.contract import address_of

    to = address_of(new_key)
    if settings.owner is None:
        return f"the chain's record was not moved (this device cannot sign for it): move it to {to}"
    try:
        chain.transfer(to)
    except ChainError as exc:
        return f"the chain's record was not moved ({exc}): run `memsync chain transfer {to}`"
    with core.db.write() as w:
        w.execute("UPDATE chain SET owner_key=? WHERE id=1", (new_key,))
    return f"the chain's record now belongs to {to}"
