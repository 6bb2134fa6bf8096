"""Export to JSON Lines and import back: faithful, idempotent, and all-or-nothing."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import FixedClock
from memsync.errors import InvalidInput, UsageError
from memsync.export import export_to_path, import_from_path, read_export
from memsync.model import (
    Category,
    ImportReport,
    Kind,
    Memory,
    Message,
    Provenance,
    SearchFilters,
    Source,
    Status,
)
from memsync.store import state
from memsync.vault import NewVault, Vault

EVERY = SearchFilters(statuses=(), include_expired=True)


def populate(vault: Vault, t0: datetime) -> dict[str, str]:
    """A bit of everything; returns the ids worth naming."""
    vault.clock = FixedClock(t0)
    chat = vault.ingest(
        [
            Message("system", "be brief"),
            Message("user", "I'm training for the Berlin marathon", timestamp=t0, name="kim"),
            Message(
                "assistant", "Good luck with the training!", timestamp=t0 + timedelta(seconds=5)
            ),
        ],
        title="Running",
        origin="chatgpt",
        extract=False,
    ).source
    vault.ingest(
        [Message("user", "ünïcødé and emoji 🏃 survive"), Message("tool", "")], extract=False
    )
    runner = vault.add(
        "Training for the Berlin marathon",
        kind=Kind.EPISODIC,
        category=Category.INTERESTS,
        tags=["running", "sport"],
        valid_from=t0,
        valid_until=t0 + timedelta(days=90),
        confidence=0.8,
        provenance=[
            Provenance(
                source_id=chat.id,
                turn=1,
                start=17,
                end=23,
                extractor="rules",
                extractor_version="0.3",
            )
        ],
    )
    vault.clock = FixedClock(t0 + timedelta(hours=1))
    expired = vault.add(
        "Was in Rome last week",
        kind=Kind.EPISODIC,
        category=Category.TRAVEL,
        valid_until=t0 - timedelta(days=1),
    )
    v1 = vault.add("Works at Acme", category=Category.CAREER, tags=["job"])
    vault.clock = FixedClock(t0 + timedelta(hours=2))
    v2 = vault.edit(v1.id, text="Works at Globex")
    v3 = vault.edit(v2.id, text="Works at Initech", tags=["job", "new"])
    secret = vault.add("A secret to forget", category=Category.PRIVATE)
    vault.forget(secret.id)
    plain = vault.add('Likes "quotes", back\\slashes and\nnewlines')
    return {
        "chat": chat.id,
        "runner": runner.id,
        "expired": expired.id,
        "v1": v1.id,
        "v2": v2.id,
        "v3": v3.id,
        "secret": secret.id,
        "plain": plain.id,
    }


def memories(vault: Vault) -> dict[str, Memory]:
    return {m.id: m for m in vault.list(EVERY, limit=10_000).items}


def sources(vault: Vault) -> dict[str, Source]:
    return {s.id: s for s in vault.sources()}


@pytest.fixture
def exported(vault: Vault, tmp_path: Path, t0: datetime) -> Path:
    """The export file of `vault`, populated."""
    populate(vault, t0)
    out = tmp_path / "export.jsonl"
    export_to_path(vault, out)
    return out


def test_export_then_import_into_a_fresh_vault_is_faithful(
    vault: Vault,
    vault_factory: Callable[[str], NewVault],
    tmp_path: Path,
    t0: datetime,
) -> None:
    ids = populate(vault, t0)
    out = tmp_path / "export.jsonl"
    assert export_to_path(vault, out) == (2, 6)  # every memory but the forgotten one
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*partial*"))

    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["type"] == "memsync-export"
    assert (lines[0]["version"], lines[0]["vault_id"]) == (2, vault.header.vault_id)
    assert [r["type"] for r in lines[1:]] == ["source"] * 2 + ["memory"] * 6
    assert ids["secret"] not in out.read_text(encoding="utf-8")

    target: Vault = vault_factory("target").vault
    report = import_from_path(target, out)
    assert report == ImportReport(
        sources_added=2, sources_skipped=0, memories_added=6, memories_skipped=0
    )

    expected = {i: m for i, m in memories(vault).items() if m.status is not Status.FORGOTTEN}
    assert memories(target) == expected
    assert sources(target) == sources(vault)
    got = target.get(ids["runner"])
    assert got.provenance == vault.get(ids["runner"]).provenance
    assert (got.valid_from, got.valid_until, got.confidence) == (
        t0,
        t0 + timedelta(days=90),
        0.8,
    )
    assert [m.id for m in target.history(ids["v2"])] == [ids["v1"], ids["v2"], ids["v3"]]
    assert [m.status for m in target.history(ids["v1"])] == [
        Status.SUPERSEDED,
        Status.SUPERSEDED,
        Status.ACTIVE,
    ]
    assert target.get(ids["plain"]).text == 'Likes "quotes", back\\slashes and\nnewlines'

    # Imported records are searchable, with their provenance, and the log accounts for them.
    target.clock = vault.clock
    hits = target.search("Berlin marathon")
    assert any(h.memory and h.memory.id == ids["runner"] for h in hits)
    turn = next(h.turn for h in hits if h.turn)
    assert (turn.source_id, turn.index) == (ids["chat"], 1)
    assert [
        h.memory.id
        for h in target.search("Works at", filters=SearchFilters(categories=(Category.CAREER,)))
    ] == [ids["v3"]]  # type: ignore[union-attr]
    assert target.check().ok


def test_importing_twice_adds_nothing(
    vault: Vault, vault_factory: Callable[[str], NewVault], exported: Path
) -> None:
    target: Vault = vault_factory("target").vault
    import_from_path(target, exported)
    digest, entries = state.digest(target.conn), target.log.count()
    again = import_from_path(target, exported)
    assert again == ImportReport(
        sources_added=0, sources_skipped=2, memories_added=0, memories_skipped=6
    )
    assert (state.digest(target.conn), target.log.count()) == (digest, entries)
    # Its own export, imported back into the vault it came from, adds nothing either.
    digest, entries = state.digest(vault.conn), vault.log.count()
    assert import_from_path(vault, exported).memories_added == 0
    assert (state.digest(vault.conn), vault.log.count()) == (digest, entries)


def test_the_same_conversation_under_another_id_is_not_imported_twice(
    vault: Vault, vault_factory: Callable[[str], NewVault], exported: Path
) -> None:
    target: NewVault = vault_factory("target")
    for s in vault.sources():  # the target already holds these conversations
        target.vault.ingest(list(s.messages), extract=False)
    report = import_from_path(target.vault, exported)
    assert (report.sources_added, report.sources_skipped) == (0, 2)


def test_export_refuses_to_overwrite_unless_asked(vault: Vault, tmp_path: Path) -> None:
    vault.add("one")
    out = tmp_path / "export.jsonl"
    out.write_text("precious")
    with pytest.raises(UsageError):
        export_to_path(vault, out)
    assert out.read_text() == "precious"
    assert export_to_path(vault, out, overwrite=True) == (0, 1)
    assert read_export(out).memories[0].text == "one"


# Malformed exports: InvalidInput naming the line, and nothing written.

GOOD_MEMORY = {
    "id": "m-good000001",
    "text": "Fine memory",
    "kind": "semantic",
    "category": "career",
    "tags": ["a"],
    "created_at": "2026-01-02T03:04:05.000Z",
}
GOOD_SOURCE = {
    "id": "s-good000001",
    "kind": "conversation",
    "created_at": "2026-01-02T03:04:05Z",
    "messages": [{"role": "user", "content": "hello"}],
}
HEADER = {"type": "memsync-export", "version": 1, "vault_id": "v-x", "exported_at": None}


def line(obj: object) -> str:
    return json.dumps(obj)


def memory_line(**changes: object) -> str:
    return line({"type": "memory", "memory": {**GOOD_MEMORY, **changes}})


def source_line(**changes: object) -> str:
    return line({"type": "source", "source": {**GOOD_SOURCE, **changes}})


GOOD = [line(HEADER), source_line(), memory_line()]

MALFORMED: dict[str, tuple[list[str], int | None]] = {
    "bad json": ([*GOOD, "{not json"], 4),
    "truncated line": ([*GOOD, memory_line(id="m-2")[:-5]], 4),
    "not an object": ([*GOOD, "[1, 2]"], 4),
    "wrong header type": ([line({**HEADER, "type": "something-else"}), *GOOD[1:]], None),
    "no header": (GOOD[1:], None),
    "header only garbage": (["42"], 1),
    "future version": ([line({**HEADER, "version": 3}), *GOOD[1:]], None),
    "app without a name": ([*GOOD, line({"type": "app", "app": {"token_hash": "x"}})], 4),
    "disclosure not an object": ([*GOOD, line({"type": "disclosure", "disclosure": 3})], 4),
    "unknown record": ([*GOOD, line({"type": "profile", "profile": {}})], 4),
    "bad kind": ([*GOOD, memory_line(id="m-2", kind="eternal")], 4),
    "bad category": ([*GOOD, memory_line(id="m-2", category="gossip")], 4),
    "bad status": ([*GOOD, memory_line(id="m-2", status="deleted")], 4),
    "bad time": ([*GOOD, memory_line(id="m-2", created_at="last tuesday")], 4),
    "missing time": ([*GOOD, memory_line(id="m-2", created_at=None)], 4),
    "bad valid_until": ([*GOOD, memory_line(id="m-2", valid_until="2026-13-45")], 4),
    "time out of range": ([*GOOD, memory_line(id="m-2", observed_at=1e20)], 4),
    "boolean time": ([*GOOD, memory_line(id="m-2", created_at=True)], 4),
    "tags not a list": ([*GOOD, memory_line(id="m-2", tags="a,b")], 4),
    "empty text": ([*GOOD, memory_line(id="m-2", text="  ")], 4),
    "bad confidence": ([*GOOD, memory_line(id="m-2", confidence=7)], 4),
    "bad provenance": ([*GOOD, memory_line(id="m-2", provenance=[{"turn": "one"}])], 4),
    "memory not an object": ([*GOOD, line({"type": "memory", "memory": "text"})], 4),
    "bad source kind": ([*GOOD, source_line(id="s-2", kind="video")], 4),
    "bad message role": (
        [*GOOD, source_line(id="s-2", messages=[{"role": "narrator", "content": "x"}])],
        4,
    ),
    "bad message time": (
        [
            *GOOD,
            source_line(id="s-2", messages=[{"role": "user", "content": "x", "timestamp": "noon"}]),
        ],
        4,
    ),
    "error after blank lines": ([*GOOD, "", "   ", memory_line(id="m-2", kind="x")], 6),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_export_names_the_line_and_changes_nothing(
    vault: Vault, tmp_path: Path, name: str
) -> None:
    vault.add("Already here")
    lines, bad_line = MALFORMED[name]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = (state.digest(vault.conn), vault.log.count())
    with pytest.raises(InvalidInput) as info:
        import_from_path(vault, path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    if bad_line is not None:
        assert f"line {bad_line}" in message
    assert (state.digest(vault.conn), vault.log.count()) == before
    # The good records before the bad line were not imported either.
    assert vault.list().total == 1


def test_the_good_file_those_are_made_from_does_import(vault: Vault, tmp_path: Path) -> None:
    path = tmp_path / "good.jsonl"
    path.write_text("\n".join(GOOD) + "\n", encoding="utf-8")
    assert import_from_path(vault, path) == ImportReport(1, 0, 1, 0)
    assert vault.get("m-good000001").category is Category.CAREER
    assert vault.check().ok


def test_unreadable_export_files(vault: Vault, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        import_from_path(vault, tmp_path / "missing.jsonl")
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(b'{"type": "memsync-export", "x": "\xe9"}\n')
    with pytest.raises(InvalidInput):
        import_from_path(vault, latin)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InvalidInput, match="not a memsync export"):
        import_from_path(vault, empty)


def test_forgetting_one_version_forgets_the_chain_and_exports_none_of_it(
    vault: Vault, tmp_path: Path
) -> None:
    """`rm` on any version tombstones the whole history: no old text is left behind."""
    v1 = vault.add("Lives in Porto")
    v2 = vault.edit(v1.id, text="Lives in Lisbon")
    vault.forget(v2.id)
    assert [m.status for m in vault.history(v1.id)] == [Status.FORGOTTEN, Status.FORGOTTEN]
    assert all(m.text == "" for m in vault.history(v1.id))
    out = tmp_path / "export.jsonl"
    assert export_to_path(vault, out) == (0, 0)
    assert "Porto" not in out.read_text()


def test_apps_and_the_ledger_travel_with_the_export(
    vault: Vault, vault_factory: Callable[[str], NewVault], tmp_path: Path, t0: datetime
) -> None:
    populate(vault, t0)
    vault.add_app("notes")
    _, token = vault.add_app("editor")
    session = vault.as_app("notes")
    session.search("Berlin marathon")
    vault.revoke_app("notes")
    out = tmp_path / "export.jsonl"
    export_to_path(vault, out)
    target: Vault = vault_factory("target").vault
    import_from_path(target, out)
    assert target.apps() == vault.apps()
    assert target.disclosures() == vault.disclosures()
    # The same app token works on the imported vault.
    assert target.app_for_token(token) == vault.app_for_token(token) is not None
    import_from_path(target, out)  # twice: nothing more
    assert target.disclosures() == vault.disclosures()
    assert target.check().ok
