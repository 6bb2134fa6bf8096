"""The extractor protocol and the candidate memories extractors produce."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from memsync.model import Category, Kind, Message, Provenance

__all__ = ["Candidate", "Extractor", "dedup"]


@dataclass(frozen=True)
class Candidate:
    """A memory an extractor proposes, before reconciliation with what the vault holds.

    Attributes:
        text: a standalone third-person statement ("Is a nurse", "Has a dentist
            appointment on 13 March 2026").
        kind: semantic (lasting fact or preference) or episodic (time-bound).
        category: one of the ten categories.
        valid_from: when the fact starts to hold, if known (episodic: the event's first day
            when it is in the past, else the observation time; semantic: None).
        valid_until: when an episodic memory stops being relevant (the end of the day or
            period the time expression names, or the observation plus the extractor's
            horizon); None for semantic memories.
        confidence: 0..1; how sure the extractor is that the user stated this fact.
        turn: index of the message the statement came from.
        start, end: character span of the source clause in that message's `content`.
        extractor, extractor_version: who made it.
        observed_at: the timestamp of that message (or the `now` the extractor was given).
        confirmed_by: for a statement the assistant made and the user confirmed, the index
            of the confirming user message (`turn` points at the assistant's message).
    """

    text: str
    kind: Kind
    category: Category
    valid_from: datetime | None
    valid_until: datetime | None
    confidence: float
    turn: int
    start: int
    end: int
    extractor: str
    extractor_version: str
    observed_at: datetime | None = None
    confirmed_by: int | None = None

    def provenance(self, source_id: str | None = None) -> Provenance:
        """The provenance record a memory made from this candidate carries."""
        return Provenance(
            source_id=source_id,
            turn=self.turn,
            start=self.start,
            end=self.end,
            extractor=self.extractor,
            extractor_version=self.extractor_version,
        )


@runtime_checkable
class Extractor(Protocol):
    """Conversation (or document chunks as messages) in, candidate memories out.

    Attributes:
        name: stable id recorded in every memory's provenance ("rules", "llm").
        version: bumped whenever the output for the same input may change.
    """

    name: str
    version: str

    def extract(
        self, messages: Sequence[Message], *, now: datetime | None = None
    ) -> list[Candidate]:
        """Candidates found in `messages`, in the order of the text they came from.

        `now` is the reference time for messages without a timestamp (relative dates such
        as "next Tuesday" resolve against each message's own timestamp when it has one).
        """
        ...


def dedup(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per statement (case and punctuation aside): the most confident, kept
    in its place in the order."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        key = re.sub(r"[^\w]+", " ", c.text.lower()).strip()
        if key not in best or c.confidence > best[key].confidence:
            best[key] = c
    kept = {id(c) for c in best.values()}
    return [c for c in candidates if id(c) in kept]
