"""Capture end to end, offline: every import format through the real importers into a real
encrypted vault (rule extractor, hash embedder), and the CLI commands around it (ingest,
profile, why, config).

The fixtures are one invented person's data across tools (see test_importers.py); zips
and a PDF are built here from them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli_support import cli_env, init, ok, ok_json, one_line_error, ring, run, tree_bytes
from conftest import create_vault, open_vault
from memsync.capture import Format, ImportBatch, read_any
from memsync.capture.flow import IngestReport
from memsync.errors import CorruptVault
from memsync.model import Category, Kind, Memory, Message, SearchFilters, SourceKind, Status
from memsync.reconcile.decide import words
from memsync.reconcile.decision import Decision
from memsync.store import db
from memsync.vault import NewVault, Vault
from test_importers import chatgpt_zip, tiny_pdf

__all__ = ["cli_env", "ring"]  # fixtures: every test gets an isolated CLI environment

FIXTURES = Path(__file__).parent / "fixtures"
CHATGPT = FIXTURES / "chatgpt" / "conversations.json"
CLAUDE = FIXTURES / "claude" / "conversations.json"
CLAUDE_WRAPPED = FIXTURES / "claude" / "conversations_wrapped.json"
OPENAI = FIXTURES / "openai" / "messages.jsonl"
MEM0 = FIXTURES / "mem0" / "memories.json"
MEM0_LIST = FIXTURES / "mem0" / "memories_list.json"
NOTES = FIXTURES / "docs" / "notes.md"
PLAIN = FIXTURES / "docs" / "plain.txt"
BOOK_ID = "67c42f18-5b3e-8004-9a41-2f6d1c0be713"


def race_pdf(tmp_path: Path) -> Path:
    pytest.importorskip("pypdf")
    path = tmp_path / "race-week.pdf"
    lines = [
        "Race week checklist.",
        "I am vegetarian, so no gelatine sweets.",
        "I prefer dates to gels on long runs.",
    ]
    path.write_bytes(tiny_pdf(lines, "Race week checklist", "20250929081500"))
    return path


@dataclass(frozen=True)
class Case:
    """One import format: how to get the file, and what importing it must store."""

    make: Callable[[Path], Path]
    fmt: Format
    sources: int
    messages: int  # turns of the conversations, chunks of the documents, mem0 records
    expected: tuple[str, ...]  # memory texts that must come out of it


CASES = {
    "chatgpt": Case(
        lambda _: CHATGPT, Format.CHATGPT, 3, 17, ("Is vegetarian", "Can run four days a week")
    ),
    "chatgpt-zip": Case(
        chatgpt_zip, Format.CHATGPT, 3, 17, ("Is vegetarian", "Likes following one animal")
    ),
    "claude": Case(
        lambda _: CLAUDE,
        Format.CLAUDE,
        2,
        7,
        ("Commutes by bike", "Only speaks restaurant Portuguese"),
    ),
    "claude-wrapped": Case(
        lambda _: CLAUDE_WRAPPED, Format.CLAUDE, 2, 7, ("Commutes by bike", "Writes long sentences")
    ),
    "openai": Case(lambda _: OPENAI, Format.OPENAI, 1, 5, ("Bonked at 16 km", "Only had one gel")),
    "mem0": Case(
        lambda _: MEM0, Format.MEM0, 1, 7, ("Sister Elin lives in Malmö", "Is vegetarian")
    ),
    "mem0-list": Case(lambda _: MEM0_LIST, Format.MEM0, 1, 3, ("Is vegetarian",)),
    "markdown": Case(
        lambda _: NOTES,
        Format.MARKDOWN,
        1,
        4,
        ("Moved the lamp", "Is supposed to be tapering for the half marathon"),
    ),
    "text": Case(
        lambda _: PLAIN,
        Format.TEXT,
        1,
        3,
        ("Does not want anything signed before the lawyer reads clause 7", "Moves in March 2026"),
    ),
    "pdf": Case(
        race_pdf, Format.PDF, 1, 1, ("Is vegetarian", "Prefers dates to gels on long runs")
    ),
}


ALL_ACTIVE = SearchFilters(statuses=(Status.ACTIVE,), include_expired=True)


def active(vault: Vault) -> list[Memory]:
    """Every active memory, the expired episodes included (the fixtures are from 2025)."""
    return list(vault.list(ALL_ACTIVE, limit=10_000).items)


def active_texts(vault: Vault) -> list[str]:
    return sorted(m.text for m in active(vault))


def assert_provenance_is_sound(vault: Vault, memory_id: str) -> None:
    """Every record of where the memory came from points at a stored source, at a turn
    the user wrote (or a document chunk), and at a non-empty span of that turn's text
    that shares words with the memory."""
    memory = vault.get(memory_id)
    explanation = vault.why(memory_id)
    assert explanation.evidence, memory
    for e in explanation.evidence:
        p = e.provenance
        assert e.source_id is not None and not e.missing, (memory, e)
        source = vault.get_source(e.source_id)
        assert p.turn is not None and 0 <= p.turn < len(source.messages), (memory, p)
        message = source.messages[p.turn]
        assert message.role in ("user", "document"), (memory, message)
        assert p.start is not None and p.end is not None
        assert 0 <= p.start < p.end <= len(message.content), (memory, p, message.content)
        assert e.quote == message.content[p.start : p.end]
        assert e.quote.strip() and e.quote in message.content
        assert words(e.quote) & words(memory.text), (memory.text, e.quote)
        assert e.role == message.role and e.timestamp == message.timestamp


def ingest_file(vault: Vault, path: Path) -> IngestReport:
    return vault.ingest_batch(read_any(path))


# 1. Every format: sources, messages, memories and where each came from; 2. importing the
# same file again adds nothing.


@pytest.mark.parametrize("name", list(CASES))
def test_every_format_imports_with_sound_provenance_and_only_once(
    vault: Vault, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    batch = read_any(case.make(tmp_path))
    assert batch.format is case.fmt

    report = vault.ingest_batch(batch)

    sources = vault.sources()
    assert len(sources) == case.sources == len(report.sources)
    assert sorted(s.id for s in sources) == sorted(report.sources)
    assert report.unchanged_sources == 0
    assert report.conversations + report.documents == case.sources
    assert report.messages == case.messages == sum(len(s.messages) for s in sources)
    if batch.conversations:
        assert all(s.kind is SourceKind.CONVERSATION for s in sources)
        assert {s.external_id for s in sources} == {c.external_id for c in batch.conversations}
        assert {s.origin for s in sources} == {c.origin for c in batch.conversations}
    else:
        assert all(s.kind is SourceKind.DOCUMENT for s in sources)

    memories = active(vault)
    assert memories and report.outcomes
    assert all(o.decision is Decision.ADD for o in report.outcomes)  # an empty vault
    assert sorted(o.memory_id for o in report.outcomes) == sorted(m.id for m in memories)
    texts = {m.text for m in memories}
    for expected in case.expected:
        assert expected in texts, (expected, sorted(texts))
    for m in memories:
        assert m.status is Status.ACTIVE
        assert {p.source_id for p in m.provenance} <= set(report.sources)
        assert_provenance_is_sound(vault, m.id)
    check = vault.check()
    assert check.ok

    # 2. Idempotent: the same file again finds every source and changes nothing.
    entries = vault.log.count()
    again = vault.ingest_batch(read_any(case.make(tmp_path)))

    assert again.unchanged_sources == case.sources
    assert again.conversations == again.documents == again.messages == 0
    assert again.outcomes == ()
    assert sorted(again.sources) == sorted(report.sources)
    assert vault.log.count() == entries
    recheck = vault.check()
    assert recheck.ok and recheck.state_digest == check.state_digest
    assert sorted(m.id for m in active(vault)) == sorted(m.id for m in memories)
    assert len(vault.sources()) == case.sources


def test_nothing_is_taken_from_what_the_assistant_said(vault: Vault) -> None:
    report = ingest_file(vault, CHATGPT)
    assert report.outcomes
    texts = " ".join(active_texts(vault)).lower()
    # The assistant's advice in the same conversations; the user never said these.
    for advice in ("strength work", "cut-back week", "chocolate milk", "guest bed"):
        assert advice not in texts
    for m in active(vault):
        for p in m.provenance:
            assert p.source_id is not None and p.turn is not None
            assert vault.get_source(p.source_id).messages[p.turn].role == "user"


# 2. Idempotence, across file shapes and through the CLI.


def test_the_zip_and_its_conversations_json_are_the_same_import(
    vault: Vault, tmp_path: Path
) -> None:
    ingest_file(vault, CHATGPT)
    digest = vault.check().state_digest
    again = ingest_file(vault, chatgpt_zip(tmp_path))
    assert (again.unchanged_sources, again.outcomes) == (3, ())
    assert vault.check().state_digest == digest


def test_a_document_with_other_line_endings_is_the_same_document(
    vault: Vault, tmp_path: Path
) -> None:
    ingest_file(vault, NOTES)
    crlf = tmp_path / "notes-windows.md"
    crlf.write_bytes(NOTES.read_bytes().replace(b"\n", b"\r\n"))
    again = ingest_file(vault, crlf)
    assert (again.unchanged_sources, again.documents, again.outcomes) == (1, 0, ())


def test_cli_ingest_twice_says_already_in_the_vault_and_writes_nothing(home: Path) -> None:
    init()
    (first,) = ok_json("ingest", str(CHATGPT))
    assert (first["conversations"], first["messages"], first["unchanged_sources"]) == (3, 17, 0)
    assert first["memories"]["added"] == len(first["outcomes"]) > 0
    before = tree_bytes(home)

    second = ok("ingest", str(CHATGPT)).stdout

    assert second.strip() == (
        f"{CHATGPT} (chatgpt): 0 conversations, 0 messages; 3 already in the vault; "
        "memories: 0 added, 0 updated, 0 unchanged"
    )
    assert tree_bytes(home) == before
    (again,) = ok_json("ingest", str(CHATGPT))
    assert again["unchanged_sources"] == 3 and again["outcomes"] == []
    assert again["memories"]["added"] == 0 and sorted(again["sources"]) == sorted(first["sources"])
    assert len(ok_json("sources")) == 3
    assert tree_bytes(home) == before


# 3. Resuming an interrupted import.


@pytest.mark.parametrize("k", [1, 2])
def test_an_interrupted_import_resumes_without_duplicates(
    vault_factory: Callable[[str], NewVault], k: int
) -> None:
    batch = read_any(CHATGPT)
    one_shot = vault_factory("one-shot").vault
    whole = one_shot.ingest_batch(batch)

    resumed = vault_factory("resumed").vault
    part = resumed.ingest_batch(replace(batch, conversations=batch.conversations[:k]))
    rest = resumed.ingest_batch(batch)

    assert part.conversations == k
    assert rest.unchanged_sources == k and rest.conversations == 3 - k
    assert len(part.outcomes) + len(rest.outcomes) == len(whole.outcomes)
    assert len(resumed.sources()) == len(one_shot.sources()) == 3
    assert sorted(s.external_id for s in resumed.sources()) == sorted(
        s.external_id for s in one_shot.sources()
    )
    texts = active_texts(resumed)
    assert texts == active_texts(one_shot)
    assert len(texts) == len(set(texts))  # nothing doubled
    assert resumed.check().ok


def test_an_import_stopped_midway_keeps_whole_sources_and_resumes(
    vault_factory: Callable[[str], NewVault],
) -> None:
    batch = read_any(CHATGPT)
    vault = vault_factory("stopped").vault
    seen: list[tuple[int, int]] = []

    def stop_after_the_first(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vault.ingest_batch(batch, progress=stop_after_the_first)
    assert seen == [(1, 3)]
    (stored,) = vault.sources()
    assert stored.external_id == batch.conversations[0].external_id
    assert vault.check().ok

    rest = vault.ingest_batch(batch)

    assert (rest.unchanged_sources, rest.conversations) == (1, 2)
    assert len(vault.sources()) == 3
    one_shot = vault_factory("one-shot").vault
    one_shot.ingest_batch(batch)
    texts = active_texts(vault)
    assert texts == active_texts(one_shot) and len(texts) == len(set(texts))
    assert vault.check().ok


# 4. A conversation that grew since it was imported.


def test_a_grown_conversation_only_adds_memories_from_its_new_turns(vault: Vault) -> None:
    batch = read_any(CHATGPT)
    ingest_file(vault, CHATGPT)
    before = {m.id: m for m in active(vault)}
    book = next(c for c in batch.conversations if c.external_id == BOOK_ID)
    old_len = len(book.messages)
    later = book.messages[-1].timestamp + timedelta(days=3)  # type: ignore[operator]
    grown = replace(
        book,
        messages=(
            *book.messages,
            Message("user", "By the way, I adopted a second cat named Mochi.", later),
            Message(
                "user",
                "I work as a marine biologist at the University of Gothenburg.",
                later + timedelta(minutes=2),
            ),
        ),
    )

    report = vault.ingest_batch(replace(batch, conversations=(grown,)))

    assert (report.conversations, report.unchanged_sources) == (1, 0)
    (new_source_id,) = report.sources
    new_source = vault.get_source(new_source_id)
    assert new_source.external_id == BOOK_ID and len(new_source.messages) == old_len + 2
    assert len(vault.sources()) == 4  # the old version of the conversation stays

    assert sorted(o.text for o in report.outcomes) == [
        "Adopted a second cat named Mochi",
        "Works as a marine biologist at the University of Gothenburg",
    ]
    for o in report.outcomes:
        assert o.decision is Decision.ADD and o.memory_id not in before
        (p,) = vault.get(o.memory_id).provenance
        assert p.source_id == new_source_id and p.turn is not None and p.turn >= old_len
        assert_provenance_is_sound(vault, o.memory_id)
    # Nothing was read again from the turns already imported: no memory cites them.
    for m in active(vault):
        for p in m.provenance:
            if p.source_id == new_source_id:
                assert p.turn is not None and p.turn >= old_len
    for mid, old in before.items():
        assert vault.get(mid) == old
    assert len(active(vault)) == len(before) + 2
    assert vault.check().ok


def test_a_grown_claude_conversation_only_reads_its_new_turns(vault: Vault) -> None:
    batch = read_any(CLAUDE)
    ingest_file(vault, CLAUDE)
    before = {m.id: m for m in active(vault)}
    grant = batch.conversations[0]
    assert any(m.timestamp and m.timestamp.microsecond % 1000 for m in grant.messages)
    later = grant.messages[-1].timestamp + timedelta(days=1)  # type: ignore[operator]
    grown = replace(
        grant,
        messages=(
            *grant.messages,
            Message("user", "By the way, I adopted a second cat named Mochi.", later),
        ),
    )

    report = vault.ingest_batch(replace(batch, conversations=(grown,)))

    assert report.conversations == 1
    assert [(o.decision, o.text) for o in report.outcomes] == [
        (Decision.ADD, "Adopted a second cat named Mochi")
    ]
    for mid, old in before.items():
        assert vault.get(mid) == old  # no provenance added from the turns read before


# 5. Documents: offsets and headings.


@pytest.mark.parametrize("path", [NOTES, PLAIN], ids=["markdown", "text"])
def test_document_provenance_has_offsets_into_the_normalised_text(vault: Vault, path: Path) -> None:
    (doc,) = read_any(path).documents
    report = ingest_file(vault, path)
    assert report.outcomes
    for o in report.outcomes:
        (e,) = vault.why(o.memory_id).evidence
        assert e.source_kind is SourceKind.DOCUMENT and e.offset is not None
        assert e.quote and doc.text[e.offset : e.offset + len(e.quote)] == e.quote
        chunk = doc.chunks[e.provenance.turn]  # type: ignore[index]
        assert chunk.start <= e.offset and e.offset + len(e.quote) <= chunk.end
        if path.suffix == ".md":
            assert e.heading == " > ".join(chunk.heading) and e.heading
        else:
            assert e.heading is None
    if path.suffix == ".md":
        lamp = next(o for o in report.outcomes if o.text == "Moved the lamp")
        (e,) = vault.why(lamp.memory_id).evidence
        assert e.heading == (
            "Eight Minds — working notes > Chapter 4: The lamp problem > Greta at Kristineberg"
        )
        assert e.quote == "We moved the lamp"
        assert e.source_created_at == datetime(2025, 3, 9, tzinfo=UTC)  # the front matter


def test_offsets_index_the_normalised_text_of_a_crlf_file(vault: Vault, tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes(NOTES.read_bytes().replace(b"\n", b"\r\n"))
    (doc,) = read_any(path).documents
    assert "\r" not in doc.text
    report = ingest_file(vault, path)
    assert report.outcomes
    for o in report.outcomes:
        (e,) = vault.why(o.memory_id).evidence
        assert e.offset is not None and doc.text[e.offset : e.offset + len(e.quote)] == e.quote


# 6. Memories from mem0.


def test_mem0_memories_keep_their_categories_tags_and_dates(vault: Vault) -> None:
    report = ingest_file(vault, MEM0)
    (source_id,) = report.sources
    by_text = {m.text: m for m in active(vault)}
    assert len(by_text) == 7
    expected = {
        "Is writing a popular-science book about octopus cognition called Eight Minds": (
            Category.CAREER,
            (),
        ),
        "Is moving to Lisbon in March 2026 with partner Tomás and cat Pixel": (
            Category.TRAVEL,
            ("personal_details",),
        ),
        "Left IT band flares up above about 45 km of running a week": (
            Category.HEALTH,
            ("sports",),
        ),
        "Sister Elin lives in Malmö": (Category.RELATIONSHIPS, ()),
        "Prefers short answers with bullet points": (
            Category.PRODUCTIVITY,
            ("user_preferences",),
        ),
    }
    for text, (category, tags) in expected.items():
        m = by_text[text]
        assert (m.category, m.tags, m.kind) == (category, tags, Kind.SEMANTIC), m
    assert by_text["Is vegetarian"].tags == ("food",)  # unmapped: kept as a tag
    lisbon = by_text["Is moving to Lisbon in March 2026 with partner Tomás and cat Pixel"]
    assert lisbon.observed_at == datetime(2025, 4, 12, 15, 44, 10, tzinfo=UTC)  # updated_at
    source = vault.get_source(source_id)
    for i, m in enumerate(sorted(by_text.values(), key=lambda m: m.provenance[0].turn or 0)):
        (p,) = m.provenance
        assert (p.source_id, p.turn, p.extractor, p.extractor_version) == (
            source_id,
            i,
            "mem0",
            "1",
        )
        assert source.messages[i].content == m.text
        assert_provenance_is_sound(vault, m.id)


def test_mem0_records_seen_again_add_no_memories(vault: Vault) -> None:
    ingest_file(vault, MEM0)
    again = ingest_file(vault, MEM0)
    assert (again.unchanged_sources, again.outcomes) == (1, ())
    before = {m.id: m for m in active(vault)}

    # The same three records in the other export shape: a new source, no new memories.
    subset = ingest_file(vault, MEM0_LIST)

    (new_source,) = subset.sources
    assert [o.decision for o in subset.outcomes] == [Decision.NOOP] * 3
    assert {m.id for m in active(vault)} == set(before)
    for o in subset.outcomes:
        assert o.target_id == o.memory_id and o.memory_id in before
        m = vault.get(o.memory_id)
        assert m.provenance[:-1] == before[o.memory_id].provenance
        assert (m.provenance[-1].source_id, m.provenance[-1].extractor) == (new_source, "mem0")
    assert vault.check().ok


def test_a_mem0_memory_the_vault_already_has_adds_provenance_only(vault: Vault) -> None:
    ingest_file(vault, CHATGPT)
    (veg,) = [m for m in active(vault) if m.text == "Is vegetarian"]
    count = len(active(vault))

    report = ingest_file(vault, MEM0_LIST)

    (source_id,) = report.sources
    outcome = next(o for o in report.outcomes if o.text == "Is vegetarian")
    assert outcome.decision is Decision.NOOP and outcome.target_id == veg.id
    assert outcome.memory_id == veg.id
    now = vault.get(veg.id)
    assert now.status is Status.ACTIVE and now.text == veg.text
    assert now.provenance[: len(veg.provenance)] == veg.provenance
    added = now.provenance[len(veg.provenance) :]
    assert [(p.source_id, p.turn, p.extractor) for p in added] == [(source_id, 2, "mem0")]
    evidence = vault.why(veg.id).evidence
    assert [e.quote for e in evidence] == ["I'm vegetarian", "Is vegetarian"]
    assert [e.source_kind for e in evidence] == [SourceKind.CONVERSATION, SourceKind.DOCUMENT]
    assert len([m for m in active(vault) if m.text == "Is vegetarian"]) == 1
    assert len(active(vault)) <= count + 2  # at most the two other records are new
    assert vault.check().ok


# 7. Malformed files through the CLI.

BROKEN = [
    ("chatgpt/broken_truncated.json", "not valid JSON (line "),
    ("chatgpt/broken_missing_parent.json", "is not in the mapping"),
    ("chatgpt/broken_parts.json", f"conversation 2 (id {BOOK_ID})"),
    ("claude/broken_sender.json", "message 3 (id 07d9c1e3-5f6b-4d8a-8cae-8dafa2c4e607)"),
    ("mem0/broken_no_text.json", "memory 2 (id 9a4d2b3f-7c8e-4fa0-b1d2-3e4f5a6b7c82)"),
    ("openai/broken_line.jsonl", "line 3"),
]


def test_cli_malformed_files_are_one_line_and_write_nothing(home: Path) -> None:
    init()
    ok("add", "Prefers short answers")
    before = tree_bytes(home)
    for relpath, place in BROKEN:
        path = FIXTURES / relpath
        one_line_error(run("ingest", str(path)), 7, f"{path}: ", place)
        # Validation comes before any write: good files named first are not stored either.
        result = run("ingest", str(NOTES), str(CHATGPT), str(path), str(OPENAI))
        one_line_error(result, 7, f"{path}: ", place)
        assert result.stdout == ""
        assert tree_bytes(home) == before, relpath
    assert len(ok_json("sources")) == 0 and ok_json("list")["total"] == 1


def test_cli_a_broken_export_inside_a_directory_writes_nothing(home: Path, tmp_path: Path) -> None:
    init()
    folder = tmp_path / "exports"
    folder.mkdir()
    shutil.copy(NOTES, folder / "a-notes.md")
    shutil.copy(FIXTURES / "claude" / "broken_sender.json", folder / "b-claude.json")
    before = tree_bytes(home)
    one_line_error(run("ingest", str(folder)), 7, str(folder / "b-claude.json"), "'sender'")
    assert tree_bytes(home) == before


# 8. A directory.


def test_cli_directory_import_skips_unrelated_files_with_a_note(home: Path, tmp_path: Path) -> None:
    init()
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(NOTES, folder / "notes.md")
    shutil.copy(CHATGPT, folder / "sub" / "conversations.json")
    (folder / "settings.json").write_text('{"foo": 1}', encoding="utf-8")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a photo")  # not even looked at
    (folder / ".hidden.md").write_text("I secretly love karaoke.\n", encoding="utf-8")

    result = ok("ingest", str(folder))

    note_lines = result.stderr.strip().splitlines()
    assert len(note_lines) == 1
    assert note_lines[0].startswith("skipped ") and str(folder / "settings.json") in note_lines[0]
    assert "not a format memsync can import" in note_lines[0]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{folder / 'notes.md'} (markdown): 1 documents")
    assert lines[1].startswith(f"{folder / 'sub' / 'conversations.json'} (chatgpt): 3 conversa")
    sources = ok_json("sources")
    assert len(sources) == 4
    with open_vault(home) as vault:
        texts = " ".join(active_texts(vault)).lower()
    assert "karaoke" not in texts  # hidden files are not read


def test_cli_directory_holding_the_vault_leaves_the_vault_alone(home: Path) -> None:
    init()
    ok("add", "Prefers short answers")
    folder = home.parent  # the vault's own files (vault.json among them) are in here
    shutil.copy(NOTES, folder / "notes.md")

    result = ok("ingest", str(folder))

    assert result.stderr == ""  # not even a note about the vault's files
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith(f"{folder / 'notes.md'} (markdown): 1 documents")
    assert [s["title"] for s in ok_json("sources")] == ["Eight Minds — working notes"]


def test_cli_directory_with_nothing_importable_is_a_usage_error(home: Path, tmp_path: Path) -> None:
    init()
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.json").write_text('{"foo": 1}', encoding="utf-8")
    result = run("ingest", str(folder))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"memsync: error: {folder}: no files memsync can import in this directory"
    )


# 9. Profile and why through the CLI.


def _ingest_everything() -> None:
    for path in (CHATGPT, CLAUDE, MEM0, NOTES):
        ok("ingest", str(path))


def test_cli_profile_after_ingesting_the_fixtures(home: Path) -> None:
    init()
    _ingest_everything()

    first = ok_json("profile")
    second = ok_json("profile")

    assert first["bio"].strip()
    assert first["builder"] == "rules" and first["memory_count"] > 0
    categories = [s["category"] for s in first["sections"]]
    assert categories and len(categories) == len(set(categories))
    assert categories == [c.value for c in Category if c.value in categories]  # in order
    assert {"career", "relationships", "health"} <= set(categories)
    assert first["sections"] == second["sections"] and first["bio"] == second["bio"]
    with open_vault(home) as vault:
        counted = 0
        for section in first["sections"]:
            assert section["summary"].strip()
            for mid in section["memory_ids"]:
                m = vault.get(mid)
                assert m.status is Status.ACTIVE and m.kind is Kind.SEMANTIC
                assert m.category is not None and m.category.value == section["category"]
                counted += 1
        assert counted == first["memory_count"] - sum(
            1 for m in active(vault) if m.kind is Kind.SEMANTIC and m.category is None
        )
        career = next(s for s in first["sections"] if s["category"] == "career")
        assert any(
            vault.get(mid).text.startswith("Is writing a popular-science book")
            for mid in career["memory_ids"]
        )

    shown = ok("profile").stdout
    assert first["bio"].split(".")[0] in " ".join(shown.split())
    for category in categories:
        assert category in shown
    assert f"from {first['memory_count']} memories" in shown and "by rules" in shown


def test_cli_why_shows_the_quote_and_the_date(home: Path) -> None:
    init()
    _ingest_everything()
    with open_vault(home) as vault:
        veg = next(m for m in active(vault) if m.text == "Is vegetarian")
        lamp = next(m for m in active(vault) if m.text == "Moved the lamp")
        veg_evidence = vault.why(veg.id).evidence

    shown = " ".join(ok("why", veg.id).stdout.split())

    assert veg.id in shown and "Is vegetarian" in shown
    assert "said in (2):" in shown  # the ChatGPT turn and the mem0 record
    assert "“Half marathon plan”, 2025-05-18, turn 6 (user, 2025-05-18 06:56" in shown
    assert "I'm vegetarian" in shown and "please keep the fuelling suggestions" in shown
    assert "“mem0 memories”" in shown
    assert "(rules v1)" in shown and "(mem0 v1)" in shown

    data = ok_json("why", veg.id[:6])
    assert data["memory"]["id"] == veg.id
    assert [e["quote"] for e in data["evidence"]] == [e.quote for e in veg_evidence]
    assert data["evidence"][0]["timestamp"].startswith("2025-05-18T06:56:37")

    doc = " ".join(ok("why", lamp.id).stdout.split())
    assert "document" in doc and "“Eight Minds — working notes”, 2025-03-09" in doc
    assert "under “Eight Minds — working notes > Chapter 4: The lamp problem" in doc
    assert "We moved the lamp" in doc
    (e,) = ok_json("why", lamp.id)["evidence"]
    assert f"characters {e['document_offset']}-{e['document_offset'] + len(e['quote'])}" in doc


# 10. Settings.


def test_cli_config_lists_every_key(home: Path) -> None:
    init()
    shown = ok("config").stdout
    keys = [
        "extractor",
        "llm.base_url",
        "llm.model",
        "llm.api_key",
        "llm.timeout",
        "reconcile.llm",
        "profile.llm",
        "proxy.upstream",
        "proxy.api_key",
        "proxy.budget",
        "proxy.timeout",
        "proxy.capture",
        "sync.interval",
        "owner.name",
        "retention.episodic",
    ]
    for key in keys:
        assert key in shown
    data = ok_json("config")
    assert list(data) == keys
    assert data["extractor"] == "rules" and data["llm.api_key"] == "(not set)"
    assert data["llm.timeout"] == "60.0" and data["reconcile.llm"] == "true"
    assert ok_json("config", "llm.model") == {"llm.model": "(not set)"}


MARKER = "sk-canary-7Hq2ZpX4vLr9"


def test_cli_api_key_from_stdin_is_stored_and_never_shown(home: Path) -> None:
    init()
    set_it = ok("config", "llm.api_key", "-", input=MARKER + "\n")
    assert "(set, hidden)" in set_it.stdout
    outputs = [
        set_it,
        ok("config"),
        ok("config", "--json"),
        ok("config", "llm.api_key"),
        ok("config", "llm.api_key", "--json"),
    ]
    for result in outputs:
        assert MARKER not in result.stdout + result.stderr
    assert ok_json("config")["llm.api_key"] == "(set, hidden)"
    with open_vault(home) as vault:
        assert vault.settings().llm_api_key == MARKER  # stored, exactly


def test_api_key_never_reaches_the_disk_in_the_clear(home: Path, tmp_path: Path) -> None:
    init()
    ok("config", "llm.api_key", "-", input=MARKER + "\n")
    ok("config", "llm.base_url", "http://127.0.0.1:9/v1")
    ok("ingest", str(OPENAI))
    ok("export", str(tmp_path / "backup.jsonl"))  # plaintext by design, but settings stay out
    files = tree_bytes(home) | {"backup.jsonl": (tmp_path / "backup.jsonl").read_bytes()}
    assert len(files) >= 4 and b"Bonked at 16 km" in files["backup.jsonl"]
    for name, data in files.items():
        for form in (MARKER.encode(), MARKER.encode("utf-16-le"), MARKER[::-1].encode()):
            assert form not in data, name
        assert b"sk-canary" not in data, name
    with open_vault(home) as vault:
        assert vault.settings().llm_api_key == MARKER


BAD_SETTINGS = [
    (("llm.base_url", "ftp://x"), "llm.base_url must be an http(s) URL"),
    (("llm.base_url", "localhost:11434"), "llm.base_url must be an http(s) URL"),
    (("llm.timeout", "abc"), "llm.timeout must be a number"),
    (("llm.timeout", "0"), "llm.timeout must be a number"),
    (("extractor", "gpt"), "extractor must be 'rules' or 'llm'"),
    (("reconcile.llm", "maybe"), "reconcile.llm must be true or false"),
    (("llm.model", "  "), "llm.model cannot be empty"),
    (("colour", "blue"), "unknown setting 'colour'"),
    (("colour",), "unknown setting 'colour'"),
    (("colour", "--unset"), "unknown setting 'colour'"),
    (("--unset",), "--unset takes a KEY and no VALUE"),
    (("llm.model", "x", "--unset"), "--unset takes a KEY and no VALUE"),
]


def test_cli_bad_settings_are_one_line_and_change_nothing(home: Path) -> None:
    init()
    ok("config", "llm.timeout", "5")
    before, files = ok_json("config"), tree_bytes(home)
    for args, fragment in BAD_SETTINGS:
        one_line_error(run("config", *args), 2, fragment)
    assert tree_bytes(home) == files
    assert ok_json("config") == before


def test_cli_config_set_and_unset(home: Path) -> None:
    init()
    assert ok_json("config", "llm.timeout", "5") == {"llm.timeout": "5.0"}
    assert ok_json("config", "llm.base_url", "http://localhost:11434/v1/") == {
        "llm.base_url": "http://localhost:11434/v1"
    }
    assert ok_json("config", "reconcile.llm", "off") == {"reconcile.llm": "false"}
    ok("config", "llm.api_key", "-", input="sk-temp\n")
    data = ok_json("config")
    assert (data["llm.timeout"], data["reconcile.llm"], data["llm.api_key"]) == (
        "5.0",
        "false",
        "(set, hidden)",
    )
    for key in ("llm.timeout", "llm.base_url", "reconcile.llm", "llm.api_key"):
        ok("config", key, "--unset")
    assert ok_json("config") == {
        "extractor": "rules",
        "llm.base_url": "(not set)",
        "llm.model": "(not set)",
        "llm.api_key": "(not set)",
        "llm.timeout": "60.0",
        "reconcile.llm": "true",
        "profile.llm": "true",
        "proxy.upstream": "(not set)",
        "proxy.api_key": "(not set)",
        "proxy.budget": "1000",
        "proxy.timeout": "120.0",
        "proxy.capture": "false",
        "sync.interval": "300.0",
        "owner.name": "(not set)",
        "retention.episodic": "(not set)",
    }
    with open_vault(home) as vault:
        assert vault.settings().llm_api_key is None


def test_cli_extractor_llm_without_a_model_is_a_usage_error(home: Path) -> None:
    init()
    ok("config", "extractor", "llm")
    before = tree_bytes(home)
    one_line_error(run("ingest", str(OPENAI)), 2, "extractor is llm", "llm.base_url")
    assert tree_bytes(home) == before


# 11. Schema migration.


def test_a_version_1_vault_is_migrated_when_opened(home: Path) -> None:
    made = create_vault(home)
    v = made.vault
    kept = v.add("Prefers short answers", category=Category.PRODUCTIVITY)
    old_conv = v.ingest(
        [Message("user", "I commute by bike.", datetime(2025, 1, 5, 8, tzinfo=UTC))]
    ).source
    # Turn the database into schema version 1: no external ids, no chunk offsets.
    with v.conn:
        v.conn.execute("DROP INDEX sources_external")
        v.conn.execute("ALTER TABLE sources DROP COLUMN external_id")
        v.conn.execute("ALTER TABLE messages DROP COLUMN start")
        db.write_meta(v.conn, "schema_version", "1")
    assert "external_id" not in _columns(v, "sources")
    v.close()

    with open_vault(home) as vault:
        assert db.read_meta(vault.conn, "schema_version") == str(db.SCHEMA_VERSION)
        assert "external_id" in _columns(vault, "sources")
        assert "start" in _columns(vault, "messages")
        indexes = {str(r[0]) for r in vault.conn.execute("SELECT name FROM sqlite_master")}
        assert "sources_external" in indexes
        assert vault.get(kept.id).text == "Prefers short answers"
        assert vault.get_source(old_conv.id).messages == old_conv.messages
        assert vault.check().ok

        report = ingest_file(vault, NOTES)
        (doc,) = read_any(NOTES).documents
        source = vault.get_source(report.sources[0])
        assert source.offsets == tuple(c.start for c in doc.chunks)
        assert source.external_id == doc.external_id
        for o in report.outcomes:
            (e,) = vault.why(o.memory_id).evidence
            assert e.offset is not None and doc.text[e.offset :].startswith(e.quote)
        assert ingest_file(vault, CHATGPT).conversations == 3
        assert vault.check().ok

    with open_vault(home) as again:  # a second open finds nothing to migrate
        assert db.read_meta(again.conn, "schema_version") == str(db.SCHEMA_VERSION)
        assert again.check().ok
        assert len(again.sources()) == 5


def test_an_unknown_schema_version_is_refused(home: Path) -> None:
    v = create_vault(home).vault
    with v.conn:
        db.write_meta(v.conn, "schema_version", "99")
    v.close()
    with pytest.raises(CorruptVault, match="unsupported vault schema version: '99'"):
        open_vault(home)


def _columns(vault: Vault, table: str) -> set[str]:
    return {str(r[1]) for r in vault.conn.execute(f"PRAGMA table_info({table})")}


# Odds and ends of the batch API.


def test_no_extract_stores_sources_only(vault: Vault) -> None:
    report = vault.ingest_batch(read_any(CHATGPT), extract=False)
    assert (report.conversations, report.messages, report.outcomes) == (3, 17, ())
    assert active(vault) == []
    # The turns are searchable even without memories.
    hits = vault.search("vegetarian fuelling", k=3)
    assert hits and hits[0].turn is not None and "vegetarian" in hits[0].turn.text


def test_progress_counts_every_source(vault: Vault) -> None:
    calls: list[tuple[int, int]] = []
    batch = ImportBatch(
        conversations=read_any(CLAUDE).conversations,
        documents=read_any(NOTES).documents,
        memories=read_any(MEM0_LIST).memories,
    )
    report = vault.ingest_batch(batch, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert report.conversations == 2 and len(report.sources) == 4
    assert len(vault.sources()) == 4
