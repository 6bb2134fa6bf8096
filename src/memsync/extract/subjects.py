"""Clauses whose subject is not "I": a relation ("my wife ..."), he/she/they referring back
to one, something the user has ("my contract ends ..."), a dated thing ("the final round is
on the 5th"), or no subject at all ("Booking flights to Tokyo", "love spicy food")."""

from __future__ import annotations

import re

from memsync.extract.lexicon import (
    FEMALE,
    MALE,
    NOT_NAMES,
    RELATIONS,
    is_past,
    third_person,
    word_set,
)
from memsync.extract.statement import Context, Statement, cap, low
from memsync.extract.text import third_person_text

__all__ = ["SUBJECT_HANDLERS"]

_RE = re.IGNORECASE
_REL_WORDS = "|".join(sorted(RELATIONS, key=len, reverse=True))
_REL_ADJ = (
    r"(?i:(?:(?:old|older|younger|little|big|baby|best|eldest|oldest|youngest|ex|late|new|"
    r"former|current|\d+[- ]year[- ]old)\s+){0,2})"
)
_REL_SUBJ = re.compile(
    rf"^(?i:my|our)\s+(?P<rel>{_REL_ADJ}(?i:{_REL_WORDS})s?)(?P<name>\s+[A-Z][a-z]+)?"
    rf"(?P<age>\s*\(\d{{1,2}}\))?\s+(?P<rest>.+)$"
)
_VERBISH = re.compile(
    r"^(?:is|are|was|were|has|have|had|will|would|can|could|should|might|may|must|'s|'re|"
    r"just|also|still|really|always|never|recently|only|doesn't|does|did|didn't|isn't|"
    r"wasn't|won't|can't|\w+s|\w+ed)\b",
    _RE,
)
_MY_THING = re.compile(
    r"^(?:my|our)\s+(?P<np>(?:[\w'-]+\s+){0,4}?[\w'-]+)\s+(?P<verb>is|are|was|were|has|have|"
    r"had|will|'s|'re|ends|starts|begins|finishes|runs|lasts|due|\w+s|\w+ed|left|got|went|"
    r"broke|made|took)\b(?P<rest>.*)$",
    _RE,
)
_THING = re.compile(
    r"^(?:the\s+|a\s+|an\s+)?(?P<np>(?:[\w'-]+\s+){0,4}?[\w'-]+)\s+(?P<verb>is|are|will be|"
    r"starts|ends|begins|opens|closes|finishes|due|happens|takes place)\b(?P<rest>.*)$",
    _RE,
)
_PRONOUN_SUBJ = re.compile(
    r"^(?P<p>she|he|they)(?P<aux>'s|'re|\s+is|\s+are|\s+has|\s+have|\s+was|\s+were|"
    r"\s+will|\s+would|'d|'ll|'ve)?(?=[\s,.]|$)(?P<rest>.*)$",
    _RE,
)
_NOT_VERB_ING = word_set(
    """nothing something anything everything morning evening during thing spring king ring
    string ceiling wedding building pudding sibling darling feeling meeting clothing
    boring amazing interesting exciting according including regarding missing"""
)
_VBG_FRAG = re.compile(
    r"^(?P<adv>(?:just|currently|still|also|really|now|finally|recently|already|seriously)\s+)*"
    r"(?P<v>[a-z]{2,}ing)\b(?P<rest>.*)$",
    _RE,
)
_PAST_FRAG = re.compile(r"^(?P<adv>(?:just|recently|finally|literally)\s+)(?P<v>[a-z]+)\b", _RE)
_PREF_FRAG = re.compile(
    r"^(?P<adv>(?:really|absolutely|totally|also|still|just)\s+)*(?P<v>love|hate|like|prefer|"
    r"enjoy|dislike|adore|can't stand|miss)\b(?P<rest>.*)$",
    _RE,
)
_NEG_FRAG = re.compile(
    r"^(?P<neg>couldn't|can't|didn't|don't|won't|wasn't|haven't|never)\s+(?P<v>[a-z]+)"
    r"(?P<rest>.*)$",
    _RE,
)
_NEG_WORDS = {
    "couldn't": "could not",
    "can't": "cannot",
    "didn't": "did not",
    "don't": "does not",
    "won't": "will not",
    "wasn't": "was not",
    "haven't": "has not",
    "never": "never",
}
_ADJ_FRAG = re.compile(
    r"^(?:very|really|super|pretty|quite|extremely|totally|fairly|a bit|kind of)\s+"
    r"[a-z-]+(?:\s+[a-z-]+)?$",
    _RE,
)
_GOAL = re.compile(r"^(goal|aim|dream|hope|ambition|plan|intention) is to (.+)$", _RE)
_PLURAL = word_set(
    """parents kids children sons daughters friends in-laws twins grandparents siblings
    colleagues coworkers neighbours neighbors cats dogs"""
)
_CALLED = re.compile(
    r"^(?P<np>[\w'-]+(?:\s+[\w'-]+){0,3}) (?:is|'s) (?:called|named) (?P<n>[^,;]+)$", _RE
)


def _relation(text: str, ctx: Context, after_self: bool) -> Statement | None:
    m = _REL_SUBJ.match(text)
    if not m:
        return None
    rest = m.group("rest")
    first = rest.split()[0].lower()
    if not (_VERBISH.match(rest) or is_past(first)):
        return None
    rel = m.group("rel").strip()
    ctx.antecedent = rel.split()[-1].lower()
    name = (m.group("name") or "").strip()
    if name in NOT_NAMES:
        name = ""
    age = (m.group("age") or "").strip(" ()")
    who = f" {name}" if name else ""
    pred = re.sub(r"^'s\b", "is", third_person_text(rest))
    if age:  # "my son Leo (5) loves cake"
        pred = f"is {age} and {pred}"
    return Statement(
        cap(f"{rel}{who} {pred}"),
        "relation",
        past=is_past(first),
        negated=bool(re.search(r"\bnot\b|n't\b", pred)),
        verb=first,
        relation=rel.lower(),
        name=name,
        predicate=pred,
    )


def _pronoun(text: str, ctx: Context, after_self: bool) -> Statement | None:
    m = _PRONOUN_SUBJ.match(text)
    if not m or ctx.antecedent is None:
        return None
    p = m.group("p").lower()
    ante = ctx.antecedent
    if (p == "she" and ante in MALE) or (p == "he" and ante in FEMALE):
        return None
    if (p == "they") != (ante in _PLURAL):
        return None
    aux = (m.group("aux") or "").strip().lstrip("'").lower()
    rest = m.group("rest").strip()
    if aux in {"re", "ve"}:
        aux = "are" if aux == "re" else "have"
    elif aux == "s":
        first = rest.split()[0].lower() if rest else ""
        aux = "has" if first in {"been", "got"} else "is"
    elif aux == "d":
        aux = "would"
    elif aux == "ll":
        aux = "will"
    body = third_person_text(" ".join(p for p in (aux, rest) if p))
    if not body:
        return None
    body = re.sub(r"^is (\d{1,3})$", r"is \1 years old", body)
    return Statement(
        cap(f"{ante} {body}"),
        "relation",
        verb=body.split()[0].lower(),
        relation=ante,
        predicate=body,
    )


def _my_thing(text: str, ctx: Context, after_self: bool) -> Statement | None:
    m = _MY_THING.match(text)
    if not m:
        return None
    np, verb, rest = m.group("np"), m.group("verb"), m.group("rest")
    whole = f"{np} {verb}{rest}"
    if np.lower() in {"name", "first name", "full name"} and verb.lower() in {"is", "'s"}:
        return Statement(cap(f"is named {rest.strip()}"), "self", verb="is")
    called = _CALLED.match(whole)
    if called:
        article = "an" if called.group("np")[:1].lower() in "aeiou" else "a"
        text = f"has {article} {called.group('np')} named {called.group('n')}"
        return Statement(cap(third_person_text(text)), "self", verb="has")
    goal = _GOAL.match(whole)
    if goal:
        lead = "plans to" if goal.group(1).lower() == "plan" else "wants to"
        return Statement(
            cap(f"{lead} {third_person_text(goal.group(2))}"), "self", verb=lead.split()[0]
        )
    verb = "is" if verb == "'s" else ("are" if verb == "'re" else verb)
    body = third_person_text(f"{np} {verb}{rest}")
    return Statement(cap(body), "possession", past=is_past(verb), verb=verb.lower())


def _fragment(text: str, ctx: Context, after_self: bool) -> Statement | None:
    text = low(text)
    lowered = text.lower()
    if lowered.startswith("been "):
        return Statement(cap("has " + third_person_text(text)), "fragment", verb="been")
    m = _VBG_FRAG.match(text)
    if m and m.group("v").lower() not in _NOT_VERB_ING:
        return Statement(
            cap("is " + third_person_text(text)),
            "fragment",
            progressive=True,
            verb=m.group("v").lower(),
        )
    m = _PAST_FRAG.match(text)
    if m and is_past(m.group("v")):
        return Statement(
            cap(third_person_text(text)), "fragment", past=True, verb=m.group("v").lower()
        )
    m = _PREF_FRAG.match(text)
    if m:
        verb = m.group("v")
        conj = "cannot stand" if verb.lower() == "can't stand" else third_person(verb)
        body = f"{m.group('adv') or ''}{conj}{m.group('rest')}"
        return Statement(cap(third_person_text(body)), "fragment", verb=verb.lower())
    m = _NEG_FRAG.match(text)
    if m and (after_self or ctx.self_seen):
        neg = _NEG_WORDS[m.group("neg").lower()]
        verb = m.group("v")
        if neg == "never":
            verb = third_person(verb)
        body = third_person_text(f"{neg} {verb}{m.group('rest')}")
        return Statement(
            cap(body),
            "fragment",
            negated=True,
            past=neg.startswith(("did", "was")),
            verb=m.group("v").lower(),
        )
    if after_self and lowered.startswith("no "):
        return Statement(cap("has " + third_person_text(text)), "fragment", verb="has")
    if ctx.self_seen and _ADJ_FRAG.match(text):
        return Statement(cap("is " + text), "fragment", verb="is")
    if ctx.introduced and re.fullmatch(r"\d{2}", text) and 13 <= int(text) <= 99:
        return Statement(f"Is {text} years old", "fragment", verb="is")
    return None


def _thing(text: str, ctx: Context, after_self: bool) -> Statement | None:
    m = _THING.match(text)
    if not m:
        return None
    np = m.group("np")
    if re.match(r"(?:it|that|this|there|what|which|you|they|he|she|who|everything|one)\b", np, _RE):
        return None
    body = third_person_text(f"{np} {m.group('verb')}{m.group('rest')}")
    return Statement(cap(body), "thing", verb=m.group("verb").lower())


SUBJECT_HANDLERS = (_relation, _pronoun, _my_thing, _fragment, _thing)
