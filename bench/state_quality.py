"""What the vault believes after whole conversation histories: the second evaluation set
(`bench/histories/`, frozen; see its README).

    .venv/bin/python bench/state_quality.py [--show] [--json PATH]

Two figures: extraction precision and recall per conversation (as `extraction_quality.py`
on the first set), and state accuracy after ingesting each person's conversations in
order into a fresh vault (the share of gold current facts that are active and of gold
ended facts that are not). Matching is MiniLM cosine, one to one, at 0.70.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, log, run_header
from extraction_quality import THRESHOLD, greedy_match
from memsync.crypto.device import FAST_KDF
from memsync.extract import RuleExtractor
from memsync.index.embed import MiniLMEmbedder
from memsync.model import Message
from memsync.vault import Vault

DATASET = Path(__file__).parent / "histories" / "histories.jsonl"


@dataclass(frozen=True)
class Conv:
    id: str
    messages: tuple[Message, ...]
    gold: tuple[str, ...]

    @property
    def at(self) -> datetime:
        return max(m.timestamp for m in self.messages if m.timestamp is not None)


@dataclass(frozen=True)
class History:
    id: str
    conversations: tuple[Conv, ...]
    current: tuple[str, ...]
    ended: tuple[str, ...]


def _message(m: dict[str, Any]) -> Message:
    return Message(m["role"], m["content"], datetime.fromisoformat(m["timestamp"]), m.get("name"))


def load(path: Path = DATASET) -> list[History]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        convs = tuple(
            Conv(
                c["id"],
                tuple(_message(m) for m in c["messages"]),
                tuple(g["text"] for g in c["memories"]),
            )
            for c in d["conversations"]
        )
        out.append(
            History(d["id"], convs, tuple(d["state"]["current"]), tuple(d["state"]["ended"]))
        )
    return out


def _sims(emb: MiniLMEmbedder, a: list[str], b: list[str]) -> Any:
    if not a or not b:
        return np.zeros((len(a), len(b)))
    va, vb = emb.embed(a), emb.embed(b)
    return va @ vb.T


def extraction(histories: list[History], emb: MiniLMEmbedder, show: bool) -> dict[str, Any]:
    extractor = RuleExtractor()
    n_pred = n_gold = matched = 0
    for h in histories:
        for c in h.conversations:
            preds = [p.text for p in extractor.extract(c.messages)]
            pairs = greedy_match(_sims(emb, preds, list(c.gold)), THRESHOLD)
            n_pred, n_gold, matched = (
                n_pred + len(preds),
                n_gold + len(c.gold),
                matched + len(pairs),
            )
            if show:
                hit = {g for _, g, _ in pairs}
                for g, text in enumerate(c.gold):
                    if g not in hit:
                        log(f"{c.id} missed: {text}")
                used = {p for p, _, _ in pairs}
                for p, text in enumerate(preds):
                    if p not in used:
                        log(f"{c.id} extra:  {text}")
    return {
        "conversations": sum(len(h.conversations) for h in histories),
        "gold": n_gold, "predicted": n_pred, "matched": matched,
        "precision": round(matched / n_pred, 3) if n_pred else 0.0,
        "recall": round(matched / n_gold, 3) if n_gold else 0.0,
    }  # fmt: skip


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now().astimezone()

    def __call__(self) -> datetime:
        return self.now


def state(histories: list[History], emb: MiniLMEmbedder, show: bool) -> dict[str, Any]:
    cur_ok = cur_n = end_ok = end_n = 0
    with tempfile.TemporaryDirectory(prefix="memsync-bench-state-") as tmp:
        for h in histories:
            clock = _Clock()
            clock.now = h.conversations[0].at
            made = Vault.create(Path(tmp) / h.id, "bench state passphrase 42", kdf=FAST_KDF,
                                embedder=emb)  # fmt: skip
            v = made.vault
            v.clock = clock
            for c in h.conversations:
                clock.now = c.at
                v.ingest(list(c.messages), title=c.id)
            active = [m.text for m in v.list(limit=None).items]
            v.close()
            gold = [*h.current, *h.ended]
            pairs = greedy_match(_sims(emb, active, gold), THRESHOLD)
            hit = {g for _, g, _ in pairs}
            for g, text in enumerate(gold):
                is_current = g < len(h.current)
                ok = (g in hit) if is_current else (g not in hit)
                if is_current:
                    cur_n, cur_ok = cur_n + 1, cur_ok + ok
                else:
                    end_n, end_ok = end_n + 1, end_ok + ok
                if show and not ok:
                    what = "current fact not active" if is_current else "ended fact still active"
                    log(f"{h.id} {what}: {text}")
            if show:
                log(f"{h.id} active: {active}")
    return {
        "current": cur_n, "current_active": cur_ok, "ended": end_n, "ended_not_active": end_ok,
        "current_recall": round(cur_ok / cur_n, 3) if cur_n else 0.0,
        "ended_rejection": round(end_ok / end_n, 3) if end_n else 0.0,
        "state_accuracy": round((cur_ok + end_ok) / (cur_n + end_n), 3),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--show", action="store_true", help="list every miss on stderr")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    histories = load()
    emb = MiniLMEmbedder()
    result = {
        **run_header(),
        "extraction": extraction(histories, emb, args.show),
        "state": state(histories, emb, args.show),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
