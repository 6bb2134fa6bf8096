"""Forgetting on a remote: the key objects lose the record keys a forget destroyed.

A segment is immutable and may be kept forever; the record keys of its entries live in
its key object, which is overwritten without the shredded ones, on every remote this
device syncs with. A reader then finds those entries without keys, and accepts them
only because a signed forget (or shred) operation names them (`unnamed`); any other
entry without its key is a remote withholding it, and is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from memsync.core import Core
from memsync.errors import SyncRefused
from memsync.store.forgetting import named
from memsync.sync import objects
from memsync.sync.objects import SyncKeys
from memsync.sync.remote import Conflict, Remote

__all__ = ["record_segments", "rewrite_keys", "unnamed"]


def unnamed(
    core: Core,
    unkeyed: Sequence[tuple[str, int]],
    decrypted: dict[tuple[str, int], dict[str, object]],
) -> list[tuple[str, int]]:
    """The entries in `unkeyed` (they came without a key that opens them) that no forget
    in the log, or among the arrived entries, names."""
    if not unkeyed:
        return []
    names = {
        (str(d), int(s)) for d, s in core.conn.execute("SELECT device_id, seq FROM shred_names")
    }
    for op in decrypted.values():
        names.update(named(dict(op)))
    return [e for e in unkeyed if e not in names]


def record_segments(core: Core, remote: str, segments: Iterable[tuple[str, int, int, str]]) -> None:
    """Remember which segment holds which entries of a feed on `remote` (as read)."""
    rows = [(remote, d, first, last, name) for d, first, last, name in segments]
    if rows:
        with core.db.write() as w:
            w.executemany(
                "INSERT OR REPLACE INTO sync_segments(remote, device_id, first, last, segment) "
                "VALUES(?,?,?,?,?)",
                rows,
            )


def _segments(core: Core, remote: str, device: str, seqs: set[int]) -> set[str]:
    if device == core.device.device_id:
        rows = core.conn.execute(
            "SELECT first, seq, segment FROM sync_pushed WHERE remote=?", (remote,)
        ).fetchall()
    else:
        rows = core.conn.execute(
            "SELECT first, last, segment FROM sync_segments WHERE remote=? AND device_id=?",
            (remote, device),
        ).fetchall()
    return {str(seg) for first, last, seg in rows if any(first <= s <= last for s in seqs)}


def rewrite_keys(
    core: Core, store: Remote, remote: str, keys: SyncKeys, all_keys: Sequence[SyncKeys]
) -> int:
    """Overwrite the key objects on `store` that still hold shredded keys; returns the
    bytes written. What is left pending (a remote that is down) is tried again."""
    pending: dict[str, set[int]] = {}
    for d, s in core.conn.execute(
        "SELECT device_id, seq FROM shred_pending WHERE remote=?", (remote,)
    ).fetchall():
        pending.setdefault(str(d), set()).add(int(s))
    if not pending:
        return 0
    gone = core.log.shredded()
    rewritten = 0
    for device, seqs in sorted(pending.items()):
        for segment in sorted(_segments(core, remote, device, seqs)):
            name = keys.keys_name(segment)
            for _ in range(3):
                got = store.get(name)
                if got is None:
                    break
                try:
                    held = objects.open_keys(got.data, segment, all_keys)
                except SyncRefused:
                    break  # not ours to read: nothing of ours to remove either
                kept = {s: k for s, k in held.items() if (device, s) not in gone}
                if len(kept) == len(held):
                    break
                blob = objects.seal_keys(keys, segment, kept)
                try:
                    store.replace(name, blob, got.tag)
                except Conflict:
                    continue
                rewritten += len(blob)
                break
    with core.db.write() as w:
        w.executemany(
            "DELETE FROM shred_pending WHERE remote=? AND device_id=? AND seq=?",
            [(remote, d, s) for d, ss in pending.items() for s in ss],
        )
    return rewritten
