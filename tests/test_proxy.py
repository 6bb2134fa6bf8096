"""The OpenAI-compatible memory proxy, served by uvicorn on loopback in front of a real
scripted upstream (tests/upstream_server.py), with a real vault behind it."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import live_server
from memsync import Category, Vault
from memsync.errors import UsageError
from memsync.model import Message
from memsync.scope import Scope, parse_categories
from memsync.server.http import create_app
from memsync.server.proxy import ProxyOptions, options_from_settings, query_of
from test_canary import scan
from upstream_server import Reply, Upstream, completion, json_reply, stream_events, upstream

__all__ = ["upstream"]  # the fixture, from upstream_server

UPSTREAM_KEY = "sk-upstream-7f3a"
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


class Proxy(live_server.LiveServer):
    """`memsync serve`'s app running on a loopback port; `stop()` ends the lifespan, so
    every pending capture has been stored."""

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/v1", headers=headers, timeout=10)


def _serve(app: FastAPI) -> Proxy:
    running = live_server.start(app)
    return Proxy(running.url, running.server, running.thread)


@pytest.fixture
def serve(vault: Vault) -> Iterator[Callable[..., Proxy]]:
    """Start the proxy for `vault` in front of an upstream URL; stopped after the test."""
    started: list[Proxy] = []

    def start(upstream_url: str | None, **options: Any) -> Proxy:
        options.setdefault("api_key", UPSTREAM_KEY)
        proxy = _serve(create_app(vault, ProxyOptions(upstream=upstream_url, **options)))
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def chat(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": text}], **fields}


def openai_error(response: httpx.Response, status: int, code: str) -> str:
    """The error's message, after checking it is shaped as OpenAI's clients expect."""
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["type"] and error["message"]
    return str(error["message"])


# Memories in, answers out.


def test_memories_in_scope_reach_the_upstream_as_a_system_message(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    nurse = vault.add("Works as a nurse at the city hospital", category=Category.CAREER)
    vault.add("Is allergic to peanuts", category=Category.HEALTH)
    _, token = vault.add_app("career", Scope(read=parse_categories("career")))
    answer = completion("Hummus and carrot sticks.")
    upstream.script(Reply(body=answer, headers={"X-Request-Id": "req-1"}))
    proxy = serve(upstream.base_url)
    question = [
        {"type": "text", "text": "Snack ideas for a nurse at the hospital"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "text", "text": "with a peanut allergy?"},
    ]
    request = {
        "model": "gpt-test",
        "temperature": 0.25,
        "tools": [TOOL],
        "user": "u-1",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": question},
        ],
    }
    with proxy.client(token) as c:
        r = c.post("/chat/completions", json=request)
    assert r.status_code == 200 and r.content == answer  # byte for byte
    assert r.headers["x-request-id"] == "req-1"
    assert r.headers["x-memsync-context-items"] == "1"
    [sent] = upstream.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    body = sent.json
    assert {k: v for k, v in body.items() if k != "messages"} == {
        k: v for k, v in request.items() if k != "messages"
    }
    system, ours, user = body["messages"]
    assert system == request["messages"][0] and user == request["messages"][1]
    assert ours["role"] == "system" and "Works as a nurse at the city hospital" in ours["content"]
    assert "peanuts" not in ours["content"]  # health is outside the app's scope
    # The upstream sees the proxy's key; the app's token goes no further than the proxy.
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert not any(token in value for value in sent.headers.values())
    [disclosure] = vault.disclosures(app="career")
    assert disclosure.action == "context" and disclosure.memory_ids == (nurse.id,)
    assert "peanut allergy" in (disclosure.query or "")


def test_with_nothing_to_add_the_clients_bytes_go_upstream_unchanged(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    upstream.script(Reply(body=completion("Hi.")))
    proxy = serve(upstream.base_url, api_key=None)
    raw = b'{ "model" : "gpt-test",\n  "messages": [{"role": "user", "content": "hi"}], "n": 1 }'
    with proxy.client() as c:  # the token in X-API-Key works as well
        r = c.post(
            "/chat/completions",
            content=raw,
            headers={"X-API-Key": token, "Content-Type": "application/json"},
        )
    assert r.status_code == 200 and r.content == completion("Hi.")
    assert r.headers["x-memsync-context-items"] == "0"
    [sent] = upstream.requests
    assert sent.raw == raw
    assert "authorization" not in sent.headers  # no key configured, none sent


def test_a_stream_passes_through_chunk_by_chunk(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    hold = threading.Event()
    events = stream_events(["Hel", "lo ", "there."])
    upstream.script(Reply(events=events, hold=hold))
    proxy = serve(upstream.base_url)
    try:
        with (
            proxy.client(token) as c,
            c.stream("POST", "/chat/completions", json=chat("hi", stream=True)) as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            chunks = r.iter_raw()
            first = b""
            while len(first) < len(events[0]):
                first += next(chunks)
            # The upstream is still waiting mid-stream, so this chunk was not buffered.
            assert not upstream.finished.is_set()
            hold.set()
            rest = b"".join(chunks)
    finally:
        hold.set()
    assert first + rest == b"".join(events)
    assert upstream.finished.is_set()


def test_a_stream_that_breaks_off_ends_with_an_error_event(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    events = stream_events(["Hel", "lo"])
    hold = threading.Event()
    upstream.script(Reply(events=events, cut=True), Reply(events=events, hold=hold))
    proxy = serve(upstream.base_url, timeout=0.5)
    try:
        with proxy.client(token) as c:
            cut = c.post("/chat/completions", json=chat("hi", stream=True))
            stalled = c.post("/chat/completions", json=chat("hi", stream=True))
    finally:
        hold.set()
    for r, code in ((cut, "upstream_error"), (stalled, "upstream_timeout")):
        assert r.status_code == 200 and r.content.startswith(events[0])
        last = r.content[len(events[0]) :].decode()
        assert last.startswith("data: ") and last.endswith("\n\n")
        assert json.loads(last[6:])["error"]["code"] == code


# Failures, each reported to the client.


def test_upstream_errors_pass_through_with_status_body_and_headers(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    bodies = {
        400: b'{"error": {"message": "model not found", "type": "invalid_request_error"}}',
        429: b'{"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}',
        500: b"upstream exploded",
        503: b'{"error": {"message": "overloaded"}}',
    }
    upstream.script(
        *(json_reply(b, s, **({"Retry-After": "7"} if s == 429 else {})) for s, b in bodies.items())
    )
    proxy = serve(upstream.base_url)
    with proxy.client(token) as c:
        for status, body in bodies.items():
            r = c.post("/chat/completions", json=chat("hi", stream=status == 503))
            assert (r.status_code, r.content) == (status, body)
            if status == 429:
                assert r.headers["retry-after"] == "7"


def test_upstream_timeout_is_504(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    upstream.script(Reply(body=completion("late"), delay=5))
    proxy = serve(upstream.base_url, timeout=0.3)
    started = time.monotonic()
    with proxy.client(token) as c:
        r = c.post("/chat/completions", json=chat("hi"))
    assert "0.3 s" in openai_error(r, 504, "upstream_timeout")
    assert time.monotonic() - started < 3


def test_unreachable_upstream_is_502_and_none_configured_is_503(
    vault: Vault, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = serve(f"http://127.0.0.1:{port}/v1")
    none = serve(None)
    with down.client(token) as c:
        openai_error(c.post("/chat/completions", json=chat("hi")), 502, "upstream_unreachable")
        openai_error(c.get("/models"), 502, "upstream_unreachable")
    with none.client(token) as c:
        message = openai_error(
            c.post("/chat/completions", json=chat("hi")), 503, "upstream_not_configured"
        )
        assert "proxy.upstream" in message
        openai_error(c.get("/models"), 503, "upstream_not_configured")


def test_a_request_that_is_not_a_chat_is_400(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    proxy = serve(upstream.base_url)
    with proxy.client(token) as c:
        openai_error(c.post("/chat/completions", content=b"{not json"), 400, "invalid_request")
        openai_error(c.post("/chat/completions", json={"model": "x"}), 400, "invalid_request")
    assert upstream.requests == []


def test_models_are_forwarded(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    listing = b'{"object": "list", "data": [{"id": "gpt-test", "object": "model"}]}'
    one = b'{"id": "ft:gpt-test:org:x", "object": "model"}'
    upstream.script(json_reply(listing), json_reply(one))
    proxy = serve(upstream.base_url)
    with proxy.client(token) as c:
        assert c.get("/models").content == listing
        assert c.get("/models/ft:gpt-test:org:x").content == one
    assert [(r.method, r.path) for r in upstream.requests] == [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/ft:gpt-test:org:x"),
    ]
    assert all(r.headers["authorization"] == f"Bearer {UPSTREAM_KEY}" for r in upstream.requests)
    # One client for the app's lifetime: both requests went over one kept-alive connection.
    assert len({r.port for r in upstream.requests}) == 1


def test_no_token_a_wrong_one_or_a_revoked_app_is_401_and_nothing_goes_upstream(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    proxy = serve(upstream.base_url)
    with proxy.client() as c:
        r = c.post("/chat/completions", json=chat("hi"))
        openai_error(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["type"] == "authentication_error"
        openai_error(c.get("/models"), 401, "unauthenticated")
    with proxy.client(token + "x") as c:
        openai_error(c.post("/chat/completions", json=chat("hi")), 401, "unauthenticated")
    vault.revoke_app("chat")
    with proxy.client(token) as c:
        openai_error(c.post("/chat/completions", json=chat("hi")), 401, "unauthenticated")
    assert upstream.requests == []


# Capture.


def _conversations(vault: Vault, app: str) -> list[list[tuple[str, str]]]:
    with vault.lock:
        sources = [s for s in vault.sources() if s.origin == app]
    return [[(m.role, m.content) for m in s.messages] for s in sources]


def test_capture_stores_the_exchange_and_extracts_memories(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    vault.add("Is allergic to peanuts", category=Category.HEALTH)
    _, token = vault.add_app("chat")
    upstream.script(Reply(body=completion("Try hummus.")))
    proxy = serve(upstream.base_url, capture=True)
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]}
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello"},
        call,
        {"role": "tool", "tool_call_id": "c1", "content": "nothing found"},
        {"role": "user", "content": "I work as a nurse in Leeds. Any snack ideas without peanuts?"},
    ]
    with proxy.client(token) as c:
        r = c.post("/chat/completions", json={"model": "gpt-test", "messages": messages})
    assert r.content == completion("Try hummus.")
    assert "allergic to peanuts" in upstream.requests[0].json["messages"][1]["content"]
    proxy.stop()
    # What the user and the assistant said; not the system prompt, the tool's output or
    # the memory block.
    assert _conversations(vault, "chat") == [
        [
            ("user", "Hello"),
            ("user", "I work as a nurse in Leeds. Any snack ideas without peanuts?"),
            ("assistant", "Try hummus."),
        ]
    ]
    assert "Works as a nurse in Leeds" in [m.text for m in vault.list().items]


def test_capture_of_a_stream_stores_the_assembled_answer(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    upstream.script(Reply(events=stream_events(["Nice to ", "meet you, ", "Hannah's sister!"])))
    proxy = serve(upstream.base_url, capture=True)
    with proxy.client(token) as c:
        r = c.post("/chat/completions", json=chat("My sister Hannah lives in Leeds.", stream=True))
    assert r.content == b"".join(stream_events(["Nice to ", "meet you, ", "Hannah's sister!"]))
    proxy.stop()
    assert _conversations(vault, "chat") == [
        [
            ("user", "My sister Hannah lives in Leeds."),
            ("assistant", "Nice to meet you, Hannah's sister!"),
        ]
    ]
    assert "Has a sister named Hannah who lives in Leeds" in [m.text for m in vault.list().items]


def test_a_stream_the_client_abandons_is_stored_as_far_as_it_came(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    hold = threading.Event()
    events = stream_events(["I hear ", "you."])
    upstream.script(Reply(events=events, hold=hold, hold_at=2))
    proxy = serve(upstream.base_url, capture=True)
    try:
        with (
            proxy.client(token) as c,
            c.stream("POST", "/chat/completions", json=chat("Tell me", stream=True)) as r,
        ):
            got = b""
            for chunk in r.iter_raw():
                got += chunk
                if got == events[0] + events[1]:
                    break  # the client hangs up mid-stream
        proxy.stop()
    finally:
        hold.set()
    assert _conversations(vault, "chat") == [[("user", "Tell me"), ("assistant", "I hear")]]


def test_when_the_upstream_fails_the_users_words_are_still_stored(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    _, token = vault.add_app("chat")
    upstream.script(
        json_reply({"error": {"message": "down"}}, 500), Reply(body=completion("Noted."))
    )
    proxy = serve(upstream.base_url, capture=True)
    unconfigured = serve(None, capture=True)
    with proxy.client(token) as c:
        assert (
            c.post("/chat/completions", json=chat("I work as a nurse in Leeds.")).status_code == 500
        )
        assert (
            c.post("/chat/completions", json=chat("I work as a nurse in Leeds.")).status_code == 200
        )
    with unconfigured.client(token) as c:
        assert c.post("/chat/completions", json=chat("I train for a marathon.")).status_code == 503
    proxy.stop()
    unconfigured.stop()
    user = ("user", "I work as a nurse in Leeds.")
    assert sorted(_conversations(vault, "chat")) == [
        [("user", "I train for a marathon.")],
        [user],
        [user, ("assistant", "Noted.")],
    ]
    with vault.lock:
        keys = {s.external_id for s in vault.sources() if s.messages[0].content == user[1]}
    assert len(keys) == 1  # the retry continues the same conversation


def test_a_capture_that_fails_is_logged_and_the_answer_is_unchanged(
    vault: Vault, upstream: Upstream, serve: Callable[..., Proxy], caplog: pytest.LogCaptureFixture
) -> None:
    _, token = vault.add_app("reader", Scope(write=frozenset()))  # may not write: ingest fails
    upstream.script(Reply(body=completion("Sure.")))
    proxy = serve(upstream.base_url, capture=True)
    with caplog.at_level(logging.ERROR, logger="memsync.server.proxy"):
        with proxy.client(token) as c:
            r = c.post("/chat/completions", json=chat("I work as a nurse in Leeds."))
        assert (r.status_code, r.content) == (200, completion("Sure."))
        proxy.stop()
    assert "could not capture" in caplog.text and "reader" in caplog.text
    assert _conversations(vault, "reader") == []


def test_a_captured_canary_never_reaches_the_disk_in_the_clear(
    vault: Vault, home: Path, upstream: Upstream, serve: Callable[..., Proxy]
) -> None:
    marker = f"CANARY-{uuid.uuid4().hex}-MARK"
    _, token = vault.add_app("chat")
    upstream.script(
        Reply(body=completion(f"Noted {marker}.")), Reply(events=stream_events([marker]))
    )
    proxy = serve(upstream.base_url, capture=True)
    with proxy.client(token) as c:
        c.post("/chat/completions", json=chat(f"I work as a nurse; my badge says {marker}."))
        c.post("/chat/completions", json=chat(f"Remember {marker} please", stream=True))
    proxy.stop()
    assert marker.encode() in upstream.requests[0].raw  # the marker did go through
    assert any(marker in m for conv in _conversations(vault, "chat") for _, m in conv)
    assert scan(home, marker) == []
    vault.close()
    assert scan(home, marker) == []


# The parts.


def test_the_query_is_the_latest_user_turn_and_a_short_one_brings_the_one_before() -> None:
    def turns(*pairs: tuple[str, str]) -> list[Message]:
        return [Message(role, text) for role, text in pairs]

    long_turn = "What should I pack for the conference in Lisbon next month with my team?"
    assert (
        query_of(turns(("user", "Old topic entirely"), ("assistant", "ok"), ("user", long_turn)))
        == long_turn
    )
    assert (
        query_of(
            turns(
                ("user", "Plan my trip to Lisbon"),
                ("assistant", "Sure, when?"),
                ("user", "In March"),
            )
        )
        == "Plan my trip to Lisbon In March"
    )
    assert query_of(turns(("user", "first"), ("user", "second"))) == "first second"
    assert query_of(turns(("assistant", "Hello!"))) == ""
    assert len(query_of(turns(("user", "word " * 2000)))) <= 2000


def test_options_come_from_the_settings(vault: Vault) -> None:
    assert options_from_settings(vault.settings()) == ProxyOptions()
    vault.configure("proxy.upstream", "https://api.example.com/v1/")
    vault.configure("proxy.api_key", "sk-x")
    vault.configure("proxy.budget", "400")
    vault.configure("proxy.timeout", "30")
    vault.configure("proxy.capture", "on")
    assert options_from_settings(vault.settings()) == ProxyOptions(
        "https://api.example.com/v1", "sk-x", True, 400, 30.0
    )
    for key, value in (
        ("proxy.upstream", "api.example.com"),
        ("proxy.budget", "10"),
        ("proxy.budget", "lots"),
        ("proxy.timeout", "0"),
        ("proxy.capture", "maybe"),
    ):
        with pytest.raises(UsageError, match=key.replace(".", r"\.")):
            vault.configure(key, value)


def test_an_asgi_server_without_lifespan_still_proxies(vault: Vault, upstream: Upstream) -> None:
    _, token = vault.add_app("chat")
    upstream.script(Reply(body=completion("Hi.")), Reply(events=stream_events(["Hi", "!"])))
    app = create_app(vault, ProxyOptions(upstream=upstream.base_url))

    async def run() -> tuple[bytes, bytes]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://proxy/v1", headers=headers
        ) as c:
            plain = await c.post("/chat/completions", json=chat("hi"))
            streamed = await c.post("/chat/completions", json=chat("hi", stream=True))
        return plain.content, streamed.content

    plain, streamed = asyncio.run(run())
    assert plain == completion("Hi.") and streamed == b"".join(stream_events(["Hi", "!"]))
    assert len({r.port for r in upstream.requests}) == 2  # a client per request, closed after
