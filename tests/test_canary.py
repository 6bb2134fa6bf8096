"""The canary: a unique marker goes through every command and never reaches the disk.

The marker is put everywhere a user's words can go (memory text, tags, a conversation's
turns, title, origin and speaker name, the device name, a search query, an edit), then
every file under the vault home is read byte by byte, with the vault open (WAL and
shared-memory files present) and after it is closed, looking for the marker in UTF-8,
UTF-16 (both byte orders) and upper and lower case. The export, plaintext by design, is
written outside the home and serves as the positive control: the scan does find the
marker there.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import PASSPHRASE
from memsync.crypto.device import FAST_KDF
from memsync.export import export_to_path
from memsync.index.embed import HashEmbedder
from memsync.model import Category, Kind, Message, SearchFilters, Status
from memsync.vault import Vault


def needles(marker: str) -> dict[str, bytes]:
    """Every byte form of the marker (and of its random core) that must not appear."""
    core = marker.split("-")[1]
    forms: dict[str, bytes] = {}
    for label, text in (
        ("as is", marker),
        ("lower", marker.lower()),
        ("upper", marker.upper()),
        ("core", core),
        ("core upper", core.upper()),
    ):
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            forms[f"{label} {encoding}"] = text.encode(encoding)
    return forms


def scan(root: Path, marker: str) -> list[str]:
    """Every (file, form) under `root` in which some form of the marker occurs."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {label}" for label, b in needles(marker).items() if b in data]
    return found


@pytest.fixture
def scratch_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point Python's temp dir into the test so stray temp files would be scanned too."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def exercise(vault: Vault, marker: str, tmp_path: Path) -> Path:
    """init is done; now add, ingest, search, edit, rm and export with the marker."""
    m = vault.add(
        f"My locker code is {marker}",
        kind=Kind.EPISODIC,
        category=Category.PRIVATE,
        tags=[marker, "locker"],
    )
    other = vault.add(f"Second note mentioning {marker} twice: {marker}", tags=[marker.lower()])
    conversation = [
        Message("system", f"system prompt {marker}"),
        Message("user", f"please remember {marker} for me", name=f"user-{marker}"),
        Message("assistant", f"I will remember {marker}"),
    ]
    result = vault.ingest(conversation, title=f"chat about {marker}", origin=f"app-{marker}")
    assert result.added
    assert not vault.ingest(conversation).added

    hits = vault.search(marker)
    assert any(h.memory and h.memory.id == m.id for h in hits)
    assert any(h.turn and h.turn.source_id == result.source.id for h in hits)
    assert vault.search(marker, filters=SearchFilters(tags=(marker.lower(),)))
    assert vault.list(SearchFilters(tags=(marker.lower(),))).total == 2

    edited = vault.edit(m.id, text=f"My new locker code is {marker}-2", tags=[marker, "new"])
    vault.forget(edited.id)
    assert vault.get(edited.id).status is Status.FORGOTTEN
    vault.forget(other.id)
    assert not any(h.memory and h.memory.id in (edited.id, other.id) for h in vault.search(marker))
    assert vault.check().ok

    export = tmp_path / "outside" / "export.jsonl"
    export.parent.mkdir()
    export_to_path(vault, export)
    return export


def run_canary(home: Path, tmp_path: Path, scratch: Path, vault: Vault, marker: str) -> None:
    export = exercise(vault, marker, tmp_path)

    # Positive control: the plaintext export (outside the home) is found by the same scan.
    assert scan(export.parent, marker)

    # The vault is still open: the WAL holds the latest pages.
    assert (home / "vault.db-wal").exists()
    assert scan(home, marker) == []
    assert scan(scratch, marker) == []
    vault.close()
    assert scan(home, marker) == []
    assert sorted(p.name for p in home.iterdir()) == ["device.key", "vault.db", "vault.json"]

    # Reopen, read everything back (pages decrypted into memory), and scan once more.
    with Vault.open(home, PASSPHRASE) as again:
        assert again.search(marker)
        assert again.check().ok
        assert scan(home, marker) == []
    assert scan(home, marker) == []
    assert scan(scratch, marker) == []


def test_no_form_of_the_marker_reaches_the_disk(tmp_path: Path, scratch_tmp: Path) -> None:
    marker = f"CANARY-{uuid.uuid4().hex[:12]}-plum"
    home = tmp_path / "home"
    made = Vault.create(
        home, PASSPHRASE, kdf=FAST_KDF, embedder=HashEmbedder(), device_name=f"host-{marker}"
    )
    assert scan(home, marker) == []
    try:
        run_canary(home, tmp_path, scratch_tmp, made.vault, marker)
    finally:
        made.vault.close()


def test_no_form_of_the_marker_reaches_the_disk_with_the_default_model(
    tmp_path: Path, scratch_tmp: Path
) -> None:
    """The same, on the default path: MiniLM vectors, chosen by default and on reopen."""
    marker = f"CANARY-{uuid.uuid4().hex[:12]}-plum"
    home = tmp_path / "home"
    made = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)  # no embedder: the default MiniLM
    assert made.vault.embedder.name.startswith("minilm")
    try:
        run_canary(home, tmp_path, scratch_tmp, made.vault, marker)
    finally:
        made.vault.close()


def test_the_scan_would_see_a_plaintext_file(tmp_path: Path) -> None:
    """The scanner itself: each encoding and case of the marker is found."""
    marker = f"CANARY-{uuid.uuid4().hex[:12]}-plum"
    for i, form in enumerate(
        (marker.encode(), marker.upper().encode("utf-16-le"), marker.lower().encode("utf-16-be"))
    ):
        (tmp_path / f"f{i}").write_bytes(b"\0junk" + form + b"junk")
        assert scan(tmp_path, marker)
        (tmp_path / f"f{i}").unlink()
    assert scan(tmp_path, marker) == []
