"""Kind, category and chatter: deciding what a rewritten statement is, and whether to keep it.

Kind: episodic when the statement names a present or future time, a past event, a
time-bound activity ("is moving", "is flying") or an event noun (appointment, interview,
trip, deadline, ...); semantic for states, habits and preferences. Habit markers
("every", "usually", "always") win over event cues; preferences stay semantic even in the
past tense ("Loved Hyperion"), and so do lasting facts ("was diagnosed with", "grew up").

Category: keyword lexicons (`lexicon.category_scores`) plus a few structural hints (an
instruction leans to productivity, a statement about a relation to relationships, a name
or age to identity, "going to <Place>" to travel); ties go to the more specific category.
A sentence the user marks as private ("between us", "secretly") makes its memories private.

Chatter: reactions to the conversation ("Is nervous", "Likes the second one", "Needs help
with ...") are not memories.
"""

from __future__ import annotations

import re
from datetime import date

from memsync.extract.lexicon import CATEGORY_ORDER, category_scores, word_set
from memsync.extract.statement import Statement
from memsync.extract.timeexpr import TimeExpr
from memsync.model import Category, Kind

__all__ = ["PRIVATE", "category_of", "is_chatter", "kind_of"]

_RE = re.IGNORECASE
_HABITUAL = re.compile(
    r"\b(?:every|usually|always|never|often|most (?:days|weeks|mornings|evenings|nights)|"
    r"daily|weekly|monthly|each|per|a (?:day|week|month|year)|twice|\d+x|on weekends|"
    r"at night|in the mornings|in the evenings|tend to|tends to|generally|typically|"
    r"mostly|normally)\b",
    _RE,
)
_LASTING_PAST = re.compile(
    r"\b(?:diagnosed with|born|grew up|raised|adopted|married|graduated|has been|have been|"
    r"since)\b",
    _RE,
)
_TRANSIENT = word_set(
    """moving flying going travelling traveling visiting hosting starting expecting
    interviewing leaving attending applying booking planning preparing organizing
    organising getting giving taking doing looking job-hunting hunting fasting heading
    coming returning renovating packing waiting recovering"""
)
_EVENT = re.compile(
    r"\b(?:appointment|interview|trip|flight|wedding|deadline|exam|surgery|party|"
    r"conference|court date|due|vacation|holiday|concert|match|race|final round|"
    r"plans? to|going to|about to|on call)\b",
    _RE,
)
_PAST_LIKING = word_set("loved liked hated enjoyed disliked adored")
# Requests and reactions: what the user says about the conversation, not their life.
_CONVERSATIONAL = [
    re.compile(p, _RE)
    for p in (
        r"^(?:(?:also|really|just|still)\s+)?(?:needs?|wants?|would like|would love|"
        r"is (?:also |just |really |now )?looking for|could use)\s+(?:some\s+|a\s+|an\s+"
        r"|the assistant's\s+|quick\s+|little\s+|more\s+|good\s+|new\s+)*(?:[\w-]+\s+){0,2}?"
        r"(?:help|advice|tips?|ideas?|recommendations?|suggestions?|recipes?|gift idea|"
        r"checklist|list|draft|review|feedback|hand|opinion|the assistant|to know|to ask|"
        r"something|inspiration)\b",
        r"^(?:wants|needs) (?:this|that|it|them)\b",
        r"^(?:has|had)\s+(?:a|one|another|some|a quick|a few|two)\s+(?:quick\s+)?"
        r"(?:question|questions|query|request)\b",
        r"^(?:was wondering|wonders|is wondering|is curious|is asking|asks|is here|is back|"
        r"thought|thinks|guesses|means|sees|agrees|disagrees|understands|hopes|bets|"
        r"is not sure|forgot|is just asking|is just curious|is glad|is sorry|question is|"
        r"point is|problem is|issue is|is fine with it|is ok|is okay|is good|is done)\b",
        r"^(?:likes?|loves?|hates?|prefers?|enjoys?)\s+(?:the\s+)?(?:it|that|this|those|these|"
        r"(?:first|second|third|last|other|latter|former)(?:\s+(?:one|option|idea|version))?"
        r"|idea)\b",
    )
]
# Statements with no content of their own: a passing feeling, or a verb and a pronoun.
_EMPTY = [
    re.compile(p, _RE)
    for p in (
        r"^(?:is|was|am|feels?)\s+(?:not\s+)?(?:(?:so|very|really|kind of|sort of|a bit|super|"
        r"totally|just|pretty|quite|a little|also|now|always)\s+)*(?:nervous|overwhelmed|"
        r"stressed|excited|worried|confused|scared|anxious|lost|stuck|bored|annoyed|"
        r"frustrated|sorry|glad|happy|thankful|grateful|curious|here|fine|ok|okay|good|"
        r"great|done|ready|dead|exhausted|dreading it|a nervous wreck)"
        r"(?:\s+(?:about|with|of|by)\s+(?:it|this|that|things))?$",
        r"^\w+(?:\s+\w+)?\s+(?:it|that|this|them|one|so)$",
        r"\b(?:this|that) is long\b|\bmy actual question\b|\bcode below\b|"
        r"\bthe same (?:thing|one)\b",
    )
]
# What a relation thinks or says about the conversation is not a fact about them.
_RELATION_META = re.compile(
    r"^(?:thinks|says|said|believes|feels|wants (?:them|the assistant) to|agrees|disagrees)\b"
    r"|^(?:would|will) (?:love|like|want) (?:that|it|this|the same)\b",
    _RE,
)
_PREFERENCE = re.compile(
    r"^(?:wants|prefers|would prefer|would like|likes|loves|hates|dislikes|does not want|"
    r"would rather|does not like|cannot stand)\b",
    _RE,
)
PRIVATE = re.compile(
    r"\b(?:between us|between you and me|confidential|keep (?:this|it) (?:private|secret)|"
    r"(?:don't|do not) tell anyone|this is private|off the record|secret(?:ly)?)\b",
    _RE,
)


def is_chatter(st: Statement) -> bool:
    """Whether `st` is about the conversation rather than the user's life."""
    if len(st.text.split()) < 2:
        return True
    if st.subject in {"self", "fragment", "possession"}:
        if "the assistant" in st.text and not _PREFERENCE.match(st.text):
            return True  # "Can see what the assistant means", "Told the assistant ..."
        return any(p.search(st.text) for p in (*_CONVERSATIONAL, *_EMPTY))
    if st.subject == "relation":
        return bool(_RELATION_META.search(st.predicate)) or any(
            p.search(st.predicate) for p in _EMPTY
        )
    return False


def kind_of(st: Statement, text: str, times: list[TimeExpr], today: date) -> Kind:
    if st.subject == "instruction":
        return Kind.SEMANTIC
    future = [t for t in times if t.relation(today) != "past"]
    habitual = bool(_HABITUAL.search(text))
    if habitual and not future:
        return Kind.SEMANTIC
    if future:
        return Kind.EPISODIC
    if _LASTING_PAST.search(text) or st.verb in _PAST_LIKING:
        return Kind.SEMANTIC
    if times and st.past:
        return Kind.EPISODIC
    if st.past:
        return Kind.EPISODIC
    if st.progressive and st.verb in _TRANSIENT:
        return Kind.EPISODIC
    if _EVENT.search(text) and not habitual:
        return Kind.EPISODIC
    return Kind.SEMANTIC


def category_of(st: Statement, text: str) -> Category:
    scores = category_scores(text)
    if st.subject == "instruction":
        scores[Category.PRODUCTIVITY] = scores.get(Category.PRODUCTIVITY, 0.0) + 1.5
    elif st.subject == "relation":
        scores[Category.RELATIONSHIPS] = scores.get(Category.RELATIONSHIPS, 0.0) + 1.0
    if st.subject in {"self", "fragment"} and re.search(
        r"\b(?:is named|years old|pronouns|lives in|living in|is from)\b", text, _RE
    ):
        scores[Category.IDENTITY] = scores.get(Category.IDENTITY, 0.0) + 3.0
    if re.search(r"\b(?:going|go|travel\w*|fly\w*|trip|holiday|visit\w*) to [A-Z]", text):
        scores[Category.TRAVEL] = scores.get(Category.TRAVEL, 0.0) + 2.0
    if not scores:
        if re.match(r"(?:loves|likes|hates|enjoys|dislikes|prefers|cannot stand)\b", text, _RE):
            return Category.INTERESTS
        return Category.IDENTITY
    best = max(scores.values())
    return next(c for c in CATEGORY_ORDER if scores.get(c, 0.0) == best)


def guess_category(text: str) -> Category:
    """The category of a ready-made third-person statement (from another memory tool)."""
    return category_of(Statement(text=text, subject="fragment"), text)
