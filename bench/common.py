"""Pieces every benchmark script shares: logging to stderr and the run's record header."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np


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
