"""What the MCP tools take and return: pydantic models, so every tool publishes its input
and output schemas and returns structured content; and the profile as markdown for the
`memory://profile` resource."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from memsync.model import Category, Kind, Memory, Status, Turn
from memsync.profile.build import Profile
from memsync.profile.insights import InsightKind

__all__ = [
    "Forgotten",
    "Hit",
    "IngestOut",
    "MemoryId",
    "MemoryOut",
    "MemoryPage",
    "MessageIn",
    "ProfileOut",
    "SearchOut",
    "Tags",
    "TurnOut",
    "profile_markdown",
    "profile_out",
]

# Results.


class MemoryOut(BaseModel):
    """One memory: a short statement about the user."""

    id: str = Field(description="The memory's id, for get/update/delete_memory.")
    text: str
    kind: Kind = Field(description="semantic: lasting fact; episodic: time-bound event.")
    category: Category | None
    tags: list[str]
    status: Status
    confidence: float
    observed_at: datetime = Field(description="When the user last said it.")
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    supersedes: str | None = Field(None, description="The older version this one replaced.")

    @classmethod
    def of(cls, m: Memory) -> MemoryOut:
        return cls(
            id=m.id,
            text=m.text,
            kind=m.kind,
            category=m.category,
            tags=list(m.tags),
            status=m.status,
            confidence=m.confidence,
            observed_at=m.observed_at,
            valid_from=m.valid_from,
            valid_until=m.valid_until,
            supersedes=m.supersedes,
        )


class TurnOut(BaseModel):
    """One message of a stored conversation."""

    source_id: str
    index: int
    role: str
    text: str
    timestamp: datetime | None
    source_title: str | None

    @classmethod
    def of(cls, t: Turn) -> TurnOut:
        return cls(
            source_id=t.source_id,
            index=t.index,
            role=t.role,
            text=t.text,
            timestamp=t.timestamp,
            source_title=t.source_title,
        )


class Hit(BaseModel):
    """A search result: a memory or, if the app may read conversations, a turn."""

    score: float
    memory: MemoryOut | None = None
    turn: TurnOut | None = None


class SearchOut(BaseModel):
    query: str
    hits: list[Hit] = Field(description="Best first; empty when nothing matched.")


class MemoryPage(BaseModel):
    items: list[MemoryOut] = Field(description="Newest first.")
    total: int = Field(description="How many match, across all pages.")
    offset: int
    limit: int


class Forgotten(BaseModel):
    id: str
    forgotten: bool = True


class IngestOut(BaseModel):
    source_id: str = Field(description="The stored conversation.")
    new_source: bool = Field(description="False when this conversation was already stored.")
    memories: list[MemoryOut] = Field(description="Memories made or confirmed from it.")
    added: int
    updated: int
    unchanged: int
    out_of_scope: int = Field(description="Statements left out: this app may not write them.")


class SectionOut(BaseModel):
    category: Category
    summary: str


class InsightOut(BaseModel):
    kind: InsightKind
    text: str
    weight: int = Field(description="How many memories support it.")


class ProfileOut(BaseModel):
    bio: str
    sections: list[SectionOut]
    insights: list[InsightOut]
    built_at: datetime


def profile_out(p: Profile) -> ProfileOut:
    return ProfileOut(
        bio=p.bio,
        sections=[SectionOut(category=s.category, summary=s.summary) for s in p.sections],
        insights=[InsightOut(kind=i.kind, text=i.text, weight=i.weight) for i in p.insights],
        built_at=p.built_at,
    )


_INSIGHT_LABELS = {
    InsightKind.LIKE: "Likes",
    InsightKind.DISLIKE: "Dislikes",
    InsightKind.RECURRING_TOPIC: "Often talks about",
}


def profile_markdown(p: Profile) -> str:
    """The profile as the `memory://profile` resource shows it."""
    lines = ["# Profile", "", p.bio or "(no bio yet)"]
    for s in p.sections:
        lines += ["", f"## {s.category.value.capitalize()}", "", s.summary]
    noticed = [
        f"- {label}: {', '.join(i.text for i in p.insights if i.kind is kind)}"
        for kind, label in _INSIGHT_LABELS.items()
        if any(i.kind is kind for i in p.insights)
    ]
    if noticed:
        lines += ["", "## Noticed", "", *noticed]
    return "\n".join(lines) + "\n"


# Inputs.

MemoryId = Annotated[
    str, Field(min_length=1, max_length=100, description="A memory id from search or list.")
]
Tags = Annotated[list[str] | None, Field(max_length=20, description="Short labels.")]


class MessageIn(BaseModel):
    role: Literal["user", "assistant", "system", "developer", "tool"]
    content: str = Field(min_length=1, max_length=100_000)
    timestamp: datetime | None = Field(None, description="When it was sent (ISO 8601).")
