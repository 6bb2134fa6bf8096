"""What a pull may believe: which devices' signatures count, and whether the heads the
checkpoints name agree with the entries this device holds."""

from __future__ import annotations

import base64
import json

from memsync.core import Core
from memsync.log import verify
from memsync.log.oplog import Entry
from memsync.sync.objects import Checkpoint

__all__ = ["disagreement", "trusted_keys"]


def trusted_keys(
    core: Core, fetched: dict[str, list[Entry]], decrypted: dict[tuple[str, int], dict[str, object]]
) -> dict[str, bytes]:
    """Signing keys of every device the log (with what arrived) proves is the vault's:
    the same rule `check` applies, never a key merely found on the remote."""
    entries: list[Entry] = []
    ops: list[dict[str, object] | None] = []
    for (device,) in core.conn.execute("SELECT device_id FROM devices").fetchall():
        e = core.log.entry(str(device), 1)
        if e is not None:
            entries.append(e)
            ops.append(core.log.decrypt(e, core.log_key))
    for device, feed in fetched.items():
        for e in feed:  # their declarations, and the devices they enrol
            if (device, e.seq) in decrypted:  # not those a revoked device wrote late
                entries.append(e)
                ops.append(decrypted[(device, e.seq)])
    order = sorted(
        range(len(entries)), key=lambda i: (entries[i].hlc, entries[i].device_id, entries[i].seq)
    )
    enrolled = {
        str(d): (str(w), str(s))
        for d, w, s in core.conn.execute("SELECT device_id, wrap_pub, sign_pub FROM enrolments")
    }
    rotations = [
        (base64.b64decode(str(k)), frozenset(json.loads(d)))
        for k, d in core.conn.execute("SELECT sign_pub, devices FROM rotations ORDER BY at, epoch")
    ]
    keys, _ = verify.trusted_devices(
        [entries[i] for i in order],
        [ops[i] for i in order],
        core.header.vault_id,
        enrolled,
        rotations,
    )
    return keys


def disagreement(
    core: Core,
    checkpoints: dict[str, Checkpoint],
    local: dict[str, tuple[int, bytes]],
    fetched: dict[str, list[Entry]],
) -> tuple[str, str, int, str, str] | None:
    """(signer, feed, seq, their hash, our hash) of the first head a checkpoint names that
    differs from the entry this device holds (or just received) there; None if all agree."""
    vid = core.header.vault_id
    have: dict[tuple[str, int], str] = {}
    for device, entries in fetched.items():
        for e in entries:
            have[(device, e.seq)] = e.hash(vid).hex()
    for signer, cp in checkpoints.items():
        for feed, (seq, digest) in cp.heads.items():
            if seq == 0:
                continue
            found = have.get((feed, seq))
            if found is None and seq <= local.get(feed, (0, b""))[0]:
                mine = core.log.entry(feed, seq)
                found = None if mine is None else mine.hash(vid).hex()
            if found is not None and found != digest:
                return signer, feed, seq, digest, found
    return None
