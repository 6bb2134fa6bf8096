"""The MCP tools and the session they act for.

Each tool is a plain function over the calling app's `AppSession` (`current_session`),
taking and returning the models of `mcp_models`; `TOOLS` lists them with the hints
`memsync.server.mcp` registers them with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import apsw
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from memsync.disclose.access import AppSession
from memsync.errors import MemsyncError, Unauthenticated
from memsync.model import Category, Kind, Message, SearchFilters
from memsync.reconcile.decision import Decision
from memsync.server.errors import api_error
from memsync.server.mcp_models import (
    Forgotten,
    Hit,
    IngestOut,
    MemoryId,
    MemoryOut,
    MemoryPage,
    MessageIn,
    ProfileOut,
    SearchOut,
    Tags,
    TurnOut,
    profile_out,
)
from memsync.store.connections import as_memsync_error

__all__ = ["TOOLS", "ToolSpec", "current", "current_session", "tool_errors"]

log = logging.getLogger(__name__)

# The session of the request being handled; `memsync.server.mcp` sets it per message.
current: ContextVar[AppSession | None] = ContextVar("memsync_mcp_session", default=None)


def current_session() -> AppSession:
    """The calling app's session; only valid while a request is being handled."""
    session = current.get()
    if session is None:
        raise Unauthenticated("no app session for this request")
    return session


@contextmanager
def tool_errors() -> Iterator[None]:
    """memsync's errors as one readable line for the model; internal details stay here."""
    try:
        yield
    except MemsyncError as exc:
        error = api_error(exc)
        if error.status >= 500:
            log.error("tool failed: %s: %s", type(exc).__name__, exc)
        raise ToolError(error.message) from exc
    except apsw.Error as exc:
        known = as_memsync_error(exc)
        if known is None:
            raise
        raise ToolError(api_error(known).message) from exc


def _utc(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


# The tools.


def add_memory(
    text: Annotated[
        str,
        Field(
            min_length=1,
            max_length=2000,
            description="One short statement about the user, third person without a "
            "subject: 'Works as a nurse in Porto', 'Prefers short answers'.",
        ),
    ],
    category: Annotated[
        Category | None, Field(description="Guessed from the text when omitted.")
    ] = None,
    kind: Annotated[
        Kind,
        Field(description="semantic: a lasting fact or preference; episodic: an event or plan."),
    ] = Kind.SEMANTIC,
    tags: Tags = None,
    valid_from: Annotated[datetime | None, Field(description="When it starts being true.")] = None,
    valid_until: Annotated[datetime | None, Field(description="When it stops being true.")] = None,
) -> MemoryOut:
    """Save one lasting fact or preference the user stated about themselves. Never secrets."""
    with tool_errors():
        memory = current_session().add(
            text,
            kind=kind,
            category=category,
            tags=tags or (),
            valid_from=_utc(valid_from),
            valid_until=_utc(valid_until),
        )
    return MemoryOut.of(memory)


def ingest_conversation(
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=2000)],
    title: Annotated[str | None, Field(max_length=300)] = None,
    created_at: Annotated[datetime | None, Field(description="When it took place.")] = None,
) -> IngestOut:
    """Store a finished conversation and let the vault extract what the user said about
    themselves (reconciled with what it already knows). Sending it again adds nothing."""
    converted = [Message(m.role, m.content, _utc(m.timestamp)) for m in messages]
    with tool_errors():
        out = current_session().ingest(converted, title=title, created_at=_utc(created_at))
    decisions = [o.decision for o in out.result.outcomes]
    return IngestOut(
        source_id=out.result.source.id,
        new_source=out.result.added,
        memories=[MemoryOut.of(m) for m in out.memories],
        added=sum(d in (Decision.ADD, Decision.INVALIDATE) for d in decisions),
        updated=sum(d in (Decision.UPDATE, Decision.PROMOTE) for d in decisions),
        unchanged=decisions.count(Decision.NOOP),
        out_of_scope=out.out_of_scope,
    )


def search_memories(
    query: Annotated[
        str, Field(min_length=1, max_length=2000, description="What to look for, in words.")
    ],
    limit: Annotated[int, Field(ge=1, le=50)] = 10,
    categories: Annotated[list[Category] | None, Field(description="Only these.")] = None,
    kinds: Annotated[list[Kind] | None, Field(description="Only these.")] = None,
    tags: Tags = None,
) -> SearchOut:
    """Find the memories most relevant to a query. Use before answering anything personal."""
    filters = SearchFilters(
        kinds=tuple(kinds or ()), categories=tuple(categories or ()), tags=tuple(tags or ())
    )
    with tool_errors():
        hits = current_session().search(query, k=limit, filters=filters)
    return SearchOut(
        query=query,
        hits=[
            Hit(
                score=round(h.score, 4),
                memory=MemoryOut.of(h.memory) if h.memory else None,
                turn=TurnOut.of(h.turn) if h.turn else None,
            )
            for h in hits
        ],
    )


def get_memory(id: MemoryId) -> MemoryOut:
    """One memory by id."""
    with tool_errors():
        return MemoryOut.of(current_session().get(id))


def list_memories(
    category: Category | None = None,
    kind: Kind | None = None,
    tag: Annotated[str | None, Field(max_length=100)] = None,
    limit: Annotated[int, Field(ge=1, le=100)] = 20,
    offset: Annotated[int, Field(ge=0)] = 0,
) -> MemoryPage:
    """Browse the memories this app may read, newest first, a page at a time."""
    filters = SearchFilters(
        kinds=(kind,) if kind else (),
        categories=(category,) if category else (),
        tags=(tag,) if tag else (),
    )
    with tool_errors():
        page = current_session().list(filters, limit=limit, offset=offset)
    return MemoryPage(
        items=[MemoryOut.of(m) for m in page.items],
        total=page.total,
        offset=page.offset,
        limit=page.limit,
    )


def update_memory(
    id: MemoryId,
    text: Annotated[str | None, Field(min_length=1, max_length=2000)] = None,
    category: Category | None = None,
    kind: Kind | None = None,
    tags: Tags = None,
    valid_until: Annotated[datetime | None, Field(description="When it stops being true.")] = None,
) -> MemoryOut:
    """Correct a memory. The edit becomes a new memory with a new id; the old version
    stays in its history."""
    if text is None and category is None and kind is None and tags is None and valid_until is None:
        raise ToolError("nothing to change: give text, category, kind, tags or valid_until")
    with tool_errors():
        memory = current_session().edit(
            id, text=text, kind=kind, category=category, tags=tags, valid_until=_utc(valid_until)
        )
    return MemoryOut.of(memory)


def delete_memory(id: MemoryId) -> Forgotten:
    """Forget a memory and its history for good. Only when the user asks to forget it."""
    with tool_errors():
        current_session().forget(id)
    return Forgotten(id=id.strip())


def get_profile() -> ProfileOut:
    """Who the user is: a bio, a summary per category, and their likes and dislikes."""
    with tool_errors():
        return profile_out(current_session().profile())


@dataclass(frozen=True)
class ToolSpec:
    fn: Callable[..., Any]
    title: str
    annotations: ToolAnnotations


def _hints(*, read_only: bool, destructive: bool = False, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


TOOLS = (
    ToolSpec(add_memory, "Remember a fact", _hints(read_only=False, idempotent=False)),
    ToolSpec(
        ingest_conversation, "Learn from a conversation", _hints(read_only=False, idempotent=True)
    ),
    ToolSpec(search_memories, "Search memory", _hints(read_only=True, idempotent=True)),
    ToolSpec(get_memory, "Read a memory", _hints(read_only=True, idempotent=True)),
    ToolSpec(list_memories, "List memories", _hints(read_only=True, idempotent=True)),
    ToolSpec(update_memory, "Correct a memory", _hints(read_only=False, idempotent=False)),
    ToolSpec(
        delete_memory,
        "Forget a memory",
        _hints(read_only=False, destructive=True, idempotent=True),
    ),
    ToolSpec(get_profile, "Read the profile", _hints(read_only=True, idempotent=True)),
)
