"""Each kind of input as a source: a conversation, a document, another tool's memories,
or everything `memsync.ingest.read_any` read from one file.

Each function builds the source, asks for candidates (the extractor's, or the imported
memories themselves) and hands both to `capture.store`, which reconciles them and writes
the lot in one transaction. A source already stored (same digest) is returned as it is.
The `Vault.ingest*` methods and `Vault.import_memories` call these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from memsync import capture
from memsync.capture import IngestReport, IngestResult
from memsync.errors import UsageError
from memsync.extract.base import Candidate, Extractor
from memsync.extract.reconcile import Judge
from memsync.ids import new_id
from memsync.ingest.types import ImportBatch, ImportedDocument, ImportedMemory
from memsync.model import Message, Source, SourceKind
from memsync.store import state

if TYPE_CHECKING:
    from memsync.vault import Vault

Progress = Callable[[int, int], None]

__all__ = [
    "import_memories",
    "ingest_batch",
    "ingest_conversation",
    "ingest_document",
    "source_by_digest",
    "turns_seen",
]


def _chosen(vault: Vault, extract: bool, extractor: Extractor | None) -> Extractor | None:
    """The extractor to run: the one given, else the configured one; None: no extraction."""
    return (extractor or vault.extractor()) if extract else None


def _store_new(
    vault: Vault,
    source: Source,
    candidates: Sequence[tuple[Candidate, tuple[str, ...]]],
    judge: Judge | None,
    progress: Progress | None,
) -> IngestResult:
    outcomes = capture.store(vault, source, candidates, judge=judge, progress=progress)
    return IngestResult(vault.get_source(source.id), True, tuple(outcomes))


def ingest_conversation(
    vault: Vault,
    messages: Sequence[Message],
    *,
    title: str | None = None,
    origin: str | None = None,
    created_at: datetime | None = None,
    external_id: str | None = None,
    extract: bool = True,
    extractor: Extractor | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """A conversation as a source, and what the user said as reconciled memories; see
    `Vault.ingest`."""
    return _conversation(
        vault,
        messages,
        title=title,
        origin=origin,
        created_at=created_at,
        external_id=external_id,
        extractor=_chosen(vault, extract, extractor),
        judge=vault.judge(),
        progress=progress,
    )


def _conversation(
    vault: Vault,
    messages: Sequence[Message],
    *,
    title: str | None,
    origin: str | None,
    created_at: datetime | None,
    external_id: str | None,
    extractor: Extractor | None,
    judge: Judge | None,
    progress: Progress | None = None,
) -> IngestResult:
    if not messages:
        raise UsageError("a conversation needs at least one message")
    digest = capture.digest_messages(messages)
    existing = source_by_digest(vault, digest)
    if existing is not None:
        return IngestResult(existing, added=False)
    stamps = [m.timestamp for m in messages if m.timestamp is not None]
    now = vault.clock()
    source = Source(
        id=new_id("s"),
        kind=SourceKind.CONVERSATION,
        title=title,
        origin=origin,
        created_at=created_at or (min(stamps) if stamps else now),
        captured_at=now,
        messages=tuple(messages),
        digest=digest,
        external_id=external_id,
    )
    candidates = (
        []
        if extractor is None
        else capture.extract(
            extractor,
            messages,
            now=source.created_at,
            first_turn=turns_seen(vault, origin, external_id, messages),
        )
    )
    return _store_new(vault, source, candidates, judge, progress)


def ingest_document(
    vault: Vault,
    document: ImportedDocument,
    *,
    title: str | None = None,
    extract: bool = True,
    extractor: Extractor | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """A document as a source of chunks, read as if the user had written each chunk; see
    `Vault.ingest_document`."""
    return _document(
        vault, document, title, _chosen(vault, extract, extractor), vault.judge(), progress
    )


def _document(
    vault: Vault,
    document: ImportedDocument,
    title: str | None,
    extractor: Extractor | None,
    judge: Judge | None,
    progress: Progress | None = None,
) -> IngestResult:
    if not document.chunks:
        raise UsageError("the document has no text")
    messages = tuple(
        Message("document", c.text, name=" > ".join(c.heading) or None) for c in document.chunks
    )
    offsets = tuple(c.start for c in document.chunks)
    digest = capture.digest_messages(messages, offsets)
    existing = source_by_digest(vault, digest)
    if existing is not None:
        return IngestResult(existing, added=False)
    now = vault.clock()
    created = document.created_at or now
    source = Source(
        id=new_id("s"),
        kind=SourceKind.DOCUMENT,
        title=title or document.title,
        origin=document.origin,
        created_at=created,
        captured_at=now,
        messages=messages,
        digest=digest,
        external_id=document.external_id,
        offsets=offsets,
    )
    as_user = [Message("user", c.text, timestamp=created) for c in document.chunks]
    candidates = [] if extractor is None else capture.extract(extractor, as_user, now=created)
    return _store_new(vault, source, candidates, judge, progress)


def import_memories(
    vault: Vault, memories: Sequence[ImportedMemory], *, title: str | None = None
) -> IngestResult:
    """Another tool's memories, kept as a source and reconciled like extracted ones; see
    `Vault.import_memories`."""
    return _memories(vault, memories, title, vault.judge())


def _memories(
    vault: Vault, memories: Sequence[ImportedMemory], title: str | None, judge: Judge | None
) -> IngestResult:
    if not memories:
        raise UsageError("no memories to import")
    messages = tuple(
        Message("document", m.text, timestamp=m.updated_at or m.created_at, name=m.external_id)
        for m in memories
    )
    digest = capture.digest_messages(messages)
    existing = source_by_digest(vault, digest)
    if existing is not None:
        return IngestResult(existing, added=False)
    now = vault.clock()
    stamps = [m.timestamp for m in messages if m.timestamp is not None]
    origin = memories[0].origin
    source = Source(
        id=new_id("s"),
        kind=SourceKind.DOCUMENT,
        title=title or f"{origin} memories",
        origin=origin,
        created_at=min(stamps) if stamps else now,
        captured_at=now,
        messages=messages,
        digest=digest,
    )
    candidates = [(capture.imported_candidate(m, i, now), m.tags) for i, m in enumerate(memories)]
    return _store_new(vault, source, candidates, judge, None)


def ingest_batch(
    vault: Vault,
    batch: ImportBatch,
    *,
    extract: bool = True,
    extractor: Extractor | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Everything read from one file, one source per transaction; see
    `Vault.ingest_batch`."""
    # The settings are read (and a configured model's client made) once per file.
    chosen = _chosen(vault, extract, extractor)
    judge = vault.judge()
    report = IngestReport()
    total = len(batch.conversations) + len(batch.documents) + (1 if batch.memories else 0)
    done = 0
    for conv in batch.conversations:
        if conv.messages:
            report = report.with_result(
                _conversation(
                    vault,
                    conv.messages,
                    title=conv.title,
                    origin=conv.origin,
                    created_at=conv.created_at,
                    external_id=conv.external_id,
                    extractor=chosen,
                    judge=judge,
                )
            )
        done += 1
        if progress:
            progress(done, total)
    for doc in batch.documents:
        report = report.with_result(_document(vault, doc, None, chosen, judge))
        done += 1
        if progress:
            progress(done, total)
    if batch.memories:
        report = report.with_result(_memories(vault, batch.memories, None, judge))
        if progress:
            progress(total, total)
    return report


def source_by_digest(vault: Vault, digest: str) -> Source | None:
    """The stored source with this digest (the same content ingested before), if any."""
    row = vault.conn.execute("SELECT id FROM sources WHERE digest=?", (digest,)).fetchone()
    return None if row is None else state.get_source(vault.conn, str(row[0]))


def turns_seen(
    vault: Vault, origin: str | None, external_id: str | None, messages: Sequence[Message]
) -> int:
    """How many leading turns of `messages` an earlier import of the same conversation
    (same origin and external id) already read."""
    if external_id is None:
        return 0
    seen = 0
    for (sid,) in vault.conn.execute(
        "SELECT id FROM sources WHERE external_id=? AND origin IS ?", (external_id, origin)
    ).fetchall():
        old = state.get_source(vault.conn, str(sid)).messages
        n = 0
        # Compared as stored: timestamps keep milliseconds, not an export's microseconds.
        while n < min(len(old), len(messages)) and capture.same_turn(old[n], messages[n]):
            n += 1
        seen = max(seen, n)
    return seen
