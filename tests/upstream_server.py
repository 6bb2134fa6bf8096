"""A real, scripted OpenAI-compatible upstream on loopback, for the proxy's tests.

`Upstream` answers every request from a queue of `Reply`s: a JSON body with a status and
headers, or an event stream sent as one HTTP chunk per event, which can wait mid-way for
the test (`hold`) or break off without finishing (`cut`); `delay` holds the whole answer
back. It records each request exactly as received (method, path, headers, raw bytes). An
empty queue answers 500, so a test that makes more requests than it scripted fails.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from llm_server import completion_body

HOLD_LIMIT = 5.0  # seconds a held stream waits for the test before going on anyway


@dataclass(frozen=True)
class Reply:
    """One scripted answer. With `events`, a `text/event-stream` sent chunk by chunk:
    before event number `hold_at` it waits for `hold` (if set), or with `cut` drops the
    connection there instead of finishing the stream."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    events: tuple[bytes, ...] = ()
    hold: threading.Event | None = None
    hold_at: int = 1
    cut: bool = False
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as the upstream saw it (header names lower-cased), and the client's
    port: requests on one kept-alive connection share it."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    port: int

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


def completion(content: str, model: str = "gpt-test") -> bytes:
    """A chat completion as OpenAI writes one (compact key order kept by the test)."""
    return json.dumps(completion_body(content, model), indent=1).encode()


def stream_events(pieces: Sequence[str], model: str = "gpt-test") -> tuple[bytes, ...]:
    """The events of a streamed completion whose deltas are `pieces`, then `[DONE]`."""

    def event(delta: dict[str, str], finish: str | None) -> bytes:
        chunk = {
            "id": "chatcmpl-up",
            "object": "chat.completion.chunk",
            "created": 1_767_225_600,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    first = event({"role": "assistant", "content": ""}, None)
    middle = [event({"content": p}, None) for p in pieces]
    return (first, *middle, event({}, "stop"), b"data: [DONE]\n\n")


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status=status, body=raw, headers=headers)


class Upstream:
    """The server; `start()` binds a free loopback port, `stop()` shuts it down.
    `finished` is set once a stream has been sent to its end."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.finished = threading.Event()
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers still delaying or holding
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not self._replies:
                return json_reply({"error": {"message": "no scripted reply"}}, 500)
            return self._replies.popleft()


def _handler(server: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as real APIs do

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = server._next(
                Received(self.command, self.path, headers, raw, self.client_address[1])
            )
            if reply.delay and server._stopping.wait(reply.delay):
                return
            try:
                if reply.events:
                    self._stream(reply)
                else:
                    self._send(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the proxy gave up (a timeout test)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def _stream(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for n, event in enumerate(reply.events):
                if n == reply.hold_at and reply.hold is not None:
                    reply.hold.wait(HOLD_LIMIT)
                if n == reply.hold_at and reply.cut:
                    self.close_connection = True
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            server.finished.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    s = Upstream()
    s.start()
    yield s
    s.stop()
