"""Ingest throughput: turns per second for LongMemEval S haystacks, and the share of
time spent embedding.

For each chosen question, its haystack (~50 sessions, ~500 turns) is ingested session by
session, in date order, into a fresh vault with the default MiniLM embedder, three ways:

1. full ingest (`Vault.ingest(..., extract=True)`, the offline rule extractor): wall time,
   turns/s, candidates and decisions, the time spent inside `embed` (turns and memories);
2. embedding alone: the same turn texts (non-system, non-empty) through the bare
   embedder in batches of 64 (the batch size `Vault.ingest` uses), and again in one call
   per session, the calls `Vault.ingest` makes (each session is one transaction);
   `--single` adds one text per call;
3. ingest without extraction (`extract=False`): storage and turn embedding only.

It also counts tokens: how many the turns have (truncated at the model's 256) and how
many the model runs on once each batch is padded to its longest text.

The embedder is wrapped in a timing class that delegates to the real model and sums the
time spent in `embed`; the extractor likewise. Target: full ingest within 1.5x of the
embedding alone. `--profile` adds a cProfile of one more full ingest.

Run: `.venv/bin/python bench/ingest.py` (see --help). Figures are in bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import lme
from common import log, run_header
from memsync import Vault
from memsync.crypto.device import FAST_KDF
from memsync.extract.base import Candidate, Extractor
from memsync.extract.rules import RuleExtractor
from memsync.index.embed import Embedder, MiniLMEmbedder
from memsync.model import Message
from memsync.reconcile.decision import Decision
from memsync.store.state import UNINDEXED_ROLES

PASSPHRASE = "benchmark vault passphrase, not a secret"
S_FILE = lme.SPLIT_FILES["s"]
BATCH = 64  # texts per embed call, as in memsync.index.vectors.embed_items
TARGET = 1.5


# Data.


@dataclass(frozen=True)
class Haystack:
    question_id: str
    question_type: str
    sessions: tuple[lme.Session, ...]

    @property
    def turns(self) -> int:
        return sum(len(s.messages) for s in self.sessions)

    def turn_texts(self) -> list[str]:
        """The texts `Vault.ingest` indexes (and so embeds): non-system, non-empty turns."""
        return [t for batch in self.session_texts() for t in batch]

    def session_texts(self) -> list[list[str]]:
        """The same texts grouped by session, as `Vault.ingest` embeds them."""
        return [
            [m.content for m in s.messages if m.role not in UNINDEXED_ROLES and m.content.strip()]
            for s in self.sessions
        ]

    def batches(self) -> list[list[str]]:
        """The same texts in consecutive batches of BATCH."""
        texts = self.turn_texts()
        return [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]

    @property
    def chars(self) -> int:
        return sum(len(m.content) for s in self.sessions for m in s.messages)


def load_haystacks(data: Path, n: int, offset: int, max_sessions: int | None) -> list[Haystack]:
    """Questions offset .. offset+n-1 of the S file (order by question_id), each haystack
    in date order and cut to `max_sessions` sessions."""
    questions = lme.load("s", data)[offset : offset + n]
    out = [Haystack(q.id, q.type, q.sessions[:max_sessions]) for q in questions]
    gc.collect()
    return out


# Instrumentation: real models, timed.


class TimedEmbedder:
    """Delegates to a real embedder and sums the time spent in `embed`, split into calls
    whose texts are all turns of the haystack and calls that embed memories."""

    def __init__(self, inner: Embedder, turn_texts: set[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.turn_texts = turn_texts
        self.seconds = {"turns": 0.0, "memories": 0.0}
        self.texts = {"turns": 0, "memories": 0}
        self.calls = {"turns": 0, "memories": 0}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        start = time.perf_counter()
        out = self.inner.embed(texts)
        elapsed = time.perf_counter() - start
        what = "turns" if texts and all(t in self.turn_texts for t in texts) else "memories"
        self.seconds[what] += elapsed
        self.texts[what] += len(texts)
        self.calls[what] += 1
        return out


class TimedExtractor:
    """Delegates to a real extractor and sums the time spent in `extract`."""

    def __init__(self, inner: Extractor) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self.seconds = 0.0

    def extract(
        self, messages: Sequence[Message], *, now: datetime | None = None
    ) -> list[Candidate]:
        start = time.perf_counter()
        out = self.inner.extract(messages, now=now)
        self.seconds += time.perf_counter() - start
        return out


# Measuring.


@dataclass
class Run:
    """One ingest of one haystack into a fresh vault."""

    wall_s: float
    sessions: int
    added: int  # sources stored (a repeated session is found by digest and skipped)
    turns: int
    embed_s: dict[str, float] = field(default_factory=dict)
    embedded: dict[str, int] = field(default_factory=dict)
    embed_calls: dict[str, int] = field(default_factory=dict)
    extract_s: float = 0.0
    candidates: int = 0
    decisions: dict[str, int] = field(default_factory=dict)

    @property
    def embed_total_s(self) -> float:
        return sum(self.embed_s.values())


@dataclass
class Result:
    question_id: str
    question_type: str
    sessions: int
    turns: int
    indexed_turns: int
    chars: int
    full: list[Run] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)  # embedding alone, batches of 64, s
    bare_session: list[float] = field(default_factory=list)  # one call per session, s
    bare_single: list[float] = field(default_factory=list)  # one text per call, s
    tokens: dict[str, float] = field(default_factory=dict)
    plain: list[Run] = field(default_factory=list)  # extract=False


@contextmanager
def fresh_vault(root: Path, embedder: Embedder) -> Iterator[Vault]:
    home = Path(tempfile.mkdtemp(prefix="vault-", dir=root))
    vault = Vault.create(home / "v", PASSPHRASE, embedder=embedder, kdf=FAST_KDF).vault
    try:
        yield vault
    finally:
        vault.close()
        shutil.rmtree(home, ignore_errors=True)


def ingest_run(
    hay: Haystack,
    embedder: Embedder,
    root: Path,
    *,
    extract: bool,
    wrap: Callable[[Callable[[], None]], None] | None = None,
) -> Run:
    timed = TimedEmbedder(embedder, set(hay.turn_texts()))
    extractor = TimedExtractor(RuleExtractor())
    decisions: Counter[Decision] = Counter()
    added = 0
    with fresh_vault(root, timed) as vault:
        gc.collect()

        def work() -> None:
            nonlocal added
            for s in hay.sessions:
                result = vault.ingest(
                    s.messages,
                    created_at=s.date,
                    external_id=s.id,
                    origin="longmemeval",
                    extract=extract,
                    extractor=extractor,
                )
                added += result.added
                decisions.update(o.decision for o in result.outcomes)

        start = time.perf_counter()
        if wrap is None:
            work()
        else:
            wrap(work)
        wall = time.perf_counter() - start
    return Run(
        wall_s=wall,
        sessions=len(hay.sessions),
        added=added,
        turns=hay.turns,
        embed_s=dict(timed.seconds),
        embedded=dict(timed.texts),
        embed_calls=dict(timed.calls),
        extract_s=extractor.seconds,
        candidates=sum(decisions.values()),
        decisions={d.value: decisions[d] for d in Decision},
    )


def embed_alone(calls: Sequence[Sequence[str]], embedder: Embedder) -> float:
    """Seconds to embed `calls`, one `embed` call each, with the bare embedder."""
    gc.collect()
    start = time.perf_counter()
    for texts in calls:
        if texts:
            embedder.embed(texts)
    return time.perf_counter() - start


def token_counts(hay: Haystack, embedder: MiniLMEmbedder) -> dict[str, float]:
    """Tokens of the turns, and tokens the model runs on once batches are padded.

    MiniLMEmbedder sorts each call's texts by length and runs them `batch_size` at a time,
    each run padded to its longest text; this repeats that arithmetic."""
    tokenizer, _ = embedder._loaded()  # the embedder's own tokenizer, truncating at 256

    def lengths(texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in tokenizer.encode_batch(list(texts))]

    def padded(calls: Sequence[Sequence[str]]) -> int:
        total = 0
        for texts in calls:
            ls = sorted(lengths(texts))
            for i in range(0, len(ls), embedder.batch_size):
                run = ls[i : i + embedder.batch_size]
                total += max(run) * len(run)
        return total

    real = lengths(hay.turn_texts())
    return {
        "tokens": sum(real),
        "mean": statistics.mean(real),
        "at_cap": sum(n >= embedder.max_length for n in real) / len(real),
        "padded_batches": padded(hay.batches()),
        "padded_sessions": padded(hay.session_texts()),
    }


def temp_root() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="memsync-ingest-bench-", dir=base))


# Reporting.


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summary(results: Sequence[Result], repeats: int) -> dict[str, Any]:
    """Totals over all questions per repeat, then the median over repeats."""

    def totals(get: Callable[[Result, int], float]) -> float:
        return med([sum(get(r, i) for r in results) for i in range(repeats)])

    turns = sum(r.turns for r in results)
    indexed = sum(r.indexed_turns for r in results)
    full = totals(lambda r, i: r.full[i].wall_s)
    bare = totals(lambda r, i: r.bare[i])
    bare_session = totals(lambda r, i: r.bare_session[i])
    single = all(r.bare_single for r in results)
    bare_single = totals(lambda r, i: r.bare_single[i]) if single else None
    plain = totals(lambda r, i: r.plain[i].wall_s)
    embed_in_full = totals(lambda r, i: r.full[i].embed_total_s)
    embed_turns = totals(lambda r, i: r.full[i].embed_s["turns"])
    embed_mem = totals(lambda r, i: r.full[i].embed_s["memories"])
    embed_in_plain = totals(lambda r, i: r.plain[i].embed_total_s)
    extract = totals(lambda r, i: r.full[i].extract_s)
    decisions: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    for r in results:
        decisions.update(r.full[0].decisions)
        tokens.update({k: v for k, v in r.tokens.items() if k.startswith(("tokens", "padded"))})
    at_cap = sum(r.tokens["at_cap"] * r.indexed_turns for r in results)
    return {
        "questions": len(results),
        "sessions": sum(r.sessions for r in results),
        "turns": turns,
        "indexed_turns": indexed,
        "chars": sum(r.chars for r in results),
        "full_s": full,
        "full_turns_per_s": turns / full,
        "full_embed_s": embed_in_full,
        "full_embed_turns_s": embed_turns,
        "full_embed_memories_s": embed_mem,
        "full_embed_share": embed_in_full / full,
        "full_extract_s": extract,
        "full_other_s": full - embed_in_full - extract,
        "embedded_turn_texts": sum(r.full[0].embedded["turns"] for r in results),
        "embedded_memory_texts": sum(r.full[0].embedded["memories"] for r in results),
        "candidates": sum(r.full[0].candidates for r in results),
        "decisions": dict(decisions),
        "bare_s": bare,
        "bare_turns_per_s": indexed / bare,
        "bare_session_s": bare_session,
        "bare_single_s": bare_single,
        "tokens": tokens["tokens"],
        "tokens_mean": tokens["tokens"] / indexed,
        "turns_at_cap": at_cap / indexed,
        "padded_batches": tokens["padded_batches"],
        "padded_sessions": tokens["padded_sessions"],
        "plain_s": plain,
        "plain_turns_per_s": turns / plain,
        "plain_embed_s": embed_in_plain,
        "plain_other_s": plain - embed_in_plain,
        "ratio_full_bare": full / bare,
        "ratio_full_own_turn_embed": full / embed_turns,
        "ratio_plain_bare": plain / bare,
        "ratio_session_bare": bare_session / bare,
        "target": TARGET,
        "met": full / bare <= TARGET,
    }


def report(results: Sequence[Result], repeats: int) -> str:
    lines = [
        f"question  type                       sess turns  full s  turns/s  embed%  "
        f"bare s  plain s  full/bare  cand  (medians of {repeats})"
    ]
    for r in results:
        full = med([x.wall_s for x in r.full])
        share = med([x.embed_total_s / x.wall_s for x in r.full])
        bare = med(r.bare)
        plain = med([x.wall_s for x in r.plain])
        lines.append(
            f"{r.question_id:<9} {r.question_type:<26} {r.sessions:>4} {r.turns:>5}  "
            f"{full:6.2f}  {r.turns / full:7.1f}  {share * 100:5.1f}%  {bare:6.2f}  "
            f"{plain:7.2f}  {full / bare:8.2f}x  {r.full[0].candidates:>4}"
        )
    s = summary(results, repeats)
    d = s["decisions"]
    lines += [
        "",
        f"all {s['questions']} haystacks: {s['sessions']} sessions, {s['turns']:,} turns "
        f"({s['indexed_turns']:,} indexed), {s['chars'] / 1e6:.2f} M characters",
        f"full ingest     {s['full_s']:7.2f} s  {s['full_turns_per_s']:6.1f} turns/s",
        f"  inside embed  {s['full_embed_s']:7.2f} s  ({s['full_embed_share'] * 100:.1f}% of wall;"
        f" turns {s['full_embed_turns_s']:.2f} s for {s['embedded_turn_texts']:,} texts,"
        f" memories {s['full_embed_memories_s']:.2f} s for {s['embedded_memory_texts']:,} texts)",
        f"  extractor     {s['full_extract_s']:7.2f} s",
        f"  the rest      {s['full_other_s']:7.2f} s  (storage, log, reconciliation)",
        f"  candidates    {s['candidates']:,}: "
        + ", ".join(f"{k} {v}" for k, v in d.items() if v or k in ("add", "noop")),
        f"embedding alone {s['bare_s']:7.2f} s  {s['bare_turns_per_s']:6.1f} turns/s"
        f"  (bare embedder, batches of {BATCH})",
        f"  per session   {s['bare_session_s']:7.2f} s  (one call per session, as ingest calls"
        f" it: {s['ratio_session_bare']:.2f}x the batches of {BATCH})",
        *(
            [f"  one by one    {s['bare_single_s']:7.2f} s  (one text per call)"]
            if s["bare_single_s"] is not None
            else []
        ),
        f"  tokens        {s['tokens']:,.0f} in the turns (mean {s['tokens_mean']:.0f},"
        f" {s['turns_at_cap'] * 100:.0f}% cut at 256); after padding:"
        f" {s['padded_batches']:,.0f} in batches of {BATCH},"
        f" {s['padded_sessions']:,.0f} per session",
        f"no extraction   {s['plain_s']:7.2f} s  {s['plain_turns_per_s']:6.1f} turns/s"
        f"  (inside embed {s['plain_embed_s']:.2f} s, the rest {s['plain_other_s']:.2f} s)",
        f"full / embedding alone: {s['ratio_full_bare']:.2f}x "
        f"(target <= {TARGET}x: {'met' if s['met'] else 'NOT met'}); "
        f"no extraction / embedding alone: {s['ratio_plain_bare']:.2f}x",
        f"full / its own turn embedding (same runs, so the same load on the machine): "
        f"{s['ratio_full_own_turn_embed']:.2f}x",
    ]
    return "\n".join(lines)


def profile_full(
    hay: Haystack, embedder: Embedder, root: Path, sorts: Sequence[str], top: int
) -> str:
    profiler = cProfile.Profile()

    def wrap(work: Callable[[], None]) -> None:
        profiler.runcall(work)

    run = ingest_run(hay, embedder, root, extract=True, wrap=wrap)
    parts = [
        f"cProfile of one full ingest of {hay.question_id} ({run.turns} turns, "
        f"{run.wall_s:.2f} s under the profiler, {run.embed_total_s:.2f} s inside embed)"
    ]
    for sort in sorts:
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.strip_dirs().sort_stats(sort).print_stats(top)
        body = buf.getvalue().strip().split("\n")
        # Keep the table; pstats' preamble (call count, "Ordered by", ...) is said above.
        first = next(i for i, line in enumerate(body) if "ncalls" in line)
        parts.append(f"top {top} by {sort}:\n" + "\n".join(body[first:]))
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=lme.DATA,
        help="LongMemEval directory (default: ../shared/data/longmemeval from the repo root)",
    )
    parser.add_argument(
        "--questions", type=int, default=3, help="haystacks to ingest (default: %(default)s)"
    )
    parser.add_argument(
        "--offset", type=int, default=0, help="index of the first question (default: 0)"
    )
    parser.add_argument(
        "--sessions", type=int, default=None, help="ingest at most this many sessions each"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each measurement (default: %(default)s)"
    )
    parser.add_argument(
        "--single", action="store_true", help="also time embedding one text per call"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile one full ingest (cProfile)"
    )
    parser.add_argument(
        "--profile-sort",
        default="cumulative,tottime",
        help="comma-separated pstats sort keys, one table each (default: %(default)s)",
    )
    parser.add_argument(
        "--profile-top", type=int, default=20, help="rows of the profile (default: 20)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write results here")
    args = parser.parse_args(argv)
    if args.questions < 1 or args.repeat < 1 or (args.sessions is not None and args.sessions < 1):
        parser.error("--questions, --repeat and --sessions must be positive")
    data = args.data.resolve()
    if not (data / S_FILE).is_file():
        parser.error(f"no {S_FILE} in {data}")

    start = time.perf_counter()
    haystacks = load_haystacks(data, args.questions, args.offset, args.sessions)
    log(f"loaded {len(haystacks)} haystacks in {time.perf_counter() - start:.1f} s")

    embedder = MiniLMEmbedder()
    embedder.load()
    embedder.embed(haystacks[0].turn_texts()[:BATCH])  # warm-up: first runs allocate

    root = temp_root()
    results = [
        Result(
            h.question_id,
            h.question_type,
            len(h.sessions),
            h.turns,
            len(h.turn_texts()),
            h.chars,
            tokens=token_counts(h, embedder),
        )
        for h in haystacks
    ]
    profile = None
    try:
        for i in range(args.repeat):
            for hay, res in zip(haystacks, results, strict=True):
                res.full.append(ingest_run(hay, embedder, root, extract=True))
                res.bare.append(embed_alone(hay.batches(), embedder))
                res.bare_session.append(embed_alone(hay.session_texts(), embedder))
                if args.single:
                    res.bare_single.append(embed_alone([[t] for t in hay.turn_texts()], embedder))
                res.plain.append(ingest_run(hay, embedder, root, extract=False))
                f = res.full[-1]
                log(
                    f"[{i + 1}/{args.repeat}] {hay.question_id}: full {f.wall_s:.2f} s "
                    f"(embed {f.embed_total_s:.2f} s), bare {res.bare[-1]:.2f} s "
                    f"(per session {res.bare_session[-1]:.2f} s), "
                    f"no extraction {res.plain[-1].wall_s:.2f} s"
                )
        if args.profile:
            profile = profile_full(
                haystacks[0],
                embedder,
                root,
                [k.strip() for k in args.profile_sort.split(",") if k.strip()],
                args.profile_top,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(report(results, args.repeat))
    if profile:
        print()
        print(profile)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    **run_header(),
                    "repeat": args.repeat,
                    "summary": summary(results, args.repeat),
                    "results": [asdict(r) for r in results],
                    "profile": profile,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
