"""How fast an embedder is on this machine.

Prints the median throughput of batched embedding (1,000 texts, 3 runs) and the median
and p95 latency of embedding one query at a time (200 queries). The texts are short
memory-like sentences, or with `--texts lme` 1,000 distinct user turns drawn from
LongMemEval S (real conversational lengths: median ~46 tokens, 1% over 256).
Run: `python bench/embed_speed.py [--embedder minilm|e5] [--texts synthetic|lme]
[--batch-size N]`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from memsync.index import E5Embedder, MiniLMEmbedder

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


def lme_user_turns(n: int, seed: int) -> list[str]:
    """`n` distinct user turns of LongMemEval S, drawn at random."""
    import lme  # the benchmark's data loader; needs the test extra (zstandard)

    turns = sorted(
        {
            m.content
            for q in lme.load("s")
            for s in q.sessions
            for m in s.messages
            if m.role == "user"
        }
    )
    return random.Random(seed).sample(turns, n)


def make_embedder(name: str, batch_size: int | None) -> MiniLMEmbedder | E5Embedder:
    extra = {} if batch_size is None else {"batch_size": batch_size}
    if name == "e5":
        return E5Embedder(**extra)
    return MiniLMEmbedder(**extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", choices=("minilm", "e5"), default="minilm")
    parser.add_argument("--texts", choices=("synthetic", "lme"), default="synthetic")
    parser.add_argument("--batch-size", type=int, help="texts per model run (default: its own)")
    args = parser.parse_args()

    embedder = make_embedder(args.embedder, args.batch_size)
    start = time.perf_counter()
    embedder.load()
    load_ms = (time.perf_counter() - start) * 1000
    embedder.embed(sentences(64, seed=99))  # warm-up: first runs allocate and tune

    batch = lme_user_turns(1000, seed=1) if args.texts == "lme" else sentences(1000, seed=1)
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
    print(
        f"model: {embedder.name}, dim {embedder.dim}, batch size {embedder.batch_size}, "
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"load (hash check + model): {load_ms:.0f} ms")
    print(
        f"batched: median {statistics.median(rates):.1f} texts/s over 3 runs of 1,000 "
        f"{args.texts} texts (runs: {', '.join(f'{r:.1f}' for r in rates)})"
    )
    print(
        f"single query: median {statistics.median(latencies):.2f} ms, "
        f"p95 {p95:.2f} ms over {len(queries)} queries"
    )


if __name__ == "__main__":
    main()
