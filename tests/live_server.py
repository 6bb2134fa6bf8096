"""An ASGI app served by a real uvicorn on a free loopback port, in a thread, for tests
that need real HTTP (streaming, MCP's HTTP client, keep-alive)."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp


@dataclass
class LiveServer:
    """A running server: its base URL, and `stop()`, which runs the app's lifespan end."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_process(command: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`memsync serve --port 0` (the `command`) as its own process, and its URL once it
    listens; its stderr stays open for the caller to read on."""
    proc = subprocess.Popen(
        [str(command), "serve", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "serving on " in line:
            return proc, line.split("serving on ", 1)[1].split(": REST")[0]
        if not line:
            break
    raise AssertionError(f"memsync serve did not start (exit {proc.poll()})")


def start(app: ASGIApp) -> LiveServer:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)
