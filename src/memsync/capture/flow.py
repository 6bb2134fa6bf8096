"""Capture: each kind of input as a source (a conversation, a document, another tool's
memories, or everything `memsync.capture.read_any` read from one file) and what it says
as reconciled memories.

Each function builds the source, asks for candidates (the extractor's, or the imported
memories themselves) and hands both to `reconcile.session.store`, which reconciles them
and writes the lot in one transaction; an interrupted import leaves whole sources behind,
and running it again resumes where it stopped (a source already stored, recognised by its
digest, is returned as it is). The `Vault.ingest*` methods, `Vault.import_memories` and
`AppSession.ingest` call these with the extractor and judge they chose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import apsw

from memsync import codec
from memsync.capture.digest import digest_messages, same_turn
from memsync.capture.types import ImportBatch, ImportedDocument, ImportedMemory
from memsync.core import Core
from memsync.errors import UsageError
from memsync.extract.base import Candidate, Extractor
from memsync.extract.classify import guess_category
from memsync.ids import new_id
from memsync.model import Kind, Message, Source, SourceKind
from memsync.reconcile import session
from memsync.reconcile.decide import Judge
from memsync.reconcile.decision import Decision
from memsync.reconcile.session import Outcome
from memsync.store import state

Progress = Callable[[int, int], None]
CONTEXT_TURNS = 2  # turns before the new ones an extractor sees again

__all__ = [
    "IngestReport",
    "IngestResult",
    "import_memories",
    "ingest_batch",
    "ingest_conversation",
    "ingest_document",
    "source_by_digest",
    "turns_seen",
]


@dataclass(frozen=True)
class IngestResult:
    """One source: stored now (`added`) or already in the vault, and the decisions made."""

    source: Source
    added: bool
    outcomes: tuple[Outcome, ...] = ()


@dataclass(frozen=True)
class IngestReport:
    """The summary of an import: sources stored or found unchanged, and memory decisions."""

    conversations: int = 0
    documents: int = 0
    unchanged_sources: int = 0
    messages: int = 0
    outcomes: tuple[Outcome, ...] = ()
    sources: tuple[str, ...] = ()

    def count(self, decision: Decision) -> int:
        return sum(1 for o in self.outcomes if o.decision is decision)

    @property
    def memories_added(self) -> int:
        return self.count(Decision.ADD) + self.count(Decision.INVALIDATE)

    @property
    def memories_updated(self) -> int:
        return self.count(Decision.UPDATE) + self.count(Decision.PROMOTE)

    @property
    def memories_unchanged(self) -> int:
        return self.count(Decision.NOOP)

    def with_result(self, result: IngestResult) -> IngestReport:
        documents = result.source.kind is SourceKind.DOCUMENT
        return replace(
            self,
            conversations=self.conversations + (result.added and not documents),
            documents=self.documents + (result.added and documents),
            unchanged_sources=self.unchanged_sources + (not result.added),
            messages=self.messages + (len(result.source.messages) if result.added else 0),
            outcomes=self.outcomes + result.outcomes,
            sources=(*self.sources, result.source.id),
        )


def extract(
    extractor: Extractor, messages: Sequence[Message], *, now: datetime, first_turn: int = 0
) -> list[tuple[Candidate, tuple[str, ...]]]:
    """The extractor's candidates from turns at or after `first_turn` (earlier turns were
    read when an earlier version of the same conversation was imported). Only the new
    turns and the two before them (for context, such as a question the user confirms)
    are given to the extractor, so a model is not asked about the old turns again."""
    start = max(0, first_turn - CONTEXT_TURNS)
    found = extractor.extract(messages[start:], now=now)
    shifted = [
        replace(
            c,
            turn=c.turn + start,
            confirmed_by=None if c.confirmed_by is None else c.confirmed_by + start,
        )
        for c in found
    ]
    return [(c, ()) for c in shifted if c.turn >= first_turn]


def imported_candidate(m: ImportedMemory, index: int, now: datetime) -> Candidate:
    """A memory from another tool as a candidate: a lasting fact the user already kept,
    filed under its mapped category or the rule classifier's guess."""
    return Candidate(
        text=m.text.strip(),
        kind=Kind.SEMANTIC,
        category=m.category or guess_category(m.text),
        valid_from=None,
        valid_until=None,
        confidence=0.9,
        turn=index,
        start=0,
        end=len(m.text),
        extractor=m.origin,
        extractor_version="1",
        observed_at=m.updated_at or m.created_at or now,
    )


class _AlreadyStored(Exception):
    """Another process stored a source with the same digest first."""


def _store_new(
    core: Core,
    source: Source,
    candidates: Sequence[tuple[Candidate, tuple[str, ...]]],
    judge: Judge | None,
    progress: Progress | None,
) -> IngestResult:
    def unseen(conn: apsw.Connection) -> None:
        # Checked again where nothing can change: two processes may import one file.
        if conn.execute(
            "SELECT 1 FROM sources WHERE digest=? UNION SELECT 1 FROM forgotten WHERE digest=?",
            (source.digest, source.digest),
        ).fetchone():
            raise _AlreadyStored

    try:
        outcomes = session.store(
            core, source, candidates, judge=judge, progress=progress, guard=unseen
        )
    except _AlreadyStored:
        existing = source_by_digest(core, source.digest)
        assert existing is not None
        return IngestResult(existing, added=False)
    return IngestResult(state.get_source(core.conn, source.id), True, tuple(outcomes))


def ingest_conversation(
    core: Core,
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
    """A conversation as a source, and what the user said (read by `extractor`, if any)
    as reconciled memories; see `Vault.ingest`."""
    if not messages:
        raise UsageError("a conversation needs at least one message")
    digest = digest_messages(messages)
    existing = source_by_digest(core, digest)
    if existing is not None:
        return IngestResult(existing, added=False)
    stamps = [m.timestamp for m in messages if m.timestamp is not None]
    now = core.clock()
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
        else extract(
            extractor,
            messages,
            now=source.created_at,
            first_turn=turns_seen(core, origin, external_id, messages),
        )
    )
    return _store_new(core, source, candidates, judge, progress)


def ingest_document(
    core: Core,
    document: ImportedDocument,
    *,
    title: str | None,
    extractor: Extractor | None,
    judge: Judge | None,
    progress: Progress | None = None,
) -> IngestResult:
    """A document as a source of chunks, read as if the user had written each chunk; see
    `Vault.ingest_document`."""
    if not document.chunks:
        raise UsageError("the document has no text")
    messages = tuple(
        Message("document", c.text, name=" > ".join(c.heading) or None) for c in document.chunks
    )
    offsets = tuple(c.start for c in document.chunks)
    digest = digest_messages(messages, offsets)
    existing = source_by_digest(core, digest)
    if existing is not None:
        return IngestResult(existing, added=False)
    now = core.clock()
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
    candidates = [] if extractor is None else extract(extractor, as_user, now=created)
    return _store_new(core, source, candidates, judge, progress)


def import_memories(
    core: Core, memories: Sequence[ImportedMemory], *, title: str | None, judge: Judge | None
) -> IngestResult:
    """Another tool's memories, kept as a source and reconciled like extracted ones; see
    `Vault.import_memories`."""
    if not memories:
        raise UsageError("no memories to import")
    messages = tuple(
        Message("document", m.text, timestamp=m.updated_at or m.created_at, name=m.external_id)
        for m in memories
    )
    digest = digest_messages(messages)
    existing = source_by_digest(core, digest)
    if existing is not None:
        return IngestResult(existing, added=False)
    now = core.clock()
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
    candidates = [(imported_candidate(m, i, now), m.tags) for i, m in enumerate(memories)]
    return _store_new(core, source, candidates, judge, None)


def ingest_batch(
    core: Core,
    batch: ImportBatch,
    *,
    extractor: Extractor | None,
    judge: Judge | None,
    progress: Progress | None = None,
) -> IngestReport:
    """Everything read from one file, one source per transaction; see
    `Vault.ingest_batch`."""
    report = IngestReport()
    total = len(batch.conversations) + len(batch.documents) + (1 if batch.memories else 0)
    done = 0
    for conv in batch.conversations:
        if conv.messages:
            report = report.with_result(
                ingest_conversation(
                    core,
                    conv.messages,
                    title=conv.title,
                    origin=conv.origin,
                    created_at=conv.created_at,
                    external_id=conv.external_id,
                    extractor=extractor,
                    judge=judge,
                )
            )
        done += 1
        if progress:
            progress(done, total)
    for doc in batch.documents:
        report = report.with_result(
            ingest_document(core, doc, title=None, extractor=extractor, judge=judge)
        )
        done += 1
        if progress:
            progress(done, total)
    if batch.memories:
        report = report.with_result(import_memories(core, batch.memories, title=None, judge=judge))
        if progress:
            progress(total, total)
    return report


def source_by_digest(core: Core, digest: str) -> Source | None:
    """The stored source with this digest (the same content ingested before), if any;
    for content that was forgotten, what is left of it (its id, no turns), so that
    importing it again brings nothing back."""
    row = core.conn.execute("SELECT id FROM sources WHERE digest=?", (digest,)).fetchone()
    if row is not None:
        return state.get_source(core.conn, str(row[0]))
    gone = core.conn.execute(
        "SELECT id, at FROM forgotten WHERE what='source' AND digest=?", (digest,)
    ).fetchone()
    if gone is None:
        return None
    at = codec.from_ms(int(gone[1]))
    return Source(str(gone[0]), SourceKind.CONVERSATION, None, None, at, at, (), digest)


def turns_seen(
    core: Core, origin: str | None, external_id: str | None, messages: Sequence[Message]
) -> int:
    """How many leading turns of `messages` an earlier import of the same conversation
    (same origin and external id) already read."""
    if external_id is None:
        return 0
    seen = 0
    for (sid,) in core.conn.execute(
        "SELECT id FROM sources WHERE external_id=? AND origin IS ?", (external_id, origin)
    ).fetchall():
        old = state.get_source(core.conn, str(sid)).messages
        n = 0
        # Compared as stored: timestamps keep milliseconds, not an export's microseconds.
        while n < min(len(old), len(messages)) and same_turn(old[n], messages[n]):
            n += 1
        seen = max(seen, n)
    return seen
