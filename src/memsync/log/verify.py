"""Verifying a vault: every feed's signatures and hash chains, the devices the log proves
belong to the vault (endorsed by the recovery key), and a rebuild of the state from the
log alone, compared by digest with the live state. `Vault.check` calls `check`."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import apsw

from memsync.crypto.device import verify
from memsync.errors import CryptoError, IntegrityError, MemsyncError
from memsync.log import oplog
from memsync.model import CheckReport, LogProblem
from memsync.store import db, state

Progress = Callable[[int, int], None]

__all__ = ["check", "endorsement", "trusted_devices", "verify_endorsement"]


def endorsement(vault_id: str, op: dict[str, Any]) -> bytes:
    """What the recovery key signs to endorse the device an `add_device` op declares."""
    return b"|".join(
        [
            b"memsync/v1/endorse",
            vault_id.encode(),
            op["device_id"].encode(),
            op["wrap_pub"].encode(),
            op["sign_pub"].encode(),
        ]
    )


def verify_endorsement(public: bytes, op: dict[str, Any], vault_id: str) -> bool:
    sig = op.get("endorsement")
    return isinstance(sig, str) and verify(public, base64.b64decode(sig), endorsement(vault_id, op))


def check(
    conn: apsw.Connection,
    log: oplog.OpLog,
    log_key: bytes,
    vault_id: str,
    progress: Progress | None = None,
) -> CheckReport:
    """Verify every feed of `log` and rebuild the state from it; see `Vault.check`."""
    problems: list[LogProblem] = []
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
    except apsw.Error as exc:
        return CheckReport(0, 0, (LogProblem("database", f"unreadable: {exc}"),))
    if integrity != [("ok",)]:
        problems.append(LogProblem("database", "; ".join(str(r[0]) for r in integrity[:3])))
    try:
        entries = log.entries()
        stored = {
            (str(r[0]), int(r[1])): bytes(r[2])
            for r in conn.execute("SELECT device_id, seq, hash FROM oplog")
        }
    except (IntegrityError, UnicodeDecodeError, TypeError, ValueError, apsw.Error) as exc:
        # A damaged page the integrity check did not reach is found here instead.
        problems.append(LogProblem("log", f"unreadable: {exc}"))
        try:
            live = state.digest(conn)
        except apsw.Error:
            live = ""
        return CheckReport(0, 0, tuple(problems), live, "")
    # One slot per entry (None where it does not decrypt), so ops stay beside entries.
    decrypted: list[dict[str, Any] | None] = []
    shredded = log.shredded()
    for e in entries:
        if stored.get((e.device_id, e.seq)) != e.hash(vault_id):
            problems.append(LogProblem(f"feed {e.device_id} entry {e.seq}", "hash mismatch"))
        if (e.device_id, e.seq) in shredded:
            # Forgotten: its key is destroyed on purpose. Its signature and place in the
            # hash chain are still checked; what it did, the forget undid.
            decrypted.append(None)
            continue
        try:
            decrypted.append(log.decrypt(e, log_key))
        except CryptoError as exc:
            decrypted.append(None)
            problems.append(LogProblem(f"feed {e.device_id} entry {e.seq}", str(exc)))
    ops = admitted(
        [e for e, op in zip(entries, decrypted, strict=True) if op is not None],
        [op for op in decrypted if op is not None],
    )
    sign_keys, device_problems = trusted_devices(entries, decrypted, vault_id)
    problems += device_problems
    problems += oplog.verify_feeds(entries, vault_id, sign_keys)
    rebuilt = db.open_memory()
    try:
        for i, op in enumerate(ops):
            state.apply(rebuilt, op)
            if progress:
                progress(i + 1, len(ops))
        rebuilt_digest = state.digest(rebuilt)
    except (MemsyncError, KeyError, TypeError, ValueError, AttributeError) as exc:
        problems.append(LogProblem("rebuild", f"replay failed: {exc!r}"))
        rebuilt_digest = ""
    finally:
        rebuilt.close()
    live = state.digest(conn)
    if rebuilt_digest and rebuilt_digest != live:
        problems.append(LogProblem("rebuild", "state rebuilt from the log differs"))
    return CheckReport(len(entries), len(sign_keys), tuple(problems), live, rebuilt_digest)


def revocation_cutoffs(
    ops: Iterable[dict[str, Any]], known: dict[str, int] | None = None
) -> dict[str, int]:
    """For each revoked device, the last entry of its feed that counts (`known` adds
    revocations already applied)."""
    cutoffs = dict(known or {})
    for op in ops:
        if op.get("op") == "revoke_device":
            target, upto = str(op["device_id"]), int(op["seq"])
            cutoffs[target] = min(cutoffs.get(target, upto), upto)
    return cutoffs


def admitted(entries: list[oplog.Entry], ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operations that count, in replay order: all but those a revoked device wrote
    after the entry its revocation names."""
    cutoffs = revocation_cutoffs(ops)
    return [
        op
        for e, op in zip(entries, ops, strict=True)
        if e.device_id not in cutoffs or e.seq <= cutoffs[e.device_id]
    ]


def trusted_devices(
    entries: list[oplog.Entry],
    ops: list[dict[str, Any] | None],
    vault_id: str,
    enrolled: dict[str, tuple[str, str]] | None = None,
    rotations: Sequence[tuple[bytes, frozenset[str]]] = (),
) -> tuple[dict[str, bytes], list[LogProblem]]:
    """Signing keys of the devices the log proves belong to this vault.

    The genesis device declares the recovery key; any later device must carry an
    endorsement by it, or have been enrolled (`enrol_device`, after pairing) by a device
    already trusted. A device's declaration must be the first entry of its feed.
    `ops[i]` is the decrypted operation of `entries[i]`, or None if it did not decrypt;
    `enrolled` holds enrolments already verified (device → (wrap_pub, sign_pub) base64),
    `rotations` recovery keys already verified (key, the devices its rotation kept).
    """
    keys: dict[str, bytes] = {}
    problems: list[LogProblem] = []
    recovery_pub: bytes | None = None
    enrolled = dict(enrolled or {})
    # Recovery keys after the genesis one, each with the devices it kept trusting.
    rotated: list[tuple[bytes, frozenset[str]]] = list(rotations)
    endorsed_by: dict[str, bytes] = {}
    for e, op in zip(entries, ops, strict=True):
        if op is None:
            continue
        if op.get("op") == "enrol_device" and e.device_id in keys:
            with contextlib.suppress(KeyError, TypeError):
                enrolled[str(op["device_id"])] = (str(op["wrap_pub"]), str(op["sign_pub"]))
            continue
        if op.get("op") == "rotate_recovery" and e.device_id in keys:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                new = base64.b64decode(op["recovery_sign_pub"], validate=True)
                if new not in (k for k, _ in rotated):
                    rotated.append((new, frozenset(str(d) for d in op["devices"])))
            continue
        if op.get("op") != "add_device":
            continue
        where = f"feed {e.device_id} entry {e.seq}"
        try:
            if op["device_id"] != e.device_id or e.seq != 1:
                problems.append(LogProblem(where, "device declared outside its own feed"))
                continue
            if recovery_pub is None and "recovery_sign_pub" in op and not keys:
                recovery_pub = base64.b64decode(op["recovery_sign_pub"], validate=True)
            elif enrolled.get(e.device_id) == (op["wrap_pub"], op["sign_pub"]):
                pass  # let in by a trusted device after the person compared safety codes
            else:
                signer = next(
                    (
                        k
                        for k in (recovery_pub, *(k for k, _ in rotated))
                        if k is not None and verify_endorsement(k, op, vault_id)
                    ),
                    None,
                )
                if signer is None:
                    problems.append(LogProblem(where, "device not endorsed by the recovery key"))
                    continue
                endorsed_by[e.device_id] = signer
            keys[e.device_id] = base64.b64decode(op["sign_pub"], validate=True)
        except (KeyError, TypeError, ValueError, AttributeError):
            problems.append(LogProblem(where, "malformed device declaration"))
    # A phrase that was replaced endorses no device the newest rotation did not keep:
    # whoever holds the old phrase cannot bring a device in afterwards.
    if rotated:
        newest, kept = rotated[-1]
        for device, signer in endorsed_by.items():
            if signer != newest and device not in kept:
                keys.pop(device, None)
                problems.append(
                    LogProblem(f"feed {device}", "endorsed by a recovery phrase since replaced")
                )
    return keys, problems
