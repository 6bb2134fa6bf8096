"""Sync killed at random moments (SIGKILL, on the pushing and on the pulling side) resumes
with nothing lost, nothing applied twice and nothing left on the remote that confuses a
reader: after each kill both vaults open and check, and a sync run to the end converges."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import PASSPHRASE, create_vault, restore_vault
from memsync.index.embed import HashEmbedder
from memsync.vault import Vault

KILLS = 12


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "MEMSYNC_HOME": str(home), "MEMSYNC_PASSPHRASE": PASSPHRASE}


def _open(home: Path) -> Vault:
    return Vault.open(home, PASSPHRASE, embedder=HashEmbedder())


def test_sync_killed_anywhere_resumes(fast_dir: Path) -> None:
    rng = random.Random(7)
    made = create_vault(fast_dir / "a")
    url = str(fast_dir / "remote")
    with made.vault as a:
        a.remotes.add("usb", url)
        a.sync()
    restore_vault(fast_dir / "b", made.recovery_phrase, url).close()
    written: list[str] = []
    killed = 0
    for round_ in range(KILLS):
        side = fast_dir / ("a" if round_ % 2 == 0 else "b")
        with _open(side) as v:
            for i in range(300):
                text = f"round {round_} memory {i} from {side.name}"
                v.add(text)
                written.append(text)
        proc = subprocess.Popen(
            [sys.executable, "-m", "memsync", "sync"],
            env=_env(fast_dir / rng.choice("ab")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.55, 1.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        for home in ("a", "b"):
            with _open(fast_dir / home) as v:
                assert v.check().ok, (round_, home)
    for _ in range(2):
        for home in ("a", "b"):
            with _open(fast_dir / home) as v:
                v.sync()
    digests = []
    for home in ("a", "b"):
        with _open(fast_dir / home) as v:
            texts = [m.text for m in v.list(limit=None).items]
            assert sorted(texts) == sorted(set(texts))  # nothing applied twice
            assert set(written) <= set(texts)  # nothing acknowledged lost
            report = v.check()
            assert report.ok
            digests.append(report.state_digest)
    assert digests[0] == digests[1]
    # A device restored from the remote alone reads it whole.
    fresh = restore_vault(fast_dir / "c", made.recovery_phrase, url)
    with fresh:
        assert set(written) <= {m.text for m in fresh.list(limit=None).items}
    print(f"\nsync kills: {killed} of {KILLS} syncs killed mid-way")
    assert killed >= 3, killed
