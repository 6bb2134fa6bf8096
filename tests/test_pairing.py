"""Pairing a new device through a remote: the safety code, approval, a wrong code, a
swapped key, and the new device reading the vault (and writing to it) afterwards.

The new device runs `memsync device join` as a real second process on a folder remote;
the approving device runs in this one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import PASSPHRASE, create_vault
from memsync.crypto.device import FAST_KDF, generate_device
from memsync.errors import NotFound, UsageError
from memsync.index.embed import HashEmbedder
from memsync.sync import pairing
from memsync.sync.remote import FolderRemote, MemoryRemote
from memsync.vault import Vault


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MEMSYNC_HOME": str(home),
        "MEMSYNC_NEW_PASSPHRASE": PASSPHRASE,
        "MEMSYNC_PASSPHRASE": PASSPHRASE,
        "MEMSYNC_TEST_FAST_KDF": "1",
    }


def _code_from(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("safety code: "):
            return line.removeprefix("safety code: ").strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError("the joining device showed no safety code")


def test_a_device_joins_with_the_code_and_then_syncs(fast_dir: Path) -> None:
    made = create_vault(fast_dir / "a", device_name="laptop")
    a = made.vault
    a.add("Prefers short answers without bullet points")
    remote_dir = fast_dir / "remote"
    a.remotes.add("usb", str(remote_dir))
    a.sync()
    joiner = subprocess.Popen(
        [sys.executable, "-m", "memsync", "device", "join", str(remote_dir), "--name", "phone"],
        env=_env(fast_dir / "b"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait for the request to appear, then approve with the code the joiner shows.
        remote = FolderRemote(remote_dir)
        deadline = time.monotonic() + 60
        while not remote.list("j/") and time.monotonic() < deadline:
            time.sleep(0.1)
        shown: list[str] = []

        def confirm(here: str) -> bool:
            shown.append(_code_from(joiner))
            return pairing.normalize_code(shown[0]) == pairing.normalize_code(here)

        request = a.remotes.approve(confirm)
        out, err = joiner.communicate(timeout=120)
        assert joiner.returncode == 0, err
        assert "joined vault" in out and "1 memories" in out
        assert len(shown[0].split()) == 6
    finally:
        if joiner.poll() is None:
            joiner.kill()
    assert remote.list("j/") == [] and remote.list("w/") == []  # the pairing leaves nothing
    b = Vault.open(fast_dir / "b", PASSPHRASE, embedder=HashEmbedder())
    try:
        assert b.device.device_id == request.device_id
        b.add("Written on the phone")
        b.sync()
        a.sync()
        assert "Written on the phone" in {m.text for m in a.list().items}
        devices = {d.device_id: d for d in a.remotes.devices()}
        assert devices[b.device.device_id].enrolled_by == a.device.device_id
        assert devices[b.device.device_id].name == "phone"
        assert a.check().ok and b.check().ok
        assert a.check().state_digest == b.check().state_digest
    finally:
        a.close()
        b.close()


def _join_in_thread(remote: MemoryRemote, home: Path, codes: list[str]) -> threading.Thread:
    def run() -> None:
        try:
            Vault.join(
                "memory:",
                home,
                PASSPHRASE,
                codes.append,
                kdf=FAST_KDF,
                embedder=HashEmbedder(),
                remote=remote,
                timeout=5,
                poll=0.05,
                name="tablet",
            ).close()
        except Exception as exc:  # the test looks at what happened
            codes.append(f"error: {exc}")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_wrong_code_lets_nobody_in(fast_dir: Path) -> None:
    made = create_vault(fast_dir / "a")
    a = made.vault
    remote = MemoryRemote()
    a.remotes.add("mem", "/memory-twin", probe=False)
    from memsync.sync import service

    service.sync(a.core, "mem", remote=remote)
    codes: list[str] = []
    thread = _join_in_thread(remote, fast_dir / "b", codes)
    while not remote.list("j/"):
        time.sleep(0.02)
    before = a.log.count()
    with pytest.raises(UsageError, match="safety codes differ"):
        service.approve(a.core, "mem", lambda code: False, remote=remote)
    assert a.log.count() == before  # no enrolment was written
    thread.join(10)
    assert codes and codes[-1].startswith("error:")
    assert not (fast_dir / "b" / "vault.json").exists()
    with pytest.raises(NotFound, match="no pairing request"):
        service.approve(a.core, "mem", lambda code: True, remote=remote)
    a.close()


def test_a_swapped_key_shows_different_codes(fast_dir: Path) -> None:
    """Storage that replaces the new device's request with its own key cannot make the
    approver's code match the one the real device shows."""
    remote = MemoryRemote()
    real = pairing.post_request(remote, generate_device())
    attacker = generate_device()
    forged = pairing.Request(
        real.id,
        attacker.device_id,
        attacker.wrap_public.public_bytes_raw(),
        attacker.sign_public.public_bytes_raw(),
    )
    remote.objects[f"j/{real.id}"] = forged.to_bytes()
    approver = generate_device()
    code_at_approver = pairing.offer(remote, pairing.pending(remote)[0], approver)
    answer = pairing.answer_for(remote, real)
    assert answer is not None
    assert pairing.normalize_code(answer[2]) != pairing.normalize_code(code_at_approver)
