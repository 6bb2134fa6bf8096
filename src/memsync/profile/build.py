"""The profile: a derived view of who the user is, built from active semantic memories.

A profile holds a short bio, one summary per category and insights (likes, dislikes,
recurring topics). It is derived data: it can always be rebuilt from the memories, and a
rebuild given the previous profile only re-summarises what changed. Each section and the
bio carry a fingerprint of the memories they were written from; an unchanged fingerprint
(and the same summarizer) means the old text is reused, which matters when the summarizer
is a language model.

Offline, `RuleSummarizer` writes the texts: the best few statements, joined into sentences.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from memsync.codec import iso, parse_time
from memsync.errors import InvalidInput
from memsync.extract.lexicon import RELATIONS
from memsync.model import Category, Kind, Memory, Status
from memsync.profile.insights import (
    STOPWORDS,
    Insight,
    InsightKind,
    RuleSummarizer,
    find_insights,
    word_tokens,
)

__all__ = [
    "Insight",
    "InsightKind",
    "KeepPrivateLocal",
    "Profile",
    "RuleSummarizer",
    "Section",
    "Summarizer",
    "build_profile",
    "profile_from_json",
    "profile_to_json",
]

FORMAT_VERSION = 1
_E = TypeVar("_E", bound=StrEnum)
# Enough for a language model to choose from; the rule summarizer uses fewer.
_MAX_STATEMENTS = 12
_BIO_PER_CATEGORY = 2
_BIO_MAX_STATEMENTS = 6
# What a bio is about; health, finance and private facts stay out of the one-paragraph
# description an assistant is most likely to be shown.
BIO_CATEGORIES = (
    Category.IDENTITY,
    Category.CAREER,
    Category.RELATIONSHIPS,
    Category.INTERESTS,
    Category.LEARNING,
    Category.TRAVEL,
)
# Hedged statements ("Might be lactose intolerant") are too unsure to describe someone.
_BIO_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Section:
    """One category's summary and the memories it was written from."""

    category: Category
    summary: str
    memory_ids: tuple[str, ...]
    fingerprint: str


@dataclass(frozen=True)
class Profile:
    """Who the user is, as far as the vault says: bio, sections in category order, insights.

    `builder` names the summarizer that wrote the texts ("rules" offline);
    `bio_fingerprint` identifies the statements the bio was written from.
    """

    bio: str
    sections: tuple[Section, ...]
    insights: tuple[Insight, ...]
    memory_count: int
    built_at: datetime
    builder: str
    bio_fingerprint: str
    # The memories the derived bio was written from (what showing it discloses).
    bio_memory_ids: tuple[str, ...] = ()


@runtime_checkable
class Summarizer(Protocol):
    """Writes profile texts from statements, best first. `name` is recorded as the builder."""

    name: str

    def summarize(self, category: Category, statements: Sequence[str]) -> str:
        """A short summary of one category."""
        ...

    def bio(self, statements: Sequence[str]) -> str:
        """A bio of one to three sentences."""
        ...


class KeepPrivateLocal:
    """A summarizer that hands everything but the private category to `inner` (which may
    be a remote model); private statements are summarised by the offline rules."""

    def __init__(self, inner: Summarizer) -> None:
        self.inner = inner
        self.name = inner.name
        self._local = RuleSummarizer()

    def summarize(self, category: Category, statements: Sequence[str]) -> str:
        if category is Category.PRIVATE:
            return self._local.summarize(category, statements)
        return self.inner.summarize(category, statements)

    def bio(self, statements: Sequence[str]) -> str:
        return self.inner.bio(statements)


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _counts(m: Memory, now: datetime) -> bool:
    return (
        m.status is Status.ACTIVE
        and m.kind is Kind.SEMANTIC
        and (m.valid_until is None or _aware(m.valid_until) > now)
    )


def _fingerprint(memories: Iterable[Memory]) -> str:
    digest = hashlib.sha256()
    for mid, text in sorted((m.id, m.text) for m in memories):
        digest.update(f"{mid}\x1f{text}\x1e".encode())
    return digest.hexdigest()[:32]


# Statements that say what someone is rather than a passing detail: name, origin, home,
# age, occupation ("Is a nurse ..."), a named relation, a one-word trait ("Is vegan").
_CORE = re.compile(
    r"^(?:is (?:named|called|from|based in|living in|married|\d+ years old)\b|lives in\b|"
    r"grew up in\b|uses \S+ pronouns|(?:works|is working) (?:as|at|for|in)\b|"
    r"is an? (?!bit\b|total\b|little\b|lot\b)[\w-]+|has an? [\w-]+ (?:named|called)\b|"
    r"is [\w-]+$)",
    re.IGNORECASE,
)
_NEGATED = re.compile(r"\b(?:not|never|no)\b|n't\b", re.IGNORECASE)


def _score(m: Memory) -> float:
    text = m.text.strip()
    # "Partner is into climbing" describes the partner more than the user.
    other = text.split(" ", 1)[0].lower().removesuffix("'s") in RELATIONS
    core, negated = bool(_CORE.match(text)), bool(_NEGATED.search(text))
    return m.confidence + 0.2 * core - 0.1 * negated - 0.1 * other


def _ranked(memories: Iterable[Memory]) -> list[Memory]:
    """Best first: surer and more telling, then more recently observed, then longer."""
    return sorted(
        memories,
        key=lambda m: (-_score(m), -_aware(m.observed_at).timestamp(), -len(m.text), m.id),
    )


def _distinct(ranked: Sequence[Memory]) -> list[Memory]:
    """`ranked` without statements whose words are mostly inside a longer one's."""
    words = []
    for m in ranked:
        tokens = word_tokens(m.text)
        # The opening verb is shared by most statements, and stopwords by all.
        words.append({w for w in tokens[1:] if w not in STOPWORDS} or set(tokens))
    kept = []
    for i, m in enumerate(ranked):
        mine = words[i]
        if not any(
            j != i
            and len(mine & other) >= 0.75 * len(mine)
            and (len(other) > len(mine) or (other == mine and j < i))
            for j, other in enumerate(words)
        ):
            kept.append(m)
    return kept


def _bio_inputs(by_category: dict[Category, list[Memory]]) -> list[Memory]:
    chosen: list[Memory] = []
    for cat in BIO_CATEGORIES:
        sure = [m for m in by_category.get(cat, []) if m.confidence >= _BIO_MIN_CONFIDENCE]
        chosen.extend(sure[:_BIO_PER_CATEGORY])
    return chosen[:_BIO_MAX_STATEMENTS]


def build_profile(
    memories: Sequence[Memory],
    *,
    now: datetime,
    previous: Profile | None = None,
    summarizer: Summarizer | None = None,
) -> Profile:
    """The profile of the active, semantic, unexpired memories among `memories`.

    Sections and the bio whose fingerprint matches `previous` (built by the same
    summarizer) keep their text without calling the summarizer; insights are always
    recomputed. Memories without a category feed insights only.
    """
    now = _aware(now)
    writer: Summarizer = summarizer if summarizer is not None else RuleSummarizer()
    live = [m for m in memories if _counts(m, now)]
    reuse = previous is not None and previous.builder == writer.name
    old = {s.category: s for s in previous.sections} if previous is not None and reuse else {}
    by_category: dict[Category, list[Memory]] = {}
    sections = []
    for cat in Category:
        members = [m for m in live if m.category is cat]
        if not members:
            continue
        best = _distinct(_ranked(members))
        by_category[cat] = best
        fingerprint = _fingerprint(members)
        prior = old.get(cat)
        if prior is not None and prior.fingerprint == fingerprint:
            summary = prior.summary
        else:
            summary = writer.summarize(cat, [m.text for m in best[:_MAX_STATEMENTS]])
        ids = tuple(m.id for m in sorted(members, key=lambda m: (m.observed_at, m.id)))
        sections.append(Section(cat, summary, ids, fingerprint))
    bio_memories = _bio_inputs(by_category)
    bio_fingerprint = _fingerprint(bio_memories)
    if previous is not None and reuse and previous.bio_fingerprint == bio_fingerprint:
        bio = previous.bio
    else:
        bio = writer.bio([m.text for m in bio_memories]) if bio_memories else ""
    return Profile(
        bio=bio,
        sections=tuple(sections),
        insights=find_insights([m for m in live if m.category is not Category.PRIVATE]),
        memory_count=len(live),
        # Whole milliseconds, as the JSON form keeps them, so a round trip is exact.
        built_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
        builder=writer.name,
        bio_fingerprint=bio_fingerprint,
        bio_memory_ids=tuple(m.id for m in bio_memories) if bio else (),
    )


def profile_to_json(p: Profile) -> dict[str, Any]:
    """The JSON form of a profile (what `memsync profile --json` prints and caches)."""
    return {
        "version": FORMAT_VERSION,
        "bio": p.bio,
        "sections": [
            {
                "category": s.category.value,
                "summary": s.summary,
                "memory_ids": list(s.memory_ids),
                "fingerprint": s.fingerprint,
            }
            for s in p.sections
        ],
        "insights": [
            {
                "kind": i.kind.value,
                "text": i.text,
                "memory_ids": list(i.memory_ids),
                "weight": i.weight,
            }
            for i in p.insights
        ],
        "memory_count": p.memory_count,
        "built_at": iso(p.built_at),
        "builder": p.builder,
        "bio_fingerprint": p.bio_fingerprint,
        "bio_memory_ids": list(p.bio_memory_ids),
    }


def _field(d: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = d.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInput(
            f"{where}: '{key}' must be {'an integer' if kind is int else 'a ' + kind.__name__}"
        )
    return value


def _ids(d: dict[str, Any], where: str) -> tuple[str, ...]:
    ids = d.get("memory_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise InvalidInput(f"{where}: 'memory_ids' must be a list of ids")
    return tuple(ids)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: expected an object")
    return value


def _choice(cls: type[_E], value: object, where: str) -> _E:
    if isinstance(value, str) and value in {e.value for e in cls}:
        return cls(value)
    allowed = ", ".join(e.value for e in cls)
    raise InvalidInput(f"{where}: {value!r} is not one of: {allowed}")


def _list(d: dict[str, Any], key: str, where: str) -> list[Any]:
    value = d.get(key)
    if not isinstance(value, list):
        raise InvalidInput(f"{where}: '{key}' must be a list")
    return value


def profile_from_json(d: Any) -> Profile:
    """A profile from its JSON form; raises `InvalidInput` naming the bad field."""
    top = _object(d, "profile")
    if top.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise InvalidInput(f"profile: unsupported version {top.get('version')!r}")
    sections: list[Section] = []
    for n, raw in enumerate(_list(top, "sections", "profile")):
        where = f"profile.sections[{n}]"
        s = _object(raw, where)
        category = _choice(Category, s.get("category"), f"{where}.category")
        if any(prior.category is category for prior in sections):
            raise InvalidInput(f"{where}: category {category.value!r} appears twice")
        summary = _field(s, "summary", str, where)
        fingerprint = _field(s, "fingerprint", str, where)
        sections.append(Section(category, summary, _ids(s, where), fingerprint))
    insights: list[Insight] = []
    for n, raw in enumerate(_list(top, "insights", "profile")):
        where = f"profile.insights[{n}]"
        i = _object(raw, where)
        kind = _choice(InsightKind, i.get("kind"), f"{where}.kind")
        weight = _field(i, "weight", int, where)
        if weight < 0:
            raise InvalidInput(f"{where}: 'weight' must not be negative")
        insights.append(Insight(kind, _field(i, "text", str, where), _ids(i, where), weight))
    count = _field(top, "memory_count", int, "profile")
    if count < 0:
        raise InvalidInput("profile: 'memory_count' must not be negative")
    return Profile(
        bio=_field(top, "bio", str, "profile"),
        sections=tuple(sorted(sections, key=lambda s: list(Category).index(s.category))),
        insights=tuple(insights),
        memory_count=count,
        built_at=parse_time(top.get("built_at"), "profile.built_at"),
        builder=_field(top, "builder", str, "profile"),
        bio_fingerprint=_field(top, "bio_fingerprint", str, "profile"),
        # Absent from profiles cached before it existed.
        bio_memory_ids=_ids({"memory_ids": top.get("bio_memory_ids", [])}, "profile.bio"),
    )
