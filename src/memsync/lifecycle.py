"""Creating, unlocking and recovering a vault: the header's wrapped copies of the vault
key, the keys derived from it, and each device's declaration in the log.

The first device declares the recovery signing key; a device enrolled by `recover` is
endorsed by it (see `log.verify`). `Vault.create`, `Vault.open` and `Vault.recover`
call these functions, which return the unlocked `Core` the vault is built on.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

import apsw

from memsync import codec
from memsync.core import Core, db_key
from memsync.crypto import aead, phrase, wrap
from memsync.crypto.device import (
    DeviceKeys,
    KdfParams,
    check_passphrase_strength,
    device_public_info,
    generate_device,
    open_device,
    seal_device,
)
from memsync.errors import (
    BadRecoveryPhrase,
    CorruptVault,
    CryptoError,
    IntegrityError,
    UsageError,
)
from memsync.index.embed import Embedder
from memsync.index.embedders import embedder_for
from memsync.log.verify import endorsement
from memsync.store import db
from memsync.store.connections import Database
from memsync.store.files import (
    Header,
    VaultPaths,
    default_home,
    header_ad,
    read_file,
    remove_home_files,
    write_atomic,
)

__all__ = ["attach", "create", "database_for", "device_op", "open_vault", "recover"]


def _recovery_wrap_pub(words: str) -> bytes:
    return phrase.recovery_identity(words).public_key().public_bytes_raw()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def device_op(keys: DeviceKeys, at: int, name: str | None, **extra: Any) -> dict[str, Any]:
    """The `add_device` operation that declares `keys` in the log."""
    return {
        "op": "add_device",
        "device_id": keys.device_id,
        "wrap_pub": _b64(keys.wrap_public.public_bytes_raw()),
        "sign_pub": _b64(keys.sign_public.public_bytes_raw()),
        "name": name,
        "at": at,
        **extra,
    }


def create(
    home: str | Path | None,
    passphrase: str,
    *,
    embedder: Embedder | None,
    kdf: KdfParams,
    device_name: str | None,
    recovery_phrase: str | None,
) -> tuple[Core, str]:
    """A new vault and its recovery phrase; see `Vault.create`."""
    check_passphrase_strength(passphrase)
    paths = VaultPaths(Path(home) if home else default_home())
    paths.require_absent()
    words = (
        phrase.normalize_phrase(recovery_phrase)
        if recovery_phrase
        else (phrase.new_recovery_phrase())
    )
    emb = embedder or embedder_for(None)
    keys = generate_device()
    vault_id = "v-" + secrets.token_hex(8)
    vault_key = secrets.token_bytes(aead.KEY_BYTES)
    ad = header_ad(vault_id, 0)
    header = Header(
        vault_id,
        0,
        (
            wrap.wrap_key(vault_key, keys.wrap_public, kind="device", ad=ad),
            wrap.wrap_key(
                vault_key, phrase.recovery_identity(words).public_key(), kind="recovery", ad=ad
            ),
        ),
    )
    paths.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    core: Core | None = None
    try:
        conn = db.open_encrypted(paths.database, db_key(vault_key), create=True)
        with conn:
            db.write_meta(conn, "vault_id", vault_id)
            db.write_meta(conn, "embedder", emb.name)
            db.write_meta(conn, "recovery_wrap_pub", _recovery_wrap_pub(words).hex())
        core = Core(paths, database_for(paths, vault_key, conn), header, keys, vault_key, emb)
        recovery_pub = phrase.recovery_signing_key(words).public_key().public_bytes_raw()
        core.commit(
            [
                device_op(
                    keys,
                    codec.to_ms(core.clock()),
                    device_name,
                    recovery_sign_pub=_b64(recovery_pub),
                )
            ]
        )
        write_atomic(paths.device_key, seal_device(keys, passphrase, kdf))
        write_atomic(paths.header, header.to_bytes())
    except BaseException:
        if core is not None:
            core.close()
        remove_home_files(paths)
        raise
    return core, words


def open_vault(
    home: str | Path | None,
    passphrase: str | None,
    *,
    device_secret: bytes | None,
    embedder: Embedder | None,
) -> Core:
    """The vault unlocked with a passphrase or a device secret; see `Vault.open`."""
    paths = VaultPaths(Path(home) if home else default_home())
    paths.require()
    header = Header.from_bytes(read_file(paths.header, "vault header"))
    blob = read_file(paths.device_key, "device key")
    if device_secret is not None:
        device_id = device_public_info(blob)[0]
        keys = DeviceKeys.from_secret_bytes(device_id, device_secret)
    elif passphrase is not None:
        keys = open_device(blob, passphrase)
    else:
        raise UsageError("a passphrase or a device secret is needed to open the vault")
    vault_key = wrap.find_and_unwrap(
        header.stanzas, keys.wrap_key, header_ad(header.vault_id, header.epoch)
    )
    return attach(paths, header, keys, vault_key, embedder)


def database_for(paths: VaultPaths, vault_key: bytes, first: apsw.Connection) -> Database:
    key = db_key(vault_key)

    def opener(busy_timeout_ms: int) -> apsw.Connection:
        return db.open_encrypted(paths.database, key, create=False, busy_timeout_ms=busy_timeout_ms)

    return Database(opener, first=first)


def attach(
    paths: VaultPaths,
    header: Header,
    keys: DeviceKeys,
    vault_key: bytes,
    embedder: Embedder | None,
) -> Core:
    """Open the database with the unwrapped vault key and build the core on it."""
    conn = db.open_encrypted(paths.database, db_key(vault_key), create=False)
    try:
        if db.read_meta(conn, "vault_id") != header.vault_id:
            raise IntegrityError("the vault database belongs to another vault")
        stored = db.read_meta(conn, "embedder")
        emb = embedder or embedder_for(stored)
    except apsw.Error as exc:
        # A damaged page past the first is only found when a query first reads it.
        conn.close()
        raise CorruptVault(
            f"cannot read the vault database ({type(exc).__name__}): damaged"
        ) from None
    except BaseException:
        conn.close()
        raise
    core = Core(paths, database_for(paths, vault_key, conn), header, keys, vault_key, emb)
    try:
        if stored != emb.name:
            core.reindex()
    except apsw.Error as exc:
        core.close()
        raise CorruptVault(
            f"cannot read the vault database ({type(exc).__name__}): damaged"
        ) from None
    except BaseException:
        core.close()
        raise
    return core


def recover(
    home: str | Path | None,
    recovery_phrase: str,
    new_passphrase: str,
    *,
    kdf: KdfParams,
    embedder: Embedder | None,
) -> Core:
    """The vault opened with its recovery phrase, this device enrolled anew; see
    `Vault.recover`."""
    check_passphrase_strength(new_passphrase)
    paths = VaultPaths(Path(home) if home else default_home())
    paths.require()
    words = phrase.normalize_phrase(recovery_phrase)
    header = Header.from_bytes(read_file(paths.header, "vault header"))
    ad = header_ad(header.vault_id, header.epoch)
    try:
        vault_key = wrap.find_and_unwrap(header.stanzas, phrase.recovery_identity(words), ad)
    except CryptoError:
        raise BadRecoveryPhrase("this recovery phrase does not open this vault") from None
    keys = generate_device()
    core = attach(paths, header, keys, vault_key, embedder)
    op = device_op(keys, codec.to_ms(core.clock()), "recovered")
    op["endorsement"] = _b64(
        phrase.recovery_signing_key(words).sign(endorsement(header.vault_id, op))
    )
    stanzas = (
        *(s for s in header.stanzas if s.kind != "device"),
        wrap.wrap_key(vault_key, keys.wrap_public, kind="device", ad=ad),
    )
    new_header = replace(header, stanzas=stanzas)
    try:
        core.commit([op])
        with core.db.write() as conn:
            db.write_meta(conn, "recovery_wrap_pub", _recovery_wrap_pub(words).hex())
        core.take_epoch_keys(phrase.recovery_identity(words))
        write_atomic(paths.device_key, seal_device(keys, new_passphrase, kdf))
        write_atomic(paths.header, new_header.to_bytes())
    except BaseException:
        core.close()
        raise
    core.header = new_header
    return core
