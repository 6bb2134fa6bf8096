"""How fast the default MiniLM embedder is on this machine.

Prints the median throughput of batched embedding (1,000 short memory-like sentences,
3 runs) and the median and p95 latency of embedding one query at a time (200 queries).
Run: `python bench/embed_speed.py`.
"""

from __future__ import annotations

import os
import random
import statistics
import time

from memsync.retrieval import MiniLMEmbedder

SUBJECTS = [
    "I",
    "My sister",
    "Our team",
    "My manager",
    "The dentist",
    "My landlord",
    "Alex",
    "My daughter",
]
VERBS = [
    "prefers",
    "is allergic to",
    "booked",
    "wants to learn",
    "forgot about",
    "recommended",
    "is worried about",
    "cancelled",
]
OBJECTS = [
    "dark roast coffee in the morning",
    "the flight to Lisbon on 14 March",
    "peanuts and shellfish",
    "the quarterly budget review",
    "a vegetarian restaurant near the office",
    "Rust and distributed systems",
    "the car insurance renewal",
    "piano lessons on Tuesday evenings",
    "the dentist appointment next week",
    "moving to a bigger flat in Berlin",
    "the password manager migration",
    "a birthday present for Sam",
]
TAILS = ["", " before Friday", " again", " this year", " after the holidays", " for the trip"]


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}."
        for _ in range(n)
    ]


def main() -> None:
    embedder = MiniLMEmbedder()
    start = time.perf_counter()
    embedder.load()
    load_ms = (time.perf_counter() - start) * 1000
    embedder.embed(sentences(64, seed=99))  # warm-up: first runs allocate and tune

    batch = sentences(1000, seed=1)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        embedder.embed(batch)
        rates.append(len(batch) / (time.perf_counter() - start))

    queries = sentences(200, seed=2)
    latencies = []
    for query in queries:
        start = time.perf_counter()
        embedder.embed([query])
        latencies.append((time.perf_counter() - start) * 1000)

    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"model: {embedder.name}, dim {embedder.dim}, cpus {os.cpu_count()}")
    print(f"load (hash check + session): {load_ms:.0f} ms")
    print(
        f"batched: median {statistics.median(rates):.0f} sentences/s over 3 runs of 1,000 "
        f"(runs: {', '.join(f'{r:.0f}' for r in rates)})"
    )
    print(
        f"single query: median {statistics.median(latencies):.2f} ms, "
        f"p95 {p95:.2f} ms over {len(queries)} queries"
    )


if __name__ == "__main__":
    main()
