"""Reconciliation: one decision for each candidate, against the memories it resembles.

The offline rules, tried against each neighbour from the most similar down:

1. The same statement (same content words) -> NOOP.
2. The same *slot* with another value -> INVALIDATE (a person has one home city, one
   employer, one job title, one age, one partner, one diet at a time: "Lives in Porto"
   ends "Lives in Lisbon"); with a value that refines the old one ("Lisbon" -> "Lisbon,
   Portugal") -> UPDATE.
3. The same statement with the opposite polarity ("No longer eats meat" / "Eats meat") or
   the opposite sentiment ("Hates coffee" / "Loves coffee") -> INVALIDATE.
4. Two episodic memories of the same thing: the same date -> NOOP; the old one a plan
   still ahead -> UPDATE (the plan moved); a past event, or a plan whose date passed,
   seen again on another day -> PROMOTE (a recurring thing becomes a lasting, semantic
   memory).
5. One statement's content words contain the other's: the candidate says less -> NOOP,
   says more -> UPDATE. Only a number changed ("Has two kids" -> "Has three kids") ->
   UPDATE.
6. Anything else that is close (cosine >= `AMBIGUOUS` or half the content words shared)
   is a hard case: the configured judge (an LLM) decides; with none, ADD.

A candidate that is older than the memory it conflicts with (an old export imported
after newer facts) never replaces it: it is added as already ended (`Plan.stale`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

from memsync.extract.base import Candidate
from memsync.extract.changes import ended
from memsync.extract.dates import find_times
from memsync.model import Category, Kind, Memory
from memsync.reconcile.decision import Decision

__all__ = ["AMBIGUOUS", "Judge", "Neighbour", "Plan", "decide", "strip_dates"]

AMBIGUOUS = 0.80  # cosine above which an undecided neighbour goes to the judge
_OVERLAP = 0.5  # ... or this share of content words in common

_STOP = frozenset(
    """a an the to of in on at for with and or is are was were be been being has have had
    their them they themselves it its that this these those very really now currently also
    just named called some my who which as by from into about""".split()
)
_NUMBERS = frozenset("zero one two three four five six seven eight nine ten eleven twelve".split())
_WORD = re.compile(r"[\w']+")
_NEGATION = re.compile(
    r"^(?:(?:does|do|did|is|was|has|have)\s+not|doesn't|don't|isn't|hasn't|no\s+longer|"
    r"is\s+no\s+longer|never|stopped|has\s+stopped|quit|has\s+quit|gave\s+up(?:\s+on)?|"
    r"has\s+given\s+up(?:\s+on)?)\s+",
    re.IGNORECASE,
)
# The lasting facts of a relation or a pet, which an ending names (`changes.ended`).
_PET = r"(?:dog|cat|puppy|kitten|rabbit|hamster|parrot|horse|tortoise|beagle|terrier|tabby)"
_HAS_NAMED = re.compile(
    r"^(?i:has\s+an?\s+(?:[\w-]+\s+){0,3}?(?:partner|girlfriend|boyfriend|wife|husband|spouse|"
    r"fianc[ée]e?|" + _PET + r")\s+named|is\s+(?:dating|married\s+to|engaged\s+to))\s+"
    r"(?P<name>[A-Z]\w+)"
)


def _ended_by(c: Candidate, n: Memory) -> bool:
    """Whether `c` is an event that ends the relation or pet `n` is about."""
    f = _HAS_NAMED.match(n.text)
    return f is not None and ended(c.text) == f.group("name")


# How a statement says something stopped (not merely "does not"): it may end a fact
# stated with more detail.
_ENDED = re.compile(r"^(?:no\s+longer|stopped|has\s+stopped|quit|gave\s+up)\s+", re.I)
_ANYMORE = re.compile(r"\s+(?:any\s?more|any\s+longer)\s*$", re.IGNORECASE)
_LIKE = re.compile(
    r"^(?:really\s+)?(?:loves|likes|enjoys|adores|is\s+into|is\s+a\s+(?:big\s+)?fan\s+of|"
    r"is\s+fond\s+of)\s+(?P<o>.+)$",
    re.IGNORECASE,
)
_DISLIKE = re.compile(
    r"^(?:really\s+)?(?:hates|dislikes|detests|can't\s+stand|cannot\s+stand|"
    r"does\s+not\s+like|doesn't\s+like|is\s+not\s+a\s+fan\s+of)\s+(?P<o>.+)$",
    re.IGNORECASE,
)
_TAIL = r"(?:\s*,|\s+(?:since|for|with|and|as|at|in|near|who|where|which)\b|$)"
_SLOTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        (
            "residence",
            r"^(?:now\s+)?(?:lives|is\s+living|is\s+based|resides|has\s+moved|moved|"
            r"relocated)\s+(?:in|to)\s+(?P<v>.+?)(?=\s+(?:since|for|with|and|near|now)\b|$)",
        ),
        (
            "employer",
            r"^(?:(?:works|is\s+working)\s+(?:at|for)|started\s+(?:a\s+new\s+job|working)\s+"
            r"(?:at|for)|got\s+a\s+(?:new\s+)?job\s+(?:at|with)|joined)\s+(?P<v>.+?)" + _TAIL,
        ),
        (
            "job",
            r"^(?:(?:works|is\s+working)\s+as|got\s+a\s+(?:new\s+)?job\s+as|started\s+"
            r"working\s+as)\s+(?:an?\s+)?(?P<v>.+?)(?=\s*,|\s+(?:at|for|in|since)\b|$)",
        ),
        ("age", r"^is\s+(?P<v>\d{1,3})(?:\s+years?\s+old)?$"),
        ("name", r"^(?:name\s+is|is\s+called|goes\s+by|is\s+named)\s+(?P<v>.+)$"),
        (
            "partner",
            r"^(?:is\s+married\s+to|is\s+dating|is\s+engaged\s+to|partner\s+is|has\s+an?\s+"
            r"(?:partner|girlfriend|boyfriend|wife|husband|spouse)\s+named)\s+(?P<v>\w+)",
        ),
        ("pronouns", r"^(?:uses\s+|pronouns\s+are\s+)(?P<v>\w+/\w+)"),
        ("favourite", r"^favou?rite\s+(?P<k>\w+(?:\s+\w+)?)\s+is\s+(?P<v>.+)$"),
        ("diet", r"^is\s+(?:an?\s+)?(?P<v>vegetarian|vegan|pescatarian|omnivore)\b"),
    )
)
# "Is a nurse at ..." names a job only when the extractor filed it under career.
_IS_A_JOB = re.compile(r"^is\s+(?:now\s+)?an?\s+(?P<v>.+?)(?=\s*,|\s+(?:at|for|in)\b|$)", re.I)


@dataclass(frozen=True)
class Neighbour:
    """An active memory similar to the candidate, with the cosine of their embeddings."""

    memory: Memory
    similarity: float


@dataclass(frozen=True)
class Plan:
    """The decision for one candidate.

    `target` is the existing memory the decision acts on (None for ADD). `text` and
    `kind` are what the new memory gets when they differ from the candidate's (PROMOTE).
    `ends_at` is when the invalidated memory stopped holding. `stale` marks an ADD of a
    fact that a newer memory (`target`) already replaced: it is stored as already ended.
    """

    decision: Decision
    target: Memory | None = None
    reason: str = ""
    text: str | None = None
    kind: Kind | None = None
    ends_at: datetime | None = None
    stale: bool = False


class Verdict(Protocol):
    """A judge's answer: the decision and, unless ADD, the id of the memory it acts on."""

    @property
    def decision(self) -> Decision: ...
    @property
    def target(self) -> str | None: ...
    @property
    def reason(self) -> str: ...


class Judge(Protocol):
    """Decides the hard cases (an LLM); `memsync.llm.LLMJudge` is one."""

    name: str

    def judge(self, candidate: Candidate, neighbours: Sequence[Memory]) -> Verdict: ...


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


# Each candidate is compared with a dozen neighbours, mostly the same memories again and
# again: the text analyses below are pure, so they are cached rather than redone per pair.
@lru_cache(maxsize=8192)
def words(text: str) -> frozenset[str]:
    """The content words of a statement, lower-cased and lightly stemmed."""
    return frozenset(
        _stem(w) for w in _WORD.findall(text.lower().replace("\u2019", "'")) if w not in _STOP
    )


@lru_cache(maxsize=8192)
def strip_dates(text: str, today: datetime) -> str:
    """`text` without its time expressions ("on 13 March 2026", "last weekend")."""
    times = find_times(text, today.date())
    out, pos = [], 0
    for t in sorted(times, key=lambda t: t.start):
        out.append(text[pos : t.start])
        pos = t.end
    out.append(text[pos:])
    stripped = re.sub(r"\s+\d{4}\b", "", "".join(out)) if times else text
    return re.sub(r"\s{2,}", " ", stripped).strip(" ,.")


_ADVERBS = re.compile(r"^(?:(?:actually|just|recently|finally|now|also|currently)\s+)+", re.I)


@lru_cache(maxsize=8192)
def _slot(text: str, category: Category | None) -> tuple[str, frozenset[str]] | None:
    """(slot name, value words) when the statement fills an exclusive slot."""
    text = _ADVERBS.sub("", text.strip().rstrip("."))
    for name, pattern in _SLOTS:
        m = pattern.match(text)
        if m:
            key = name + (":" + m.group("k").lower() if "k" in m.groupdict() else "")
            return key, words(m.group("v"))
    if category is Category.CAREER:
        m = _IS_A_JOB.match(text)
        if m:
            return "job", words(m.group("v"))
    return None


@lru_cache(maxsize=8192)
def _polarity(text: str) -> tuple[bool, frozenset[str]]:
    """(negated, content words of the statement without its negation)."""
    core = _ANYMORE.sub("", text.strip().rstrip("."))
    m = _NEGATION.match(core)
    return (m is not None), words(core[m.end() :] if m else core)


@lru_cache(maxsize=8192)
def _sentiment(text: str) -> tuple[int, frozenset[str]] | None:
    text = text.strip().rstrip(".")
    if m := _DISLIKE.match(text):
        return -1, words(m.group("o"))
    if m := _LIKE.match(text):
        return 1, words(m.group("o"))
    return None


def _only_number_changed(a: frozenset[str], b: frozenset[str]) -> bool:
    gone, new = a - b, b - a
    return (
        len(gone) == 1 == len(new)
        and len(a & b) >= 1
        and all(w.isdigit() or w in _NUMBERS for w in gone | new)
    )


def _day(m: Memory) -> str:
    return m.observed_at.date().isoformat()


def _sources(m: Memory) -> set[str]:
    return {p.source_id for p in m.provenance if p.source_id}


def _supersede_or_stale(
    c: Candidate, old: Memory, decision: Decision, reason: str, observed: datetime
) -> Plan:
    """`decision` against `old`, unless the candidate is the older of the two."""
    if observed < old.observed_at:
        if decision is Decision.UPDATE:
            return Plan(Decision.NOOP, old, reason + "; the vault's version is newer")
        return Plan(Decision.ADD, old, reason + "; already replaced by a newer memory", stale=True)
    ends = c.valid_from or observed
    return Plan(decision, old, reason, ends_at=ends if decision is Decision.INVALIDATE else None)


def _slot_change(c: Candidate, n: Memory, observed: datetime) -> Plan | None:
    """Two statements about the same exclusive slot. An event that changes a slot
    ("Moved to Porto in February 2026") counts as a lasting statement of it."""
    if n.kind is not Kind.SEMANTIC:
        return None
    event = c.kind is Kind.EPISODIC
    cs = _slot(strip_dates(c.text, observed) if event else c.text, c.category)
    ns = _slot(n.text, n.category)
    if not (cs and ns and cs[0] == ns[0]):
        return None
    if cs[1] == ns[1] or cs[1] < ns[1]:
        return Plan(Decision.NOOP, n, f"same {cs[0]}")
    if ns[1] < cs[1]:
        return _supersede_or_stale(c, n, Decision.UPDATE, f"more detail on {cs[0]}", observed)
    plan = _supersede_or_stale(c, n, Decision.INVALIDATE, f"{cs[0]} changed", observed)
    return replace(plan, kind=Kind.SEMANTIC) if event else plan


def _rules(c: Candidate, n: Memory, observed: datetime) -> Plan | None:
    """The decision the offline rules reach for the pair, or None when they cannot tell."""
    cw, nw = words(c.text), words(n.text)
    if cw == nw:
        return Plan(Decision.NOOP, n, "same statement")
    both_semantic = c.kind is Kind.SEMANTIC and n.kind is Kind.SEMANTIC
    plan = _slot_change(c, n, observed)
    if plan is not None:
        return plan
    (c_neg, c_core), (n_neg, n_core) = _polarity(c.text), _polarity(n.text)
    if c_neg != n_neg and c_core and c_core == n_core:
        return _supersede_or_stale(c, n, Decision.INVALIDATE, "opposite statement", observed)
    if (
        _ENDED.match(c.text)
        and not n_neg
        and n.kind is Kind.SEMANTIC
        and len(c_core) >= 2
        and c_core < n_core
    ):
        # "No longer works at Acme" ends "Works as a designer at Acme": what stopped is
        # all there, with detail the ending does not repeat.
        return _supersede_or_stale(c, n, Decision.INVALIDATE, "no longer so", observed)
    c_feel, n_feel = _sentiment(c.text), _sentiment(n.text)
    if c_feel and n_feel and c_feel[1] == n_feel[1] and c_feel[1]:
        if c_feel[0] == n_feel[0]:
            return Plan(Decision.NOOP, n, "same preference")
        return _supersede_or_stale(c, n, Decision.INVALIDATE, "preference reversed", observed)
    if c.kind is Kind.EPISODIC and n.kind is Kind.EPISODIC:
        plan = _episodes(c, n, observed)
        if plan is not None:
            return plan
    if cw and cw <= nw:
        return Plan(Decision.NOOP, n, "says nothing new")
    if nw and nw < cw:
        if c.kind is Kind.EPISODIC and n.kind is Kind.SEMANTIC:
            return None  # an event involving a lasting fact is not a new version of it
        return _supersede_or_stale(c, n, Decision.UPDATE, "adds detail", observed)
    if both_semantic and _only_number_changed(nw, cw):
        return _supersede_or_stale(c, n, Decision.UPDATE, "number changed", observed)
    return None


def _unnamed(text: str) -> frozenset[str]:
    named = {w.lower() for w in _WORD.findall(text)[1:] if w[:1].isupper()}
    return frozenset(w for w in words(text) if w not in named)


def _same_fact(c: Candidate, n: Memory, observed: datetime) -> bool:
    """Whether `c` and `n` state the same thing (the same slot, or mostly the same
    content), not merely mention the same person, place or date: the only case in which
    a judge's noop, update or invalidate may stand."""
    ct, nt = strip_dates(c.text, observed), strip_dates(n.text, n.observed_at)
    cs, ns = _slot(ct, c.category), _slot(nt, n.category)
    if cs and ns:
        return cs[0] == ns[0]
    if c.kind is not n.kind:
        return False  # a lasting fact and an event are one thing only through a slot
    # Names (people, places) are what merely mentioning shares: compare the rest.
    cw, nw = _unnamed(ct), _unnamed(nt)
    shared = len(cw & nw) / max(1, min(len(cw), len(nw)))
    return bool(cw & nw) and shared >= 0.5


def _episodes(c: Candidate, n: Memory, observed: datetime) -> Plan | None:
    core_c = words(strip_dates(c.text, observed))
    core_n = words(strip_dates(n.text, n.observed_at))
    if not core_c or core_c != core_n:
        return None
    if c.valid_until == n.valid_until or words(c.text) == words(n.text):
        return Plan(Decision.NOOP, n, "same event")
    # A plan starts when it is observed; a past event starts on its own (earlier) day.
    planned = n.valid_from is None or n.valid_from >= n.observed_at - timedelta(hours=1)
    if planned and n.valid_until is not None and n.valid_until > observed:
        return Plan(Decision.UPDATE, n, "the plan changed")
    if _day(n) != observed.date().isoformat():
        return Plan(
            Decision.PROMOTE,
            n,
            "recurs across sessions",
            text=strip_dates(n.text, n.observed_at),
            kind=Kind.SEMANTIC,
        )
    return None


def decide(
    candidate: Candidate,
    neighbours: Sequence[Neighbour],
    *,
    judge: Judge | None = None,
    observed_at: datetime,
) -> Plan:
    """The decision for `candidate` given its most similar active memories.

    `observed_at` is when the candidate was stated (its message's time).
    """
    ranked = sorted(neighbours, key=lambda nb: -nb.similarity)
    for nb in ranked:
        # An ending ("Broke up with Hugo") ends the relation, whatever else it resembles.
        if nb.memory.kind is Kind.SEMANTIC and _ended_by(candidate, nb.memory):
            return _supersede_or_stale(
                candidate, nb.memory, Decision.INVALIDATE, "it ended", observed_at
            )
    hard: list[Memory] = []
    cw = words(candidate.text)
    for nb in ranked:
        plan = _rules(candidate, nb.memory, observed_at)
        if plan is not None:
            if (
                plan.decision is Decision.NOOP
                and candidate.kind is Kind.SEMANTIC
                and nb.memory.kind is Kind.EPISODIC
            ):
                same = words(strip_dates(candidate.text, observed_at)) == words(
                    strip_dates(nb.memory.text, nb.memory.observed_at)
                )
                if not same:
                    # A lasting fact an event mentions ("Has a brother named Marco" in a
                    # trip with him) is another fact: the event stays, and so does it.
                    continue
                # A lasting statement of something held as an event: it lasts.
                return Plan(Decision.PROMOTE, nb.memory, "stated as lasting", kind=Kind.SEMANTIC)
            return plan
        nw = words(nb.memory.text)
        shared = len(cw & nw) / max(1, min(len(cw), len(nw)))
        if nb.similarity >= AMBIGUOUS or shared >= _OVERLAP:
            hard.append(nb.memory)
    # The judge may be a remote model: private memories are never shown to it.
    hard = [m for m in hard if m.category is not Category.PRIVATE]
    if hard and judge is not None and candidate.category is not Category.PRIVATE:
        verdict = judge.judge(candidate, hard)
        target = next((m for m in hard if m.id == verdict.target), None)
        reason = f"{judge.name}: {verdict.reason}".strip()
        if verdict.decision is Decision.ADD or target is None:
            return Plan(Decision.ADD, None, reason)
        if not _same_fact(candidate, target, observed_at):
            # A model may be taken in by a shared name, place or date: nothing is
            # replaced or dropped for a memory that does not state the same thing.
            return Plan(Decision.ADD, None, f"{reason} (not the same fact: kept both)")
        if verdict.decision is Decision.NOOP:
            return Plan(Decision.NOOP, target, reason)
        if verdict.decision in (Decision.UPDATE, Decision.INVALIDATE):
            return _supersede_or_stale(candidate, target, verdict.decision, reason, observed_at)
    return Plan(
        Decision.ADD, None, "new" if not hard else "new (similar memories say something else)"
    )
