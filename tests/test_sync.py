"""Sync between devices of one vault through remotes that see only ciphertext: a folder
and the in-memory twin here (S3 in test_sync_s3.py). Devices are real vaults in their
own homes; the second one is restored from the remote with the recovery phrase."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PASSPHRASE, create_vault, restore_vault
from memsync.errors import BadRecoveryPhrase, RemoteError, SyncRefused, UsageError
from memsync.index.embed import HashEmbedder
from memsync.model import Memory, Message, SearchFilters, Status
from memsync.sync.remote import Conflict, FolderRemote, MemoryRemote
from memsync.vault import Vault


@dataclass
class Pair:
    a: Vault
    b: Vault
    phrase: str
    url: str


def digest(v: Vault) -> str:
    return v.check().state_digest


def restore(home: Path, url: str, phrase: str) -> Vault:
    return restore_vault(home, phrase, url)


@pytest.fixture
def pair(fast_dir: Path) -> Iterator[Pair]:
    made = create_vault(fast_dir / "a", device_name="laptop")
    a = made.vault
    a.add("Prefers short answers without bullet points")
    url = str(fast_dir / "remote")
    a.remotes.add("usb", url)
    a.sync("usb")
    b = restore(fast_dir / "b", url, made.recovery_phrase)
    try:
        yield Pair(a, b, made.recovery_phrase, url)
    finally:
        a.close()
        b.close()


def texts(v: Vault) -> set[str]:
    return {m.text for m in v.list(limit=None).items}


def every_memory(v: Vault) -> list[Memory]:
    return list(v.list(SearchFilters(statuses=tuple(Status)), limit=None).items)


def test_a_restored_device_has_everything_and_both_converge(pair: Pair) -> None:
    a, b = pair.a, pair.b
    assert texts(b) == {"Prefers short answers without bullet points"}
    b.add("Flying to Lisbon on 12 March")
    b.sync()
    report = a.sync("usb")[0]
    assert report.pulled >= 2
    assert any(c.added == 1 for c in report.changes)
    assert texts(a) == texts(b)
    assert [h.memory.text for h in a.search("Lisbon trip")][:1] == ["Flying to Lisbon on 12 March"]
    b.sync()
    assert digest(a) == digest(b)
    assert a.check().ok and b.check().ok


def test_concurrent_edits_keep_both_versions_and_agree(pair: Pair) -> None:
    a, b = pair.a, pair.b
    m = a.list().items[0]
    a.edit(m.id, text="Prefers short answers")
    b.edit(m.id, text="Prefers answers in two sentences")
    a.sync()
    b.sync()
    a.sync()
    assert digest(a) == digest(b)
    active = list(a.list(limit=None).items)
    assert len(active) == 1
    history = [x.text for x in a.history(active[0].id)]
    assert "Prefers short answers" in history and "Prefers answers in two sentences" in history
    assert a.check().ok and b.check().ok


def test_forgetting_wins_over_an_edit_that_had_not_seen_it(pair: Pair) -> None:
    a, b = pair.a, pair.b
    m = a.list().items[0]
    a.forget(m.id)
    b.edit(m.id, text="Prefers short answers, really")
    b.sync()
    a.sync()
    b.sync()
    for v in (a, b):
        assert all(x.status is Status.FORGOTTEN for x in every_memory(v))
        assert "really" not in " ".join(texts(v))
    assert digest(a) == digest(b)


def test_sync_is_idempotent(pair: Pair) -> None:
    first = pair.a.sync()[0]
    again = pair.a.sync()[0]
    assert (again.pushed, again.pulled) == (0, 0)
    assert first.pulled >= 0


def test_a_remote_that_rolls_back_is_refused_and_nothing_changes(pair: Pair) -> None:
    a, b = pair.a, pair.b
    folder = Path(pair.url)
    old = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    a.add("second")
    a.sync()
    b.sync()
    # The storage goes back to what it held before "second" (a restored backup, say).
    for p in folder.rglob("*"):
        if p.is_file() and p not in old:
            p.unlink()
    for p, data in old.items():
        p.write_bytes(data)
    before = digest(b)
    with pytest.raises(SyncRefused, match=r"\(rollback\)"):
        b.sync()
    assert digest(b) == before
    # Both were rolled back: b's own checkpoint (pushed again) and a's feed (refused).
    assert {e.what for e in b.remotes.evidence()} == {"rollback"}
    # The device whose feed it rolled back pushes it again, and says so.
    report = a.sync()[0]
    assert any("pushed again" in w for w in report.waiting)
    assert {e.what for e in a.remotes.evidence()} == {"rollback"}
    b.sync()
    assert digest(a) == digest(b)


def test_bad_inputs(fast_dir: Path, pair: Pair) -> None:
    with pytest.raises(BadRecoveryPhrase):
        other = create_vault(fast_dir / "other")
        restore(fast_dir / "c", pair.url, other.recovery_phrase)
    other.vault.close()
    assert not (fast_dir / "c" / "vault.json").exists()
    with pytest.raises(RemoteError, match="another vault"):
        other = Vault.open(fast_dir / "other", PASSPHRASE, embedder=HashEmbedder())
        try:
            other.remotes.add("usb", pair.url)
        finally:
            other.close()
    with pytest.raises(UsageError):
        pair.a.remotes.add("usb", pair.url)
    with pytest.raises(RemoteError):
        pair.a.remotes.add("weird", "ftp://example.com/x")


def test_nothing_readable_on_the_remote(fast_dir: Path) -> None:
    canary = "CANARY-7f3a9d"
    made = create_vault(fast_dir / "a", device_name=f"laptop {canary}")
    a = made.vault
    a.add(f"My secret is {canary}")
    a.add_app(f"app-{canary.lower()}")
    a.ingest(
        [Message("user", f"I keep the spare key under the {canary} pot")],
        title=f"Chat about {canary}",
    )
    url = fast_dir / "remote"
    a.remotes.add("usb", str(url))
    a.sync()
    vid = a.header.vault_id
    blobs = [p.read_bytes() for p in url.rglob("*") if p.is_file()]
    names = [str(p.relative_to(url)) for p in url.rglob("*")]
    assert blobs
    for needle in (canary, canary.lower(), vid, a.device.device_id, "laptop", "spare key"):
        for enc in ("utf-8", "utf-16-le", "utf-16-be"):
            raw = needle.encode(enc)
            assert not any(raw in b for b in blobs), needle
        assert not any(needle in n for n in names)
    a.close()


def test_folder_remote_protocol(tmp_path: Path) -> None:
    for remote in (FolderRemote(tmp_path / "f"), MemoryRemote()):
        name = "s/" + "ab" * 20
        assert remote.get(name) is None
        assert remote.create(name, b"one")
        assert not remote.create(name, b"two")
        blob = remote.get(name)
        assert blob is not None and blob.data == b"one"
        remote.replace(name, b"three", blob.tag)
        with pytest.raises(Conflict):
            remote.replace(name, b"four", blob.tag)
        assert remote.list("s/") == [name]
        remote.delete(name)
        assert remote.get(name) is None


def test_the_server_syncs_in_the_background_and_says_so(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from memsync.server import background
    from memsync.server.http import create_app

    a, b = pair.a, pair.b
    monkeypatch.setattr(background, "SETTLE_SECONDS", 0.2)
    with TestClient(create_app(a, sync_interval=5)) as client:
        health = client.get("/v1/health").json()
        assert health["sync"]["enabled"] and health["sync"]["remotes"] == 1
        a.add("Written while the server runs")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            b.sync()
            if "Written while the server runs" in texts(b):
                break
            time.sleep(0.3)
        assert "Written while the server runs" in texts(b)
        assert client.get("/v1/health").json()["sync"]["last_sync"] is not None


def test_an_unreachable_remote_is_one_clear_error_and_changes_nothing(
    pair: Pair, fast_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    a = pair.a
    before = digest(a)
    with pytest.raises(RemoteError, match="listing failed"):
        a.remotes.add("s3", "s3://bucket/x?endpoint=http://127.0.0.1:9")
    assert [r.name for r in a.remotes.list()] == ["usb"]
    # The folder goes away (an unplugged stick): sync says so, and the vault is unchanged.
    Path(pair.url).rename(fast_dir / "unplugged")
    with pytest.raises(RemoteError):
        a.sync()
    assert digest(a) == before
