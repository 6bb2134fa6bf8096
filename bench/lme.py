"""LongMemEval for the benchmarks: the data as dataclasses, the official retrieval
metrics, and an embedder that remembers vectors across questions.

The data stays in `../shared/data/longmemeval/` (see its README for the protocol); it is
read from there, never copied into the repository.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import zstandard

from memsync.index.embed import Embedder
from memsync.model import Message

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / ".." / "shared" / "data" / "longmemeval"
SPLIT_FILES = {"s": "longmemeval_s_cleaned.498.json.zst", "oracle": "longmemeval_oracle.json.zst"}


@dataclass(frozen=True)
class Session:
    id: str
    date: datetime
    messages: tuple[Message, ...]
    has_answer: tuple[bool, ...]  # per message, as labelled

    def user_turn(self, index: int) -> int | None:
        """The user turn a message stands for: itself, or for a reply the user turn it
        answers (a round is a user turn and its reply)."""
        if not 0 <= index < len(self.messages):
            return None
        if self.messages[index].role == "user":
            return index
        if index > 0 and self.messages[index - 1].role == "user":
            return index - 1
        return None


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    question: str
    date: datetime
    sessions: tuple[Session, ...]  # in date order
    answer_sessions: frozenset[str]
    in_file_order: tuple[Session, ...] = ()  # as listed (ids may repeat in a haystack)

    @property
    def gold_turns(self) -> frozenset[str]:
        """User turns labelled `has_answer`, as `SESSIONID_TURNINDEX` (1-based)."""
        return frozenset(
            turn_id(s.id, i)
            for s in self.sessions
            for i, (m, a) in enumerate(zip(s.messages, s.has_answer, strict=True))
            if a and m.role == "user"
        )

    @property
    def gold_sessions(self) -> frozenset[str]:
        """Answer sessions with at least one user turn labelled `has_answer`."""
        return frozenset(t.rsplit("_", 1)[0] for t in self.gold_turns) & self.answer_sessions

    @property
    def evaluated(self) -> bool:
        """The protocol skips abstention questions and those without user-side gold."""
        return not self.id.endswith("_abs") and bool(self.gold_turns)

    @property
    def user_turns(self) -> list[str]:
        return [
            turn_id(s.id, i)
            for s in self.sessions
            for i, m in enumerate(s.messages)
            if m.role == "user"
        ]


def turn_id(session_id: str, index: int) -> str:
    return f"{session_id}_{index + 1}"


def parse_date(text: str) -> datetime:
    """ "2023/05/20 (Sat) 07:47" as an aware UTC datetime."""
    return datetime.strptime(text, "%Y/%m/%d (%a) %H:%M").replace(tzinfo=UTC)


def load(split: str = "s", data: Path = DATA) -> list[Question]:
    """Every question of a split, each haystack in date order (sessions with the same
    date keep their file order; empty sessions are dropped)."""
    with (data / SPLIT_FILES[split]).open("rb") as fh:
        raw = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh).read()
    out = []
    for q in json.loads(raw):
        sessions = [
            Session(
                sid,
                parse_date(date),
                tuple(Message(t["role"], t["content"], timestamp=parse_date(date)) for t in turns),
                tuple(bool(t.get("has_answer")) for t in turns),
            )
            for sid, date, turns in zip(
                q["haystack_session_ids"], q["haystack_dates"], q["haystack_sessions"], strict=True
            )
            if turns
        ]
        file_order = tuple(sessions)
        sessions.sort(key=lambda s: s.date)
        out.append(
            Question(
                id=q["question_id"],
                type=q["question_type"],
                question=q["question"],
                date=parse_date(q["question_date"]),
                sessions=tuple(sessions),
                answer_sessions=frozenset(q["answer_session_ids"]),
                in_file_order=file_order,
            )
        )
    return out


# The official metrics (LongMemEval's src/retrieval/eval_utils.py), on id lists.


def _dcg(relevances: Sequence[float], k: int) -> float:
    rel = list(relevances)[:k]
    if not rel:
        return 0.0
    # As the reference: the first two positions weigh 1, then 1 / log2(position).
    return rel[0] + sum(r / math.log2(i) for i, r in enumerate(rel[1:], start=2))


def evaluate(
    ranking: Sequence[str], gold: frozenset[str], k: int, corpus_gold: int | None = None
) -> tuple[float, float, float]:
    """(recall_any@k, recall_all@k, ndcg_any@k) of a ranked list of ids. The ideal DCG is
    that of the whole corpus sorted by relevance: `corpus_gold` (default |gold|) hits
    first; it differs only when the corpus lists a gold id twice."""
    top = set(ranking[:k])
    recall_any = float(any(g in top for g in gold))
    recall_all = float(all(g in top for g in gold))
    ideal = _dcg([1.0] * min(len(gold) if corpus_gold is None else corpus_gold, k), k)
    actual = _dcg([1.0 if r in gold else 0.0 for r in ranking[:k]], k)
    return recall_any, recall_all, (actual / ideal if ideal else 0.0)


# Vectors shared across questions: filler sessions recur in many haystacks.


class CachedEmbedder:
    """Delegates to a real embedder, remembering each text's vector, and keeps them in
    `path` between runs. The model is deterministic, so a remembered vector is the one the
    model would compute; only the time to compute it is saved."""

    def __init__(self, inner: Embedder, path: Path | None) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.path = path
        self._vecs: dict[bytes, npt.NDArray[np.float32]] = {}
        self._new: list[tuple[bytes, npt.NDArray[np.float32]]] = []
        self.computed = 0
        self.reused = 0
        if path is not None and path.with_suffix(".keys").exists():
            keys = path.with_suffix(".keys").read_bytes()
            vecs = np.fromfile(path.with_suffix(".f32"), dtype=np.float32).reshape(-1, self.dim)
            n = min(len(keys) // 20, len(vecs))
            for i in range(n):
                self._vecs[keys[i * 20 : (i + 1) * 20]] = vecs[i]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        keys = [hashlib.sha1(t.encode()).digest() for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vecs}
        if todo:
            # Similar lengths together: less padding inside the model.
            order = sorted(todo, key=lambda k: len(todo[k]))
            for start in range(0, len(order), 64):
                chunk = order[start : start + 64]
                fresh = self.inner.embed([todo[k] for k in chunk])
                for k, v in zip(chunk, fresh, strict=True):
                    self._vecs[k] = v
                    self._new.append((k, v))
            self.computed += len(todo)
        self.reused += len(texts) - len(todo)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.stack([self._vecs[k] for k in keys]), dtype=np.float32)

    def save(self) -> None:
        if self.path is None or not self._new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (
            self.path.with_suffix(".keys").open("ab") as fk,
            self.path.with_suffix(".f32").open("ab") as fv,
        ):
            fk.write(b"".join(k for k, _ in self._new))
            fv.write(np.stack([v for _, v in self._new]).astype(np.float32).tobytes())
        self._new = []


# The reference baseline, as LongMemEval's own code runs it (src/retrieval/run_retrieval.py,
# retriever flat-bm25, granularity turn): rank_bm25's BM25Okapi over the user turns in
# file order, texts and query split on single spaces (no lower-casing), every turn ranked
# by np.argsort(scores)[::-1]. Re-implemented here so no extra package is needed.


def _bm25_okapi(
    docs: Sequence[list[str]], query: list[str], k1: float = 1.5, b: float = 0.75, eps: float = 0.25
) -> npt.NDArray[np.float64]:
    """rank_bm25's BM25Okapi scores (negative IDFs replaced by eps x the mean IDF)."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    df: dict[str, int] = {}
    freqs = []
    for d in docs:
        tf: dict[str, int] = {}
        for w in d:
            tf[w] = tf.get(w, 0) + 1
        freqs.append(tf)
        for w in tf:
            df[w] = df.get(w, 0) + 1
    idf = {w: math.log(n - c + 0.5) - math.log(c + 0.5) for w, c in df.items()}
    floor = eps * sum(idf.values()) / len(idf)
    idf = {w: (v if v >= 0 else floor) for w, v in idf.items()}
    scores = np.zeros(n)
    lengths = np.array([len(d) for d in docs], dtype=float)
    for w in query:
        tf_w = np.array([f.get(w, 0) for f in freqs], dtype=float)
        scores += idf.get(w, 0.0) * (tf_w * (k1 + 1) / (tf_w + k1 * (1 - b + b * lengths / avgdl)))
    return scores


def reference_bm25(q: Question) -> tuple[list[str], list[str]]:
    """(session ids, user-turn ids), best first, as the reference BM25 ranks them: sessions
    as documents of their user turns joined by spaces, and user turns as documents. A
    session id listed twice in the haystack is ranked twice, as there."""
    query = q.question.split(" ")
    session_ids: list[str] = []
    turn_ids: list[str] = []
    turn_docs: list[list[str]] = []
    session_docs: list[list[str]] = []
    for s in q.in_file_order:
        user = [(i, m.content) for i, m in enumerate(s.messages) if m.role == "user"]
        session_ids.append(s.id)
        session_docs.append(" ".join(text for _, text in user).split(" "))
        for i, text in user:
            turn_ids.append(turn_id(s.id, i))
            turn_docs.append(text.split(" "))
    sessions = np.argsort(_bm25_okapi(session_docs, query))[::-1]
    turns = np.argsort(_bm25_okapi(turn_docs, query))[::-1]
    return [session_ids[i] for i in sessions], [turn_ids[i] for i in turns]


def official_turn2session(turns: Sequence[str], q: Question, k: int) -> tuple[float, float, float]:
    """Session-level metrics exactly as LongMemEval's evaluate_retrieval_turn2session
    computes them from a full turn ranking: a user turn of an answer session that is not
    itself labelled counts as a different ("noans") session, k grows until k distinct
    sessions are covered, and nDCG counts every turn of a gold session."""
    gold_turns = q.gold_turns

    def session_of(t: str) -> str:
        sid = t.rsplit("_", 1)[0]
        return sid if t in gold_turns or "answer" not in sid else sid.replace("answer", "noans")

    corpus = [session_of(t) for t in q.user_turns]
    ranked = [session_of(t) for t in turns]
    gold = {t.rsplit("_", 1)[0] for t in gold_turns}
    effective = k
    while effective <= len(corpus) and len(set(ranked[:effective])) < k:
        effective += 1
    top = set(ranked[:effective])
    recall_any = float(any(g in top for g in gold))
    recall_all = float(all(g in top for g in gold))
    ideal = _dcg(sorted((1.0 if c in gold else 0.0 for c in corpus), reverse=True), effective)
    actual = _dcg([1.0 if r in gold else 0.0 for r in ranked[:effective]], effective)
    return recall_any, recall_all, (actual / ideal if ideal else 0.0)
