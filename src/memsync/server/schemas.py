"""The REST API's request and response bodies, shaped like the MemSync API (api.memsync.ai)
so its clients can switch: MemSync's field names first (`memory`, `categories`, `type`),
memsync's own after them.

Request bodies are strict: a JSON string is not taken for a number or a boolean, nor a
number for a time, so what the OpenAPI schema calls invalid is refused with a 422.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
)

from memsync import codec, model
from memsync.model import Category, Kind, Status
from memsync.profile import build as profile
from memsync.profile.insights import InsightKind

_IN = ConfigDict(strict=True, regex_engine="python-re")
# One character that is not whitespace. Engines disagree on `\S` (U+0085 is whitespace
# to Python, not to JavaScript), and the vault trims with Python's `str.split`, so the
# class lists Python's whitespace, and U+FEFF, which JavaScript adds.
_SOMETHING = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"

MAX_TEXT = 10_000
MAX_MESSAGE = 32_000
MAX_MESSAGES = 1000
MAX_TAGS = 50
MAX_NAME = 200
# A time stored in the log must read back: its millisecond count has to stay a valid
# `datetime` after a round trip through a float, which fails late in the year 9999. The
# schema says so with a pattern on the year (offsets move a time by a day at most).
_YEARS = r"^(?:[1-8]\d{3}|9[0-8]\d{2}|99[0-8]\d|999[0-8])-"
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)


def _encodable(text: str) -> str:
    # JSON can carry lone surrogates; the encrypted store cannot hold them.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return text


def _time_text(value: object) -> object:
    # Strict mode would refuse the string a JSON time arrives as; lax mode would take
    # a number. Only strings (and datetimes, from Python callers) are times here.
    if isinstance(value, str) and re.match(r"\d+-", value) and not re.match(_YEARS, value):
        raise ValueError("times must fall between the years 1000 and 9998")
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string")
    return value


def _whole(value: object) -> object:
    # JSON Schema counts 3.0 as an integer; strict mode would not, and lax mode would
    # also take the string "3".
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _utc(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        value = aware.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range") from None
    if value >= _LATEST:
        raise ValueError("times must fall between the years 1000 and 9998")
    return value


Text = Annotated[str, AfterValidator(_encodable)]
# Text that must say something: at least one character that is not whitespace.
Statement = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT, pattern=_SOMETHING), AfterValidator(_encodable)
]
Name = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_encodable)]
Tag = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_encodable)]
InCategory = Annotated[Category, Strict(False)]
InKind = Annotated[Kind, Strict(False)]
InTime = Annotated[
    datetime,
    BeforeValidator(_time_text),
    Strict(False),
    AfterValidator(_utc),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": _YEARS,
            "description": "ISO 8601, years 1000 to 9998; without an offset, UTC.",
        }
    ),
]
Count = Annotated[int, BeforeValidator(_whole)]
Time = Annotated[
    datetime,
    PlainSerializer(codec.iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# Errors.


class ErrorDetail(BaseModel):
    code: str = Field(
        description="Stable and meant for programs: unauthenticated, forbidden, not_found, "
        "validation_error, invalid_request, rate_limited, …",
        examples=["not_found"],
    )
    message: str = Field(description="Meant for people; may change.")
    type: str = Field(
        description="OpenAI's error type for the status (authentication_error, "
        "permission_error, rate_limit_error, invalid_request_error, server_error), so "
        "OpenAI clients read these errors like their own.",
        examples=["invalid_request_error"],
    )


class ErrorResponse(BaseModel):
    """Every error the API returns."""

    error: ErrorDetail


# Memories.


class Memory(BaseModel):
    """One memory."""

    id: str
    memory: str = Field(description="The memory's text.")
    categories: list[Category] = Field(description="Its category, or none.")
    type: Kind = Field(description="semantic: a lasting fact; episodic: a time-bound event.")
    tags: list[str]
    created_at: Time
    updated_at: Time
    observed_at: Time = Field(description="When the fact was stated or seen.")
    valid_from: Time | None
    valid_until: Time | None
    confidence: float
    status: Status = Field(description="active unless superseded, invalidated or forgotten.")
    source: str | None = Field(description="The id of the conversation it came from, if any.")

    @classmethod
    def of(cls, m: model.Memory) -> Memory:
        return cls(**_memory_fields(m))


class ScoredMemory(Memory):
    """A memory found by search, with its relevance (higher is better)."""

    score: float

    @classmethod
    def scored(cls, m: model.Memory, score: float) -> ScoredMemory:
        return cls(**_memory_fields(m), score=score)


def _memory_fields(m: model.Memory) -> dict[str, Any]:
    return {
        "id": m.id,
        "memory": m.text,
        "categories": [] if m.category is None else [m.category],
        "type": m.kind,
        "tags": list(m.tags),
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "observed_at": m.observed_at,
        "valid_from": m.valid_from,
        "valid_until": m.valid_until,
        "confidence": m.confidence,
        "status": m.status,
        "source": next((p.source_id for p in m.provenance if p.source_id), None),
    }


class Turn(BaseModel):
    """One message of a stored conversation, found by search."""

    source_id: str
    turn: int = Field(description="The message's 0-based index in the conversation.")
    role: str
    text: str
    timestamp: Time | None
    source_title: str | None
    score: float

    @classmethod
    def of(cls, t: model.Turn, score: float) -> Turn:
        return cls(
            source_id=t.source_id,
            turn=t.index,
            role=t.role,
            text=t.text,
            timestamp=t.timestamp,
            source_title=t.source_title,
            score=score,
        )


class MemoryPage(BaseModel):
    """A page of memories, newest first."""

    memories: list[Memory]
    total: int = Field(description="How many memories match, on every page together.")
    limit: int
    offset: int


class UpdateMemory(BaseModel):
    """What to change; omitted (or null) fields stay as they are. The memory is not
    overwritten: the edit is a new version (with a new id) that supersedes it."""

    model_config = _IN

    memory: Statement | None = Field(None, description="The new text.")
    categories: list[InCategory] | None = Field(
        None, min_length=1, max_length=1, description="The new category (memsync keeps one)."
    )
    type: InKind | None = None
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS, description="Replaces the tags.")
    valid_until: InTime | None = Field(None, description="When the fact stops being true.")


class SearchMemories(BaseModel):
    """A search (MemSync's `POST /memories/search` body, plus memsync's filters)."""

    model_config = _IN

    query: Annotated[Text, Field(min_length=1, max_length=4000)]
    limit: Count = Field(10, ge=1, le=100, description="At most this many results in all.")
    categories: list[InCategory] | None = Field(None, max_length=len(Category))
    kinds: list[InKind] | None = Field(None, max_length=len(Kind))
    types: list[InKind] | None = Field(None, max_length=len(Kind), description="Same as kinds.")
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS, description="Any of these.")
    since: InTime | None = Field(
        None, description="Only what was observed (or, for turns, said) at this time or later."
    )
    until: InTime | None = Field(None, description="Only what was observed before this time.")
    include_bio: bool = Field(True, description="Also return the user's bio.")
    include_turns: bool = Field(
        True, description="Also search stored conversations, if the app may read them."
    )
    rerank: bool | None = Field(
        None,
        description="Accepted for MemSync clients and ignored: memsync's own ranking (keyword "
        "and vector search fused, then weighed with the conversation around each hit and "
        "any time the query names) always applies.",
    )
    agent_id: Name | None = Field(
        None,
        description="Accepted for MemSync clients; memories belong to the user, so "
        "this does not narrow the search.",
    )
    thread_id: Name | None = Field(
        None, description="Accepted for MemSync clients; does not narrow the search."
    )


class SearchResult(BaseModel):
    """Memories (and conversation excerpts, if the app may read them) for a query."""

    user_bio: str | None = Field(description="The bio, if asked for and there is one.")
    memories: list[ScoredMemory] = Field(description="Best first.")
    turns: list[Turn] = Field(
        description="Messages of stored conversations, best first; only for apps allowed "
        "to read conversations."
    )


# Conversations.


class MessageIn(BaseModel):
    """One message of a conversation."""

    model_config = _IN

    role: Literal["user", "assistant", "system", "tool"]
    content: Annotated[Text, Field(max_length=MAX_MESSAGE)]
    timestamp: InTime | None = None

    def message(self) -> model.Message:
        return model.Message(self.role, self.content, timestamp=self.timestamp)


Messages = Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_MESSAGES)]


class Metadata(BaseModel):
    """MemSync's metadata; memsync reads `timestamp` and ignores other fields."""

    model_config = ConfigDict(strict=True, extra="allow")

    timestamp: InTime | None = Field(None, description="When the conversation took place.")


class AddMemories(BaseModel):
    """A conversation to remember (MemSync's `POST /memories` body)."""

    model_config = _IN

    messages: Messages
    agent_id: Name | None = Field(
        None, description="Accepted for MemSync clients; the app's token already says who."
    )
    thread_id: Name | None = Field(
        None,
        description="Your id for the conversation: posting it again as it grows reads only "
        "the new messages for memories.",
    )
    source: Name | None = Field(None, description="Accepted for MemSync clients; not stored.")
    metadata: Metadata | None = None


class AddMemoriesResult(BaseModel):
    """What a conversation became."""

    success: bool = True
    memories_created: int = Field(description="Memories this conversation added.")
    categories_detected: list[Category]
    memories: list[Memory] = Field(
        description="The memories it added or confirmed, as far as the app may read them."
    )
    source_id: str = Field(description="The stored conversation.")
    added: bool = Field(description="False if this conversation was already stored.")
    out_of_scope: int = Field(
        description="Statements left out because the app may not write their category."
    )


class NewConversation(BaseModel):
    """A conversation to store, and optionally to read for memories."""

    model_config = _IN

    messages: Messages
    title: Annotated[Text, Field(max_length=500)] | None = None
    created_at: InTime | None = Field(None, description="Default: its first message's time.")
    external_id: Name | None = Field(
        None, description="Your id for it; posting it again as it grows reads only new turns."
    )
    extract: bool = Field(True, description="Read the conversation for memories.")


class ConversationResult(BaseModel):
    """The stored conversation and the memories it gave."""

    source_id: str
    added: bool = Field(description="False if this conversation was already stored.")
    turns: int
    memories_created: int
    memories: list[Memory]
    out_of_scope: int


# The profile.


class Section(BaseModel):
    """One category's summary and the memories it was written from."""

    category: Category
    summary: str
    memory_ids: list[str]


class Insight(BaseModel):
    """Something noticed across memories: a recurring topic, a like or a dislike."""

    kind: InsightKind
    text: str
    memory_ids: list[str]
    weight: int = Field(description="How many memories support it.")


class Profile(BaseModel):
    """Who the user is, as far as the app may read."""

    bio: str | None
    sections: list[Section]
    insights: list[Insight]
    built_at: Time

    @classmethod
    def of(cls, p: profile.Profile) -> Profile:
        return cls(
            bio=p.bio or None,
            sections=[
                Section(category=s.category, summary=s.summary, memory_ids=list(s.memory_ids))
                for s in p.sections
            ],
            insights=[
                Insight(kind=i.kind, text=i.text, memory_ids=list(i.memory_ids), weight=i.weight)
                for i in p.insights
            ],
            built_at=p.built_at,
        )


class Bio(BaseModel):
    """The bio: a short description of the user."""

    bio: str | None


class SetBio(BaseModel):
    """A bio to show instead of the derived one; null goes back to the derived one."""

    model_config = _IN

    bio: (
        Annotated[
            str,
            Field(min_length=1, max_length=2000, pattern=_SOMETHING),
            AfterValidator(_encodable),
        ]
        | None
    )


class SyncHealth(BaseModel):
    """Background sync with the vault's remotes (`sync.interval`)."""

    enabled: bool
    remotes: int
    last_sync: datetime | None = Field(None, description="When the last sync succeeded.")
    last_error: str | None = Field(
        None, description="The kind of error of the last attempt, if it failed."
    )


class Health(BaseModel):
    """The server is up."""

    status: Literal["ok"] = "ok"
    version: str
    sync: SyncHealth | None = None
