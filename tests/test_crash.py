"""The short version of `bench/crash.py`: writers on one vault (adds through the API,
`memsync add`, `memsync ingest` of a large export, `memsync serve` under concurrent
writes) killed with SIGKILL at random moments; after every kill the vault opens with
every acknowledged write in it, `check` passes, and the interrupted import resumes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _crash() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("crash", BENCH / "crash.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crash"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_writes_survive_random_kills(fast_dir: Path) -> None:
    crash = _crash()
    result = crash.run(
        fast_dir / "vault", kills=16, seed=7, max_delay=1.2, check_every=4, conversations=150
    )
    assert result["problems"] == []
    assert result["kills"] == 16
    assert set(result["per_mode"]) == set(crash.MODES)
    assert result["acknowledged"]["memories"] > 0
    assert result["acknowledged"]["server_writes"] > 0
