"""Pieces every benchmark script shares: logging to stderr and the run's record header."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np


def serve_process(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`memsync serve --port 0` as its own process, and its URL once it listens."""
    script = Path(sys.executable).with_name("memsync")
    proc = subprocess.Popen(
        [str(script), "serve", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        if "serving on " in line:
            return proc, line.split("serving on ", 1)[1].split(": REST")[0]
        if not line:
            raise SystemExit(f"the server did not start (exit {proc.wait()})")


def emit(result: dict[str, Any], path: Path | None) -> None:
    """Print a run's result as JSON, and keep it in `path` when given."""
    print(json.dumps(result, indent=2))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_header() -> dict[str, Any]:
    """When, with which command and on what machine a result was measured."""
    from memsync.index.embed import onnxruntime as load_onnxruntime

    onnxruntime = load_onnxruntime()

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "onnxruntime": str(onnxruntime.__version__),
        },
    }
