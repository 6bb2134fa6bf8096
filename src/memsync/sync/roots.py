"""The vault's root on a remote: the header (the vault key wrapped to every device and to
the recovery phrase), named after the newest recovery phrase, so that the phrase alone
finds it (`memsync recover --from`)."""

from __future__ import annotations

from memsync.core import Core
from memsync.crypto import wrap
from memsync.errors import CryptoError, RemoteError, SyncRefused
from memsync.sync import objects
from memsync.sync.remote import Remote
from memsync.sync.report import full_header

__all__ = ["ensure_root"]


def _ours(core: Core, remote: Remote, names: list[str]) -> bool:
    """Whether the remote's other roots are this vault's under a newer phrase (replaced
    on another device, not heard of here yet): this device can open one of them."""
    for name in remote.list("r/"):
        if name in names:
            continue
        blob = remote.get(name)
        try:
            root = None if blob is None else objects.open_root(blob.data, core.device.wrap_key)
        except (SyncRefused, CryptoError):
            root = None
        if root is None or root.header.vault_id != core.header.vault_id:
            return False
    return True


def ensure_root(core: Core, remote: Remote, remote_name: str) -> int:
    """Put the root on `remote`, or bring it up to date with the devices the log knows
    and the newest phrase (deleting the roots of phrases it replaced); refuse a remote
    that holds another vault. Returns the bytes written."""
    names = [objects.root_name(k) for k in core.recovery_sign_pubs()]
    name = names[-1]
    current = remote.get(name)
    if current is None and objects.other_roots(remote.list("r/"), names):
        if _ours(core, remote, names):
            return 0  # the pull brings the newer phrase; the next sync writes its root
        raise RemoteError(f"remote {remote_name} holds another vault; use an empty folder")
    recipients = core.root_recipients()
    wanted = sorted(wrap.fingerprint(r) for r in recipients)
    if current is not None:
        try:
            root = objects.open_root(current.data, core.device.wrap_key)
            if root.recipients == wanted and root.header.vault_id == core.header.vault_id:
                return 0
        except (SyncRefused, CryptoError):
            pass  # not addressed to this device yet: it is rewritten below
    header = full_header(core)
    blob = objects.seal_root(header.to_bytes(), core.recovery_wrap_pub(), recipients)
    remote.replace(name, blob, None if current is None else current.tag)
    for old in names[:-1]:
        remote.delete(old)
    return len(blob)
