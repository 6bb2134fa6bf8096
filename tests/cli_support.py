"""Shared pieces of the CLI tests: an isolated environment, a runner and a fake keyring.

Every CLI test gets its own MEMSYNC_HOME, a passphrase in MEMSYNC_PASSPHRASE, the
test-only fast KDF, and an in-memory OS keyring, so no test touches real user data or a
real keyring.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from click.testing import CliRunner, Result
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from memsync.cli import cli

PASS = "a strong pass phrase 42"
NEW_PASS = "another strong pass phrase 77"


class MemoryKeyring(KeyringBackend):
    """An OS keyring stand-in that keeps passwords in a dict."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def ring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, home: Path, ring: MemoryKeyring) -> None:
    monkeypatch.setenv("MEMSYNC_HOME", str(home))
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", PASS)
    monkeypatch.setenv("MEMSYNC_TEST_FAST_KDF", "1")  # test-only: cheap Argon2id
    monkeypatch.setenv("COLUMNS", "200")  # wide tables, so assertions see whole cells
    for name in ("MEMSYNC_NEW_PASSPHRASE", "MEMSYNC_RECOVERY_PHRASE", "EDITOR", "VISUAL"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str, input: str | None = None) -> Result:
    """Run `memsync ARGS` in-process, as a user would (errors included)."""
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def init(*extra: str) -> dict[str, Any]:
    """A new vault in MEMSYNC_HOME (hash embedder unless `extra` says otherwise)."""
    args = extra if "--embedder" in extra else ("--embedder", "hash", *extra)
    data: dict[str, Any] = ok_json("init", *args)
    return data


def add(text: str, *options: str) -> str:
    return ok("add", text, *options).stdout.strip()


def one_line_error(result: Result, code: int, *fragments: str) -> str:
    """Assert `result` failed with `code` and exactly one `memsync: error:` line, no trace."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("memsync: error: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its exact bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for name, data in tree_bytes(root).items():
        h.update(name.encode() + b"\0" + data)
    return h.hexdigest()
