"""Context: the best memories and turns for a query, as one block that fits a token budget.

Search returns forty ranked hits; a model's system prompt has room for a few hundred
tokens of them. This module turns hits into the block an assistant is actually given (by
the MCP server, the OpenAI-compatible proxy, `memsync context`): memories as one line
each, turns cut to the sentences that matter, the best first, never over the budget.
Every line that went in is also returned as a `ContextItem`, so callers (the benchmark, the
disclosure ledger) know exactly which memories and turns were shown.

Tokens are estimated by `count_tokens`, the same function for the budget and for the
block, so "fits" is checked exactly and needs no tokenizer or model download.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from memsync.errors import UsageError
from memsync.model import Kind, Memory, SearchFilters, SearchHit, Turn
from memsync.retrieve.search import query_terms

MIN_BUDGET = 50
SEARCH_K = 40  # hits considered; the budget, not k, decides how many go in
HEADER = "From the user's memsync vault, most relevant first:"
MEMORIES_HEADING = "Memories:"
TURNS_HEADING = "From past conversations:"
CUT = "…"

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


def count_tokens(text: str) -> int:
    """A deterministic estimate of how many LLM (BPE) tokens `text` is.

    Each word (`\\w+`) and each punctuation mark counts one, and a long word one more per
    4 characters beyond its first 6 ("conversation" is 2, "internationalisation" 4).
    For English this lands close to GPT-style tokenizer counts. Whitespace is free, so the
    count of lines joined by newlines is the sum of their counts.
    """
    n = 0
    for match in _TOKEN.finditer(text):
        n += 1 + max(0, match.end() - match.start() - 6) // 4
    return n


@dataclass(frozen=True)
class ContextItem:
    """One line of the block: a memory or a turn (exactly one is set), `text` as it
    appears in the block (a turn may be an excerpt) and its tokens."""

    memory: Memory | None
    turn: Turn | None
    text: str
    tokens: int


@dataclass(frozen=True)
class Context:
    """A block of context for a prompt; `tokens <= budget_tokens` always holds.

    `text` is empty (and `items` too) when nothing matched or nothing fitted.
    """

    text: str
    tokens: int
    budget_tokens: int
    items: tuple[ContextItem, ...]

    @property
    def memories(self) -> tuple[Memory, ...]:
        return tuple(i.memory for i in self.items if i.memory is not None)

    @property
    def turns(self) -> tuple[Turn, ...]:
        return tuple(i.turn for i in self.items if i.turn is not None)


class Searcher(Protocol):
    def search(
        self, query: str, *, k: int = ..., filters: SearchFilters = ..., now: datetime | None = ...
    ) -> list[SearchHit]: ...


def build_context(
    searcher: Searcher,
    query: str,
    *,
    budget_tokens: int,
    now: datetime | None = None,
    filters: SearchFilters = SearchFilters(),
) -> Context:
    """Search for `query` and fill a block of at most `budget_tokens` from the hits."""
    if budget_tokens < MIN_BUDGET:
        raise UsageError(
            f"a context budget of {budget_tokens} tokens is too small; "
            f"use at least {MIN_BUDGET} (1000 is the default)"
        )
    hits = searcher.search(query, k=SEARCH_K, filters=filters, now=now)
    return assemble(hits, query, budget_tokens)


def assemble(hits: Sequence[SearchHit], query: str, budget_tokens: int) -> Context:
    """Walk `hits` best first, taking each line that still fits; skip the rest."""
    words = frozenset(query_terms(query))
    item_cap = max(60, budget_tokens // 4)
    used = count_tokens(HEADER)
    memories: list[ContextItem] = []
    turns: list[ContextItem] = []
    seen: set[str] = set()
    for hit in hits:
        if used >= budget_tokens:
            break
        section = memories if hit.memory is not None else turns
        heading = MEMORIES_HEADING if hit.memory is not None else TURNS_HEADING
        overhead = 0 if section else count_tokens(heading)
        room = budget_tokens - used - overhead
        if hit.memory is not None:
            line: str | None = memory_line(hit.memory)
            key = _key(hit.memory.text)
        else:
            assert hit.turn is not None
            key = _key(hit.turn.text)
            if key in seen:
                continue  # the same text is already in the block
            line = turn_line(hit.turn, words, min(item_cap, room))
        tokens = room + 1 if line is None else count_tokens(line)
        if line is None or tokens > room:
            continue
        section.append(ContextItem(hit.memory, hit.turn, line, tokens))
        seen.add(key)
        used += overhead + tokens
    if not memories and not turns:
        return Context("", 0, budget_tokens, ())
    lines = [HEADER]
    for heading, section in ((MEMORIES_HEADING, memories), (TURNS_HEADING, turns)):
        if section:
            lines += [heading, *(i.text for i in section)]
    text = "\n".join(lines)
    return Context(text, count_tokens(text), budget_tokens, (*memories, *turns))


def _flat(text: str) -> str:
    return " ".join(text.split())


def _key(text: str) -> str:
    return _flat(text).casefold()


def _day(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d")


def memory_line(m: Memory) -> str:
    """`- Allergic to peanuts (health, since 2026-03-01)`: `on` for events."""
    when = "on" if m.kind is Kind.EPISODIC else "since"
    dated = f"{when} {_day(m.valid_from or m.observed_at)}"
    about = dated if m.category is None else f"{m.category.value}, {dated}"
    return f"- {_flat(m.text)} ({about})"


def turn_line(t: Turn, words: frozenset[str], cap: int) -> str | None:
    """`- [2026-03-01, user] …` with the whole turn if the line fits in `cap` tokens, else
    the excerpt around the query's words that does; None if not even one word fits."""
    prefix = f"- [{_day(t.timestamp)}, {t.role}] " if t.timestamp else f"- [{t.role}] "
    whole = prefix + _flat(t.text)
    if count_tokens(whole) <= cap:
        return whole
    sentences = [s for s in (_flat(p) for p in _SENTENCE_END.split(t.text)) if s]
    if not sentences:
        return None
    scores = [_score(s, words) for s in sentences]
    best = max(range(len(sentences)), key=lambda i: (scores[i], -i))
    last = len(sentences) - 1
    span = _grow(sentences, scores, best, lambda lo, hi: prefix + _cut(sentences, lo, hi), cap)
    if span is not None:
        return prefix + _cut(sentences, *span)
    # Even the best sentence is too long: a window of its words, marked as cut both ways.
    units = sentences[best].split()
    unit_scores = [_score(u, words) for u in units]
    centre = max(range(len(units)), key=lambda i: (unit_scores[i], -i))

    def render(lo: int, hi: int) -> str:
        return prefix + _cut(units, lo, hi, before=best > 0, after=best < last)

    span = _grow(units, unit_scores, centre, render, cap)
    return None if span is None else render(*span)


def _score(text: str, words: frozenset[str]) -> int:
    return len(words.intersection(_WORD.findall(text.lower())))


def _cut(
    units: Sequence[str], lo: int, hi: int, *, before: bool = False, after: bool = False
) -> str:
    """`units[lo:hi]` joined, with `…` where something was left out."""
    head = [CUT] if lo > 0 or before else []
    tail = [CUT] if hi < len(units) or after else []
    return " ".join([*head, *units[lo:hi], *tail])


def _grow(
    units: Sequence[str],
    scores: Sequence[int],
    start: int,
    render: Callable[[int, int], str],
    cap: int,
) -> tuple[int, int] | None:
    """The window `units[lo:hi]` around `start`, grown one unit at a time while it renders
    within `cap`: the neighbour with more query words first, else the side with less taken
    so far (the window stays centred), else the next one."""
    if count_tokens(render(start, start + 1)) > cap:
        return None
    lo, hi = start, start + 1
    while True:
        options = []
        if hi < len(units):
            options.append((-scores[hi], hi - start, 0, lo, hi + 1))
        if lo > 0:
            options.append((-scores[lo - 1], start - lo + 1, 1, lo - 1, hi))
        for *_, new_lo, new_hi in sorted(options):
            if count_tokens(render(new_lo, new_hi)) <= cap:
                lo, hi = new_lo, new_hi
                break
        else:
            return lo, hi
