"""Picking the importer by what a file contains, and reading any supported file.

Detection looks at content first and at the file name only to break ties:

- a zip: its `conversations.json` (or its only JSON member) is classified as below;
- `%PDF-`: a PDF document;
- JSON or JSON Lines, by structure: conversations with a `mapping` → ChatGPT; with
  `chat_messages` (or `{"conversations": [...]}`) → Claude; `{"results": [...]}`,
  `{"memories": [...]}` or records with a `memory` → mem0; messages with a `role` (or
  `{"messages": [...]}`) → OpenAI-style messages;
- any other text → a document: Markdown if it has a Markdown suffix or ATX headings,
  else plain text.

Text that looks like JSON but does not parse (a truncated export) is an error naming the
line and column, unless the file name says it is a document (`.md`, `.txt`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from memsync.capture.chatgpt import parse_chatgpt
from memsync.capture.claude import parse_claude
from memsync.capture.common import (
    MAX_BYTES,
    content_id,
    decode_text,
    is_zip,
    read_file,
    read_zip_exports,
)
from memsync.capture.documents import MARKDOWN_SUFFIXES, file_mtime, parse_document, read_pdf
from memsync.capture.mem0 import parse_mem0
from memsync.capture.messages import parse_messages
from memsync.capture.types import Format, ImportBatch, ImportedConversation
from memsync.codec import message_to_json
from memsync.errors import InvalidInput, UnknownFormat

__all__ = ["Format", "detect_format", "read_any"]

DOCUMENT_SUFFIXES = MARKDOWN_SUFFIXES | {".txt", ".text"}
_JSON_START = re.compile(r"\s*(?:\{\s*[\"}]|\[\s*(?:[\[{\"\]\d-]|true\b|false\b|null\b))")
_ATX = re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE)
_UNKNOWN = (
    "not a format memsync can import (expected a ChatGPT or Claude export, a mem0 export, "
    "OpenAI-style messages, or a text document)"
)


@dataclass(frozen=True)
class _Payload:
    name: str
    data: bytes
    doc: object = None


@dataclass(frozen=True)
class _Sniffed:
    format: Format
    payloads: tuple[_Payload, ...]


def detect_format(path: Path | str, *, max_bytes: int = MAX_BYTES) -> Format:
    """Which importer reads `path`, judged by its content. Raises `InvalidInput`."""
    return _sniff(Path(path), max_bytes).format


def read_any(path: Path | str, *, max_bytes: int = MAX_BYTES) -> ImportBatch:
    """Read any supported file completely, validating all of it before returning.

    Raises `InvalidInput` naming the file and the place (conversation, message, line) at
    the first problem, so a caller that stores the batch writes nothing half-read.
    """
    path = Path(path)
    sniffed = _sniff(path, max_bytes)
    fmt = sniffed.format
    if fmt is Format.CHATGPT:
        convs = tuple(c for p in sniffed.payloads for c in parse_chatgpt(p.doc, p.name))
        return ImportBatch(conversations=convs, format=fmt)
    if fmt is Format.CLAUDE:
        convs = tuple(c for p in sniffed.payloads for c in parse_claude(p.doc, p.name))
        return ImportBatch(conversations=convs, format=fmt)
    if fmt is Format.MEM0:
        mems = tuple(m for p in sniffed.payloads for m in parse_mem0(p.doc, p.name))
        return ImportBatch(memories=mems, format=fmt)
    if fmt is Format.OPENAI:
        return ImportBatch(conversations=tuple(_openai(p) for p in sniffed.payloads), format=fmt)
    if fmt is Format.PDF:
        return ImportBatch(documents=(read_pdf(path, max_bytes=max_bytes),), format=fmt)
    (payload,) = sniffed.payloads
    doc = parse_document(
        decode_text(payload.data, payload.name),
        payload.name,
        markdown=fmt is Format.MARKDOWN,
        created_at=file_mtime(path),
    )
    return ImportBatch(documents=(doc,), format=fmt)


def _openai(payload: _Payload) -> ImportedConversation:
    conv = parse_messages(payload.data, payload.name)
    stamps = [m.timestamp for m in conv.messages if m.timestamp is not None]
    return ImportedConversation(
        external_id=content_id([message_to_json(m) for m in conv.messages]),
        title=conv.title,
        created_at=min(stamps) if stamps else None,
        messages=conv.messages,
        origin="openai",
    )


def _sniff(path: Path, max_bytes: int) -> _Sniffed:
    if is_zip(path):
        return _sniff_zip(path, max_bytes)
    data = read_file(path, max_bytes)
    name = str(path)
    if data.startswith(b"%PDF-"):
        return _Sniffed(Format.PDF, (_Payload(name, data),))
    try:
        text = decode_text(data, name)
    except InvalidInput:
        raise UnknownFormat(f"{name}: {_UNKNOWN}; it is binary, not UTF-8 text") from None
    is_doc_name = path.suffix.lower() in DOCUMENT_SUFFIXES
    if _JSON_START.match(text):
        try:
            fmt, doc = _sniff_json(text, name)
            return _Sniffed(fmt, (_Payload(name, data, doc),))
        except InvalidInput:
            if not is_doc_name:
                raise
    if not text.strip():
        raise InvalidInput(f"{name}: the file is empty")
    markdown = path.suffix.lower() in MARKDOWN_SUFFIXES or bool(_ATX.search(text))
    return _Sniffed(Format.MARKDOWN if markdown else Format.TEXT, (_Payload(name, data),))


def _sniff_zip(path: Path, max_bytes: int) -> _Sniffed:
    payloads = []
    formats = set()
    for member, blob in read_zip_exports(path, max_bytes):
        fmt, doc = _sniff_json(decode_text(blob, member), member)
        formats.add(fmt)
        payloads.append(_Payload(member, blob, doc))
    if len(formats) != 1:
        found = ", ".join(sorted(formats))
        raise InvalidInput(f"{path}: the zip mixes export formats ({found})")
    return _Sniffed(formats.pop(), tuple(payloads))


def _sniff_json(text: str, name: str) -> tuple[Format, object]:
    """The format of JSON (or JSON Lines) text, and the parsed document."""
    try:
        doc: object = json.loads(text)
    except json.JSONDecodeError as exc:
        records = _jsonl(text)
        if records is None:
            raise InvalidInput(
                f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        return _classify(records, name), records
    except RecursionError:
        raise InvalidInput(f"{name}: JSON nested too deeply") from None
    return _classify(doc, name), doc


def _jsonl(text: str) -> list[object] | None:
    """Every non-empty line parsed, if there are at least two and all are JSON."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    try:
        return [json.loads(line) for line in lines]
    except json.JSONDecodeError:
        return None


def _classify(doc: object, name: str) -> Format:
    if isinstance(doc, dict):
        if isinstance(doc.get("mapping"), dict):
            return Format.CHATGPT
        if "chat_messages" in doc:
            return Format.CLAUDE
        if isinstance(doc.get("conversations"), list):
            inner = doc["conversations"]
            return _classify(inner, name) if inner else Format.CLAUDE
        if isinstance(doc.get("results"), list) or isinstance(doc.get("memories"), list):
            return Format.MEM0
        if isinstance(doc.get("messages"), list) or "role" in doc:
            return Format.OPENAI
        raise UnknownFormat(f"{name}: {_UNKNOWN}")
    if not isinstance(doc, list):
        raise UnknownFormat(f"{name}: {_UNKNOWN}")
    if not doc:
        raise InvalidInput(f"{name}: an empty list; nothing to import")
    first = doc[0]
    if isinstance(first, dict):
        for key, fmt in (
            ("mapping", Format.CHATGPT),
            ("chat_messages", Format.CLAUDE),
            ("memory", Format.MEM0),
            ("role", Format.OPENAI),
        ):
            if key in first:
                return fmt
    raise UnknownFormat(f"{name}: {_UNKNOWN}")
