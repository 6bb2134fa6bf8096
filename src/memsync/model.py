"""Domain types. Everything the public API takes or returns is one of these dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Kind(StrEnum):
    """`semantic`: a lasting fact or preference. `episodic`: a time-bound event or plan."""

    SEMANTIC = "semantic"
    EPISODIC = "episodic"


class Status(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    INVALIDATED = "invalidated"
    FORGOTTEN = "forgotten"


class Category(StrEnum):
    """The ten categories of the MemSync API."""

    IDENTITY = "identity"
    CAREER = "career"
    INTERESTS = "interests"
    RELATIONSHIPS = "relationships"
    HEALTH = "health"
    FINANCE = "finance"
    LEARNING = "learning"
    TRAVEL = "travel"
    PRODUCTIVITY = "productivity"
    PRIVATE = "private"


class SourceKind(StrEnum):
    CONVERSATION = "conversation"
    DOCUMENT = "document"


@dataclass(frozen=True)
class Provenance:
    """Where a memory came from: a source, optionally one turn of it and a span of text.

    `turn` is the 0-based index of the message (or chunk) in the source; `start`/`end`
    are character offsets into that message's text.
    """

    source_id: str | None = None
    turn: int | None = None
    start: int | None = None
    end: int | None = None
    extractor: str = "manual"
    extractor_version: str = "1"


@dataclass(frozen=True)
class Memory:
    """One statement about the user or their world.

    Updating never overwrites: an edit creates a new memory whose `supersedes` names the
    old one, and the old one's status becomes `superseded`.
    """

    id: str
    text: str
    kind: Kind
    category: Category | None
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    observed_at: datetime
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    confidence: float = 1.0
    status: Status = Status.ACTIVE
    supersedes: str | None = None
    superseded_by: str | None = None
    provenance: tuple[Provenance, ...] = ()


@dataclass(frozen=True)
class Message:
    """One turn of a conversation as captured (OpenAI message shape)."""

    role: str
    content: str
    timestamp: datetime | None = None
    name: str | None = None


@dataclass(frozen=True)
class Source:
    """Raw material as captured: a conversation (its messages) or a document (its chunks,
    stored as messages with role `document` and the heading path as `name`)."""

    id: str
    kind: SourceKind
    title: str | None
    origin: str | None
    created_at: datetime
    captured_at: datetime
    messages: tuple[Message, ...] = ()
    digest: str = ""
    # The exporter's own id for the conversation (ChatGPT, Claude), so a conversation
    # that grew since the last import is recognised as the same one.
    external_id: str | None = None
    # Documents only: where each chunk (message) starts in the document's text.
    offsets: tuple[int, ...] = ()


@dataclass(frozen=True)
class Turn:
    """One message of a source, as a search hit points at it."""

    source_id: str
    index: int
    role: str
    text: str
    timestamp: datetime | None
    source_title: str | None = None


@dataclass(frozen=True)
class SearchHit:
    """One ranked search result: a memory or a conversation turn (exactly one is set)."""

    score: float
    memory: Memory | None = None
    turn: Turn | None = None
    keyword_rank: int | None = None
    vector_rank: int | None = None

    @property
    def text(self) -> str:
        if self.memory is not None:
            return self.memory.text
        assert self.turn is not None
        return self.turn.text


class SearchMode(StrEnum):
    """Which halves of search run: both fused (the default), or one alone."""

    HYBRID = "hybrid"
    KEYWORD = "keyword"
    VECTOR = "vector"


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions on what search and list return. Empty tuples mean "any"."""

    kinds: tuple[Kind, ...] = ()
    categories: tuple[Category, ...] = ()
    tags: tuple[str, ...] = ()
    statuses: tuple[Status, ...] = (Status.ACTIVE,)
    since: datetime | None = None
    until: datetime | None = None
    include_turns: bool = True
    include_expired: bool = False


@dataclass(frozen=True)
class Page:
    """A page of memories from `Vault.list`."""

    items: tuple[Memory, ...]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class LogProblem:
    """One thing `check` found wrong."""

    where: str
    what: str


@dataclass(frozen=True)
class CheckReport:
    """What `Vault.check` verified."""

    entries: int
    devices: int
    problems: tuple[LogProblem, ...] = ()
    state_digest: str = ""
    rebuilt_digest: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems and self.state_digest == self.rebuilt_digest


@dataclass(frozen=True)
class ImportReport:
    sources_added: int = 0
    sources_skipped: int = 0
    memories_added: int = 0
    memories_skipped: int = 0


@dataclass(frozen=True)
class VaultInfo:
    vault_id: str
    device_id: str
    path: str
    epoch: int
    embedder: str
    memories: int
    sources: int
    log_entries: int
