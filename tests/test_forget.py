"""Forgetting as crypto-shredding, proved: keep every immutable object a run wrote before
the forget (segments on a folder remote and on chain, epoch and anchor objects), forget,
then try to read the memory back with those copies and every key that exists afterwards
(both devices' databases, every key object on the remote, the recovery phrase's keys).
Nothing opens it; no byte of it is in any database page (free pages and the FTS index
included, read decrypted) or in the write-ahead log; a device that was offline shreds it
on its next sync; what was not forgotten is intact everywhere."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import apsw
import pytest

from conftest import create_vault, restore_vault
from memsync.chain.contract import Registry, Sender
from memsync.chain.node import DevNode, start_dev_node
from memsync.core import db_key
from memsync.errors import CryptoError, SyncRefused
from memsync.log.oplog import open_entry
from memsync.model import Message
from memsync.sync import objects
from memsync.sync.objects import Segment, SyncKeys
from memsync.vault import Vault
from test_sync_s3 import bucket, s3_endpoint  # noqa: F401  (fixtures: a real S3 server)

MARK = "zebraforgetmark"


@pytest.fixture(scope="module")
def node() -> Iterator[DevNode]:
    n = start_dev_node(port=0)
    yield n
    n.stop()


def _epoch_keys(v: Vault) -> list[SyncKeys]:
    epochs = {0} | {int(r[0]) for r in v.core.conn.execute("SELECT epoch FROM epochs")}
    return [
        SyncKeys.derive(v.core.vault_key, e, k)
        for e in sorted(epochs)
        if (k := v.core.epoch_key(e)) is not None
    ]


def _immutable(folder: Path) -> dict[str, bytes]:
    return {
        f"{p.parent.name}/{p.name}": p.read_bytes()
        for kind in ("s", "e", "a")
        for p in sorted((folder / kind).glob("*"))
        if p.is_file()
    }


def _plaintexts(
    v: Vault, segments: dict[str, bytes], record_keys: set[bytes], keys: list[SyncKeys]
) -> list[str]:
    """Every operation any of `record_keys` (or the log key) opens in `segments`."""
    out = []
    candidates = [*record_keys, v.core.log_key]
    for name, blob in segments.items():
        if not name.startswith("s/"):
            continue
        try:
            segment = Segment.open(name, blob, keys)
        except SyncRefused:
            continue
        for entry in segment.entries:
            for key in candidates:
                try:
                    out.append(json.dumps(open_entry(v.header.vault_id, entry, key)))
                except CryptoError:
                    continue
    return out


def _all_record_keys(v: Vault, folder: Path, segments: dict[str, bytes]) -> set[bytes]:
    """Every record key this device holds and every one the remote's key objects hold."""
    found = {bytes(r[0]) for r in v.core.conn.execute("SELECT key FROM entry_keys")}
    keys = _epoch_keys(v)
    for name in segments:
        if not name.startswith("s/"):
            continue
        kname = keys[0].keys_name(name)
        path = folder / kname
        if path.exists():
            found |= set(objects.open_keys(path.read_bytes(), name, keys).values())
    return found


def _plain_database(v: Vault, where: Path) -> bytes:
    """The device's database with every page decrypted (free pages, the WAL's content and
    the FTS5 shadow tables included): what its own key can read."""
    src = v.paths.database
    shutil.copy(src, where)
    wal = Path(f"{src}-wal")
    if wal.exists():
        shutil.copy(wal, f"{where}-wal")
    conn = apsw.Connection(str(where))
    conn.execute(f"PRAGMA key=\"x'{db_key(v.core.vault_key).hex()}'\"")
    conn.execute("PRAGMA journal_mode=DELETE").fetchall()
    conn.execute("PRAGMA rekey=''")
    conn.close()
    return where.read_bytes()


def test_a_forgotten_memory_is_unreadable_from_everything_that_remains(
    fast_dir: Path, node: DevNode
) -> None:
    registry, _ = Registry.deploy(Registry.web3(node.url), Sender(), node.url)
    made = create_vault(fast_dir / "a", device_name="laptop")
    a = made.vault
    target = a.add(f"{MARK} is the name of my private diary")
    a.edit(target.id, text=f"{MARK} is the name of my secret diary")
    kept = a.add("Prefers tea over coffee")
    folder = fast_dir / "remote"
    a.remotes.add("usb", str(folder))
    chain_url = f"evm://{registry.address}?rpc={quote(node.url)}&keys={quote(str(fast_dir / 'k'))}"
    a.remotes.add("onchain", chain_url)
    # An app searched for it: the ledger quotes the query.
    a.add_app("editor")
    a.as_app("editor").search(f"{MARK} diary")
    a.sync()
    b = restore_vault(fast_dir / "b", made.recovery_phrase, str(folder))
    offline = restore_vault(fast_dir / "c", made.recovery_phrase, str(folder))
    b.sync()
    before = _immutable(folder)
    chain_before = dict(node.tester.backend.chain.chaindb.db.wrapped_db.kv_store)
    # The test can fail: before the forget, these keys read the memory back.
    keys = _epoch_keys(a)
    opened = _plaintexts(a, before, _all_record_keys(a, folder, before), keys)
    assert any(MARK in p for p in opened)

    newest = next(m for m in a.list(limit=None).items if m.text.startswith(MARK))
    a.forget(newest.id)
    # Nothing from before the forget is left in the write-ahead log.
    assert Path(f"{a.paths.database}-wal").stat().st_size == 0
    a.sync()
    b.sync()
    # Everything that exists afterwards: both databases' keys, every key object on the
    # remote now, the phrase's keys (which give the vault and epoch keys: `keys`).
    record_keys = _all_record_keys(a, folder, before) | _all_record_keys(b, folder, before)
    record_keys |= _all_record_keys(a, folder, _immutable(folder))
    after = {**before, **_immutable(folder)}
    texts = _plaintexts(a, after, record_keys, keys)
    assert texts and not any(MARK in t for t in texts)
    assert any("Prefers tea" in t for t in texts)  # what was kept still opens
    # The chain keeps the segments it was given, and no key to them.
    chain_after = node.tester.backend.chain.chaindb.db.wrapped_db.kv_store
    blob = b"".join(bytes(k) + bytes(v) for k, v in {**chain_before, **chain_after}.items())
    assert MARK.encode() not in blob
    for key in record_keys:
        assert key not in blob

    # No byte of it in either database, read page by page with its own key.
    for v, name in ((a, "a"), (b, "b")):
        plain = _plain_database(v, fast_dir / f"plain-{name}.db")
        assert MARK.encode() not in plain, name
        assert b"Prefers tea over coffee" in plain
        wal = Path(f"{v.paths.database}-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        assert v.check().ok
        assert {m.text for m in v.list(limit=None).items} == {kept.text}
        # The ledger keeps that the app searched, not what for.
        search = next(d for d in v.disclosures(app="editor") if d.action == "search")
        assert search.query is None

    # The device that was offline learns of it on its next sync, and shreds it too.
    assert any(MARK in m.text for m in offline.list(limit=None).items)
    offline.sync()
    assert not any(MARK in m.text for m in offline.list(limit=None).items)
    plain = _plain_database(offline, fast_dir / "plain-c.db")
    assert MARK.encode() not in plain
    assert offline.check().ok
    assert len({v.check().state_digest for v in (a, b, offline)}) == 1
    # A fresh device restored from the remote afterwards never sees it.
    d = restore_vault(fast_dir / "d", made.recovery_phrase, str(folder))
    assert {m.text for m in d.list(limit=None).items} == {kept.text}
    assert d.check().ok
    for v in (a, b, offline, d):
        v.close()


def test_forgetting_a_source_takes_its_turns_and_what_was_drawn_only_from_it(
    fast_dir: Path,
) -> None:
    made = create_vault(fast_dir / "a")
    a = made.vault
    chat = a.ingest(
        [
            Message("user", f"My {MARK} account number is 4411 and I work as a potter"),
            Message("assistant", "Noted."),
        ],
        title=f"Bank {MARK}",
    )
    other = a.add("Lives in Porto")
    _, shredded = a.forget_source(chat.source.id)
    assert shredded >= 1
    assert [m.text for m in a.list(limit=None).items] == [other.text]
    assert not [h for h in a.search(MARK) if h.turn is not None or MARK in h.memory.text]  # type: ignore[union-attr]
    assert a.check().ok
    plain = _plain_database(a, fast_dir / "plain.db")
    assert MARK.encode() not in plain
    # Importing the same conversation again brings nothing back.
    again = a.ingest(
        [
            Message("user", f"My {MARK} account number is 4411 and I work as a potter"),
            Message("assistant", "Noted."),
        ],
        title=f"Bank {MARK}",
    )
    assert not again.added
    a.close()


def test_the_forget_command_by_query_app_and_age(fast_dir: Path) -> None:
    from click.testing import CliRunner

    from conftest import FixedClock
    from memsync.cli import cli
    from memsync.model import Kind

    made = create_vault(fast_dir / "h")
    v = made.vault
    old_trip = v.add(
        "Flew to Oslo for the conference",
        kind=Kind.EPISODIC,
        valid_until=v.clock() - timedelta(days=400),
    )
    recent = v.add("Flying to Rome next week", kind=Kind.EPISODIC)
    v.add_app("notes")
    v.as_app("notes").add("Likes the colour green")
    v.add("Likes the colour blue")
    v.close()
    env = {"MEMSYNC_HOME": str(fast_dir / "h"), "MEMSYNC_PASSPHRASE": "a strong pass phrase 42"}
    run = CliRunner().invoke
    shown = run(cli, ["forget", "--query", "colour", "--dry-run", "--json"], env=env)
    assert shown.exit_code == 0 and len(json.loads(shown.output)["memories"]) == 2
    refused = run(cli, ["forget", "--query", "colour"], env=env)
    assert refused.exit_code == 2 and "--yes" in refused.output
    done = run(cli, ["forget", "--app", "notes", "--yes"], env=env)
    assert done.exit_code == 0 and "forgotten 1 memories" in done.output
    aged = run(cli, ["forget", "--older-than", "365", "--yes"], env=env)
    assert aged.exit_code == 0 and "forgotten 1 memories" in aged.output
    v = Vault.open(fast_dir / "h", "a strong pass phrase 42")
    assert {m.text for m in v.list(limit=None).items} == {recent.text, "Likes the colour blue"}
    assert v.get(old_trip.id).status.value == "forgotten"
    # The retention policy does the same by itself, at each sync.
    v.configure("retention.episodic", "5d")
    v.clock = FixedClock(v.clock() + timedelta(days=30))
    assert v.forgetting.apply_retention() == 1
    assert {m.text for m in v.list(limit=None).items} == {"Likes the colour blue"}
    assert v.check().ok
    v.close()


def test_an_edit_made_elsewhere_before_the_forget_is_shredded_too(fast_dir: Path) -> None:
    made = create_vault(fast_dir / "a")
    a = made.vault
    m = a.add(f"{MARK} first words")
    url = str(fast_dir / "remote")
    a.remotes.add("usb", url)
    a.sync()
    b = restore_vault(fast_dir / "b", made.recovery_phrase, url)
    c = restore_vault(fast_dir / "c", made.recovery_phrase, url)
    b.edit(m.id, text=f"{MARK} edited on b, offline")  # b has not synced since
    a.forget(m.id)
    a.sync()
    c.sync()
    b.sync()  # b pushes its edit, then learns of the forget: it shreds its own entry
    own = [b.log.decrypt(e, b.core.log_key) for e in b.log.feed(b.device.device_id)
           if (e.device_id, e.seq) not in b.log.shredded()]  # fmt: skip
    assert [op["op"] for op in own][-1] == "shred"  # and names it, for every reader
    for v in (a, c, b, a, c):
        v.sync()
    assert len({v.check().state_digest for v in (a, b, c)}) == 1
    folder = Path(url)
    segments = _immutable(folder)
    for v in (a, b, c):
        assert v.check().ok
        assert not any(MARK in x.text for x in v.list(limit=None).items)
        texts = _plaintexts(v, segments, _all_record_keys(v, folder, segments), _epoch_keys(v))
        assert texts and not any(MARK in t for t in texts)
        assert MARK.encode() not in _plain_database(v, fast_dir / f"plain-{id(v)}.db")
    # A device restored afterwards accepts b's keyless entry: a shred operation names it.
    d = restore_vault(fast_dir / "d", made.recovery_phrase, url)
    assert d.check().ok and not d.list(limit=None).items
    for v in (a, b, c, d):
        v.close()


def test_the_phrase_alone_brings_back_everything_but_what_was_forgotten(fast_dir: Path) -> None:
    made = create_vault(fast_dir / "a")
    a = made.vault
    a.add("Prefers short answers")
    gone = a.add(f"{MARK} should not come back")
    a.ingest([Message("user", "I am learning the cello"), Message("assistant", "Nice!")])
    a.add_app("editor")
    a.as_app("editor").search("cello")
    a.set_bio("Cellist and product manager")
    a.forget(gone.id)
    url = str(fast_dir / "remote")
    a.remotes.add("usb", url)
    a.sync()
    shutil.rmtree(fast_dir / "a")  # every device is lost
    b = restore_vault(fast_dir / "b", made.recovery_phrase, url)
    assert b.check().ok
    assert {m.text for m in b.list(limit=None).items} == {m.text for m in a.list(limit=None).items}
    assert b.sources() == a.sources()
    assert b.apps() == a.apps()
    assert b.disclosures() == a.disclosures()
    assert b.profile().bio == a.profile().bio
    assert b.get(gone.id).text == ""  # a tombstone, nothing more
    assert MARK.encode() not in _plain_database(b, fast_dir / "plain-b.db")
    devices = b.remotes.devices()
    assert any(d.this_device and d.enrolled_by == "recovery phrase" for d in devices)
    b.close()
    a.close()


def test_forgetting_holds_on_an_s3_remote_too(
    fast_dir: Path, request: pytest.FixtureRequest
) -> None:
    from memsync.sync.urls import open_remote

    s3_url = str(request.getfixturevalue("bucket"))  # a real S3 server on loopback
    made = create_vault(fast_dir / "a")
    a = made.vault
    m = a.add(f"{MARK} kept on S3 until forgotten")
    a.add("Prefers tea")
    a.remotes.add("cloud", s3_url)
    a.sync()
    store = open_remote(a.remotes.list()[0].url)
    kept = {n: got.data for n in store.list("s/") if (got := store.get(n)) is not None}
    assert kept
    a.forget(m.id)
    a.sync()
    keys = _epoch_keys(a)
    record_keys = {bytes(r[0]) for r in a.core.conn.execute("SELECT key FROM entry_keys")}
    for name in kept:
        got = store.get(keys[0].keys_name(name))
        if got is not None:
            record_keys |= set(objects.open_keys(got.data, name, keys).values())
    texts = _plaintexts(a, kept, record_keys, keys)
    assert texts and not any(MARK in t for t in texts)
    b = restore_vault(fast_dir / "b", made.recovery_phrase, a.remotes.list()[0].url)
    assert {x.text for x in b.list(limit=None).items} == {"Prefers tea"}
    b.close()
    a.close()


def test_edits_made_on_two_devices_before_the_forget_all_go(fast_dir: Path) -> None:
    """Found by the three-device state machine: b's edit sits between the versions a
    forgot; every device must drop it, and agree."""
    made = create_vault(fast_dir / "a")
    a = made.vault
    m = a.add(f"{MARK} the first words")
    url = str(fast_dir / "remote")
    a.remotes.add("usb", url)
    a.sync()
    b = restore_vault(fast_dir / "b", made.recovery_phrase, url)
    b.edit(m.id, text=f"{MARK} edited on b")
    a_edit = a.edit(m.id, text=f"{MARK} edited on a")
    a.add("Prefers tea")
    a.forget(a_edit.id)
    for v in (a, b, a, b):
        v.sync()
    assert a.check().ok and b.check().ok
    assert a.check().state_digest == b.check().state_digest
    for v in (a, b):
        assert [x.text for x in v.list(limit=None).items] == ["Prefers tea"]
        assert MARK.encode() not in _plain_database(v, fast_dir / f"plain-{id(v)}.db")
    a.close()
    b.close()
