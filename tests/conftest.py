"""Shared fixtures: real vaults (real encrypted SQLite, real crypto) with a fast KDF.

`FAST_KDF` makes Argon2id cheap so a vault opens in milliseconds; it is for tests only.
`HashEmbedder` is deterministic and model-free; tests that need the real model ask for
`MiniLMEmbedder` explicitly.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memsync.crypto.device import FAST_KDF
from memsync.index.embed import Embedder, HashEmbedder
from memsync.vault import NewVault, Vault

PASSPHRASE = "a strong pass phrase 42"
OTHER_PASSPHRASE = "another strong pass phrase 77"


def create_vault(home: Path, embedder: Embedder | None = None, **kwargs: object) -> NewVault:
    """A new vault at `home` with the fast KDF and (by default) the hash embedder."""
    return Vault.create(
        home,
        PASSPHRASE,
        kdf=FAST_KDF,
        embedder=embedder if embedder is not None else HashEmbedder(),
        **kwargs,  # type: ignore[arg-type]
    )


def restore_vault(home: Path, recovery_phrase: str, url: str) -> Vault:
    """A new device of the vault on remote `url`, restored with its recovery phrase."""
    return Vault.recover(
        home, recovery_phrase, PASSPHRASE, kdf=FAST_KDF, embedder=HashEmbedder(), from_url=url
    )


def open_vault(home: Path, passphrase: str = PASSPHRASE) -> Vault:
    return Vault.open(home, passphrase, embedder=HashEmbedder())


def tree_digest(home: Path) -> dict[str, str]:
    """sha256 of every file under `home`, by relative path."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


class FixedClock:
    """A settable clock for a vault (`vault.clock = FixedClock(...)`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# A RAM-backed temp dir when there is one: a vault fsyncs every commit, and on a real
# disk that, not the work, is most of a test's time.
FAST_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory for vault homes, in RAM if possible; removed after the test."""
    if FAST_TMP is None:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=FAST_TMP, prefix="memsync-test-") as tmp:
        yield Path(tmp)


@pytest.fixture
def home(fast_dir: Path) -> Path:
    return fast_dir / "home"


@pytest.fixture
def made(home: Path) -> Iterator[NewVault]:
    """A freshly created vault and its recovery phrase; closed after the test."""
    new = create_vault(home)
    try:
        yield new
    finally:
        new.vault.close()


@pytest.fixture
def vault(made: NewVault) -> Vault:
    return made.vault


@pytest.fixture
def vault_factory(fast_dir: Path) -> Iterator[Callable[[str], NewVault]]:
    """Make more vaults by name; all are closed after the test."""
    made_here: list[NewVault] = []

    def make(name: str) -> NewVault:
        new = create_vault(fast_dir / name)
        made_here.append(new)
        return new

    yield make
    for new in made_here:
        new.vault.close()


@pytest.fixture
def t0() -> datetime:
    return datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
