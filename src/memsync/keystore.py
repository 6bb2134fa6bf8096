"""Remembering a device's secret in the OS keyring (opt-in: `memsync unlock --remember`).

Only used where the `keyring` package finds a real backend; on a machine without one,
remembering fails with a clear message and nothing is stored anywhere else.
"""

from __future__ import annotations

import base64

from memsync.errors import UsageError

SERVICE = "memsync"


def _backend_ok() -> bool:
    import keyring
    from keyring.backends import fail

    return not isinstance(keyring.get_keyring(), fail.Keyring)


def _user(vault_id: str, device_id: str) -> str:
    return f"{vault_id}/{device_id}"


def store(vault_id: str, device_id: str, secret: bytes) -> None:
    import keyring
    from keyring.errors import KeyringError

    if not _backend_ok():
        raise UsageError("no OS keyring is available on this machine; use MEMSYNC_PASSPHRASE")
    try:
        keyring.set_password(SERVICE, _user(vault_id, device_id), base64.b64encode(secret).decode())
    except KeyringError as exc:  # e.g. a locked keychain, or the user said no
        raise UsageError(f"the OS keyring did not store the key: {exc}") from None


def load(vault_id: str, device_id: str) -> bytes | None:
    import keyring

    if not _backend_ok():
        return None
    try:
        value = keyring.get_password(SERVICE, _user(vault_id, device_id))
    except Exception:
        return None
    return None if value is None else base64.b64decode(value)


def delete(vault_id: str, device_id: str) -> bool:
    import keyring
    from keyring.errors import PasswordDeleteError

    if not _backend_ok():
        return False
    try:
        keyring.delete_password(SERVICE, _user(vault_id, device_id))
    except PasswordDeleteError:
        return False
    return True
