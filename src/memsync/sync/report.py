"""What a sync reports (per remote, per device), and the vault header a sync publishes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from memsync.core import Core
from memsync.crypto import wrap
from memsync.store.files import Header, header_ad
from memsync.sync.merge import Incoming

__all__ = ["FeedChange", "SyncReport", "changes_of", "full_header"]


@dataclass(frozen=True)
class FeedChange:
    """What one device's entries did here in one sync."""

    device_id: str
    device_name: str | None
    entries: int
    added: int = 0
    updated: int = 0
    forgotten: int = 0
    conversations: int = 0


@dataclass(frozen=True)
class SyncReport:
    """The outcome of `Vault.sync` with one remote."""

    remote: str
    pushed: int
    pulled: int
    changes: tuple[FeedChange, ...] = ()
    rebuilt: bool = False
    waiting: tuple[str, ...] = field(default=())
    bytes_up: int = 0
    bytes_down: int = 0
    chain: tuple[str, ...] = ()  # what anchoring after the sync did


def full_header(core: Core) -> Header:
    """The header with the vault key wrapped to every device the log knows, and the
    recovery identity's copy taken from this device's header."""
    ad = header_ad(core.header.vault_id, core.header.epoch)
    stanzas = [s for s in core.header.stanzas if s.kind == "recovery"]
    rotated = core.conn.execute("SELECT 1 FROM rotations").fetchone()
    recovery = core.recovery_wrap_pub()
    if rotated and recovery is not None:
        # The recovery phrase was replaced: only the newest one opens the root.
        stanzas = [wrap.wrap_key(core.vault_key, X25519PublicKey.from_public_bytes(recovery),
                                 kind="recovery", ad=ad)]  # fmt: skip
    for key in core.members().values():
        stanzas.append(wrap.wrap_key(core.vault_key, key, kind="device", ad=ad))
    return replace(core.header, stanzas=tuple(stanzas))


def changes_of(core: Core, incoming: list[Incoming]) -> tuple[FeedChange, ...]:
    by_device: dict[str, Counter[str]] = {}
    names: dict[str, str | None] = {}
    for item in incoming:
        counts = by_device.setdefault(item.entry.device_id, Counter())
        counts["entries"] += 1
        kind = item.op.get("op")
        counts[
            {
                "add_memory": "added",
                "edit_memory": "updated",
                "set_status": "updated",
                "forget_memory": "forgotten",
                "add_source": "conversations",
            }.get(str(kind), "")
        ] += 1
        if kind == "add_device":
            names[item.entry.device_id] = item.op.get("name")
    for device, name in core.conn.execute("SELECT device_id, name FROM devices"):
        names.setdefault(str(device), None if name is None else str(name))
    return tuple(
        FeedChange(
            d,
            names.get(d),
            c["entries"],
            c["added"],
            c["updated"],
            c["forgotten"],
            c["conversations"],
        )
        for d, c in sorted(by_device.items())
    )
