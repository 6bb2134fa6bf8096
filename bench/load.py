"""A bounded loopback load test of `memsync serve`: concurrent clients, mixed search/add.

It builds a vault of synthetic memories (the default MiniLM embedder), registers an app
without a rate limit, starts `memsync serve --port 0` as its own process, and runs
`--clients` concurrent HTTP clients for `--duration` seconds. Each client loops: with
probability `--add-share` it stores a one-line conversation through `POST /v1/memories`
(extraction included), otherwise it searches through `POST /v1/memories/search`. Then
the server is stopped with SIGTERM, and the vault is opened again to prove that every
acknowledged write is there (its source and its text), and `check` passes.

Reported: requests, errors (any non-2xx answer or transport failure), throughput, and
p50/p95/p99 latency per operation as the client saw it.

Run: `.venv/bin/python bench/load.py` (see --help). Figures are in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
from common import log, run_header, serve_process
from memsync import Vault
from memsync.crypto.device import FAST_KDF

PASSPHRASE = "benchmark vault passphrase, not a secret"
JOBS = "nurse, carpenter, data engineer, teacher, pilot, chef, architect, librarian".split(", ")


@dataclass
class Stats:
    """Latencies (ms) and outcomes of one operation type."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        a = np.asarray(self.latencies or [0.0])
        p50, p95, p99 = np.percentile(a, [50, 95, 99])
        return {
            "n": len(self.latencies),
            "errors": len(self.errors),
            "p50_ms": round(float(p50), 1),
            "p95_ms": round(float(p95), 1),
            "p99_ms": round(float(p99), 1),
        }


@dataclass
class Write:
    source_id: str
    text: str


def build_vault(home: Path, size: int) -> str:
    log(f"building a vault of {size} memories in {home} ...")
    made = Vault.create(home, PASSPHRASE, kdf=FAST_KDF)
    with made.vault as vault:
        vault.import_records(corpus.memories(size, seed=1), [])
        _, token = vault.add_app("load", rate_per_minute=0)
    return token


def start_server(home: Path) -> tuple[subprocess.Popen[str], str]:
    return serve_process(
        {**os.environ, "MEMSYNC_HOME": str(home), "MEMSYNC_PASSPHRASE": PASSPHRASE}
    )


async def client(
    n: int,
    url: str,
    token: str,
    until: float,
    add_share: float,
    stats: dict[str, Stats],
    writes: list[Write],
) -> None:
    rng = random.Random(n)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        i = 0
        while time.monotonic() < until:
            i += 1
            if rng.random() < add_share:
                op = "add"
                text = f"I work as a {rng.choice(JOBS)} at Firm{n}x{i}."
                body: dict[str, object] = {"messages": [{"role": "user", "content": text}]}
                path = "/v1/memories"
            else:
                op = "search"
                body = {"query": rng.choice(corpus.QUERIES), "limit": 10}
                path = "/v1/memories/search"
            start = time.perf_counter()
            try:
                answer = await http.post(path, json=body)
            except httpx.HTTPError as exc:
                stats[op].errors.append(f"{type(exc).__name__}: {exc}")
                continue
            stats[op].latencies.append((time.perf_counter() - start) * 1000)
            if not answer.is_success:
                stats[op].errors.append(f"{answer.status_code}: {answer.text[:200]}")
            elif op == "add":
                writes.append(Write(answer.json()["source_id"], text))


async def run_clients(
    url: str, token: str, clients: int, duration: float, add_share: float
) -> tuple[dict[str, Stats], list[Write], float]:
    stats = {"search": Stats(), "add": Stats()}
    writes: list[Write] = []
    start = time.monotonic()
    until = start + duration
    await asyncio.gather(
        *(client(n, url, token, until, add_share, stats, writes) for n in range(clients))
    )
    return stats, writes, time.monotonic() - start


def verify(home: Path, writes: list[Write]) -> dict[str, int | bool]:
    """Every acknowledged write is in the reopened vault, and the log checks out."""
    lost = 0
    with Vault.open(home, PASSPHRASE) as vault:
        for w in writes:
            try:
                source = vault.get_source(w.source_id)
            except Exception:  # a missing source is exactly what is being counted
                lost += 1
                continue
            if [m.content for m in source.messages] != [w.text]:
                lost += 1
        ok = vault.check().ok
        memories = vault.info().memories
    return {
        "acknowledged_writes": len(writes),
        "lost_writes": lost,
        "check_ok": ok,
        "memories_after": memories,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--memories", type=int, default=10_000, help="vault size")
    parser.add_argument("--add-share", type=float, default=0.3)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memsync-load-") as tmp:
        home = Path(tmp) / "vault"
        token = build_vault(home, args.memories)
        proc, url = start_server(home)
        log(f"server at {url}; {args.clients} clients for {args.duration:.0f} s ...")
        try:
            stats, writes, elapsed = asyncio.run(
                run_clients(url, token, args.clients, args.duration, args.add_share)
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        checked = verify(home, writes)
    total = sum(len(s.latencies) + len(s.errors) for s in stats.values())
    result = {
        **run_header(),
        "clients": args.clients,
        "duration_s": round(elapsed, 1),
        "vault_memories": args.memories,
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "errors": sum(len(s.errors) for s in stats.values()),
        "server_exit": code,
        "ops": {op: s.summary() for op, s in stats.items()},
        **checked,
    }
    for op, s in stats.items():
        for e in s.errors[:5]:
            log(f"{op} error: {e}")
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    failed = result["errors"] or checked["lost_writes"] or not checked["check_ok"] or code != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
