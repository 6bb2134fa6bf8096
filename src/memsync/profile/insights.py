"""The profile's word rules: insights, and the offline summarizer's prose.

Insights are stated likes and dislikes and topics that keep coming up. Memory texts are
subjectless third-person statements ("Loves climbing", "Cannot stand mushrooms"), so a like
is a statement whose predicate is a liking verb; "Partner is into climbing" is about the
partner and does not count. `RuleSummarizer` joins statements into sentences. Everything
here is deterministic and cheap enough to recompute on every profile build.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from memsync.extract.lexicon import IRREGULAR_PAST, RELATIONS, third_person
from memsync.model import Category, Memory

__all__ = [
    "Insight",
    "InsightKind",
    "RuleSummarizer",
    "find_insights",
    "preference_of",
    "word_tokens",
]

MAX_TOPICS = 8
BIO_MAX_CHARS = 400
SENTENCE_CHARS = 160


class InsightKind(StrEnum):
    RECURRING_TOPIC = "recurring_topic"
    LIKE = "like"
    DISLIKE = "dislike"


@dataclass(frozen=True)
class Insight:
    """Something the profile noticed across memories.

    Attributes:
        kind: a recurring topic, a like or a dislike.
        text: the topic ("board games") or the liked/disliked thing ("long paragraphs").
        memory_ids: the memories that support it, oldest observation first.
        weight: how many memories support it.
    """

    kind: InsightKind
    text: str
    memory_ids: tuple[str, ...]
    weight: int


_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")

STOPWORDS = frozenset(
    """a about after again all also am an and any are as at be because been before being
    both but by can cannot could did do does doing during each for from had has have having
    he her him his how i if in into is it its just me more most my no nor not of off on once
    only or other our out over own same she should so some such than that the their them
    themselves they this those through to too under until up very was we were what when
    where which while who whom why will with would you your""".split()
)
# Words that occur everywhere in memory texts and say nothing about what the user cares
# about; "work" is here because "works from home" and "works night shifts" would
# otherwise make it the top topic of almost every vault.
GENERIC = frozenset(
    """thing things stuff time times work works working really way lot lots kind bit sort
    day days week weeks month months year years old new good bad big small little much many
    well still now currently usually mostly always never often sometimes every everything
    something anything someone people like want wants need needs get gets got make makes made
    go goes going went use uses used try tries trying think thinking plan planning start
    starting started one two three first second last next part side end able sure pretty
    quite fairly lately yet assistant let lets keep keeps done whole per around almost named
    called high low full real best""".split()
)

_ADVERBS = r"(?:(?:really|also|still|just|absolutely|genuinely|totally|secretly|especially|"
_ADVERBS += r"generally|usually|mostly|always|truly|kind\s+of|kinda|quite)\s+)*"
_LIKE_VERBS = (
    r"loves?|loved|likes|liked|enjoys|enjoyed|adores|prefers|would\s+prefer|"
    r"is\s+(?:really\s+)?into|is\s+(?:a\s+)?(?:big\s+|huge\s+)?fan\s+of|is\s+obsessed\s+with|"
    r"is\s+passionate\s+about|has\s+(?:always\s+)?(?:loved|liked|enjoyed)"
)
_DISLIKE_VERBS = (
    r"hates|hated|dislikes|detests|avoids|can(?:no|')t\s+stand|can(?:no|')t\s+bear|"
    r"does\s+not\s+(?:like|enjoy)|doesn't\s+(?:like|enjoy)|is\s+not\s+(?:a\s+)?fan\s+of|"
    r"is\s+not\s+into|has\s+never\s+(?:liked|enjoyed)"
)
# A liking verb opening the statement, or opening a second subjectless clause
# ("Lives in Porto and loves climbing"). The verb "like" is never matched on its own:
# "Works like a developer" and "Drinks like 4 coffees" use it as a preposition.
_PREFERENCE = re.compile(
    rf"(?:^|(?:,\s*|\s)(?:and|but)\s+){_ADVERBS}(?:(?P<like>{_LIKE_VERBS})|"
    rf"(?P<dislike>{_DISLIKE_VERBS}))\s+(?P<obj>.+)",
    re.IGNORECASE,
)
# "prefers not to fly" states what is avoided through a verb, not a thing disliked.
_NOT_A_THING = re.compile(r"^(?:not\b|to\s+not\b|it\b|them\b|that\b|this\b|these\b|those\b)")
_TRAILING = re.compile(
    r"(?:\s+(?:lately|these\s+days|at\s+the\s+moment|right\s+now|a\s+lot|so\s+much|"
    r"very\s+much|too|anymore|any\s+more|every\s+time|in\s+general))+$",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^(?:(?:really|very|so|absolutely|all|any)\s+)+", re.IGNORECASE)


def word_tokens(text: str) -> list[str]:
    """The lower-cased words of `text`, apostrophes kept inside words ("children's")."""
    return [w.lower().replace("\u2019", "'") for w in _WORD.findall(text)]


def find_insights(memories: Sequence[Memory]) -> tuple[Insight, ...]:
    """Likes, then dislikes, then recurring topics found in `memories` (taken as given)."""
    ordered = sorted(memories, key=lambda m: (m.observed_at, m.id))
    return (
        _preferences(ordered, InsightKind.LIKE)
        + _preferences(ordered, InsightKind.DISLIKE)
        + _topics(ordered)
    )


def preference_of(text: str) -> tuple[InsightKind, str] | None:
    """(LIKE or DISLIKE, the object phrase) when `text` states a like or dislike."""
    m = _PREFERENCE.search(text.strip().rstrip(".!"))
    if m is None:
        return None
    # Only the first clause of the object: "spicy food, the spicier the better".
    obj = re.split(r"\s*[,;:(]|\s+(?:but|because|since|although)\s+", m.group("obj"))[0]
    obj = _LEADING.sub("", _TRAILING.sub("", obj.strip())).strip()
    if not obj or _NOT_A_THING.match(obj.lower()):
        return None
    return (InsightKind.LIKE if m.group("like") else InsightKind.DISLIKE), obj


def _preferences(memories: Sequence[Memory], kind: InsightKind) -> tuple[Insight, ...]:
    found: dict[str, tuple[str, list[str]]] = {}
    for m in memories:
        pref = preference_of(m.text)
        if pref is None or pref[0] is not kind:
            continue
        key = " ".join(word_tokens(pref[1]))
        ids = found.get(key, ("", []))[1]
        ids.append(m.id)
        # The latest wording names it: people refine how they put things.
        found[key] = (pref[1], ids)
    items = [
        Insight(kind=kind, text=text, memory_ids=tuple(ids), weight=len(ids))
        for text, ids in found.values()
    ]
    return tuple(sorted(items, key=lambda i: (-i.weight, i.text.lower())))


def _singular(word: str) -> str:
    if len(word) <= 3 or "'" in word or word.endswith(("ss", "us", "is", "ous")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def _terms(text: str) -> Iterable[tuple[str, str]]:
    """(counting key, surface form) of each content word and adjacent content-word pair."""
    prev: tuple[str, str] | None = None
    for n, raw in enumerate(_WORD.findall(text.replace("\u2019", "'"))):
        # Statements are sentence-cased: only a capital inside one marks a proper noun.
        surface = (raw.lower() if n == 0 else raw).removesuffix("'s")
        word = surface.lower()
        key = _singular(word)
        if (
            word in STOPWORDS
            or word in _OPENERS
            or word in GENERIC
            or key in GENERIC
            or len(word) < 3
            or any(c.isdigit() for c in word)
        ):
            prev = None
            continue
        yield key, surface
        if prev is not None:
            yield f"{prev[0]} {key}", f"{prev[1]} {surface}"
        prev = (key, surface)


def _topics(memories: Sequence[Memory]) -> tuple[Insight, ...]:
    ids: dict[str, list[str]] = {}
    forms: dict[str, Counter[str]] = {}
    for m in memories:
        seen: set[str] = set()
        for key, surface in _terms(m.text):
            forms.setdefault(key, Counter())[surface] += 1
            if key not in seen:
                seen.add(key)
                ids.setdefault(key, []).append(m.id)
    recurring = {k: v for k, v in ids.items() if len(v) >= 2}
    # A word that only ever appears inside a recurring pair adds nothing to the pair.
    for pair in [k for k in recurring if " " in k]:
        for part in pair.split():
            if part in recurring and len(recurring[part]) <= len(recurring[pair]):
                del recurring[part]
    ranked = sorted(recurring, key=lambda k: (-len(recurring[k]), -k.count(" "), k))
    return tuple(
        Insight(
            kind=InsightKind.RECURRING_TOPIC,
            # The most used surface form; ties go to the shorter, then alphabetical.
            text=min(forms[k].items(), key=lambda f: (-f[1], len(f[0]), f[0]))[0],
            memory_ids=tuple(recurring[k]),
            weight=len(recurring[k]),
        )
        for k in ranked[:MAX_TOPICS]
    )


# First words that may be lower-cased inside a sentence: the verbs and adverbs subjectless
# statements open with. Anything else may be a proper noun ("Rust is just for fun") and
# starts a sentence of its own instead.
_VERBS = """be have do love like enjoy hate dislike prefer adore avoid want need work live
use play run take drink eat make keep write read teach learn study speak spend earn save own
manage lead get go start stop grow move become lift practise practice publish outline wake
sleep cook bake travel visit try wish hope plan think know feel find give see watch listen
collect volunteer speak walk cycle climb swim hike paint draw build code sing care help
believe follow support share rent drive ride fly commute struggle miss value""".split()
_OPENERS = frozenset(
    [third_person(v).lower() for v in _VERBS]
    + list(IRREGULAR_PAST)
    + """is are was were has had does did can cannot can't could would will should might may
    must used also always never usually often sometimes still just currently mostly really
    recently rarely generally typically only already once now""".split()
)


def _clause(statement: str) -> tuple[str, bool, bool]:
    """A statement ready to join: (text without end punctuation, may open mid-sentence,
    names its own subject)."""
    text = statement.strip().rstrip(".!;,").strip()
    first, _, rest = text.partition(" ")
    word = first.lower()
    if word in _OPENERS:
        return word + (" " + rest if rest else ""), True, False
    if word.removesuffix("'s") in RELATIONS:
        # "Wife is an accountant" reads as a note; "their wife is an accountant" as prose.
        return "their " + word + (" " + rest if rest else ""), True, True
    return text, False, True


def _sentence(clauses: Sequence[str]) -> str:
    # Clauses with commas or "and" of their own would blur into a comma list.
    if len(clauses) > 1 and any("," in c or " and " in c for c in clauses):
        body = "; ".join(clauses)
    elif len(clauses) > 1:
        body = ", ".join(clauses[:-1]) + " and " + clauses[-1]
    else:
        body = clauses[0]
    return body[0].upper() + body[1:] + "."


def _prose(statements: Iterable[str], per_sentence: int) -> list[str]:
    """Sentences of up to `per_sentence` clauses and about `SENTENCE_CHARS`, in order."""
    groups: list[list[str]] = []
    closed = True
    for statement in statements:
        text, joinable, own_subject = _clause(statement)
        if not text:
            continue
        if (
            not closed
            and joinable
            and len(groups[-1]) < per_sentence
            and sum(len(c) + 2 for c in groups[-1]) + len(text) <= SENTENCE_CHARS
        ):
            groups[-1].append(text)
        else:
            groups.append([text])
        # After "their wife is ...", "and works nights" would be about the wife.
        closed = own_subject
    return [_sentence(g) for g in groups]


class RuleSummarizer:
    """The offline summarizer: the first few statements (pass them best first) as prose."""

    name: str = "rules"

    def __init__(self, *, max_statements: int = 5) -> None:
        self.max_statements = max_statements

    def summarize(self, category: Category, statements: Sequence[str]) -> str:
        """Up to `max_statements` statements as sentences of up to three clauses."""
        return " ".join(_prose(statements[: self.max_statements], 3))

    def bio(self, statements: Sequence[str]) -> str:
        """Up to three sentences of two clauses each, at most `BIO_MAX_CHARS` long."""
        sentences = _prose(statements, 2)[:3]
        while len(sentences) > 1 and len(" ".join(sentences)) > BIO_MAX_CHARS:
            sentences.pop()
        text = " ".join(sentences)
        if len(text) > BIO_MAX_CHARS:
            text = text[: BIO_MAX_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;") + "…"
        return text
