"""Replacing the recovery phrase: the new one alone restores everything; the old one
opens nothing written afterwards and can no longer bring a device in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import PASSPHRASE, create_vault, restore_vault
from memsync.crypto import phrase, wrap
from memsync.crypto.device import FAST_KDF
from memsync.errors import BadRecoveryPhrase, CryptoError, RemoteError, SyncRefused
from memsync.index.embed import HashEmbedder
from memsync.sync import objects
from memsync.sync.engine import Syncer
from memsync.sync.objects import SyncKeys
from memsync.sync.urls import open_remote
from memsync.vault import Vault


def test_a_new_phrase_replaces_the_old_one(fast_dir: Path) -> None:
    made = create_vault(fast_dir / "a", device_name="laptop")
    a = made.vault
    a.add("Written before the rotation")
    url = str(fast_dir / "remote")
    a.remotes.add("usb", url)
    a.sync()
    b = restore_vault(fast_dir / "b", made.recovery_phrase, url)
    before = fast_dir / "before"
    shutil.copytree(url, before)  # a copy someone kept, with the old phrase

    a.sync()  # the rotation keeps trusting the devices it has heard of: b too
    rotated = a.remotes.rotate_recovery()
    new = rotated.recovery_phrase
    assert new != made.recovery_phrase and len(new.split()) == 24
    a.add("Written after the rotation")
    a.sync()
    b.sync()
    b.add("Written on b after it heard")
    b.sync()
    a.sync()
    assert a.check().ok and b.check().ok
    assert a.check().state_digest == b.check().state_digest

    # The old phrase finds no vault on the remote any more.
    with pytest.raises(BadRecoveryPhrase):
        restore_vault(fast_dir / "old", made.recovery_phrase, url)
    assert not (fast_dir / "old" / "vault.json").exists()
    # The new phrase alone restores everything, written before and after.
    c = restore_vault(fast_dir / "c", new, url)
    assert {m.text for m in c.list(limit=None).items} == {
        "Written before the rotation",
        "Written after the rotation",
        "Written on b after it heard",
    }
    assert c.check().ok
    c.sync()
    a.sync()
    assert a.check().ok  # the device the new phrase let in is trusted

    # Nothing written after the rotation opens with the old phrase: its identity unwraps
    # no key of the new epoch, from any epoch object on the remote.
    old_identity = phrase.recovery_identity(made.recovery_phrase)
    base = SyncKeys.base(a.core.vault_key)
    checked = False
    for p in (Path(url) / "e").glob("*"):
        found = objects.open_epoch(p.read_bytes(), base)
        if found.epoch == rotated.epoch:
            with pytest.raises(CryptoError):
                wrap.find_and_unwrap(found.stanzas, old_identity, _epoch_ad(a, found.epoch))
            checked = True
    assert checked

    # Whoever kept the old copy and the old phrase cannot bring a device in.
    thief = Vault.recover(
        fast_dir / "thief", made.recovery_phrase, PASSPHRASE, kdf=FAST_KDF,
        embedder=HashEmbedder(), from_url=str(before),
    )  # fmt: skip
    thief.remotes.remove("origin")
    thief.remotes.add("usb", url, probe=False)
    thief.add("planted by whoever had the old phrase")
    with pytest.raises((SyncRefused, RemoteError)):
        thief.sync()  # it cannot open the vault's root there any more
    # A client that writes its feed there anyway: every device refuses it.
    Syncer(thief.core, open_remote(url), "usb").push()
    with pytest.raises(SyncRefused, match="untrusted"):
        a.sync()
    assert "planted by whoever had the old phrase" not in {m.text for m in a.list(limit=None).items}
    # This device's own recovery works with the new phrase, not the old one.
    a.close()
    with pytest.raises((BadRecoveryPhrase, CryptoError)):
        Vault.recover(fast_dir / "a", made.recovery_phrase, PASSPHRASE, kdf=FAST_KDF)
    again = Vault.recover(fast_dir / "a", new, PASSPHRASE, kdf=FAST_KDF, embedder=HashEmbedder())
    assert again.check().ok
    for v in (again, b, c, thief):
        v.close()


def _epoch_ad(v: Vault, epoch: int) -> bytes:
    from memsync.core import epoch_ad

    return epoch_ad(v.header.vault_id, epoch)
