"""Reconciliation carried out for one source: each candidate compared with the vault's
nearest memories and with those already decided for the same source, and the decisions
stored with the source in one transaction (`store`).

Deciding reads the vault and may ask a configured model (the judge), so it is done with
no lock held; the write then checks that every memory it acts on is as it was read, and
if another process changed one meanwhile, decides again on what is there now.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import apsw
import numpy as np
import numpy.typing as npt

from memsync import codec
from memsync.core import Core, Guard, Stale, expecting
from memsync.errors import VaultBusy
from memsync.extract.base import Candidate
from memsync.ids import new_id
from memsync.index.filters import resolve_filters
from memsync.index.vectors import embed_texts, texts_to_embed
from memsync.model import (
    Kind,
    Memory,
    SearchFilters,
    Source,
    Status,
)
from memsync.reconcile.decide import Judge, Neighbour, Plan, decide
from memsync.reconcile.decision import Decision
from memsync.store import state

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


@dataclass
class _Session:
    """The memory operations for one source, decided candidate by candidate.

    Candidates are compared with the vault's memories and with those this session has
    already decided to write (not yet committed, so not in the vector index).
    """

    core: Core
    source_id: str | None
    judge: Judge | None
    now: datetime
    ops: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    vectors: dict[str, Vector] = field(default_factory=dict)
    pending: dict[str, tuple[Memory, Vector]] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)
    # Stored memories these operations act on, with the status they were decided on.
    expect: dict[str, Status] = field(default_factory=dict)

    def neighbours(self, vec: Vector) -> list[Neighbour]:
        found = [
            nb
            for nb in memory_neighbours(self.core, vec, NEIGHBOURS)
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
        if old is not None and plan.decision is not Decision.ADD and old.id not in self.pending:
            self.expect.setdefault(old.id, old.status)
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
                vec = self.core.embedder.embed([text])[0].astype(np.float32)
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


ATTEMPTS = 5  # decisions made again when other processes keep changing their targets


def _decided(
    core: Core,
    source: Source | None,
    candidates: Sequence[tuple[Candidate, tuple[str, ...]]],
    vecs: npt.NDArray[np.float32],
    judge: Judge | None,
) -> _Session:
    session = _Session(core, None if source is None else source.id, judge, core.clock())
    for (c, tags), vec in zip(candidates, vecs, strict=True):
        session.add(c, vec, tags)
    if source is not None:
        session.ops.insert(0, {"op": "add_source", "source": codec.source_to_json(source)})
    return session


def store(
    core: Core,
    source: Source | None,
    candidates: Sequence[tuple[Candidate, tuple[str, ...]]],
    *,
    judge: Judge | None,
    progress: Progress | None = None,
    guard: Guard | None = None,
) -> list[Outcome]:
    """Store `source` (if any) and reconcile `candidates` (with their tags) in one
    transaction; returns one outcome per candidate. `guard` is checked in that
    transaction too (see `Core.commit`).

    Everything slow is done first, with no lock held: embedding the candidates and the
    source's turns. With the offline rules alone, the decisions are then made inside
    the write transaction (they take a millisecond or two and call nothing outside this
    process), so no other writer can change what they were made on. A judge may be a
    model across the network, so with one the decisions are made outside, and the write
    checks that their targets are unchanged, deciding again if another process won.
    """
    texts = [c.text for c, _ in candidates]
    turns = (
        []
        if source is None
        else texts_to_embed([{"op": "add_source", "source": codec.source_to_json(source)}])
    )
    # One embedding call for the candidates and the turns: a model run has a fixed cost.
    known = embed_texts(core.embedder, [*texts, *turns], None, progress)
    vecs = (
        np.stack([known[t] for t in texts])
        if texts
        else np.zeros((0, core.embedder.dim), dtype=np.float32)
    )
    if judge is None:
        with core.db.write() as conn:
            if guard is not None:
                guard(conn)
            session = _decided(core, source, candidates, vecs, None)
            if session.ops:
                core.commit(session.ops, vectors=known | session.vectors)
        return session.outcomes
    for attempt in range(1, ATTEMPTS + 1):
        session = _decided(core, source, candidates, vecs, judge)
        if not session.ops:
            return session.outcomes
        still = expecting(session.expect)

        def checks(conn: apsw.Connection, still: Guard = still) -> None:
            still(conn)
            if guard is not None:
                guard(conn)

        try:
            core.commit(session.ops, vectors=known | session.vectors, guard=checks)
        except Stale:
            if attempt == ATTEMPTS:
                raise VaultBusy(
                    "the vault kept changing while this was being stored (other processes "
                    "are writing the same memories); nothing was written, try again"
                ) from None
            time.sleep(random.uniform(0, 0.05 * attempt))
            continue
        return session.outcomes
    raise AssertionError("unreachable")


def memory_neighbours(core: Core, vec: Vector, k: int) -> list[Neighbour]:
    """The `k` active memories whose embeddings are closest to `vec` (expired ones too)."""
    conn = core.conn
    cond = resolve_filters(
        conn, SearchFilters(include_turns=False, include_expired=True), core.clock()
    )
    hits = core.vector_index().nearest(vec, cond, k)
    if not hits:
        return []
    marks = ",".join("?" * len(hits))
    refs = {
        int(r[0]): int(r[1])
        for r in conn.execute(
            f"SELECT rowid, ref FROM items WHERE rowid IN ({marks})", [h[0] for h in hits]
        )
    }
    memories = state.memories_by_rowid(conn, refs.values())
    return [
        Neighbour(memories[refs[rowid]], score)
        for rowid, score in hits
        if rowid in refs and refs[rowid] in memories
    ]
