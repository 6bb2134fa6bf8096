"""Property-based tests of the operation log: it rebuilds the state, and tampering shows.

Every example builds a real vault (encrypted SQLite, real keys, fast KDF) by applying a
random sequence of operations through the Vault API, sometimes switching to a new device
enrolled with the recovery phrase so the log has several feeds. The tamper properties
then act as an attacker who holds the database key and edits the `oplog` table directly.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import FAST_TMP, PASSPHRASE, FixedClock, create_vault, open_vault
from memsync.crypto import aead
from memsync.crypto.device import FAST_KDF
from memsync.index.embed import HashEmbedder
from memsync.log import oplog
from memsync.model import Category, Kind, Message, Status
from memsync.store import db, state
from memsync.vault import Vault

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Operations, as data.

WORDS = ["tea", "cello", "Lisbon", "nurse", "bees", "marathon", "peanuts", "Oslo", "cat", "été"]
words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
tags = st.lists(st.sampled_from(["work", "home", "Trip", "x y"]), max_size=3)
add_op = st.tuples(
    st.just("add"),
    st.sampled_from(list(Kind)),
    st.none() | st.sampled_from(list(Category)),
    tags,
    words,
)
edit_op = st.tuples(st.just("edit"), st.integers(0, 50), words)
forget_op = st.tuples(st.just("forget"), st.integers(0, 50))
message = st.builds(Message, st.sampled_from(["user", "assistant", "system", "tool"]), words)
ingest_op = st.tuples(st.just("ingest"), st.lists(message, min_size=1, max_size=3))
device_op = st.tuples(st.just("new_device"))
operations = st.lists(
    st.one_of(add_op, add_op, edit_op, forget_op, ingest_op, device_op), max_size=12
)


@dataclass
class Built:
    """A vault built from operations, and where it lives."""

    home: Path
    vault: Vault
    recovery_phrase: str
    passphrase: str = PASSPHRASE
    devices: int = 1
    memories: list[str] = field(default_factory=list)


def apply_ops(built: Built, ops: list[tuple[Any, ...]]) -> None:
    for op in ops:
        v = built.vault
        if op[0] == "add":
            _, kind, category, tag_list, text = op
            built.memories.append(v.add(text, kind=kind, category=category, tags=tag_list).id)
        elif op[0] == "edit":
            active = [m for m in built.memories if v.get(m).status is Status.ACTIVE]
            if active:
                target = active[op[1] % len(active)]
                if v.get(target).text != op[2]:
                    built.memories.append(v.edit(target, text=op[2]).id)
        elif op[0] == "forget":
            alive = [m for m in built.memories if v.get(m).status is not Status.FORGOTTEN]
            if alive:
                v.forget(alive[op[1] % len(alive)])
        elif op[0] == "ingest":
            v.ingest(op[1])
        elif op[0] == "new_device":
            v.close()
            built.passphrase = f"device number {built.devices} pass phrase"
            built.vault = Vault.recover(
                built.home,
                built.recovery_phrase,
                built.passphrase,
                kdf=FAST_KDF,
                embedder=HashEmbedder(),
            )
            built.devices += 1
        else:  # pragma: no cover
            raise AssertionError(op)


@contextmanager
def built_vault(ops: list[tuple[Any, ...]], *, frozen_clock: bool = False) -> Iterator[Built]:
    """A vault built from `ops`; with `frozen_clock` every record gets the same times."""
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        home = Path(tmp) / "v"
        made = create_vault(home)
        built = Built(home, made.vault, made.recovery_phrase)
        if frozen_clock:
            built.vault.clock = FixedClock(T0)
        try:
            # At least one operation after the genesis entry, so every feed-0 tamper has room.
            built.memories.append(built.vault.add("first memory").id)
            apply_ops(built, ops)
            yield built
        finally:
            built.vault.close()


# The log rebuilds the state.


@SETTINGS
@given(ops=operations)
def test_any_sequence_of_operations_rebuilds_to_the_live_state(ops: list[tuple[Any, ...]]) -> None:
    with built_vault(ops) as built:
        report = built.vault.check()
        assert report.ok, report.problems
        assert report.state_digest == report.rebuilt_digest
        assert report.devices == built.devices
        assert report.entries == built.vault.log.count()
        live = report.state_digest
        built.vault.close()
        built.vault = open_vault(built.home, built.passphrase)
        assert state.digest(built.vault.conn) == live
        again = built.vault.check()
        assert again.ok, again.problems
        assert again.state_digest == live


def decrypted_ops(vault: Vault) -> list[dict[str, Any]]:
    return [vault.log.decrypt(e, vault.core.log_key) for e in vault.log.entries()]


def replay(ops: list[dict[str, Any]]) -> str:
    conn = db.open_memory()
    try:
        for op in ops:
            state.apply(conn, op)
        return state.digest(conn)
    finally:
        conn.close()


# Few texts and one frozen clock, so records that differ only in kind, category or
# tags often share their text and times: the digest must not depend on their row order.
same_text_add = st.tuples(
    st.just("add"),
    st.sampled_from(list(Kind)),
    st.none() | st.sampled_from([Category.CAREER, Category.TRAVEL]),
    tags,
    st.sampled_from(["tea", "cat"]),
)
independent = st.lists(st.one_of(add_op, same_text_add, ingest_op), min_size=2, max_size=10)


@SETTINGS
@given(ops=independent, seed=st.randoms(use_true_random=False))
def test_independent_operations_replay_to_the_same_state_in_any_order(
    ops: list[tuple[Any, ...]], seed: random.Random
) -> None:
    """Adds and ingests commute: the digest ignores row ids and insertion order."""
    with built_vault(ops, frozen_clock=True) as built:
        log_ops = decrypted_ops(built.vault)
        assert replay(log_ops) == state.digest(built.vault.conn)
        shuffled = list(log_ops)
        seed.shuffle(shuffled)
        assert replay(shuffled) == state.digest(built.vault.conn)
        # Replaying the whole log twice is a no-op the second time.
        assert replay(log_ops + shuffled) == state.digest(built.vault.conn)


@SETTINGS
@given(ops=operations, seed=st.randoms(use_true_random=False))
def test_feeds_verify_whatever_order_entries_arrive_in(
    ops: list[tuple[Any, ...]], seed: random.Random
) -> None:
    with built_vault(ops) as built:
        v = built.vault
        keys = {
            str(d): bytes(k) for d, k in v.conn.execute("SELECT device_id, sign_pub FROM devices")
        }
        entries = v.log.entries()
        seed.shuffle(entries)
        assert oplog.verify_feeds(entries, v.header.vault_id, keys) == []
        # Signed by a device the vault does not know: refused.
        stranger = {d: k for d, k in keys.items() if d != entries[0].device_id}
        assert oplog.verify_feeds(entries, v.header.vault_id, stranger)
        # The same log read as another vault's: every signature fails.
        assert oplog.verify_feeds(entries, "v-0000000000000000", keys)


# Tampering, as an attacker who holds the database key and edits the oplog table.

FIELDS = [
    "device_id",
    "seq",
    "prev_hash",
    "hlc",
    "epoch",
    "heads",
    "ciphertext",
    "signature",
    "hash",
]


def rows(vault: Vault) -> list[tuple[str, int]]:
    return [
        (str(d), int(s))
        for d, s in vault.conn.execute("SELECT device_id, seq FROM oplog ORDER BY hlc")
    ]


def flip_bit(vault: Vault, device: str, seq: int, column: str, bit: int) -> bool:
    """Flip one bit of one stored field; False if the result cannot be stored (key clash)."""
    (value,) = vault.conn.execute(
        f"SELECT {column} FROM oplog WHERE device_id=? AND seq=?", (device, seq)
    ).fetchone()
    if isinstance(value, int):
        new: Any = value ^ (1 << (bit % 64))
        if new >= 1 << 63:  # SQLite integers are signed 64-bit: the top bit makes it negative
            new -= 1 << 64
        sql = f"UPDATE oplog SET {column}=? WHERE device_id=? AND seq=?"
    else:
        raw = bytearray(value.encode() if isinstance(value, str) else value)
        raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
        new = bytes(raw)
        # Text columns get the raw bytes back as text, valid UTF-8 or not.
        cast = "CAST(? AS TEXT)" if isinstance(value, str) else "?"
        sql = f"UPDATE oplog SET {column}={cast} WHERE device_id=? AND seq=?"
    try:
        with vault.conn:
            vault.conn.execute(sql, (new, device, seq))
    except apsw.ConstraintError:
        return False
    return True


def assert_rejected(vault: Vault) -> None:
    report = vault.check()
    assert not report.ok
    assert report.problems


@SETTINGS
@given(
    ops=operations,
    which=st.integers(0, 1000),
    column=st.sampled_from(FIELDS),
    bit=st.integers(0, 100_000),
)
def test_a_flipped_bit_in_any_stored_field_is_reported(
    ops: list[tuple[Any, ...]], which: int, column: str, bit: int
) -> None:
    with built_vault(ops) as built:
        v = built.vault
        device, seq = rows(v)[which % len(rows(v))]
        stored = flip_bit(v, device, seq, column, bit)
        assume(stored)
        assert_rejected(v)


@pytest.mark.parametrize("column", FIELDS)
def test_every_bit_position_class_of_each_field_is_reported(column: str) -> None:
    """Deterministic sweep: low, middle and top bits of every field of several entries."""
    ops: list[tuple[Any, ...]] = [
        ("add", Kind.SEMANTIC, None, ["t"], "tea"),
        ("new_device",),
        ("add", Kind.EPISODIC, Category.TRAVEL, [], "Oslo"),
        ("edit", 0, "green tea"),
        ("ingest", [Message("user", "hello bees")]),
    ]
    with built_vault(ops) as built:
        v = built.vault
        snapshot = v.conn.execute("SELECT * FROM oplog").fetchall()
        for device, seq in rows(v):
            for bit in (0, 7, 62, 63, 64 * 8 + 3, 10**5):
                if not flip_bit(v, device, seq, column, bit):
                    continue
                assert_rejected(v)
                with v.conn:
                    v.conn.execute("DELETE FROM oplog")
                    v.conn.executemany(
                        f"INSERT INTO oplog VALUES({','.join('?' * len(snapshot[0]))})", snapshot
                    )
                assert v.check().ok


def feed_rows(vault: Vault) -> dict[str, list[int]]:
    feeds: dict[str, list[int]] = {}
    for device, seq in vault.conn.execute("SELECT device_id, seq FROM oplog ORDER BY seq"):
        feeds.setdefault(str(device), []).append(int(seq))
    return feeds


@SETTINGS
@given(ops=operations, pick=st.integers(0, 1000), other=st.integers(0, 1000))
def test_swapping_two_entries_sequence_numbers_is_reported(
    ops: list[tuple[Any, ...]], pick: int, other: int
) -> None:
    with built_vault(ops) as built:
        v = built.vault
        feeds = [(d, seqs) for d, seqs in feed_rows(v).items() if len(seqs) >= 2]
        device, seqs = feeds[pick % len(feeds)]
        a = seqs[other % len(seqs)]
        b = seqs[(other + 1 + pick % (len(seqs) - 1)) % len(seqs)]
        assert a != b
        with v.conn:
            v.conn.execute("UPDATE oplog SET seq=-1 WHERE device_id=? AND seq=?", (device, a))
            v.conn.execute("UPDATE oplog SET seq=? WHERE device_id=? AND seq=?", (a, device, b))
            v.conn.execute("UPDATE oplog SET seq=? WHERE device_id=? AND seq=-1", (b, device))
        assert_rejected(v)


@SETTINGS
@given(ops=operations, pick=st.integers(0, 1000))
def test_swapping_two_entries_clocks_is_reported(ops: list[tuple[Any, ...]], pick: int) -> None:
    """Reordering replay (the hybrid clock decides it) breaks the signatures."""
    with built_vault(ops) as built:
        v = built.vault
        entries = v.log.entries()
        i = pick % (len(entries) - 1)
        a, b = entries[i], entries[i + 1]
        with v.conn:
            v.conn.execute(
                "UPDATE oplog SET hlc=? WHERE device_id=? AND seq=?", (b.hlc, a.device_id, a.seq)
            )
            v.conn.execute(
                "UPDATE oplog SET hlc=? WHERE device_id=? AND seq=?", (a.hlc, b.device_id, b.seq)
            )
        assert_rejected(v)


@SETTINGS
@given(ops=operations, pick=st.integers(0, 1000))
def test_deleting_an_entry_from_the_middle_of_a_feed_is_a_sequence_gap(
    ops: list[tuple[Any, ...]], pick: int
) -> None:
    with built_vault(ops) as built:
        v = built.vault
        feeds = [(d, seqs) for d, seqs in feed_rows(v).items() if len(seqs) >= 2]
        device, seqs = feeds[pick % len(feeds)]
        victim = seqs[:-1][pick % (len(seqs) - 1)]  # anything but the feed's last entry
        with v.conn:
            v.conn.execute("DELETE FROM oplog WHERE device_id=? AND seq=?", (device, victim))
        report = v.check()
        assert not report.ok
        if victim == 1:  # the device's own declaration is gone: its whole feed is untrusted
            expected = (f"feed {device}", "written by an unknown device")
        else:
            expected = (f"feed {device} entry {victim + 1}", f"sequence gap: expected {victim}")
        assert expected in [(p.where, p.what) for p in report.problems], report.problems


@SETTINGS
@given(ops=operations)
def test_truncating_the_log_while_the_state_reflects_it_is_reported(
    ops: list[tuple[Any, ...]],
) -> None:
    """Dropping the newest entry leaves a sound-looking feed; the rebuild catches it."""
    with built_vault(ops) as built:
        v = built.vault
        last = v.log.entries()[-1]
        with v.conn:
            v.conn.execute(
                "DELETE FROM oplog WHERE device_id=? AND seq=?", (last.device_id, last.seq)
            )
        report = v.check()
        assert not report.ok
        assert report.rebuilt_digest != report.state_digest
        assert any(p.where == "rebuild" for p in report.problems), report.problems


@SETTINGS
@given(ops=operations, pick=st.integers(0, 1000))
def test_a_replayed_entry_from_another_position_is_reported(
    ops: list[tuple[Any, ...]], pick: int
) -> None:
    """Copying one entry's ciphertext and signature over another's (a replay) is refused."""
    with built_vault(ops) as built:
        v = built.vault
        entries = v.log.entries()
        src = entries[pick % len(entries)]
        dst = entries[(pick + 1) % len(entries)]
        with v.conn:
            v.conn.execute(
                "UPDATE oplog SET ciphertext=?, signature=? WHERE device_id=? AND seq=?",
                (src.ciphertext, src.signature, dst.device_id, dst.seq),
            )
        assert_rejected(v)


# Forged operations: the attacker holds the vault key, so the AEAD opens, but cannot sign.

FORGED_OPS: list[dict[str, Any]] = [
    {"op": "add_memory", "memory": "not an object"},
    {"op": "add_memory", "memory": {"id": 7, "text": "x"}},
    {"op": "add_memory", "memory": {"id": "m-forged", "text": "x", "created_at": "soon"}},
    {
        "op": "edit_memory",
        "old": "m-missing",
        "memory": {"id": "m-new", "text": "x", "created_at": "2026-01-01T00:00:00Z"},
    },
    {"op": "forget_memory"},
    {"op": "forget_memory", "id": "m-missing", "at": 1},
    {"op": "add_source", "source": {"id": "s-1", "messages": [{"role": "robot"}]}},
    {"op": "add_device"},
    {"op": "add_device", "device_id": 5, "wrap_pub": "!!", "sign_pub": None, "at": "x"},
    {"op": "set_status", "id": "m-missing", "status": "nonsense", "at": 0},
    {"op": "no_such_operation"},
    {"op": "add_provenance", "id": "m-missing", "provenance": 3},
]


@pytest.mark.parametrize("forged", FORGED_OPS, ids=lambda o: json.dumps(o)[:40])
@pytest.mark.parametrize("position", ["genesis", "last"])
def test_a_forged_operation_is_reported_not_crashed_on(
    forged: dict[str, Any], position: str
) -> None:
    ops: list[tuple[Any, ...]] = [("new_device",), ("add", Kind.SEMANTIC, None, [], "cat")]
    with built_vault(ops) as built:
        v = built.vault
        entries = v.log.entries()
        target = entries[0] if position == "genesis" else entries[-1]
        ad = oplog.entry_ad(v.header.vault_id, target.device_id, target.seq, target.epoch)
        # Sealed under the key the entry opens with, so the forgery decrypts and only
        # what it says can give it away.
        key = v.log.record_key(target.device_id, target.seq) or v.core.log_key
        ciphertext = aead.seal(key, aead.pad(oplog.encode_op(forged)), ad)
        with v.conn:
            v.conn.execute(
                "UPDATE oplog SET ciphertext=? WHERE device_id=? AND seq=?",
                (ciphertext, target.device_id, target.seq),
            )
        assert_rejected(v)


@SETTINGS
@given(ops=operations, pick=st.integers(0, 1000), bit=st.integers(0, 10_000))
def test_problems_point_at_the_tampered_entry(
    ops: list[tuple[Any, ...]], pick: int, bit: int
) -> None:
    """Only the damaged entry, the next link of its chain and the rebuild are blamed.

    (A device's declaration, entry 1 of its feed, is left alone here: without it the
    whole feed is rightly untrusted, and without the genesis one every feed is.)
    """
    with built_vault([("new_device",), *ops]) as built:
        v = built.vault
        candidates = [(d, s) for d, s in rows(v) if s > 1]
        device, seq = candidates[pick % len(candidates)]
        assert flip_bit(v, device, seq, "ciphertext", bit)
        report = v.check()
        blamed = {p.where for p in report.problems}
        assert f"feed {device} entry {seq}" in blamed
        assert blamed <= {f"feed {device} entry {seq}", f"feed {device} entry {seq + 1}", "rebuild"}
        assert report.devices == built.devices
