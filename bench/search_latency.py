"""Search latency of a warm vault at 1k, 10k and 100k memories.

For each size this builds (once; cached under bench/out/) a vault of synthetic memories
through the public API with the default MiniLM embedder, reopens it, warms it up, then
times `vault.search(query, k=10)` one query at a time, the query embedding included, and
prints p50, p95, p99 and mean. It then times the parts on their own (query embedding,
keyword half, vector half, hydration) so it is clear where the time goes, and reports the
cost of `Vault.open` and of the first search (which loads the vectors and the model).

Run: `.venv/bin/python bench/search_latency.py` (see --help). Building the 100k vault
takes a long time once (27 minutes on this 2-core machine: embedding 100,000 sentences and
appending 100,000 log entries); later runs reuse it. Figures are in bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
from common import log, run_header
from memsync import SearchFilters, Vault
from memsync.crypto.device import FAST_KDF
from memsync.index.embed import MiniLMEmbedder
from memsync.index.filters import resolve_filters
from memsync.index.vectors import VectorIndex
from memsync.retrieve import search as hybrid
from memsync.retrieve.rank import Ranked, Weights, describe, rank
from memsync.retrieve.when import time_window

PASSPHRASE = "benchmark vault passphrase, not a secret"
OUT = Path(__file__).resolve().parent / "out"
K = 10
WARMUP = 10


@dataclass
class Summary:
    """Latency figures in milliseconds."""

    p50: float
    p95: float
    p99: float
    mean: float
    n: int

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Summary:
        a = np.asarray(samples_ms, dtype=np.float64)
        p50, p95, p99 = np.percentile(a, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99), float(a.mean()), len(a))


@dataclass
class SizeResult:
    size: int
    build_s: float | None  # None when the cached vault was reused
    open_ms: float
    first_search_ms: float
    index_load_ms: float
    rounds: list[Summary] = field(default_factory=list)
    parts: dict[str, Summary] = field(default_factory=dict)


# Building.


def vault_dir(size: int, seed: int) -> Path:
    return OUT / f"vault-{size}-seed{seed}-corpus{corpus.CORPUS_VERSION}"


def ensure_vault(size: int, seed: int, rebuild: bool) -> float | None:
    """Build the vault for `size` unless a finished one is cached; the build time or None."""
    home = vault_dir(size, seed)
    ready = home / "bench-ready.json"
    if ready.exists() and not rebuild:
        log(f"[{size:,}] reusing {home}")
        return None
    shutil.rmtree(home, ignore_errors=True)
    start = time.perf_counter()
    memories = corpus.memories(size, seed)
    vault = Vault.create(home, PASSPHRASE, kdf=FAST_KDF).vault
    log(f"[{size:,}] logging and applying {size:,} operations ...")
    first: list[tuple[float, int]] = []  # (time, count) at the first progress report
    last_print = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if not first:
            first.append((now, done))
            log(f"[{size:,}] operations applied in {now - start:.0f} s; embedding ...")
            return
        if now - last_print[0] >= 10 or done == total:
            last_print[0] = now
            rate = (done - first[0][1]) / max(now - first[0][0], 1e-9)
            eta = (total - done) / max(rate, 1e-9)
            log(f"[{size:,}] embedded {done:,}/{total:,} ({rate:.0f}/s, ~{eta:.0f} s left)")

    try:
        vault.import_records(memories, [], progress)
    finally:
        vault.close()
    build_s = time.perf_counter() - start
    ready.write_text(json.dumps({"size": size, "seed": seed, "build_s": build_s}))
    log(f"[{size:,}] built in {build_s:.0f} s")
    return build_s


# Measuring.


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def measure(size: int, seed: int, n_queries: int, rounds: int, build_s: float | None) -> SizeResult:
    home = vault_dir(size, seed)
    gc.collect()
    # A fresh embedder instance, so the first search pays for creating the model session.
    open_ms, vault = timed(lambda: Vault.open(home, PASSPHRASE, embedder=MiniLMEmbedder()))
    try:
        first_ms, _ = timed(lambda: vault.search(corpus.QUERIES[0], k=K))
        # The vector index on its own, loaded again the way the first search loads it.
        index_load_ms, _ = timed(lambda: VectorIndex(vault.embedder.dim).sync(vault.conn))
        for i in range(WARMUP):
            vault.search(corpus.QUERIES[i % len(corpus.QUERIES)], k=K)
        queries = [corpus.QUERIES[i % len(corpus.QUERIES)] for i in range(n_queries)]
        result = SizeResult(size, build_s, open_ms, first_ms, index_load_ms)
        for r in range(rounds):
            samples = [timed(lambda q=q: vault.search(q, k=K))[0] for q in queries]
            result.rounds.append(Summary.of(samples))
            s = result.rounds[-1]
            log(f"[{size:,}] round {r + 1}: p50 {s.p50:.2f} ms, p95 {s.p95:.2f} ms")
        result.parts = measure_parts(vault, queries)
        return result
    finally:
        vault.close()


def measure_parts(vault: Vault, queries: Sequence[str]) -> dict[str, Summary]:
    """Each step of `Vault.search` timed on its own, in the order and with the inputs it
    has there (keyword half, query embedding, vector half, ranking with its credits,
    hydration of the top k)."""
    depth = max(50, K * 5)
    index = vault.vector_index()
    times: dict[str, list[float]] = {
        "embed": [],
        "keyword": [],
        "vector": [],
        "rank": [],
        "hydrate": [],
    }
    for q in queries:

        def keyword(q: str = q) -> tuple[Any, list[int]]:
            cond = resolve_filters(vault.conn, SearchFilters(), vault.clock())
            return cond, hybrid.keyword_search(vault.conn, q, cond, depth)

        t_keyword, (cond, kw) = timed(keyword)
        t_embed, qvec = timed(lambda q=q: vault.embedder.embed([q])[0])
        t_vector, vec = timed(lambda qvec=qvec, cond=cond: index.search(qvec, cond, depth))

        def ranked(q: str = q, kw: list[int] = kw, vec: list[int] = vec) -> list[Ranked]:
            items = describe(vault.conn, list(dict.fromkeys([*kw, *vec])))
            window = time_window(q, vault.clock())
            span = None if window is None else (window.start, window.end)
            return rank(kw, vec, items, Weights(), span)[:K]

        t_rank, top = timed(ranked)
        t_hydrate, _ = timed(lambda top=top: hybrid.hydrate(vault.conn, top))
        times["rank"].append(t_rank)
        times["embed"].append(t_embed)
        times["keyword"].append(t_keyword)
        times["vector"].append(t_vector)
        times["hydrate"].append(t_hydrate)
    return {name: Summary.of(samples) for name, samples in times.items()}


# Reporting.


def report(results: Sequence[SizeResult]) -> str:
    lines = [
        "size      round  p50 ms  p95 ms  p99 ms  mean ms | embed  keyword  vector  rank  "
        "hydrate (p50 ms)",
    ]
    for res in results:
        p = res.parts
        for i, s in enumerate(res.rounds, start=1):
            split = (
                f"{p['embed'].p50:6.2f}  {p['keyword'].p50:7.2f}  {p['vector'].p50:6.2f}  "
                f"{p['rank'].p50:5.2f}  {p['hydrate'].p50:7.2f}"
                if i == 1
                else ""
            )
            lines.append(
                f"{res.size:<9,} {i:>5}  {s.p50:6.2f}  {s.p95:6.2f}  {s.p99:6.2f}  "
                f"{s.mean:7.2f} | {split}"
            )
    lines.append("")
    lines.append("size      open ms  first search ms  vector load ms  build s")
    for res in results:
        build = "cached" if res.build_s is None else f"{res.build_s:.0f}"
        lines.append(
            f"{res.size:<9,} {res.open_ms:7.0f}  {res.first_search_ms:15.0f}  "
            f"{res.index_load_ms:14.0f}  {build:>7}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        help="comma-separated vault sizes (default: %(default)s)",
    )
    parser.add_argument(
        "--queries", type=int, default=200, help="timed searches per round (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="timed rounds per size (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default: 0)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write results here")
    parser.add_argument("--rebuild", action="store_true", help="rebuild cached vaults")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if args.queries < 1 or args.rounds < 1 or any(s < 1 for s in sizes):
        parser.error("sizes, --queries and --rounds must be positive")

    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for size in sizes:
        build_s = ensure_vault(size, args.seed, args.rebuild)
        results.append(measure(size, args.seed, args.queries, args.rounds, build_s))
    print(report(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    **run_header(),
                    "k": K,
                    "queries": args.queries,
                    "seed": args.seed,
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
