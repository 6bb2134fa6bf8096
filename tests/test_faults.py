"""Writes the disk refuses part-way: a full disk, a failing fsync, a read-only file
system. `faults/faults.c`, preloaded into a real `memsync` process, makes the vault's
directory fail that way (after a given number of writes, so at every point of a
transaction). Each time the CLI says what happened in one line and exits 13, and the vault
afterwards holds exactly what it held before, its log and state checking out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PASSPHRASE, create_vault, open_vault, restore_vault
from memsync.store import state

MEMSYNC = Path(sys.executable).parent / "memsync"
SOURCE = Path(__file__).parent / "faults" / "faults.c"


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "the I/O fault tests need a C compiler (gcc) to build faults.c"
    out = tmp_path_factory.mktemp("shim") / "faults.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(out), str(SOURCE), "-ldl"], check=True
    )
    return out


def _env(home: Path, shim: Path | None = None, **fault: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSYNC_")}
    env.update(MEMSYNC_HOME=str(home), MEMSYNC_PASSPHRASE=PASSPHRASE, MEMSYNC_TEST_FAST_KDF="1")
    if shim is not None:
        env.update(LD_PRELOAD=str(shim), MEMSYNC_FAULT_DIR=str(home.resolve()), **fault)
    return env


def _snapshot(home: Path) -> tuple[str, int]:
    with open_vault(home) as vault:
        report = vault.check()
        assert report.ok, report.problems
        return state.digest(vault.conn), vault.log.count()


@pytest.fixture
def home(fast_dir: Path) -> Path:
    home = fast_dir / "vault"
    with create_vault(home).vault as vault:
        vault.add("Prefers tea to coffee")
    return home


@pytest.mark.parametrize("fault", ["enospc", "eio", "erofs"])
@pytest.mark.parametrize("after", [0, 2, 5, 9, 14])
def test_a_refused_write_is_one_clear_error_and_changes_nothing(
    shim: Path, home: Path, fault: str, after: int
) -> None:
    before = _snapshot(home)
    done = subprocess.run(
        [str(MEMSYNC), "add", "Owns a red bicycle"],
        env=_env(home, shim, MEMSYNC_FAULT=fault, MEMSYNC_FAULT_AFTER=str(after)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 13, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "nothing was" in done.stderr
    assert _snapshot(home) == before
    # And with the disk well again, the same command works.
    again = subprocess.run(
        [str(MEMSYNC), "add", "Owns a red bicycle"], env=_env(home), capture_output=True
    )
    assert again.returncode == 0


def test_an_import_cut_short_by_a_full_disk_keeps_whole_sources_and_resumes(
    shim: Path, home: Path, tmp_path: Path
) -> None:
    conversations = [
        [{"role": "user", "content": f"I keep {n} bee hives in the garden."}] for n in range(12)
    ]
    for n, conversation in enumerate(conversations):
        (tmp_path / f"chat{n}.json").write_text(json.dumps(conversation))
    cut = subprocess.run(
        [str(MEMSYNC), "ingest", str(tmp_path)],
        env=_env(home, shim, MEMSYNC_FAULT="enospc", MEMSYNC_FAULT_AFTER="40"),
        capture_output=True,
        text=True,
    )
    assert cut.returncode == 13, cut.stderr
    assert "disk is full" in cut.stderr and "Traceback" not in cut.stderr
    with open_vault(home) as vault:
        stored = vault.sources()
        assert vault.check().ok
    assert len(stored) < len(conversations)
    assert all(len(s.messages) == 1 for s in stored)  # whole sources only
    resumed = subprocess.run(
        [str(MEMSYNC), "ingest", str(tmp_path)], env=_env(home), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    with open_vault(home) as vault:
        texts = sorted(s.messages[0].content for s in vault.sources())
        assert vault.check().ok
    assert texts == sorted(c[0]["content"] for c in conversations)


@pytest.mark.parametrize("after", [0, 3, 8, 20])
def test_a_sync_onto_a_full_disk_is_one_clear_error_and_resumes(
    shim: Path, fast_dir: Path, after: int
) -> None:

    made = create_vault(fast_dir / "a")
    remote = fast_dir / "remote"
    with made.vault as a:
        a.remotes.add("usb", str(remote))
        a.sync()
        restore_vault(fast_dir / "b", made.recovery_phrase, str(remote)).close()
        for i in range(20):
            a.add(f"Memory {i} written on the first device")
        a.sync()
        wanted = {m.text for m in a.list(limit=None).items}
    before = _snapshot(fast_dir / "b")
    done = subprocess.run(
        [str(MEMSYNC), "sync"],
        env=_env(fast_dir / "b", shim, MEMSYNC_FAULT="enospc", MEMSYNC_FAULT_AFTER=str(after)),
        capture_output=True,
        text=True,
    )
    if after == 0 or done.returncode != 0:
        assert done.returncode == 13, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    with open_vault(fast_dir / "b") as b:
        report = b.check()
        assert report.ok
        texts = {m.text for m in b.list(limit=None).items}
        # All of what arrived, or none of it: never half a sync.
        assert report.state_digest == before[0] or wanted <= texts
    again = subprocess.run([str(MEMSYNC), "sync"], env=_env(fast_dir / "b"), capture_output=True)
    assert again.returncode == 0, again.stderr
    with open_vault(fast_dir / "b") as b:
        assert wanted <= {m.text for m in b.list(limit=None).items}
