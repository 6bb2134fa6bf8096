"""Documents: Markdown, plain text, and PDF (with the optional `pypdf`), split into chunks.

Chunks are about `MIN_CHARS` to `MAX_CHARS` characters. A chunk ends at the best boundary
in that window — before a heading, then at a paragraph break, then at a sentence end or
line break — and only falls back to a space between words when the window has none of
those; it never ends inside a word (one word longer than `MAX_CHARS` is kept whole), and
never right after a heading. Each chunk records its `(start, end)` offsets in the
document's text, with no whitespace at either edge, and, for Markdown, the heading path
in force where it starts. YAML front matter is read for `title` and `date` and is not
chunked.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from memsync.capture.common import MAX_BYTES, decode_text, read_file
from memsync.capture.types import Chunk, ImportedDocument
from memsync.errors import InvalidInput, UsageError

MIN_CHARS = 800
MAX_CHARS = 1200
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)", re.MULTILINE)
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_SENTENCE = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*(?=\s)")
_FRONT = re.compile(r"---\n(.*?\n)(?:---|\.\.\.)\n", re.DOTALL)
_SPACE, _LINE, _PARA, _HEAD = 0, 1, 2, 3


def _heading_spans(text: str, start: int) -> list[tuple[int, int, int, str]]:
    """(line start, line end, level, title) of ATX headings outside code fences."""
    fences = [m.start() for m in _FENCE.finditer(text, start)]
    out = []
    for m in _HEADING.finditer(text, start):
        if bisect.bisect_left(fences, m.start()) % 2 == 0:  # an even count of fences before
            out.append((m.start(), m.end(), len(m.group(1)), m.group(2).strip()))
    return out


def _breaks(
    text: str, start: int, headings: list[tuple[int, int, int, str]], markdown: bool
) -> dict[int, int]:
    """Positions of whitespace where a chunk may end, with their priority."""
    fences = [m.start() for m in _FENCE.finditer(text, start)] if markdown else []
    prio: dict[int, int] = {}
    for i in range(start, len(text)):
        if text[i].isspace():
            prio[i] = _LINE if text[i] == "\n" else _SPACE
    for m in _SENTENCE.finditer(text, start):
        prio[m.end()] = max(prio.get(m.end(), _SPACE), _LINE)
    for m in _PARAGRAPH.finditer(text, start):
        in_code = bisect.bisect_left(fences, m.start()) % 2 == 1
        prio[m.start()] = _LINE if in_code else _PARA
    for line_start, line_end, _, _ in headings:
        for i in range(line_start, line_end + 1):
            prio.pop(i, None)  # never end a chunk inside or right after a heading
        if line_start - 1 >= start:
            prio[line_start - 1] = _HEAD
    return prio


def _choose(positions: list[int], prio: dict[int, int], s: int, lo: int, hi: int, rest: int) -> int:
    """Where a chunk starting at `s` ends, when `rest` characters (more than `hi`) remain.

    The best boundary (heading, paragraph, sentence or line; spaces only as a last resort)
    between `lo / 2` and `hi` characters, the later among equals: a paragraph break a
    little short of `lo` beats a sentence end inside the window. The window stops early
    enough not to leave a last crumb shorter than `lo / 2`.
    """
    top = min(hi, rest - lo // 2)
    window = positions[
        bisect.bisect_right(positions, s + lo // 2) : bisect.bisect_right(positions, s + top)
    ]
    pool = [p for p in window if prio[p] > _SPACE]
    if not pool:
        reach = bisect.bisect_right(positions, s + hi)
        window = positions[bisect.bisect_right(positions, s) : reach]
        pool = [p for p in window if prio[p] > _SPACE] or window
        if not pool:  # one word longer than `hi`: keep it whole
            return positions[reach] if reach < len(positions) else -1
    return max(pool, key=lambda p: (prio[p], p))


def chunk_text(
    text: str,
    *,
    markdown: bool = False,
    start: int = 0,
    min_chars: int = MIN_CHARS,
    max_chars: int = MAX_CHARS,
) -> tuple[Chunk, ...]:
    """Split `text[start:]` into chunks on heading, paragraph and sentence boundaries."""
    if not 0 < min_chars <= max_chars:
        raise UsageError("chunk sizes must satisfy 0 < min_chars <= max_chars")
    headings = _heading_spans(text, start) if markdown else []
    prio = _breaks(text, start, headings, markdown)
    positions = sorted(prio)
    end_of_text = len(text.rstrip())
    chunks = []
    s = _skip_space(text, start)
    while s < end_of_text:
        if end_of_text - s <= max_chars:
            e = end_of_text
        else:
            e = _choose(positions, prio, s, min_chars, max_chars, end_of_text - s)
            if e < 0:
                e = end_of_text
        end = e
        while end > s and text[end - 1].isspace():
            end -= 1
        chunks.append(Chunk(s, end, text[s:end], _path_at(headings, s)))
        s = _skip_space(text, end)
    return tuple(chunks)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _path_at(headings: list[tuple[int, int, int, str]], pos: int) -> tuple[str, ...]:
    stack: list[tuple[int, str]] = []
    for line_start, _, level, title in headings:
        if line_start > pos:
            break
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
    return tuple(title for _, title in stack)


def _front_matter(text: str) -> tuple[int, dict[str, str]]:
    """Where the body starts after YAML front matter, and its simple `key: value` pairs."""
    m = _FRONT.match(text)
    if m is None:
        return 0, {}
    fields = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith((" ", "\t")):
            fields[key.strip().lower()] = value.strip().strip("'\"")
    return m.end(), fields


def _front_time(fields: dict[str, str]) -> datetime | None:
    for key in ("date", "created", "created_at"):
        try:
            dt = datetime.fromisoformat(fields.get(key, ""))
        except ValueError:
            continue
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return None


def parse_document(
    text: str, name: str, *, markdown: bool, created_at: datetime | None = None
) -> ImportedDocument:
    """A document from its text; `name` (a file name) gives the title when none is inside."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InvalidInput(f"{name}: no text in the document")
    body, fields = _front_matter(text) if markdown else (0, {})
    headings = _heading_spans(text, body) if markdown else []
    h1 = next((title for _, _, level, title in headings if level == 1), None)
    title = fields.get("title") or h1 or Path(name).stem or None
    return ImportedDocument(
        external_id="sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest(),
        title=title,
        created_at=_front_time(fields) or created_at,
        text=text,
        chunks=chunk_text(text, markdown=markdown, start=body),
        origin="markdown" if markdown else "text",
    )


def file_mtime(path: Path) -> datetime | None:
    """When the file was last modified (UTC), the best creation time a plain file has."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        return None


def read_document(
    path: Path, *, markdown: bool | None = None, max_bytes: int = MAX_BYTES
) -> ImportedDocument:
    """A Markdown or plain-text file (Markdown by suffix, unless `markdown` says)."""
    text = decode_text(read_file(path, max_bytes), str(path))
    if markdown is None:
        markdown = path.suffix.lower() in MARKDOWN_SUFFIXES
    return parse_document(text, str(path), markdown=markdown, created_at=file_mtime(path))


def pdf_supported() -> bool:
    """Whether the optional `pypdf` package (`pip install 'memsync[pdf]'`) is installed."""
    try:
        import pypdf  # noqa: F401
    except ImportError:
        return False
    return True


def read_pdf(path: Path, *, max_bytes: int = MAX_BYTES) -> ImportedDocument:
    """A PDF's text, page by page (pages separated by a blank line), as a document."""
    try:
        import pypdf
    except ImportError:
        raise UsageError(
            f"{path}: reading PDF needs the optional pypdf package (pip install 'memsync[pdf]')"
        ) from None
    read_file(path, max_bytes)  # existence and size checks with our messages
    try:
        reader = pypdf.PdfReader(path)
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta = reader.metadata
        title = meta.title if meta is not None else None
        created = meta.creation_date if meta is not None else None
    except Exception as exc:  # pypdf raises many kinds on damaged input
        raise InvalidInput(f"{path}: not a readable PDF ({exc})") from None
    text = "\n\n".join(p for p in pages if p)
    if not text:
        raise InvalidInput(f"{path}: no extractable text in the PDF (is it scanned?)")
    doc = parse_document(text, str(path), markdown=False)
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return ImportedDocument(
        external_id=doc.external_id,
        title=title or doc.title,
        created_at=created.astimezone(UTC) if created is not None else file_mtime(path),
        text=doc.text,
        chunks=doc.chunks,
        origin="pdf",
    )
