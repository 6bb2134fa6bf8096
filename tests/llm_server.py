"""A real, scripted OpenAI-compatible chat-completions server on loopback, for tests.

`ChatServer` answers `POST /v1/chat/completions` from a queue of `Reply`s (a completion
with some content, an error status with body and headers, a delay before answering) and
records every request it receives. An empty queue answers 500, so a test that makes more
requests than it scripted fails loudly.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from memsync.model import Message

PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a completion whose message content is `content` (status 200),
    or `status` with a raw `body`; `headers` are added; `delay` seconds pass first."""

    content: str | None = None
    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request the server received: lower-cased headers and the parsed JSON body."""

    path: str
    headers: dict[str, str]
    body: Any


def answer(value: Any) -> Reply:
    """A completion whose content is `value` as JSON (or `value` itself if a string)."""
    return Reply(content=value if isinstance(value, str) else json.dumps(value))


def rate_limited(retry_after: str | None = "0") -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(status=429, body='{"error": {"message": "Rate limit reached"}}', headers=headers)


def rejects_json_schema() -> Reply:
    """What older Ollama / vLLM builds answer to `response_format: json_schema`."""
    error = {"message": "response_format type json_schema is not supported", "code": 400}
    return Reply(status=400, body=json.dumps({"error": error}))


class ChatServer:
    """The server; `start()` binds a free loopback port, `stop()` shuts it down."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        return len(self._replies)

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers still delaying
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if request.path != PATH:
                return Reply(status=404, body='{"error": {"message": "not found"}}')
            if not self._replies:
                return Reply(status=500, body='{"error": {"message": "no scripted reply"}}')
            return self._replies.popleft()


def completion_body(content: str, model: str) -> dict[str, Any]:
    """A chat completion as OpenAI's API writes one."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = server._next(Request(self.path, headers, body))
            if reply.delay and server._stopping.wait(reply.delay):
                return
            if reply.content is not None:
                model = body.get("model", "") if isinstance(body, dict) else ""
                payload = json.dumps(completion_body(reply.content, model)).encode()
            else:
                payload = reply.body.encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


# Scripted material shared by the tests of the LLM backend and of capture with a model.

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # a Sunday
CONVERSATION = [
    Message("user", "Hi! I work as a nurse in Leeds.", T0),
    Message("assistant", "Nice to meet you. How can I help?", T0 + timedelta(minutes=1)),
    Message("user", "I have a Dentist appointment next Friday, ugh.", T0 + timedelta(minutes=2)),
    Message("user", "Also I'm training for a marathon.", T0 + timedelta(minutes=3)),
]


def memory(**overrides: Any) -> dict[str, Any]:
    item = {
        "text": "Works as a nurse in Leeds",
        "kind": "semantic",
        "category": "career",
        "turn": 0,
        "quote": "I work as a nurse in Leeds",
        "valid_from": None,
        "valid_until": None,
        "confidence": 0.9,
    }
    item.update(overrides)
    return item


GOOD = {
    "memories": [
        memory(),
        memory(
            text="Has a dentist appointment on 6 March 2026",
            kind="episodic",
            category="health",
            turn=2,
            quote="I have a dentist appointment next friday",  # case differs from the message
            valid_from="2026-03-06",
            valid_until="2026-03-06",
            confidence=0.8,
        ),
        memory(
            text="The user is training for a marathon.",
            kind="episodic",
            category="interests",
            turn=3,
            quote="training for the marathon",  # not in the message: the whole turn
            confidence=0.7,
        ),
    ]
}


@pytest.fixture
def server() -> Iterator[ChatServer]:
    s = ChatServer()
    s.start()
    yield s
    s.stop()


def user_prompt(server: ChatServer, n: int = -1) -> str:
    content: str = server.requests[n].body["messages"][1]["content"]
    return content
