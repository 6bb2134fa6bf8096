"""LongMemEval retrieval: how often search puts the evidence for a question in its top
results, by the protocol in `../shared/data/longmemeval/README.md`.

For every evaluated question: a fresh vault; each haystack session ingested in date order
as a conversation dated with its session date (`Vault.ingest`, the default offline
extractor unless `--no-extract`); then `Vault.search(question, now=question date)`. The
ranked hits become session ids and user-turn ids (`SESSIONID_TURNINDEX`, 1-based) through
what each hit points at: a turn its source and index (a reply stands for the user turn it
answers), a memory its provenance. Metrics are LongMemEval's own definitions (`lme.py`).

Only the public `Vault` API is used. Nothing about a question other than its haystack,
its text and its date reaches the vault.

`--mode keyword --no-extract --user-hits` is the BM25 baseline of the data README (BM25
over user turns): the proof that this harness computes what the README's figures mean.

Run: `.venv/bin/python bench/longmemeval.py --limit 50` (see --help); results in
bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import lme
from common import log, run_header
from memsync import Memory, SearchHit, SearchMode, Turn, Vault, Weights
from memsync.crypto.device import FAST_KDF
from memsync.errors import EmbedderError
from memsync.index.embedders import embedder_for
from memsync.retrieve.context import count_tokens

PASSPHRASE = "benchmark vault passphrase, not a secret"
OUT = lme.REPO / "bench" / "out"
SESSION_KS = (5, 10)
TURN_KS = (5, 10, 50)
CONTEXT_BUDGETS = (1000, 2000)


@dataclass(frozen=True)
class Variant:
    """One way of searching: a mode and ranking weights."""

    name: str
    mode: SearchMode = SearchMode.HYBRID
    weights: Weights = Weights()


@dataclass(frozen=True)
class QuestionResult:
    id: str
    type: str
    variant: str
    metrics: dict[str, float]
    ingest_s: float
    search_s: float
    sessions: int
    turns: int
    memories: int
    top_sessions: list[str]


def reached(
    memory: Memory | None, turn: Turn | None, by_source: dict[str, lme.Session]
) -> list[tuple[str, str | None]]:
    """The (session id, user-turn id or None) a hit or context line points at: a turn its
    own (a reply stands for the user turn it answers), a memory its provenance."""
    if turn is not None:
        points: list[tuple[str, int | None]] = [(turn.source_id, turn.index)]
    elif memory is not None:
        points = [(p.source_id, p.turn) for p in memory.provenance]
    else:
        points = []
    out = []
    for source_id, index in points:
        session = by_source.get(source_id)
        if session is not None:
            user = None if index is None else session.user_turn(index)
            out.append((session.id, None if user is None else lme.turn_id(session.id, user)))
    return out


def rankings(
    hits: Sequence[SearchHit], by_source: dict[str, lme.Session], user_hits: bool
) -> tuple[list[str], list[str]]:
    """Unique session ids and unique user-turn ids, in the order hits first reach them.
    `user_hits` keeps only hits on user turns (the reference baseline ranks nothing else)."""
    sessions: dict[str, None] = {}
    turns: dict[str, None] = {}
    for hit in hits:
        if user_hits and (hit.turn is None or hit.turn.role != "user"):
            continue
        for session_id, turn_id in reached(hit.memory, hit.turn, by_source):
            sessions.setdefault(session_id, None)
            if turn_id is not None:
                turns.setdefault(turn_id, None)
    return list(sessions), list(turns)


def score(q: lme.Question, sessions: list[str], turns: list[str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for k in SESSION_KS:
        r_any, r_all, ndcg = lme.evaluate(sessions, q.gold_sessions, k)
        metrics[f"session_recall_any@{k}"] = r_any
        metrics[f"session_recall_all@{k}"] = r_all
        metrics[f"session_ndcg_any@{k}"] = ndcg
    for k in TURN_KS:
        r_any, r_all, ndcg = lme.evaluate(turns, q.gold_turns, k)
        metrics[f"turn_recall_any@{k}"] = r_any
        metrics[f"turn_recall_all@{k}"] = r_all
        metrics[f"turn_ndcg_any@{k}"] = ndcg
    return metrics


def context_metrics(
    vault: Vault, q: lme.Question, by_source: dict[str, lme.Session]
) -> dict[str, float]:
    """For each budget: does `Vault.context` carry content of the gold sessions, and how
    big is the block next to the whole haystack (both counted by `count_tokens`)."""
    haystack = sum(count_tokens(m.content) for s in q.sessions for m in s.messages)
    out: dict[str, float] = {}
    for budget in CONTEXT_BUDGETS:
        ctx = vault.context(q.question, budget_tokens=budget, now=q.date)
        points = [p for item in ctx.items for p in reached(item.memory, item.turn, by_source)]
        sessions = {session_id for session_id, _ in points}
        turns = {turn_id for _, turn_id in points if turn_id is not None}
        out[f"context{budget}_any_gold_session"] = float(bool(sessions & q.gold_sessions))
        out[f"context{budget}_all_gold_sessions"] = float(q.gold_sessions <= sessions)
        out[f"context{budget}_any_gold_turn"] = float(bool(turns & q.gold_turns))
        out[f"context{budget}_token_ratio"] = ctx.tokens / haystack
    return out


def run_reference(q: lme.Question) -> QuestionResult:
    """The reference BM25 of LongMemEval's code, no vault: checks data, gold and metrics."""
    start = time.perf_counter()
    sessions, turns = lme.reference_bm25(q)
    search_s = time.perf_counter() - start
    metrics = score(q, sessions, turns)
    listed = [s.id for s in q.in_file_order]
    for k in SESSION_KS:  # as the reference counts a gold session listed twice
        gold = sum(1 for sid in listed if sid in q.gold_sessions)
        r_any, r_all, ndcg = lme.evaluate(sessions, q.gold_sessions, k, corpus_gold=gold)
        metrics[f"session_ndcg_any@{k}"] = ndcg
    for k in SESSION_KS:
        r_any, r_all, ndcg = lme.official_turn2session(turns, q, k)
        metrics[f"official_session_recall_any@{k}"] = r_any
        metrics[f"official_session_recall_all@{k}"] = r_all
        metrics[f"official_session_ndcg_any@{k}"] = ndcg
    return QuestionResult(
        id=q.id,
        type=q.type,
        variant="reference-bm25",
        metrics=metrics,
        ingest_s=0.0,
        search_s=search_s,
        sessions=len(q.sessions),
        turns=sum(len(s.messages) for s in q.sessions),
        memories=0,
        top_sessions=sessions[:10],
    )


def run_question(
    q: lme.Question,
    embedder: lme.CachedEmbedder,
    variants: Sequence[Variant],
    args: argparse.Namespace,
    root: Path,
) -> list[QuestionResult]:
    made = Vault.create(root / q.id, PASSPHRASE, embedder=embedder, kdf=FAST_KDF)
    vault = made.vault
    out = []
    try:
        start = time.perf_counter()
        by_source: dict[str, lme.Session] = {}
        for s in q.sessions:
            result = vault.ingest(s.messages, created_at=s.date, extract=not args.no_extract)
            # Two sessions with identical turns are one source; the first keeps it.
            by_source.setdefault(result.source.id, s)
        ingest_s = time.perf_counter() - start
        memories = vault.info().memories
        context = context_metrics(vault, q, by_source) if args.context else {}
        for variant in variants:
            start = time.perf_counter()
            hits = vault.search(
                q.question, k=args.depth, now=q.date, mode=variant.mode, weights=variant.weights
            )
            search_s = time.perf_counter() - start
            sessions, turns = rankings(hits, by_source, args.user_hits)
            out.append(
                QuestionResult(
                    id=q.id,
                    type=q.type,
                    variant=variant.name,
                    metrics={**score(q, sessions, turns), **context},
                    ingest_s=ingest_s,
                    search_s=search_s,
                    sessions=len(q.sessions),
                    turns=sum(len(s.messages) for s in q.sessions),
                    memories=memories,
                    top_sessions=sessions[:10],
                )
            )
    finally:
        vault.close()
        shutil.rmtree(root / q.id, ignore_errors=True)
    return out


def summarise(results: Sequence[QuestionResult]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[QuestionResult]] = defaultdict(list)
    for r in results:
        groups[r.type].append(r)
        groups["overall"].append(r)
    table = {}
    for name, rs in sorted(groups.items(), key=lambda kv: (kv[0] == "overall", kv[0])):
        row = {"n": float(len(rs))}
        for key in rs[0].metrics:
            row[key] = statistics.fmean(r.metrics[key] for r in rs)
        table[name] = row
    return table


COLUMNS = [
    ("s R_all@5", "session_recall_all@5"),
    ("s nDCG@5", "session_ndcg_any@5"),
    ("s R_all@10", "session_recall_all@10"),
    ("s nDCG@10", "session_ndcg_any@10"),
    ("t R_all@5", "turn_recall_all@5"),
    ("t R_all@10", "turn_recall_all@10"),
    ("t R_all@50", "turn_recall_all@50"),
    ("t R_any@5", "turn_recall_any@5"),
    ("t R_any@10", "turn_recall_any@10"),
]


def print_table(table: dict[str, dict[str, float]]) -> None:
    head = f"{'question type':<27}{'n':>5}" + "".join(f"{c:>11}" for c, _ in COLUMNS)
    print(head)
    for name, row in table.items():
        cells = "".join(f"{row[key]:>11.3f}" for _, key in COLUMNS)
        print(f"{name:<27}{int(row['n']):>5}{cells}")


def load_variants(args: argparse.Namespace) -> list[Variant]:
    """The variant named by --mode with default weights, or those listed in --variants
    (a JSON list of {"name", "mode", "weights": {field: value}}), searched on the same
    vaults so they differ only in ranking."""
    if args.variants is None:
        return [Variant(args.mode, SearchMode(args.mode))]
    try:
        listed = json.loads(args.variants.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"longmemeval.py: error: --variants {args.variants}: {exc}") from None
    return [
        Variant(v["name"], SearchMode(v.get("mode", "hybrid")), Weights(**v.get("weights", {})))
        for v in listed
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--split", choices=sorted(lme.SPLIT_FILES), default="s")
    p.add_argument("--limit", type=int, help="only the first N evaluated questions")
    p.add_argument("--offset", type=int, default=0, help="skip the first N evaluated questions")
    p.add_argument("--mode", choices=[m.value for m in SearchMode], default="hybrid")
    p.add_argument("--variants", type=Path, help="JSON list of variants to compare")
    p.add_argument(
        "--reference", action="store_true", help="LongMemEval's own BM25 baseline, no vault"
    )
    p.add_argument("--no-extract", action="store_true", help="store turns only, no memories")
    p.add_argument("--user-hits", action="store_true", help="rank only hits on user turns")
    p.add_argument("--depth", type=int, default=100, help="k passed to Vault.search")
    p.add_argument("--context", action="store_true", help="also measure Vault.context blocks")
    p.add_argument("--embedder", default="minilm", help="minilm (default) or e5")
    p.add_argument("--no-cache", action="store_true", help="embed every text afresh")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--data", type=Path, default=lme.DATA)
    args = p.parse_args(argv)

    if not (args.data / lme.SPLIT_FILES[args.split]).is_file():
        p.error(f"no {lme.SPLIT_FILES[args.split]} in {args.data}")
    try:
        inner = embedder_for(args.embedder)
    except EmbedderError as exc:
        p.error(str(exc))
    variants = [] if args.reference else load_variants(args)
    questions = [q for q in lme.load(args.split, args.data) if q.evaluated]
    questions = questions[args.offset :]
    if args.limit:
        questions = questions[: args.limit]
    if args.reference:
        results = [run_reference(q) for q in questions]
        table = summarise(results)
        print_table(table)
        official = table["overall"]
        print(
            "with the official code's turn2session quirks: "
            + ", ".join(
                f"{m}@{k} {official[f'official_session_{m}@{k}']:.3f}"
                for k in SESSION_KS
                for m in ("recall_all", "ndcg_any")
            )
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            record = {**run_header(), "summary": table, "questions": [asdict(r) for r in results]}
            args.json.write_text(json.dumps(record, indent=1))
        return 0
    cache = None if args.no_cache else OUT / "embcache" / inner.name.replace("/", "_")
    embedder = lme.CachedEmbedder(inner, cache)
    log(f"{len(questions)} questions, {len(variants)} variants, extract {not args.no_extract}")
    results: list[QuestionResult] = []
    started = time.perf_counter()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        for n, q in enumerate(questions, start=1):
            results += run_question(q, embedder, variants, args, Path(tmp))
            if n % 10 == 0 or n == len(questions):
                embedder.save()
                so_far = summarise([r for r in results if r.variant == variants[0].name])
                log(
                    f"{n}/{len(questions)} {time.perf_counter() - started:.0f}s "
                    f"s R_all@5 {so_far['overall']['session_recall_all@5']:.3f} "
                    f"t R_all@10 {so_far['overall']['turn_recall_all@10']:.3f} "
                    f"(embedded {embedder.computed}, reused {embedder.reused})"
                )
    wall = time.perf_counter() - started
    tables = {}
    for variant in variants:
        mine = [r for r in results if r.variant == variant.name]
        tables[variant.name] = summarise(mine)
        print(f"\n## {variant.name}: {variant.mode.value} {variant.weights}")
        print_table(tables[variant.name])
    first = [r for r in results if r.variant == variants[0].name]
    if args.context:
        for budget in CONTEXT_BUDGETS:

            def mean(name: str, budget: int = budget) -> float:
                return statistics.fmean(r.metrics[f"context{budget}_{name}"] for r in first)

            ratio = statistics.median(r.metrics[f"context{budget}_token_ratio"] for r in first)
            print(
                f"context {budget} tokens: gold session content in the block "
                f"{mean('any_gold_session'):.3f} (all gold sessions "
                f"{mean('all_gold_sessions'):.3f}, a gold turn {mean('any_gold_turn'):.3f}); "
                f"block / haystack tokens median {ratio:.4f}"
            )
    per_q = [r.ingest_s + r.search_s for r in first]
    timing = {
        "wall_s": wall,
        "per_question_median_s": statistics.median(per_q),
        "ingest_median_s": statistics.median(r.ingest_s for r in first),
        "search_median_ms": 1000 * statistics.median(r.search_s for r in first),
        "search_p95_ms": 1000 * sorted(r.search_s for r in first)[int(0.95 * (len(first) - 1))],
        "texts_embedded": embedder.computed,
        "texts_reused": embedder.reused,
    }
    print(
        f"\nwall {wall:.0f}s; per question median {timing['per_question_median_s']:.2f}s "
        f"(ingest {timing['ingest_median_s']:.2f}s, search {timing['search_median_ms']:.1f} ms, "
        f"p95 {timing['search_p95_ms']:.1f} ms); embedded {embedder.computed} texts, "
        f"reused {embedder.reused}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            **run_header(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "variants": [
                {"name": v.name, "mode": v.mode.value, "weights": asdict(v.weights)}
                for v in variants
            ],
            "summary": tables,
            "timing": timing,
            "questions": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
