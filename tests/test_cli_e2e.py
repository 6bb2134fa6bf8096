"""End-to-end CLI tests: the real embedding model, the demo, the installed entry point,
and that nothing readable reaches the disk."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import PASS, add, cli_env, home, init, ok, ok_json, ring

__all__ = ["cli_env", "home", "ring"]  # fixtures used by every test here


def test_default_minilm_finds_a_memory_by_meaning() -> None:
    made = init("--embedder", "minilm")
    assert ok_json("info")["embedder"].startswith("minilm")
    assert made["vault_id"]
    peanuts = add("Allergic to peanuts", "--category", "health")
    add("Works as a data engineer in Porto", "--category", "career")
    add("Prefers short answers without bullet points")
    add("Flying to Lisbon in March", "--kind", "episodic")
    hits = ok_json("search", "food allergy", "-k", "3")
    assert hits[0]["memory"]["id"] == peanuts
    assert hits[0]["vector_rank"] == 1
    assert peanuts in ok("search", "food allergy").stdout


def test_demo_runs_offline_and_cleans_up() -> None:
    result = ok("demo")
    out = result.stdout
    for step in (
        "Create a vault",
        "Add memories",
        "Ingest a conversation",
        "memsync search",
        "Edit",
        "history (2 versions",
        "memsync check",
        ": ok",
    ):
        assert step in out, step
    assert "from conversation “Planning Tokyo”" in out
    match = re.search(r"The demo vault was in (\S+); it has been deleted", out)
    assert match and not Path(match.group(1)).exists()


def test_demo_home_keeps_the_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = tmp_path / "demo-vault"
    out = ok("demo", "--home", str(where)).stdout
    assert (where / "vault.json").exists() and f"MEMSYNC_HOME='{where}'" in out
    passphrase = re.search(r"MEMSYNC_PASSPHRASE='([^']+)'", out)
    assert passphrase
    monkeypatch.setenv("MEMSYNC_HOME", str(where))
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", passphrase.group(1))
    # 12 by hand; the new job replaces the old one; about Ana, her birthday and the
    # reminder to plan something for it (two facts: the lasting one no longer swallows
    # the plan)
    assert ok_json("info")["memories"] == 14


def test_no_readable_content_reaches_the_disk(tmp_path: Path, home: Path) -> None:
    marker = "zebracanary7731"
    init()
    mid = add(f"The {marker} is a secret", "--tag", marker)
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": f"talking about {marker}"}]))
    ok("ingest", str(chat))
    assert ok_json("search", marker)
    new = ok("edit", mid, "--text", f"The {marker} is still a secret").stdout.strip()
    ok("rm", "--yes", new)
    ok("check")
    patterns = [marker.encode(), marker.encode("utf-16-le"), marker.encode("utf-16-be")]
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(p in data for p in patterns), path


def _memsync(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memsync", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_installed_entry_point(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("memsync")
    assert script.exists()
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and "memsync" in result.stdout

    env = {**os.environ, "MEMSYNC_HOME": str(tmp_path / "empty"), "MEMSYNC_PASSPHRASE": PASS}
    result = _memsync("list", env=env)
    assert result.returncode == 3
    assert result.stderr.startswith("memsync: error: no vault at ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr

    env["MEMSYNC_TEST_FAST_KDF"] = "1"
    assert _memsync("init", "--embedder", "hash", "--json", env=env).returncode == 0
    env["MEMSYNC_PASSPHRASE"] = "not the right pass phrase"
    result = _memsync("list", env=env)
    assert (result.returncode, result.stderr) == (4, "memsync: error: wrong passphrase\n")
    assert _memsync("list", "--limit", "zero", env=env).returncode == 2
