"""The OpenAI-compatible memory proxy: `POST /v1/chat/completions` and `GET /v1/models`.

A client points its OpenAI base URL at `memsync serve` and puts its memsync app token
where the OpenAI key goes. Each chat request gets the memories relevant to its latest
user turn (within the app's scope and `budget_tokens`; see `query_of`) as one more system
message, placed after the client's own leading system messages, which stay as they are
(every system message still comes first, as local models' chat templates require). The
request then goes to `{upstream}/chat/completions` with the proxy's own key, and the
answer comes back as the upstream gave it: same status, same body; a stream is passed on
chunk by chunk as it arrives (`timeout` bounds the connect and each read, not the whole
stream). Response headers say what was added (`X-Memsync-Context-Items` and `-Tokens`,
or `X-Memsync-Context: unavailable` when the vault could not be searched and the request
went on without memories). Failures of the proxy itself are OpenAI-style JSON errors:
502 upstream unreachable, 504 upstream timeout, 503 no upstream configured; a stream
that breaks off after it began ends with an `error` event, as OpenAI's streams do.

With capture on, the exchange is stored as a conversation of the app and read for
memories, in a worker thread after the answer has gone out. What is stored is what the
user and the assistant said: the user and assistant turns (text parts only), not system
prompts, tool output or the memory block. When the upstream fails (error status,
unreachable, timeout, none configured) the user's turns are stored without an answer,
so nothing the user said is lost; a retry that succeeds continues the same conversation
and is not read twice (each conversation is keyed by its first turn). A stream that
breaks off, or that the client abandons, is stored with the answer as far as it came.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from memsync.config import Settings
from memsync.disclose.access import AppSession
from memsync.errors import MemsyncError, Unauthenticated
from memsync.model import Message
from memsync.server.errors import error_body, error_response, refusal
from memsync.server.gate import Gate

__all__ = ["ProxyOptions", "options_from_settings", "query_of", "router"]

log = logging.getLogger(__name__)

SYSTEM_ROLES = frozenset({"system", "developer"})
SHORT_TURN_WORDS = 12  # a last turn shorter than this ("yes, book it") brings the one before
MAX_QUERY_CHARS = 2000
TITLE_CHARS = 80
# Hop-by-hop headers and the upstream's framing of the body (the response re-frames it);
# cookies belong to the upstream, not to the client.
_DROPPED = frozenset(
    "connection keep-alive proxy-connection transfer-encoding te trailer upgrade "
    "content-length content-encoding date server set-cookie".split()
)
# Called with the assistant's answer (None if there is none) once the exchange is over.
Keep = Callable[[str | None], None]


@dataclass(frozen=True)
class ProxyOptions:
    """Where the proxy forwards chat requests and what it adds to them."""

    upstream: str | None = None
    api_key: str | None = None
    capture: bool = False
    budget_tokens: int = 1000
    timeout: float = 120.0


def options_from_settings(settings: Settings) -> ProxyOptions:
    """The proxy as this device's `proxy.*` settings configure it."""
    return ProxyOptions(
        upstream=settings.proxy_upstream,
        api_key=settings.proxy_api_key,
        capture=settings.proxy_capture,
        budget_tokens=settings.proxy_budget,
        timeout=settings.proxy_timeout,
    )


def router(gate: Gate, options: ProxyOptions) -> APIRouter:
    """The proxy's routes, mounted under /v1. One upstream client lives as long as the
    app; captures are stored in order by one worker thread, drained at shutdown."""
    upstream = _Upstream(options)
    api = APIRouter(lifespan=upstream.lifespan)

    @api.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        session = await _session(gate, request)
        if isinstance(session, Response):
            return session
        raw = await request.body()
        body = _chat_body(raw)
        if isinstance(body, Response):
            return body
        turns = _turns(body["messages"])
        keep = partial(upstream.capture, session, turns)
        if options.upstream is None:
            keep(None)
            return _not_configured()
        try:
            payload, notes = await _with_context(session, raw, body, turns, options.budget_tokens)
        except Unauthenticated as exc:  # revoked since the gate let the request in
            return refusal(exc)
        return await upstream.forward("POST", "/chat/completions", payload, notes, keep)

    @api.get("/models")
    async def models(request: Request) -> Response:
        return await _get(gate, upstream, request, "/models")

    @api.get("/models/{model:path}")
    async def model(request: Request, model: str) -> Response:
        return await _get(gate, upstream, request, f"/models/{model}")

    return api


async def _get(gate: Gate, upstream: _Upstream, request: Request, path: str) -> Response:
    session = await _session(gate, request)
    if isinstance(session, Response):
        return session
    if upstream.options.upstream is None:
        return _not_configured()
    return await upstream.forward("GET", path, None, {}, None)


class _Upstream:
    """The upstream as the proxy talks to it, and the worker that stores captures."""

    def __init__(self, options: ProxyOptions) -> None:
        self.options = options
        self._client: httpx.AsyncClient | None = None
        self._captures: ThreadPoolExecutor | None = None

    @asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        self._client = self._new_client()
        try:
            yield
        finally:
            await self._client.aclose()
            self._client = None
            captures, self._captures = self._captures, None
            if captures is not None:
                # Pending captures finish before the server closes the vault.
                await anyio.to_thread.run_sync(captures.shutdown)

    def _new_client(self) -> httpx.AsyncClient:
        # identity: the body is passed on as the upstream wrote it, and is readable here.
        headers = {"Accept-Encoding": "identity"}
        if self.options.api_key:
            headers["Authorization"] = f"Bearer {self.options.api_key}"
        return httpx.AsyncClient(headers=headers, timeout=self.options.timeout)

    async def forward(
        self,
        method: str,
        path: str,
        payload: bytes | None,
        notes: dict[str, str],
        keep: Keep | None,
    ) -> Response:
        """Send one request upstream; its answer, streamed if it is an event stream."""
        # Without a lifespan (an ASGI server that skips it) each request has its own client.
        client = self._client or self._new_client()
        owned = client is not self._client
        assert self.options.upstream is not None
        url = self.options.upstream.rstrip("/") + path
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            request = client.build_request(method, url, content=payload, headers=headers)
            response = await client.send(request, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            if owned:
                await client.aclose()
            _keep(keep, None)
            return self._failure(exc)

        async def close() -> None:
            with anyio.CancelScope(shield=True):  # a cancelled stream still frees the connection
                await response.aclose()
                if owned:
                    await client.aclose()

        headers = _passed(response.headers) | notes
        status = response.status_code
        if response.is_success and _is_stream(response):
            relay = _relay(response, close, keep)
            return StreamingResponse(relay, status_code=status, headers=headers)
        try:
            content = await response.aread()
        except httpx.HTTPError as exc:
            _keep(keep, None)
            return self._failure(exc)
        finally:
            await close()
        _keep(keep, _answer(content) if response.is_success else None)
        return Response(content, status_code=status, headers=headers)

    def capture(self, session: AppSession, turns: Sequence[Message], answer: str | None) -> None:
        """Queue the exchange for storing, if capture is on; never blocks the answer."""
        if not self.options.capture:
            return
        messages = [*turns, Message("assistant", answer)] if answer else list(turns)
        if not messages:
            return
        if self._captures is None:
            self._captures = ThreadPoolExecutor(1, thread_name_prefix="memsync-capture")
        self._captures.submit(_store, session, messages)

    def _failure(self, exc: Exception) -> JSONResponse:
        if isinstance(exc, httpx.TimeoutException):
            wait = f"{self.options.timeout:g}"
            return error_response(
                504, "upstream_timeout", f"the upstream did not answer within {wait} s"
            )
        reason = str(exc) or type(exc).__name__
        return error_response(
            502, "upstream_unreachable", f"the upstream could not be reached: {reason}"
        )


async def _relay(
    response: httpx.Response, close: Callable[[], Awaitable[None]], keep: Keep | None
) -> AsyncIterator[bytes]:
    """The upstream's event stream, each chunk passed on as it arrives."""
    text = _StreamText()
    try:
        async for chunk in response.aiter_bytes():
            text.feed(chunk)
            yield chunk
    except httpx.HTTPError as exc:
        # The status has gone out; an error event is how OpenAI's streams report one.
        code = "upstream_timeout" if isinstance(exc, httpx.TimeoutException) else "upstream_error"
        message = f"the upstream stream broke off: {str(exc) or type(exc).__name__}"
        yield b"data: " + json.dumps(error_body(502, code, message)).encode() + b"\n\n"
    finally:
        _keep(keep, text.text or None)
        await close()


def _keep(keep: Keep | None, answer: str | None) -> None:
    if keep is not None:
        keep(answer)


def _store(session: AppSession, messages: Sequence[Message]) -> None:
    """Store one exchange as a conversation of the app; failures are logged, not raised."""
    first = messages[0].content
    title = first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"
    key = "proxy-" + hashlib.sha256(f"{messages[0].role}\n{first}".encode()).hexdigest()[:32]
    try:
        session.ingest(messages, title=" ".join(title.split()), external_id=key)
    except Exception:
        log.exception("memsync proxy: could not capture an exchange of app %r", session.name)


async def _session(gate: Gate, request: Request) -> AppSession | Response:
    headers = request.headers
    try:
        return await run_in_threadpool(
            gate.session, headers.get("authorization"), headers.get("x-api-key")
        )
    except MemsyncError as exc:
        return refusal(exc)


def _chat_body(raw: bytes) -> dict[str, Any] | Response:
    try:
        body = json.loads(raw)
    except ValueError:
        return error_response(400, "invalid_request", "the request body is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return error_response(
            400, "invalid_request", "a chat request is a JSON object with 'messages'"
        )
    return body


async def _with_context(
    session: AppSession, raw: bytes, body: dict[str, Any], turns: Sequence[Message], budget: int
) -> tuple[bytes, dict[str, str]]:
    """The body to send upstream and headers saying what went in: the client's own bytes
    when no memories fit, else its JSON with the memory block added."""
    query = query_of(turns)
    block = None
    if query:
        try:
            block = await run_in_threadpool(partial(session.context, query, budget_tokens=budget))
        except Unauthenticated:
            raise
        except Exception:
            # The question still deserves an answer; the header tells the client why no
            # memories came with it.
            log.exception("memsync proxy: no memories for app %r", session.name)
            return raw, {"X-Memsync-Context": "unavailable"}
    notes = {
        "X-Memsync-Context-Items": str(len(block.items) if block else 0),
        "X-Memsync-Context-Tokens": str(block.tokens if block else 0),
    }
    if block is None or not block.text:
        return raw, notes
    messages: list[Any] = body["messages"]
    at = 0
    while at < len(messages) and _role(messages[at]) in SYSTEM_ROLES:
        at += 1
    ours = {"role": "system", "content": block.text}
    body = {**body, "messages": [*messages[:at], ours, *messages[at:]]}
    return json.dumps(body, ensure_ascii=False).encode(), notes


def query_of(turns: Sequence[Message]) -> str:
    """What to search the vault for: the latest user turn (with the user turns right
    before it, when the user sent several in a row), and when that is short, the user
    turn before it too, so "yes, and for my sister?" still finds what it is about."""
    users = [i for i, t in enumerate(turns) if t.role == "user"]
    if not users:
        return ""
    start = end = users[-1]
    while start > 0 and turns[start - 1].role == "user":
        start -= 1
    parts = [t.content for t in turns[start : end + 1]]
    earlier = [t.content for t in turns[:start] if t.role == "user"]
    if earlier and len(" ".join(parts).split()) < SHORT_TURN_WORDS:
        parts.insert(0, earlier[-1])
    return " ".join(parts)[-MAX_QUERY_CHARS:].strip()


def _turns(messages: Sequence[Any]) -> tuple[Message, ...]:
    """The user and assistant turns with text, as the vault stores a conversation."""
    turns = []
    for m in messages:
        text = _text(m.get("content")) if isinstance(m, dict) else ""
        if _role(m) in ("user", "assistant") and text:
            turns.append(Message(_role(m), text))
    return tuple(turns)


def _role(message: Any) -> str:
    role = message.get("role") if isinstance(message, dict) else None
    return role if isinstance(role, str) else ""


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return ""


def _first_choices(event: Any) -> list[dict[str, Any]]:
    choices = event.get("choices") if isinstance(event, dict) else None
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0]


def _answer(content: bytes) -> str | None:
    """The assistant's text in a chat completion (its first choice), if there is any."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    for choice in _first_choices(body):
        message = choice.get("message")
        return _text(message.get("content")) if isinstance(message, dict) else None
    return None


class _StreamText:
    """The assistant's text assembled from a chat-completions event stream as it passes."""

    def __init__(self) -> None:
        self._pending = b""
        self._parts: list[str] = []

    def feed(self, chunk: bytes) -> None:
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()  # an event line may end in the next chunk
        for line in lines:
            data = line.strip()
            if not data.startswith(b"data:") or data[5:].strip() == b"[DONE]":
                continue
            try:
                event = json.loads(data[5:])
            except ValueError:
                continue
            for choice in _first_choices(event):
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str):
                    self._parts.append(content)

    @property
    def text(self) -> str:
        return "".join(self._parts).strip()


def _is_stream(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")


def _passed(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _DROPPED}


def _not_configured() -> JSONResponse:
    return error_response(
        503,
        "upstream_not_configured",
        "the proxy has no upstream: set one with `memsync config proxy.upstream URL`",
    )
