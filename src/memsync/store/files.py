"""The vault's files on disk and how they are written.

A vault home holds three things, none readable without a key:
- `vault.json`: the vault id, the key epoch and the vault key wrapped once per recipient
  (each device, and the recovery identity);
- `device.key`: this device's private keys, sealed with Argon2id(passphrase);
- `vault.db`: the encrypted SQLite database (plus its encrypted WAL).
Files are replaced atomically (write aside, fsync, rename) so a crash never leaves half.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

from memsync.crypto.wrap import Stanza
from memsync.errors import CorruptVault, VaultExists, VaultNotFound

HEADER_FORMAT = "memsync-vault"
HEADER_VERSION = 1


def default_home() -> Path:
    """`$MEMSYNC_HOME`, else the platform's user data dir for memsync."""
    env = os.environ.get("MEMSYNC_HOME")
    return Path(env).expanduser() if env else Path(user_data_dir("memsync", appauthor=False))


@dataclass(frozen=True)
class VaultPaths:
    home: Path

    @property
    def header(self) -> Path:
        return self.home / "vault.json"

    @property
    def device_key(self) -> Path:
        return self.home / "device.key"

    @property
    def database(self) -> Path:
        return self.home / "vault.db"

    def exists(self) -> bool:
        return self.header.exists()

    def require_absent(self) -> None:
        """Refuse to make a vault where one (or part of one) already is."""
        if self.header.exists() or self.database.exists():
            raise VaultExists(f"a vault already exists at {self.home}")

    def require(self) -> None:
        if not self.header.exists():
            raise VaultNotFound(
                f"no vault at {self.home} (run `memsync init`, or set MEMSYNC_HOME)"
            )
        if not self.device_key.exists():
            raise CorruptVault(f"device key missing: {self.device_key}")
        if not self.database.exists():
            raise CorruptVault(f"vault database missing: {self.database}")


@dataclass(frozen=True)
class Header:
    vault_id: str
    epoch: int
    stanzas: tuple[Stanza, ...]

    def to_bytes(self) -> bytes:
        doc = {
            "format": HEADER_FORMAT,
            "version": HEADER_VERSION,
            "vault_id": self.vault_id,
            "epoch": self.epoch,
            "recipients": [s.to_json() for s in self.stanzas],
        }
        return json.dumps(doc, indent=2).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Header:
        try:
            doc = json.loads(data)
        except ValueError:
            raise CorruptVault("vault.json is damaged: not JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != HEADER_FORMAT:
            raise CorruptVault("vault.json is not a memsync vault header")
        if doc.get("version") != HEADER_VERSION:
            raise CorruptVault(f"unsupported vault header version: {doc.get('version')!r}")
        vault_id, epoch, recipients = doc.get("vault_id"), doc.get("epoch"), doc.get("recipients")
        if not isinstance(vault_id, str) or not isinstance(epoch, int):
            raise CorruptVault("vault.json is damaged: bad vault id or epoch")
        if not isinstance(recipients, list) or not recipients:
            raise CorruptVault("vault.json is damaged: no recipients")
        return cls(vault_id, epoch, tuple(Stanza.from_json(r) for r in recipients))


def header_ad(vault_id: str, epoch: int) -> bytes:
    """Associated data for wrapped vault keys: a stanza opens only for its vault and epoch."""
    return f"memsync/v1/vault-key/{vault_id}/{epoch}".encode()


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise VaultNotFound(f"{what} missing: {path}") from None
    except OSError as exc:
        raise CorruptVault(f"cannot read {what} {path}: {exc.strerror}") from None


def remove_home_files(paths: VaultPaths) -> None:
    """Remove what a vault creation that failed part-way wrote (never a working vault)."""
    for p in (paths.header, paths.device_key, paths.database):
        p.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(str(paths.database) + suffix).unlink(missing_ok=True)
