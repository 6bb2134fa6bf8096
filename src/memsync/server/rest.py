"""The REST API under /v1, shaped like the MemSync memory API (api.memsync.ai).

Every route but `/health` takes an app's token (`Authorization: Bearer …` or MemSync's
`X-API-Key`) and works through that app's `AppSession`, so its scope is enforced and
what it is given is recorded in the disclosure ledger. Routes that touch the vault are
plain functions: FastAPI runs them in its thread pool, and the session takes the vault's
lock, which would otherwise block the event loop.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at
# runtime, and `Session` is local to `router`, out of reach of a postponed string.

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, NoReturn, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from memsync import __version__
from memsync.disclose.access import AppIngest, AppSession
from memsync.model import Category, Kind, SearchFilters
from memsync.reconcile.decision import Decision
from memsync.server.background import SyncState
from memsync.server.gate import Gate
from memsync.server.schemas import (
    MAX_TAGS,
    AddMemories,
    AddMemoriesResult,
    Bio,
    ConversationResult,
    ErrorResponse,
    Health,
    Memory,
    MemoryPage,
    MessageIn,
    NewConversation,
    Profile,
    ScoredMemory,
    SearchMemories,
    SearchResult,
    SetBio,
    SyncHealth,
    Tag,
    Turn,
    UpdateMemory,
)

__all__ = ["router"]

_bearer = HTTPBearer(auto_error=False, description="An app's token: `memsync app add NAME`.")
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The same token, as MemSync clients send it."
)


Responses = dict[int | str, dict[str, Any]]
_T = TypeVar("_T")
_ERRORS = {
    401: "No token, an unknown one, or a revoked app.",
    403: "The app's scope does not allow this write; nothing was written.",
    404: "No such memory, or one outside the app's scope (the two look the same).",
    400: "The body is not JSON text (invalid_request).",
    422: "The request is malformed (validation_error) or cannot be done as asked "
    "(invalid_request).",
    429: "Over the app's rate limit; `Retry-After` says when to try again.",
    502: "A configured language model (extractor or summarizer) failed.",
    503: "The embedding model could not run (embedder_unavailable); or the vault stayed "
    "busy with another process's writes (vault_busy) or its disk refused a write "
    "(storage_error), in which case nothing was written and `Retry-After` says when to "
    "try again.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}


def _errors(*codes: int) -> Responses:
    """The documented error responses: 401, 429 and 503 for every route (each records
    what it hands out, so each writes), and `codes`."""
    out: Responses = {}
    for code in sorted({401, 429, 503, *codes}):
        out[code] = {"model": ErrorResponse, "description": _ERRORS[code]}
    out[429]["headers"] = _RETRY_AFTER
    out[503]["headers"] = _RETRY_AFTER
    return out


MemoryId = Annotated[str, Path(min_length=1, max_length=100, description="The memory's id.")]


def _route_id(route: APIRoute) -> str:
    # Clients generated from the schema get `search_memories`, not a name made of the path.
    return route.name


def router(gate: Gate, sync_state: Callable[[], SyncState | None] = lambda: None) -> APIRouter:
    """The REST routes, each authenticated by `gate`."""

    def session(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> AppSession:
        authorization = None if bearer is None else f"Bearer {bearer.credentials}"
        return gate.session(authorization, api_key)

    Session = Annotated[AppSession, Depends(session)]
    ingests = _Ingests()
    api = APIRouter(generate_unique_id_function=_route_id)

    @api.get(
        "/health",
        response_model=Health,
        response_model_exclude_none=True,
        tags=["health"],
        summary="Is the server up",
    )
    def health() -> Health:
        """Needs no token and says nothing about the vault's contents; with a remote, how
        background sync stands (when it last succeeded, and what failed if it did not)."""
        state = sync_state()
        sync = (
            None
            if state is None
            else SyncHealth(
                enabled=state.enabled,
                remotes=state.remotes,
                last_sync=None
                if state.last_sync is None
                else datetime.fromtimestamp(state.last_sync, UTC),
                last_error=state.last_error,
            )
        )
        return Health(version=__version__, sync=sync)

    @api.post(
        "/memories",
        response_model=AddMemoriesResult,
        status_code=status.HTTP_201_CREATED,
        responses=_errors(400, 403, 422, 502, 503),
        tags=["memories"],
        summary="Remember a conversation",
    )
    async def add_memories(body: AddMemories, app: Session) -> AddMemoriesResult:
        """Store the conversation and extract memories from what the user said, keeping
        to the categories the app may write. `thread_id` identifies a conversation that
        grows between posts; `metadata.timestamp` is when it took place."""
        stamp = body.metadata.timestamp if body.metadata else None
        made = await ingests.run(
            partial(_ingest, app, body.messages, created_at=stamp, external_id=body.thread_id)
        )
        return AddMemoriesResult(
            memories_created=_created(made),
            categories_detected=_categories(made),
            memories=[Memory.of(m) for m in made.memories],
            source_id=made.result.source.id,
            added=made.result.added,
            out_of_scope=made.out_of_scope,
        )

    @api.post(
        "/memories/search",
        response_model=SearchResult,
        responses=_errors(400, 422, 502, 503),
        tags=["memories"],
        summary="Search memories",
    )
    def search_memories(body: SearchMemories, app: Session) -> SearchResult:
        """The memories most relevant to `query`, best first, and the user's bio. Apps
        allowed to read conversations also get matching messages, in `turns`."""
        filters = SearchFilters(
            kinds=tuple(dict.fromkeys([*(body.kinds or ()), *(body.types or ())])),
            categories=tuple(body.categories or ()),
            tags=tuple(body.tags or ()),
            since=body.since,
            until=body.until,
            include_turns=body.include_turns,
        )
        if body.include_bio:
            hits, bio = app.search_with_bio(body.query, k=body.limit, filters=filters)
        else:
            hits, bio = app.search(body.query, k=body.limit, filters=filters), None
        return SearchResult(
            user_bio=bio,
            memories=[ScoredMemory.scored(h.memory, h.score) for h in hits if h.memory],
            turns=[Turn.of(h.turn, h.score) for h in hits if h.turn],
        )

    @api.get(
        "/memories",
        response_model=MemoryPage,
        responses=_errors(422),
        tags=["memories"],
        summary="List memories",
    )
    def list_memories(
        app: Session,
        category: Annotated[list[Category], Query(default_factory=list, max_length=len(Category))],
        kind: Annotated[list[Kind], Query(default_factory=list, max_length=len(Kind))],
        tag: Annotated[list[Tag], Query(default_factory=list, max_length=MAX_TAGS)],
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> MemoryPage:
        """A page of the active memories the app may read, newest first. Repeat a
        filter to match any of its values (`?category=career&category=learning`)."""
        filters = SearchFilters(categories=tuple(category), kinds=tuple(kind), tags=tuple(tag))
        page = app.list(filters, limit=limit, offset=offset)
        return MemoryPage(
            memories=[Memory.of(m) for m in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )

    @api.get(
        "/memories/{memory_id}",
        response_model=Memory,
        responses=_errors(404, 422),
        tags=["memories"],
        summary="Get a memory",
    )
    def get_memory(memory_id: MemoryId, app: Session) -> Memory:
        """One memory by its id, including superseded versions of it."""
        return Memory.of(app.get(memory_id))

    @api.patch(
        "/memories/{memory_id}",
        response_model=Memory,
        responses=_errors(400, 403, 404, 422, 503),
        tags=["memories"],
        summary="Edit a memory",
    )
    def update_memory(memory_id: MemoryId, body: UpdateMemory, app: Session) -> Memory:
        """Change a memory's text (`memory`), category, type, tags or end of validity.
        The edit is a new version with a new id, returned here; the old one stays in
        its history as superseded. Only active memories can be edited, and an edit
        that would change nothing is refused (both 422 `invalid_request`)."""
        edited = app.edit(
            memory_id,
            text=body.memory,
            kind=body.type,
            category=body.categories[0] if body.categories else None,
            tags=body.tags,
            valid_until=body.valid_until,
        )
        return Memory.of(edited)

    @api.delete(
        "/memories/{memory_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=_errors(403, 404, 422),
        tags=["memories"],
        summary="Forget a memory",
    )
    def delete_memory(memory_id: MemoryId, app: Session) -> None:
        """Forget the memory and every earlier version of it: their text leaves the
        vault for good."""
        app.forget(memory_id)

    @api.get(
        "/profile",
        response_model=Profile,
        responses=_errors(502),
        tags=["profile"],
        summary="The user's profile",
    )
    def get_profile(app: Session) -> Profile:
        """The bio, a summary per category and insights (recurring topics, likes and
        dislikes), drawn only from memories the app may read."""
        return Profile.of(app.profile())

    @api.get(
        "/profile/bio",
        response_model=Bio,
        responses=_errors(502),
        tags=["profile"],
        summary="The user's bio",
    )
    def get_bio(app: Session) -> Bio:
        """A short description of the user: the one they wrote, else one derived from
        their memories."""
        return Bio(bio=app.bio())

    @api.patch(
        "/profile/bio",
        response_model=Bio,
        responses=_errors(400, 403, 422, 502),
        tags=["profile"],
        summary="Write the user's bio",
    )
    def set_bio(body: SetBio, app: Session) -> Bio:
        """Show this bio instead of the derived one; `null` goes back to the derived one.
        The app needs write access to the identity category."""
        return Bio(bio=app.set_bio(body.bio).bio or None)

    @api.post(
        "/conversations",
        response_model=ConversationResult,
        status_code=status.HTTP_201_CREATED,
        responses=_errors(400, 403, 422, 502, 503),
        tags=["conversations"],
        summary="Store a conversation",
    )
    async def add_conversation(body: NewConversation, app: Session) -> ConversationResult:
        """Store a conversation (every message becomes searchable by apps allowed to read
        conversations) and, unless `extract` is false, read it for memories. The same
        messages posted again are recognised and not stored twice."""
        made = await ingests.run(
            partial(
                _ingest,
                app,
                body.messages,
                title=body.title,
                created_at=body.created_at,
                external_id=body.external_id,
                extract=body.extract,
            )
        )
        return ConversationResult(
            source_id=made.result.source.id,
            added=made.result.added,
            turns=len(made.result.source.messages),
            memories_created=_created(made),
            memories=[Memory.of(m) for m in made.memories],
            out_of_scope=made.out_of_scope,
        )

    _refuse_other_methods(api)
    return api


_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY"}
)


def _refuse_other_methods(api: APIRouter) -> None:
    """Answer a method a path lacks with 405 and every method the path has in `Allow`.

    Starlette's own 405 names only the methods of the first route on the path, so
    `OPTIONS /memories` would say `Allow: POST` and hide `GET`. One hidden route per
    path, taking the methods no other route takes, gives the whole list."""
    methods: dict[str, set[str]] = {}
    for route in api.routes:
        if isinstance(route, APIRoute):
            methods.setdefault(route.path, set()).update(route.methods or ())
    for path, allowed in methods.items():
        api.add_api_route(
            path,
            _refusal(", ".join(sorted(allowed))),
            methods=sorted(_METHODS - allowed),
            response_model=None,
            include_in_schema=False,
        )


def _refusal(allow: str) -> Callable[[], NoReturn]:
    def refuse() -> NoReturn:
        raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, headers={"Allow": allow})

    return refuse


class _Ingests:
    """Where conversations are stored: a thread of their own, one at a time.

    Storing a conversation (extraction, reconciliation, embedding its turns) can take far
    longer than a search, so ingests queue here rather than take the threads searches
    need: a burst of long conversations leaves searches as fast as before.
    """

    def __init__(self) -> None:
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, fn: Callable[[], _T]) -> _T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter)


def _ingest(
    app: AppSession,
    messages: list[MessageIn],
    *,
    title: str | None = None,
    created_at: datetime | None = None,
    external_id: str | None = None,
    extract: bool = True,
) -> AppIngest:
    return app.ingest(
        [m.message() for m in messages],
        title=title,
        created_at=created_at,
        external_id=external_id,
        extract=extract,
    )


def _created(made: AppIngest) -> int:
    # A duplicate statement (NOOP) confirms an existing memory rather than creating one.
    new = {o.memory_id for o in made.result.outcomes if o.decision is not Decision.NOOP}
    return sum(1 for m in made.memories if m.id in new)


def _categories(made: AppIngest) -> list[Category]:
    found = {m.category for m in made.memories if m.category is not None}
    return [c for c in Category if c in found]
