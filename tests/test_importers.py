"""The importers on the sample exports in tests/fixtures (all made up), including broken ones.

The fixtures are one invented person's data across tools: Hannah, a marine biologist in
Gothenburg writing a book about octopus cognition, moving to Lisbon with Tomás, training
for a half marathon. Zips and a PDF are built here from the fixtures, not committed.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsync.capture import Format, ImportBatch, detect_format, read_any
from memsync.capture.chatgpt import parse_chatgpt, read_chatgpt
from memsync.capture.claude import parse_claude, read_claude
from memsync.capture.documents import (
    MAX_CHARS,
    MIN_CHARS,
    chunk_text,
    parse_document,
    pdf_supported,
    read_document,
    read_pdf,
)
from memsync.capture.mem0 import map_category, parse_mem0, read_mem0
from memsync.errors import InvalidInput, UsageError
from memsync.model import Category

FIXTURES = Path(__file__).parent / "fixtures"
CHATGPT = FIXTURES / "chatgpt" / "conversations.json"
CLAUDE = FIXTURES / "claude" / "conversations.json"
BOOK_ID = "67c42f18-5b3e-8004-9a41-2f6d1c0be713"
MOVE_ID = "6803a7c2-91d4-8007-b3e5-7f1a2c9d0e44"
RACE_ID = "682a1e90-4c7b-8003-a6d2-0e9f8b7c6d55"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def make_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def chatgpt_zip(tmp_path: Path, conversations: bytes | None = None) -> Path:
    """A zip shaped like ChatGPT's export: conversations.json beside the other files."""
    return make_zip(
        tmp_path / "chatgpt-export.zip",
        {
            "chat.html": "<html><body>…</body></html>",
            "conversations.json": conversations or CHATGPT.read_bytes(),
            "message_feedback.json": "[]",
            "user.json": '{"id": "user-hannah", "email": "hannah@example.org"}',
            "file-7Qm2Lx9RaP3vKc1-floorplan_alcantara.jpg": b"\xff\xd8\xff\xe0 not really",
        },
    )


def tiny_pdf(lines: list[str], title: str, created: str) -> bytes:
    """A minimal one-page PDF with Helvetica text, written by hand."""
    body = " ".join(f"({line}) Tj T*" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td 16 TL {body} ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({title}) /CreationDate (D:{created}Z) >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{off:010d} 00000 n \n".encode() for off in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return out


# ChatGPT


def test_chatgpt_reads_conversations_in_file_order() -> None:
    convs = list(read_chatgpt(CHATGPT))
    assert [c.external_id for c in convs] == [RACE_ID, MOVE_ID, BOOK_ID]
    assert [c.title for c in convs] == [
        "Half marathon plan",
        "Lisbon flat and lease",
        "Chapter 4 restructure",
    ]
    assert all(c.origin == "chatgpt" for c in convs)


def test_chatgpt_follows_the_current_branch_only() -> None:
    book = next(c for c in read_chatgpt(CHATGPT) if c.external_id == BOOK_ID)
    assert [m.role for m in book.messages] == ["user", "assistant", "user", "assistant"]
    texts = [m.content for m in book.messages]
    assert texts[0].startswith("I'm writing a popular-science book about octopus cognition")
    # The regenerated answer, not the abandoned first one.
    assert texts[1].startswith("- Build the chapter around one animal")
    # The edited user message, not the version before the edit (nor its reply).
    assert texts[2].startswith("I like following one animal. We had our own Otto")
    assert texts[3].startswith("- Open with Greta and the dark tank.")
    everything = "\n".join(texts)
    for abandoned in ("chronologically", "Any examples?", "Sea Star Aquarium"):
        assert abandoned not in everything
    # The hidden system message and the hidden custom instructions are skipped.
    assert book.skipped_messages == 2
    assert "Bullet points over paragraphs" not in everything
    assert book.skipped_parts == 0
    assert book.created_at == datetime(2025, 3, 2, 9, 14, 3, 318000, tzinfo=UTC)
    assert book.updated_at is not None and book.updated_at > book.created_at


def test_chatgpt_notes_images_and_files() -> None:
    move = next(c for c in read_chatgpt(CHATGPT) if c.external_id == MOVE_ID)
    roles = [(m.role, m.name) for m in move.messages]
    assert roles == [
        ("user", None),
        ("assistant", None),
        ("user", None),
        ("tool", "myfiles_browser"),
        ("assistant", None),
    ]
    first, _, lease, tool, _ = (m.content for m in move.messages)
    # The image part is noted once, with its uploaded file's name, where it stood.
    assert first.startswith("[image: floorplan_alcantara.jpg]\nThis is the floor plan")
    assert first.count("floorplan_alcantara.jpg") == 1
    assert lease.endswith("is that normal?\n[file: contrato_arrendamento_draft.pdf]")
    assert tool.startswith("Cláusula 7.ª")
    # The assistant's internal call to the file browser is not a turn.
    assert not any("search(" in m.content for m in move.messages)
    assert move.skipped_parts == 2
    assert move.skipped_messages == 1


def test_chatgpt_message_without_time_takes_the_previous_time() -> None:
    move = next(c for c in read_chatgpt(CHATGPT) if c.external_id == MOVE_ID)
    assert move.messages[2].timestamp == move.messages[1].timestamp
    for conv in read_chatgpt(CHATGPT):
        stamps = [m.timestamp for m in conv.messages]
        assert all(t is not None and t.tzinfo is not None for t in stamps)
        assert stamps == sorted(stamps)  # type: ignore[type-var]


def test_chatgpt_tool_output_noted_code_and_reasoning_skipped() -> None:
    race = next(c for c in read_chatgpt(CHATGPT) if c.external_id == RACE_ID)
    assert [(m.role, m.content if m.role == "tool" else "") for m in race.messages] == [
        ("user", ""),
        ("assistant", ""),
        ("user", ""),
        ("tool", "[code output]"),
        ("tool", "[image]"),
        ("assistant", ""),
        ("user", ""),
        ("assistant", ""),
    ]
    everything = "\n".join(m.content for m in race.messages)
    assert "matplotlib" not in everything  # the code the model sent to python
    assert "She wants meat-free options" not in everything  # its reasoning
    assert race.messages[-2].content.startswith("Perfect. Also, I'm vegetarian")
    assert race.skipped_parts == 2
    assert race.skipped_messages == 2


def test_chatgpt_without_current_node_follows_the_newest_branch() -> None:
    doc = load(CHATGPT)
    for conv in doc:
        conv["current_node"] = None
    assert list(parse_chatgpt(doc, "x.json")) == list(parse_chatgpt(load(CHATGPT), "x.json"))


def test_chatgpt_single_conversation_object() -> None:
    doc = load(CHATGPT)
    (one,) = parse_chatgpt(doc[2], "one.json")
    assert one.external_id == BOOK_ID


def test_chatgpt_wrapped_in_a_conversations_object(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"conversations": load(CHATGPT)}), encoding="utf-8")
    assert detect_format(path) is Format.CHATGPT
    assert read_any(path).conversations == read_any(CHATGPT).conversations


def test_chatgpt_conversation_with_nothing_visible_is_left_out() -> None:
    doc = load(CHATGPT)[2]
    doc["current_node"] = "5e0c7a9b-2d43-4f8e-b6a1-93f2c4d5e602"  # the hidden instructions
    assert list(parse_chatgpt([doc], "x.json")) == []


def test_chatgpt_cycle_and_unknown_current_node_are_errors() -> None:
    doc = load(CHATGPT)[2]
    doc["current_node"] = "no-such-node"
    with pytest.raises(InvalidInput, match=r"x\.json: conversation 1 .*current_node 'no-such"):
        list(parse_chatgpt([doc], "x.json"))
    doc = load(CHATGPT)[2]
    doc["mapping"]["client-created-root"]["parent"] = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c09"
    with pytest.raises(InvalidInput, match="cycle"):
        list(parse_chatgpt([doc], "x.json"))


def test_chatgpt_zip_reads_conversations_json(tmp_path: Path) -> None:
    path = chatgpt_zip(tmp_path)
    assert detect_format(path) is Format.CHATGPT
    assert list(read_chatgpt(path)) == list(read_chatgpt(CHATGPT))
    assert read_any(path).conversations == read_any(CHATGPT).conversations


def test_chatgpt_zip_errors_name_the_member(tmp_path: Path) -> None:
    broken = (FIXTURES / "chatgpt" / "broken_parts.json").read_bytes()
    path = chatgpt_zip(tmp_path, broken)
    with pytest.raises(InvalidInput) as err:
        read_any(path)
    assert str(err.value).startswith(f"{path}:conversations.json: conversation 2 (id {BOOK_ID})")


def test_zip_split_export_members_are_read_in_order(tmp_path: Path) -> None:
    doc = load(CHATGPT)
    path = make_zip(
        tmp_path / "split.zip",
        {
            "export/conversations-001.json": json.dumps(doc[2:]),
            "export/conversations-000.json": json.dumps(doc[:2]),
        },
    )
    batch = read_any(path)
    assert [c.external_id for c in batch.conversations] == [RACE_ID, MOVE_ID, BOOK_ID]


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "bomb.zip", {"conversations.json": b"[" + b" " * 3_000_000 + b"]"})
    assert path.stat().st_size < 20_000
    with pytest.raises(InvalidInput, match="too large when unpacked"):
        read_any(path, max_bytes=1_000_000)


def test_zip_size_limit_counts_only_the_members_read(tmp_path: Path) -> None:
    path = tmp_path / "with-media.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conversations.json", CHATGPT.read_bytes())
        zf.writestr("photo.jpg", os.urandom(400_000), compress_type=zipfile.ZIP_STORED)
    assert path.stat().st_size > 300_000
    assert len(read_any(path, max_bytes=300_000).conversations) == 3


def test_zip_budget_covers_all_members(tmp_path: Path) -> None:
    half = json.dumps(load(CHATGPT)).encode()
    path = make_zip(
        tmp_path / "two.zip", {"conversations-000.json": half, "conversations-001.json": half}
    )
    with pytest.raises(InvalidInput, match=r"conversations-001\.json: too large"):
        read_any(path, max_bytes=len(half) + 100)


def test_zip_without_an_export_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "photos.zip", {"a.jpg": b"x", "b.jpg": b"y", "notes/c.txt": "z"})
    with pytest.raises(InvalidInput, match=r"photos\.zip: no conversations\.json .*a\.jpg"):
        read_any(path)


def test_damaged_zip_is_refused(tmp_path: Path) -> None:
    good = chatgpt_zip(tmp_path).read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(InvalidInput, match=r"cut\.zip: "):
        read_any(path)


# Claude


def test_claude_conversations() -> None:
    convs = list(read_claude(CLAUDE))
    # The third conversation has no messages and is left out.
    assert [c.title for c in convs] == [
        "Grant proposal: octopus sleep study",
        "Portuguese before the move",
    ]
    grant = convs[0]
    assert grant.external_id == "0c5e9a7d-3f1b-4d2e-8a6c-7b9d1e3f5a01"
    assert grant.origin == "claude"
    assert [m.role for m in grant.messages] == ["user", "assistant", "user", "assistant"]
    assert grant.messages[0].content.startswith("I'm applying to the Swedish Research Council")
    assert grant.messages[0].timestamp == datetime(2025, 2, 11, 20, 31, 8, 20931, tzinfo=UTC)
    # Thinking is dropped; the text part is kept.
    assert grant.messages[1].content == (
        "Happy to. Paste the aims and I'll mark every sentence over 25 words and suggest a cut."
    )
    assert grant.messages[2].content.endswith("video tracking.\n[file: aims_draft_v3.txt]")
    assert "Characterise active and quiet sleep" not in grant.messages[2].content
    assert grant.skipped_parts == 1
    assert grant.created_at == datetime(2025, 2, 11, 20, 31, 7, 412811, tzinfo=UTC)


def test_claude_text_field_tool_use_and_missing_time() -> None:
    _, portuguese = read_claude(CLAUDE)
    first, reply, thanks = portuguese.messages
    assert first.content.startswith("Tomás is Portuguese")  # from `text`, `content` is empty
    assert reply.content.startswith("[tool use: web_search]\n[tool result: web_search]\nMake sure")
    assert thanks.content == "Obrigada! Vou começar amanhã.\n[file: lisbon_commute_map.png]"
    assert thanks.timestamp == reply.timestamp
    assert portuguese.skipped_parts == 3


def test_claude_both_shapes_read_the_same() -> None:
    wrapped = FIXTURES / "claude" / "conversations_wrapped.json"
    assert detect_format(wrapped) is Format.CLAUDE
    assert list(read_claude(wrapped)) == list(read_claude(CLAUDE))
    assert read_any(wrapped) == read_any(CLAUDE)
    (one,) = parse_claude(load(CLAUDE)[1], "one.json")
    assert one.title == "Portuguese before the move"


def test_claude_zip(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path / "claude-export.zip",
        {
            "conversations.json": CLAUDE.read_bytes(),
            "users.json": '[{"uuid": "4b7e2c1a", "full_name": "Hannah Lindqvist"}]',
            "projects.json": "[]",
        },
    )
    assert detect_format(path) is Format.CLAUDE
    assert list(read_claude(path)) == list(read_claude(CLAUDE))


# mem0


def test_mem0_results_shape_and_category_mapping() -> None:
    mems = list(read_mem0(FIXTURES / "mem0" / "memories.json"))
    assert [(m.category, m.tags) for m in mems] == [
        (Category.CAREER, ()),  # professional_details
        (Category.TRAVEL, ("personal_details",)),  # the first mapped category wins
        (None, ("food",)),
        (Category.HEALTH, ("sports",)),
        (Category.RELATIONSHIPS, ()),  # family
        (Category.PRODUCTIVITY, ("user_preferences",)),  # "Productivity", any case
        (None, ()),  # categories: null
    ]
    first = mems[0]
    assert first.external_id == "8f3c1a2e-6b7d-4e9f-a0c1-2d3e4f5a6b71"
    assert (
        first.text == "Is writing a popular-science book about octopus cognition called Eight Minds"
    )
    assert first.created_at == datetime(2025, 3, 2, 9, 14, 9, 118372, tzinfo=UTC)
    assert first.origin == "mem0"
    # A null updated_at falls back to created_at.
    assert mems[3].updated_at == mems[3].created_at


def test_mem0_bare_list_and_jsonl(tmp_path: Path) -> None:
    results = list(read_mem0(FIXTURES / "mem0" / "memories.json"))
    bare = FIXTURES / "mem0" / "memories_list.json"
    assert detect_format(bare) is Format.MEM0
    assert list(read_mem0(bare)) == results[:3]
    jsonl = tmp_path / "mem0.jsonl"
    records = load(bare)
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert detect_format(jsonl) is Format.MEM0
    assert list(read_mem0(jsonl)) == results[:3]
    assert read_any(jsonl).memories == tuple(results[:3])


def test_mem0_record_without_id_gets_a_content_id() -> None:
    record = {"memory": "Runs along the river to Belém", "created_at": "2025-06-01T07:00:00Z"}
    (a,) = parse_mem0([record], "m.json")
    (b,) = parse_mem0({"memories": [dict(record)]}, "n.json")
    assert a.external_id == b.external_id and a.external_id.startswith("sha256:")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("travel", Category.TRAVEL),
        ("Health", Category.HEALTH),
        ("personal_details", Category.IDENTITY),
        ("professional_details", Category.CAREER),
        ("family", Category.RELATIONSHIPS),
        ("hobbies", Category.INTERESTS),
        ("food", None),
        ("misc", None),
    ],
)
def test_mem0_category_names(name: str, expected: Category | None) -> None:
    assert map_category(name) == expected


# Documents


def assert_chunk_invariants(text: str, chunks: tuple[Any, ...], body: int = 0) -> None:
    assert chunks
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip()
        assert c.start == body or text[c.start - 1].isspace()  # never starts mid-word
        assert c.end == len(text) or text[c.end].isspace()  # never ends mid-word
    assert all(a.end < b.start for a, b in itertools.pairwise(chunks))
    covered = "".join("".join(c.text.split()) for c in chunks)
    assert covered == "".join(text[body:].split())


def test_markdown_chunks_follow_headings() -> None:
    doc = read_document(FIXTURES / "docs" / "notes.md")
    assert doc.origin == "markdown"
    assert doc.title == "Eight Minds — working notes"
    assert doc.created_at == datetime(2025, 3, 9, tzinfo=UTC)  # from the front matter
    body = doc.text.index("# Eight Minds")
    assert_chunk_invariants(doc.text, doc.chunks, body)
    assert all(len(c.text) <= MAX_CHARS for c in doc.chunks)
    assert all(len(c.text) >= MIN_CHARS // 2 for c in doc.chunks[:-1])
    book = "Eight Minds — working notes"
    assert [c.heading for c in doc.chunks] == [
        (book,),
        (book, "Chapter 4: The lamp problem", "Greta at Kristineberg"),
        (book, "Chapter 4: The lamp problem", "What the experiments say"),
        (book, "Chapter 5: Sleep"),
    ]
    assert [c.text.split("\n", 1)[0] for c in doc.chunks] == [
        "# Eight Minds — working notes",
        "### Greta at Kristineberg",
        "### What the experiments say",
        "## Chapter 5: Sleep",
    ]
    # A '#' line inside a code fence is not a heading.
    assert not any("not a heading" in part for c in doc.chunks for part in c.heading)
    assert "title:" not in doc.chunks[0].text  # the front matter is not chunked


def test_plain_text_chunks_end_on_paragraphs(tmp_path: Path) -> None:
    path = FIXTURES / "docs" / "plain.txt"
    doc = read_document(path)
    assert doc.origin == "text"
    assert doc.title == "plain"
    assert doc.created_at == datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    assert_chunk_invariants(doc.text, doc.chunks)
    assert all(c.heading == () for c in doc.chunks)
    assert len(doc.chunks) == 3
    for c in doc.chunks[:-1]:
        assert doc.text[c.end : c.end + 2] == "\n\n"  # each ends a paragraph
        assert MIN_CHARS // 2 <= len(c.text) <= MAX_CHARS


def test_document_id_depends_on_content_not_path(tmp_path: Path) -> None:
    src = FIXTURES / "docs" / "plain.txt"
    copy = tmp_path / "elsewhere" / "renamed.text"
    copy.parent.mkdir()
    shutil.copy(src, copy)
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    ids = {read_document(p).external_id for p in (src, copy, crlf)}
    assert len(ids) == 1 and ids.pop().startswith("sha256:")
    edited = tmp_path / "edited.txt"
    edited.write_text(src.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    assert read_document(edited).external_id != read_document(src).external_id


def test_long_word_is_never_split() -> None:
    word = "x" * (MAX_CHARS + 300)
    text = f"Intro sentence here. {word} tail words follow."
    chunks = chunk_text(text)
    assert_chunk_invariants(text, chunks)
    assert any(word in c.text for c in chunks)


def test_heading_never_ends_a_chunk() -> None:
    para = ("The tide came in slowly over the flats and nobody noticed. " * 12).strip()
    text = "\n\n".join(f"## Section {i}\n\n{para}" for i in range(6))
    chunks = chunk_text(text, markdown=True)
    assert_chunk_invariants(text, chunks)
    for c in chunks:
        assert not c.text.rstrip().split("\n")[-1].startswith("#")
        if c.text.startswith("## "):
            assert c.heading == (c.text.split("\n", 1)[0][3:],)


paragraphs = st.lists(
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzåäö", min_size=1, max_size=14),
        min_size=1,
        max_size=60,
    ).map(lambda words: " ".join(words) + "."),
    min_size=1,
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(paragraphs, st.booleans(), st.sampled_from([(200, 300), (800, 1200), (50, 2000)]))
def test_chunking_invariants(paras: list[str], headings: bool, sizes: tuple[int, int]) -> None:
    blocks = [f"## Part {i}\n\n{p}" if headings and i % 3 == 0 else p for i, p in enumerate(paras)]
    text = "\n\n".join(blocks) + "\n"
    lo, hi = sizes
    chunks = chunk_text(text, markdown=headings, min_chars=lo, max_chars=hi)
    assert_chunk_invariants(text, chunks)
    assert all(len(c.text) <= hi for c in chunks)  # words are short, so the limit holds


def test_empty_document_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "blank.md"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"blank\.md: the file is empty"):
        read_any(path)
    with pytest.raises(InvalidInput, match="no text"):
        parse_document(" \n", "x.md", markdown=True)


def test_chunk_sizes_are_checked() -> None:
    with pytest.raises(UsageError):
        chunk_text("some text", min_chars=500, max_chars=100)


def test_pdf_document(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    path = tmp_path / "race-week.pdf"
    path.write_bytes(
        tiny_pdf(
            ["Race week: carbs from Thursday.", "Bib pickup Saturday at the Expo."],
            "Race week checklist",
            "20250929081500",
        )
    )
    assert detect_format(path) is Format.PDF
    batch = read_any(path)
    (doc,) = batch.documents
    assert batch.format is Format.PDF and doc.origin == "pdf"
    assert doc.title == "Race week checklist"
    assert doc.created_at == datetime(2025, 9, 29, 8, 15, tzinfo=UTC)
    assert "Bib pickup Saturday" in doc.text
    assert_chunk_invariants(doc.text, doc.chunks)


def test_damaged_pdf_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    path = tmp_path / "bad.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not a pdf body")
    with pytest.raises(InvalidInput, match=r"bad\.pdf: "):
        read_pdf(path)


def test_pdf_without_pypdf_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # makes `import pypdf` fail
    assert not pdf_supported()
    path = tmp_path / "scan.pdf"
    path.write_bytes(tiny_pdf(["x"], "t", "20250101000000"))
    assert detect_format(path) is Format.PDF
    with pytest.raises(UsageError, match=r"memsync\[pdf\]"):
        read_any(path)


# Detection and read_any


@pytest.mark.parametrize(
    ("relpath", "fmt"),
    [
        ("chatgpt/conversations.json", Format.CHATGPT),
        ("claude/conversations.json", Format.CLAUDE),
        ("claude/conversations_wrapped.json", Format.CLAUDE),
        ("mem0/memories.json", Format.MEM0),
        ("mem0/memories_list.json", Format.MEM0),
        ("openai/messages.jsonl", Format.OPENAI),
        ("docs/notes.md", Format.MARKDOWN),
        ("docs/plain.txt", Format.TEXT),
    ],
)
def test_detect_fixture_formats(relpath: str, fmt: Format) -> None:
    assert detect_format(FIXTURES / relpath) is fmt
    assert read_any(FIXTURES / relpath).format is fmt


@pytest.mark.parametrize(
    ("relpath", "new_name", "fmt"),
    [
        ("chatgpt/conversations.json", "export.txt", Format.CHATGPT),
        ("claude/conversations.json", "claude.md", Format.CLAUDE),
        ("mem0/memories.json", "memories", Format.MEM0),
        ("openai/messages.jsonl", "chat.json", Format.OPENAI),
        ("docs/notes.md", "notes.txt", Format.MARKDOWN),  # it has headings
        ("docs/plain.txt", "plain.json.bak", Format.TEXT),
    ],
)
def test_detection_is_by_content(tmp_path: Path, relpath: str, new_name: str, fmt: Format) -> None:
    path = tmp_path / new_name
    shutil.copy(FIXTURES / relpath, path)
    assert detect_format(path) is fmt
    renamed, original = read_any(path), read_any(FIXTURES / relpath)
    assert renamed.conversations == original.conversations
    assert renamed.memories == original.memories
    assert [(d.external_id, d.chunks) for d in renamed.documents] == [
        (d.external_id, d.chunks) for d in original.documents
    ]


def test_chatgpt_zip_renamed_is_still_a_zip(tmp_path: Path) -> None:
    path = chatgpt_zip(tmp_path).rename(tmp_path / "export.dat")
    assert detect_format(path) is Format.CHATGPT


def test_openai_messages_import() -> None:
    batch = read_any(FIXTURES / "openai" / "messages.jsonl")
    (conv,) = batch.conversations
    assert conv.origin == "openai"
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert conv.messages[3].content == "OK. Dates sit better in my stomach than gels though."
    assert conv.created_at == datetime(2025, 7, 6, 18, 2, tzinfo=UTC)
    assert conv.external_id is not None and conv.external_id.startswith("sha256:")
    assert batch.message_count == 5


BROKEN = [
    ("chatgpt/broken_truncated.json", ["not valid JSON (line "]),
    (
        "chatgpt/broken_missing_parent.json",
        [
            f"conversation 1 (id {MOVE_ID})",
            "node '2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e12'",
            "parent '9999aaaa-0000-4000-8000-000000000000' is not in the mapping",
        ],
    ),
    (
        "chatgpt/broken_parts.json",
        [
            f"conversation 2 (id {BOOK_ID})",
            "message 5 (id 93c5d7e1-2f4a-4b6c-8d9e-0a1b2c3d4e08)",
            "'parts' must be a list",
        ],
    ),
    (
        "claude/broken_sender.json",
        [
            "conversation 2 (id 1d6f0b8e-4a2c-4e3f-9b7d-8c0e2f4a6b02)",
            "message 3 (id 07d9c1e3-5f6b-4d8a-8cae-8dafa2c4e607)",
            "'sender' must be 'human' or 'assistant', got 'user'",
        ],
    ),
    (
        "mem0/broken_no_text.json",
        ["memory 2 (id 9a4d2b3f-7c8e-4fa0-b1d2-3e4f5a6b7c82)", "'memory' must be"],
    ),
    ("openai/broken_line.jsonl", ["line 3", "'role'"]),
]


@pytest.mark.parametrize(("relpath", "places"), BROKEN)
def test_broken_fixtures_name_the_file_and_place(relpath: str, places: list[str]) -> None:
    path = FIXTURES / relpath
    with pytest.raises(InvalidInput) as err:
        read_any(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    for expected in places:
        assert expected in message


def test_truncated_json_reports_where_it_stops() -> None:
    path = FIXTURES / "chatgpt" / "broken_truncated.json"
    with pytest.raises(json.JSONDecodeError) as parse_error:
        json.loads(path.read_text(encoding="utf-8"))
    with pytest.raises(InvalidInput, match=rf"\(line {parse_error.value.lineno}, column "):
        detect_format(path)


def test_truncated_json_named_as_a_document_is_a_document(tmp_path: Path) -> None:
    path = tmp_path / "draft.md"
    shutil.copy(FIXTURES / "chatgpt" / "broken_truncated.json", path)
    assert detect_format(path) is Format.MARKDOWN


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'{"hello": "world"}', "not a format memsync can import"),
        (b"[1, 2, 3]", "not a format memsync can import"),
        (b"[]", "empty list"),
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "binary"),
    ],
)
def test_unknown_files_are_refused(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=match) as err:
        read_any(path)
    assert str(err.value).startswith(f"{path}: ")


def test_missing_directory_and_oversized_inputs(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        read_any(tmp_path / "nope.json")
    with pytest.raises(InvalidInput, match="is a directory"):
        read_any(tmp_path)
    with pytest.raises(InvalidInput, match="too large"):
        read_any(CHATGPT, max_bytes=1000)


@pytest.mark.parametrize("first_line", ["[Draft] Things to pack", "[the flat] keys", "{ideas}"])
def test_text_that_only_starts_like_json_is_a_document(tmp_path: Path, first_line: str) -> None:
    path = tmp_path / "todo"
    path.write_text(f"{first_line} for Lisbon.\n\nBooks first.\n", encoding="utf-8")
    assert detect_format(path) is Format.TEXT


@pytest.mark.parametrize(
    "relpath",
    [
        "chatgpt/conversations.json",
        "claude/conversations.json",
        "mem0/memories.json",
        "openai/messages.jsonl",
        "docs/notes.md",
        "docs/plain.txt",
    ],
)
def test_reading_is_deterministic_with_unique_ids(relpath: str) -> None:
    first, second = read_any(FIXTURES / relpath), read_any(FIXTURES / relpath)
    assert first == second
    assert isinstance(first, ImportBatch)
    ids = [c.external_id for c in first.conversations]
    ids += [d.external_id for d in first.documents] + [m.external_id for m in first.memories]
    assert ids and all(ids) and len(set(ids)) == len(ids)
