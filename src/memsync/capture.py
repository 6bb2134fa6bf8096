"""Capture: conversations, documents and other tools' memories become sources and
reconciled memories.

Each source is stored in one transaction together with every memory decision made about
it, so an interrupted import leaves whole sources behind and running it again resumes
where it stopped (a source already in the vault is recognised by its digest and skipped).
This module reconciles candidates and stores them with their source (`store`); building
the source for each kind of input is in `ingest_flow`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from memsync import codec
from memsync.extract.base import Candidate, Extractor
from memsync.extract.classify import guess_category
from memsync.extract.decision import Decision
from memsync.extract.reconcile import Judge, Neighbour, Plan, decide
from memsync.ids import new_id
from memsync.ingest.types import ImportedMemory
from memsync.model import (
    Kind,
    Memory,
    Message,
    SearchFilters,
    Source,
    SourceKind,
    Status,
)
from memsync.retrieval import search as hybrid
from memsync.store import state

if TYPE_CHECKING:
    from memsync.vault import Vault

Progress = Callable[[int, int], None]
Vector = npt.NDArray[np.float32]
NEIGHBOURS = 8  # similar memories each candidate is compared with
CONTEXT_TURNS = 2  # turns before the new ones an extractor sees again


@dataclass(frozen=True)
class Outcome:
    """What became of one candidate: the decision, the memory it produced or matched
    (`memory_id`), and the existing memory it acted on (`target_id`)."""

    decision: Decision
    memory_id: str
    text: str
    target_id: str | None = None
    reason: str = ""


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


def _turn_key(m: Message) -> tuple[str, str, str | None, str | None]:
    return (m.role, m.content, codec.iso(m.timestamp), m.name)


def same_turn(a: Message, b: Message) -> bool:
    """Whether two messages are the same turn as the vault stores it (time in ms)."""
    return _turn_key(a) == _turn_key(b)


def digest_messages(messages: Sequence[Message], offsets: Sequence[int] = ()) -> str:
    h = hashlib.sha256()
    for m in messages:
        h.update(repr(_turn_key(m)).encode())
    if offsets:
        h.update(repr(tuple(offsets)).encode())
    return h.hexdigest()


@dataclass
class _Session:
    """The memory operations for one source, decided candidate by candidate.

    Candidates are compared with the vault's memories and with those this session has
    already decided to write (not yet committed, so not in the vector index).
    """

    vault: Vault
    source_id: str | None
    judge: Judge | None
    now: datetime
    ops: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    vectors: dict[str, Vector] = field(default_factory=dict)
    pending: dict[str, tuple[Memory, Vector]] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)

    def neighbours(self, vec: Vector) -> list[Neighbour]:
        found = [
            nb
            for nb in self.vault.similar_memories(vec, NEIGHBOURS)
            if nb.memory.id not in self.retired and nb.memory.id not in self.pending
        ]
        for memory, other in self.pending.values():
            if memory.status is Status.ACTIVE:
                found.append(Neighbour(memory, float(np.dot(vec, other))))
        return found

    def _memory(self, c: Candidate, tags: Iterable[str], observed: datetime) -> Memory:
        return Memory(
            id=new_id("m"),
            text=c.text.strip(),
            kind=c.kind,
            category=c.category,
            tags=tuple(sorted({t.strip().lower() for t in tags if t.strip()})),
            created_at=self.now,
            updated_at=self.now,
            observed_at=observed,
            valid_from=c.valid_from,
            valid_until=c.valid_until,
            confidence=c.confidence,
            provenance=(c.provenance(self.source_id),),
        )

    def _write(self, op: dict[str, Any], memory: Memory, vec: Vector) -> None:
        self.ops.append(op)
        self.pending[memory.id] = (memory, vec)
        self.vectors[memory.text] = vec

    def _retire(self, old: Memory, status: Status) -> None:
        self.retired.add(old.id)
        if old.id in self.pending:
            memory, vec = self.pending[old.id]
            self.pending[old.id] = (replace(memory, status=status), vec)

    def add(self, c: Candidate, vec: Vector, tags: Iterable[str] = ()) -> Outcome:
        observed = c.observed_at or self.now
        plan = decide(c, self.neighbours(vec), judge=self.judge, observed_at=observed)
        outcome = self._carry_out(plan, c, vec, tags, observed)
        self.outcomes.append(outcome)
        return outcome

    def _carry_out(
        self, plan: Plan, c: Candidate, vec: Vector, tags: Iterable[str], observed: datetime
    ) -> Outcome:
        new = self._memory(c, tags, observed)
        old = plan.target
        if plan.decision is Decision.NOOP and old is not None:
            prov = c.provenance(self.source_id)
            self.ops.append(
                {
                    "op": "add_provenance",
                    "id": old.id,
                    "provenance": [codec.provenance_to_json(prov)],
                }
            )
            if old.id in self.pending:
                memory, other = self.pending[old.id]
                self.pending[old.id] = (
                    replace(memory, provenance=(*memory.provenance, prov)),
                    other,
                )
            return Outcome(plan.decision, old.id, old.text, old.id, plan.reason)
        if plan.decision in (Decision.UPDATE, Decision.PROMOTE) and old is not None:
            kind = plan.kind or c.kind
            text = plan.text or c.text.strip()
            new = replace(
                new,
                text=text,
                kind=kind,
                category=c.category or old.category,
                tags=tuple(sorted(set(old.tags) | set(new.tags))),
                valid_from=None if kind is Kind.SEMANTIC else new.valid_from,
                valid_until=None if kind is Kind.SEMANTIC else new.valid_until,
                confidence=max(c.confidence, old.confidence),
                supersedes=old.id,
                provenance=(*old.provenance, *new.provenance),
            )
            if text != c.text.strip():
                vec = self.vault.embedder.embed([text])[0].astype(np.float32)
            self._retire(old, Status.SUPERSEDED)
            memory_op = {"op": "edit_memory", "old": old.id, "memory": codec.memory_to_json(new)}
            self._write(memory_op, new, vec)
            return Outcome(plan.decision, new.id, new.text, old.id, plan.reason)
        if plan.decision is Decision.INVALIDATE and old is not None:
            ends = plan.ends_at or observed
            if old.valid_from is not None and ends < old.valid_from:
                ends = old.valid_from
            self.ops.append(
                {
                    "op": "set_status",
                    "id": old.id,
                    "status": Status.INVALIDATED.value,
                    "at": codec.to_ms(self.now),
                    "valid_until": codec.to_ms(ends),
                }
            )
            self._retire(old, Status.INVALIDATED)
        if plan.kind is Kind.SEMANTIC and new.kind is Kind.EPISODIC:
            # An event that changed a lasting fact (a move, a new job) lasts itself.
            new = replace(new, kind=Kind.SEMANTIC, valid_until=None)
        if plan.stale and old is not None:
            ends = old.valid_from or old.observed_at
            start = new.valid_from
            new = replace(
                new,
                status=Status.INVALIDATED,
                valid_until=ends if start is None or ends >= start else start,
            )
        self._write({"op": "add_memory", "memory": codec.memory_to_json(new)}, new, vec)
        if plan.decision is Decision.INVALIDATE and old is not None:
            return Outcome(Decision.INVALIDATE, new.id, new.text, old.id, plan.reason)
        return Outcome(Decision.ADD, new.id, new.text, None, plan.reason)


def store(
    vault: Vault,
    source: Source | None,
    candidates: Sequence[tuple[Candidate, tuple[str, ...]]],
    *,
    judge: Judge | None,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Store `source` (if any) and reconcile `candidates` (with their tags) in one
    transaction; returns one outcome per candidate."""
    now = vault.clock()
    session = _Session(vault, None if source is None else source.id, judge, now)
    if candidates:
        vecs = vault.embedder.embed([c.text for c, _ in candidates]).astype(np.float32)
        for (c, tags), vec in zip(candidates, vecs, strict=True):
            session.add(c, vec, tags)
    ops = list(session.ops)
    if source is not None:
        ops.insert(0, {"op": "add_source", "source": codec.source_to_json(source)})
    if ops:
        vault.commit_ops(ops, progress, vectors=session.vectors)
    return session.outcomes


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


def memory_neighbours(vault: Vault, vec: Vector, k: int) -> list[Neighbour]:
    """The `k` active memories whose embeddings are closest to `vec` (expired ones too)."""
    cond = hybrid.resolve_filters(
        vault.conn, SearchFilters(include_turns=False, include_expired=True), vault.clock()
    )
    hits = vault.vector_index().nearest(vec, cond, k)
    if not hits:
        return []
    marks = ",".join("?" * len(hits))
    refs = {
        int(r[0]): int(r[1])
        for r in vault.conn.execute(
            f"SELECT rowid, ref FROM items WHERE rowid IN ({marks})", [h[0] for h in hits]
        )
    }
    memories = state.memories_by_rowid(vault.conn, refs.values())
    return [
        Neighbour(memories[refs[rowid]], score)
        for rowid, score in hits
        if rowid in refs and refs[rowid] in memories
    ]
