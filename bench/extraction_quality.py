"""Precision and recall of the offline RuleExtractor on our hand-written evaluation set.

The set (`bench/extraction/dataset.jsonl`, see `bench/extraction/README.md`) holds short
conversations with the memories a careful person would write down. A predicted memory
matches a gold one when the cosine similarity of their MiniLM embeddings is at least the
threshold; matching is one-to-one and greedy per conversation (the most similar pair
first). Precision = matched / predicted, recall = matched / gold, over all conversations.
Kind and category accuracy are measured on the matched pairs; validity agreement compares
the predicted and gold `valid_until` dates of matched pairs that are both episodic.

The primary threshold is 0.70: on this model, paraphrases of one fact ("Is a vegetarian" /
"Is vegetarian" 0.99, "Works as a nurse" / "Is a nurse" 0.79, "Is allergic to peanuts" /
"Has a peanut allergy" 0.76) score above it, while different facts with the same shape
("Is a nurse" / "Is a teacher" 0.36, "Lives in Berlin" / "Is moving to Lisbon" 0.29) score
far below. It does not see polarity ("Loves hiking" / "Hates hiking" 0.77), so a negation
error can still count as a match; 0.6 and 0.8 are reported to show how much depends on it.

The set is split in two: c01-c48 ("dev") is what the rules were iterated on; c49-c72
("held-out") was written at the same time and only scored at the end.

Run: `python bench/extraction_quality.py [--split dev|held-out|all] [--show] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from memsync.extract import Candidate, Extractor, RuleExtractor
from memsync.index.embed import Embedder, MiniLMEmbedder
from memsync.model import Message

DATASET = Path(__file__).parent / "extraction" / "dataset.jsonl"
THRESHOLD = 0.70
THRESHOLDS = (0.6, 0.7, 0.8)
DEV_LAST = 48  # c01..c48 are the development split


@dataclass(frozen=True)
class Gold:
    text: str
    kind: str
    category: str
    valid_until: str | None


@dataclass(frozen=True)
class Conversation:
    id: str
    messages: tuple[Message, ...]
    gold: tuple[Gold, ...]

    @property
    def number(self) -> int:
        return int(self.id.lstrip("c"))


def load_dataset(path: Path = DATASET, split: str = "all") -> list[Conversation]:
    out: list[Conversation] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        msgs = tuple(
            Message(
                role=m["role"],
                content=m["content"],
                timestamp=datetime.fromisoformat(m["timestamp"]) if m.get("timestamp") else None,
            )
            for m in d["messages"]
        )
        gold = tuple(
            Gold(g["text"], g["kind"], g["category"], g.get("valid_until")) for g in d["memories"]
        )
        out.append(Conversation(d["id"], msgs, gold))
    if split == "dev":
        return [c for c in out if c.number <= DEV_LAST]
    if split == "held-out":
        return [c for c in out if c.number > DEV_LAST]
    return out


@dataclass
class Pair:
    pred: Candidate
    gold: Gold
    sim: float


@dataclass
class ConvResult:
    conv: Conversation
    preds: list[Candidate]
    sims: Any  # (len(preds), len(gold)) cosine matrix
    pairs: dict[float, list[Pair]] = field(default_factory=dict)


def greedy_match(sims: Any, threshold: float) -> list[tuple[int, int, float]]:
    """One-to-one pairs (pred, gold, sim), most similar first, all >= threshold."""
    if sims.size == 0:
        return []
    order = np.dstack(np.unravel_index(np.argsort(-sims, axis=None), sims.shape))[0]
    used_p: set[int] = set()
    used_g: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for p, g in order:
        s = float(sims[p, g])
        if s < threshold:
            break
        if p in used_p or g in used_g:
            continue
        used_p.add(int(p))
        used_g.add(int(g))
        out.append((int(p), int(g), s))
    return out


def run(
    convs: Sequence[Conversation],
    extractor: Extractor,
    embedder: Embedder,
    thresholds: Sequence[float] = THRESHOLDS,
) -> tuple[list[ConvResult], float]:
    """Extract from every conversation and match; returns results and extraction seconds."""
    t0 = time.perf_counter()
    preds = [extractor.extract(c.messages) for c in convs]
    elapsed = time.perf_counter() - t0
    texts = [p.text for ps in preds for p in ps] + [g.text for c in convs for g in c.gold]
    vecs = embedder.embed(texts)
    n_pred = sum(len(ps) for ps in preds)
    pv, gv = vecs[:n_pred], vecs[n_pred:]
    results: list[ConvResult] = []
    pi = gi = 0
    for conv, ps in zip(convs, preds, strict=True):
        a = pv[pi : pi + len(ps)]
        b = gv[gi : gi + len(conv.gold)]
        pi += len(ps)
        gi += len(conv.gold)
        sims = a @ b.T if len(ps) and len(conv.gold) else np.zeros((len(ps), len(conv.gold)))
        r = ConvResult(conv, ps, sims)
        for t in thresholds:
            r.pairs[t] = [Pair(ps[p], conv.gold[g], s) for p, g, s in greedy_match(sims, t)]
        results.append(r)
    return results, elapsed


def summarise(results: Sequence[ConvResult], threshold: float) -> dict[str, Any]:
    n_pred = sum(len(r.preds) for r in results)
    n_gold = sum(len(r.conv.gold) for r in results)
    pairs = [p for r in results for p in r.pairs[threshold]]
    precision = len(pairs) / n_pred if n_pred else 0.0
    recall = len(pairs) / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    kind_ok = sum(p.pred.kind.value == p.gold.kind for p in pairs)
    cat_ok = sum(p.pred.category.value == p.gold.category for p in pairs)
    gold_by_cat = Counter(g.category for r in results for g in r.conv.gold)
    hit_by_cat = Counter(p.gold.category for p in pairs)
    episodic = [
        p
        for p in pairs
        if p.gold.kind == "episodic" and p.pred.kind.value == "episodic" and p.gold.valid_until
    ]
    until_exact = sum(
        p.pred.valid_until is not None
        and p.pred.valid_until.date() == date.fromisoformat(str(p.gold.valid_until))
        for p in episodic
    )
    until_close = sum(
        p.pred.valid_until is not None
        and abs((p.pred.valid_until.date() - date.fromisoformat(str(p.gold.valid_until))).days) <= 7
        for p in episodic
    )
    empty = [r for r in results if not r.conv.gold]
    return {
        "threshold": threshold,
        "conversations": len(results),
        "gold": n_gold,
        "predicted": n_pred,
        "matched": len(pairs),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "kind_accuracy": kind_ok / len(pairs) if pairs else 0.0,
        "category_accuracy": cat_ok / len(pairs) if pairs else 0.0,
        "recall_by_category": {c: hit_by_cat[c] / n for c, n in sorted(gold_by_cat.items())},
        "gold_by_category": dict(sorted(gold_by_cat.items())),
        "valid_until_pairs": len(episodic),
        "valid_until_exact": until_exact,
        "valid_until_within_7_days": until_close,
        "empty_conversations": len(empty),
        "predictions_in_empty_conversations": sum(len(r.preds) for r in empty),
    }


def show(results: Sequence[ConvResult], threshold: float) -> None:
    for r in results:
        pairs = r.pairs[threshold]
        matched_p = {id(p.pred) for p in pairs}
        matched_g = {id(p.gold) for p in pairs}
        print(f"== {r.conv.id}")
        for p in pairs:
            flag = "" if p.pred.kind.value == p.gold.kind else " KIND"
            flag += "" if p.pred.category.value == p.gold.category else " CAT"
            print(
                f"  ok {p.sim:.2f} {p.pred.text!r} ~ {p.gold.text!r}"
                f" [{p.pred.kind.value}/{p.pred.category.value}]{flag}"
            )
        for c in r.preds:
            if id(c) not in matched_p:
                best = float(r.sims[r.preds.index(c)].max()) if len(r.conv.gold) else 0.0
                print(f"  FP {best:.2f} {c.text!r} [{c.kind.value}/{c.category.value}]")
        for g in r.conv.gold:
            if id(g) not in matched_g:
                print(f"  FN      {g.text!r}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=["dev", "held-out", "all"], default="all")
    ap.add_argument("--show", action="store_true", help="print every match, miss and extra")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    convs = load_dataset(split=args.split)
    results, elapsed = run(convs, RuleExtractor(), MiniLMEmbedder())
    if args.show:
        show(results, THRESHOLD)
    summaries = [summarise(results, t) for t in THRESHOLDS]
    if args.json:
        print(
            json.dumps(
                {"split": args.split, "extract_seconds": elapsed, "results": summaries}, indent=2
            )
        )
        return 0
    main_s = next(s for s in summaries if s["threshold"] == THRESHOLD)
    print(
        f"split={args.split} conversations={main_s['conversations']} gold={main_s['gold']} "
        f"predicted={main_s['predicted']} extraction {elapsed * 1000:.0f} ms total"
    )
    for s in summaries:
        print(
            f"  threshold {s['threshold']:.2f}: precision {s['precision']:.3f} "
            f"recall {s['recall']:.3f} F1 {s['f1']:.3f} (matched {s['matched']})"
        )
    print(
        f"  at {THRESHOLD:.2f}: kind accuracy {main_s['kind_accuracy']:.3f}, category "
        f"accuracy {main_s['category_accuracy']:.3f} on {main_s['matched']} matched pairs"
    )
    print(
        f"  valid_until on {main_s['valid_until_pairs']} episodic pairs: exact "
        f"{main_s['valid_until_exact']}, within 7 days {main_s['valid_until_within_7_days']}"
    )
    print(
        f"  {main_s['predictions_in_empty_conversations']} predictions in the "
        f"{main_s['empty_conversations']} conversations with nothing to remember"
    )
    print("  recall by category:")
    for cat, value in main_s["recall_by_category"].items():
        print(f"    {cat:<14} {value:.3f}  (of {main_s['gold_by_category'][cat]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
