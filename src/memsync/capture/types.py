"""What the importers produce: conversations, documents and memories, before the vault.

These are plain values with no vault ids. Each carries an `external_id` that is stable
across re-imports of the same file (the export's own id where it has one, otherwise a
content hash), so the layer that stores them can make importing idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from memsync.model import Category, Message


class Format(StrEnum):
    """The kinds of file `detect_format` recognises."""

    CHATGPT = "chatgpt"
    CLAUDE = "claude"
    OPENAI = "openai"
    MEM0 = "mem0"
    MARKDOWN = "markdown"
    TEXT = "text"
    PDF = "pdf"


@dataclass(frozen=True)
class ImportedConversation:
    """One conversation from an export, with only the turns a person saw.

    `origin` names the exporter (`chatgpt`, `claude`, `openai`). `skipped_parts` counts
    non-text parts (images, files, code, tool calls) that were replaced by a note such as
    `[image]` in the text; `skipped_messages` counts whole messages left out (system,
    hidden, empty, internal tool calls).
    """

    external_id: str | None
    title: str | None
    created_at: datetime | None
    messages: tuple[Message, ...]
    origin: str
    skipped_parts: int = 0
    skipped_messages: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Chunk:
    """A span of a document: `document.text[start:end] == text`.

    `heading` is the Markdown heading path in force where the chunk starts, outermost
    first (e.g. `("Eight Minds", "Chapter 4")`); empty for plain text.
    """

    start: int
    end: int
    text: str
    heading: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportedDocument:
    """A document split into chunks. `external_id` is a hash of `text`, not of the path.

    `text` is the file's text with newlines normalised to `\\n`; chunk offsets index it.
    `origin` is the format (`markdown`, `text`, `pdf`).
    """

    external_id: str
    title: str | None
    created_at: datetime | None
    text: str
    chunks: tuple[Chunk, ...]
    origin: str


@dataclass(frozen=True)
class ImportedMemory:
    """One memory from another memory system (mem0), as a candidate for the vault.

    `category` is one of memsync's ten when a source category maps onto it; the source
    categories that did not become `category` are kept in `tags`.
    """

    external_id: str
    text: str
    created_at: datetime | None
    updated_at: datetime | None
    tags: tuple[str, ...]
    category: Category | None
    origin: str


@dataclass(frozen=True)
class ImportBatch:
    """Everything read from one file by `read_any`; only one of the three is usually set."""

    conversations: tuple[ImportedConversation, ...] = ()
    documents: tuple[ImportedDocument, ...] = ()
    memories: tuple[ImportedMemory, ...] = ()
    format: Format | None = None

    @property
    def message_count(self) -> int:
        return sum(len(c.messages) for c in self.conversations)
