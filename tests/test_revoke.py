"""Revoking a device: what is written afterwards is sealed under a key it never gets
(shown by trying every object on the remote with its keys), what it writes afterwards
counts for nothing on the other devices, and the rest still converge."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import create_vault, restore_vault
from memsync.errors import NotFound, UsageError
from memsync.sync.engine import Syncer
from memsync.sync.objects import Segment
from memsync.sync.remote import FolderRemote
from memsync.vault import Vault


def _restore(home: Path, url: str, words: str) -> Vault:
    return restore_vault(home, words, url)


def _texts(v: Vault) -> set[str]:
    return {m.text for m in v.list(limit=None).items}


def test_a_revoked_device_reads_nothing_new_and_its_writes_are_ignored(fast_dir: Path) -> None:
    made = create_vault(fast_dir / "a", device_name="laptop")
    a = made.vault
    a.add("Known to every device")
    url = str(fast_dir / "remote")
    a.remotes.add("usb", url)
    a.sync()
    b = _restore(fast_dir / "b", url, made.recovery_phrase)
    c = _restore(fast_dir / "c", url, made.recovery_phrase)
    try:
        a.sync()
        revoked = a.remotes.revoke(b.device.device_id)
        assert revoked.revoked_at is not None
        secret = "SECRET-after-revocation-91ab"
        a.add(f"The new door code is {secret}")
        a.sync()

        # c, still a member, gets everything; b cannot open what came after.
        c.sync()
        assert any(secret in t for t in _texts(c))
        b_keys = Syncer(b.core, FolderRemote(Path(url)), "probe").all_keys
        assert [k.epoch for k in b_keys] == [0]
        opened = []
        for p in Path(url).rglob("*"):
            if p.is_file() and p.parent.name == "s":
                try:
                    seg = Segment.open(f"s/{p.name}", p.read_bytes(), b_keys)
                except Exception:
                    continue
                opened.append(seg)
        for seg in opened:
            for e in seg.entries:
                try:
                    op = b.log.decrypt(e, b.core.log_key)
                except Exception:
                    continue
                assert secret not in str(op)
        locked = b.sync()[0]
        assert any("a key this device does not hold" in w for w in locked.waiting)
        assert not any(secret in t for t in _texts(b))

        # What b writes from now on is ignored by a and c.
        b.add("Written by the revoked device")
        b.sync()  # it pushes, and still cannot read what came after
        report = a.sync()[0]
        c.sync()
        a.sync()
        assert "Written by the revoked device" not in _texts(a) | _texts(c)
        assert a.check().ok and c.check().ok
        assert a.check().state_digest == c.check().state_digest
        assert report.pulled >= 0

        # A phrase-restored device later gets the new epoch too.
        d = _restore(fast_dir / "d", url, made.recovery_phrase)
        try:
            assert any(secret in t for t in _texts(d))
        finally:
            d.close()
    finally:
        for v in (a, b, c):
            v.close()


def test_revoke_refuses_bad_input(fast_dir: Path) -> None:
    made = create_vault(fast_dir / "a")
    a = made.vault
    try:
        with pytest.raises(UsageError, match="cannot revoke itself"):
            a.remotes.revoke(a.device.device_id)
        with pytest.raises(NotFound):
            a.remotes.revoke("d-nosuchdevice")
    finally:
        a.close()
