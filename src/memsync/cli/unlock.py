"""Getting secrets from the person (or the environment) and opening the vault with them.

The order every command uses to unlock is:
1. `MEMSYNC_PASSPHRASE` (for scripts);
2. this device's secret remembered in the OS keyring (`memsync unlock --remember`);
3. a hidden prompt, when stdin is a terminal;
4. otherwise a `VaultLocked` error saying what to do.
"""

from __future__ import annotations

import os
import sys

import click

from memsync import keystore
from memsync.crypto.device import FAST_KDF, KdfParams, check_passphrase_strength
from memsync.crypto.device import device_public_info as _device_public_info
from memsync.errors import CryptoError, VaultLocked, WeakPassphrase, WrongPassphrase
from memsync.index.embed import Embedder
from memsync.store.files import Header, VaultPaths, default_home, read_file
from memsync.vault import Vault

PASSPHRASE_ENV = "MEMSYNC_PASSPHRASE"
NEW_PASSPHRASE_ENV = "MEMSYNC_NEW_PASSPHRASE"
RECOVERY_PHRASE_ENV = "MEMSYNC_RECOVERY_PHRASE"
# TEST-ONLY switch: seal key files with FAST_KDF, which offers no real resistance to
# guessing. It exists so the CLI test-suite runs in seconds; never set it for a real vault.
TEST_FAST_KDF_ENV = "MEMSYNC_TEST_FAST_KDF"
PROMPT_TRIES = 3
LOCKED = f"vault is locked: set {PASSPHRASE_ENV} or run `memsync unlock --remember`"


def kdf_params() -> KdfParams:
    """Argon2id costs for a new key file: the real ones, unless the test-only switch is on."""
    return FAST_KDF if os.environ.get(TEST_FAST_KDF_ENV) == "1" else KdfParams()


def warn_if_test_kdf() -> None:
    """Say so when a key file was just sealed with the test-only costs."""
    if kdf_params() is FAST_KDF:
        click.echo(
            f"warning: {TEST_FAST_KDF_ENV}=1: the key file has test-only KDF costs "
            "that do not resist guessing",
            err=True,
        )


def is_interactive() -> bool:
    """Whether we may prompt: stdin is a terminal. (Tests replace this function.)"""
    return sys.stdin.isatty()


def vault_paths() -> VaultPaths:
    return VaultPaths(default_home())


def vault_and_device_ids(paths: VaultPaths) -> tuple[str, str]:
    """(vault id, device id) read from the vault's public files, without unlocking."""
    paths.require()
    header = Header.from_bytes(read_file(paths.header, "vault header"))
    device_id = _device_public_info(read_file(paths.device_key, "device key"))[0]
    return header.vault_id, device_id


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def ask_secret(prompt: str, env: str, missing: str) -> str:
    """A secret from `env`, else from a hidden prompt, else `VaultLocked(missing)`."""
    value = _env(env)
    if value is not None:
        return value
    if not is_interactive():
        raise VaultLocked(missing)
    return str(click.prompt(prompt, hide_input=True, err=True))


def ask_new_passphrase(env: str, prompt: str = "New passphrase") -> str:
    """A new passphrase: from `env` (refused if weak), or typed twice until it is strong."""
    value = _env(env)
    if value is not None:
        check_passphrase_strength(value)
        return value
    if not is_interactive():
        raise VaultLocked(f"no passphrase given: set {env} or run this in a terminal")
    while True:
        value = str(
            click.prompt(prompt, hide_input=True, err=True, confirmation_prompt=f"{prompt} (again)")
        )
        try:
            check_passphrase_strength(value)
        except WeakPassphrase as exc:
            click.echo(f"{exc}; try another one", err=True)
            continue
        return value


def open_vault(
    *, use_keyring: bool = True, embedder: Embedder | None = None, prompt: bool = True
) -> Vault:
    """Unlock the vault at `$MEMSYNC_HOME` (or the default place) as the module doc says;
    `prompt=False` never asks (a server whose stdin carries a protocol, not a person)."""
    paths = vault_paths()
    paths.require()
    passphrase = _env(PASSPHRASE_ENV)
    if passphrase is not None:
        return Vault.open(paths.home, passphrase, embedder=embedder)
    if use_keyring:
        vault_id, device_id = vault_and_device_ids(paths)
        secret = keystore.load(vault_id, device_id)
        if secret is not None:
            try:
                return Vault.open(paths.home, device_secret=secret, embedder=embedder)
            except CryptoError:
                pass  # a stale entry (e.g. after `memsync recover`): ask for the passphrase
    if not prompt or not is_interactive():
        raise VaultLocked(LOCKED)
    for attempt in range(1, PROMPT_TRIES + 1):
        typed = str(click.prompt("Passphrase", hide_input=True, err=True))
        try:
            return Vault.open(paths.home, typed, embedder=embedder)
        except WrongPassphrase:
            if attempt == PROMPT_TRIES:
                raise
            click.echo("wrong passphrase; try again", err=True)
    raise AssertionError("unreachable")
