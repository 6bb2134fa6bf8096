"""Changes of a lasting fact stated as an event: the fact that holds afterwards.

"Relocated from Bristol to Leeds a few weeks ago" is an event, and stays one (episodic,
dated); but it also says where the person lives now, which is a lasting fact that must
end the old one. Each rule here reads an extracted statement (third person, no subject)
and returns the lasting facts it implies, in the forms reconciliation knows as slots
("Lives in Leeds", "Works as a senior product designer at Kestrel Health", "Uses
Neovim"), or the end of one ("No longer works at Fernhill").

`from_message` reads raw user text for the phrasings whose grammatical subject is not
the user ("Northwind Supplies hired me as a sales rep").
"""

from __future__ import annotations

import re

__all__ = ["ended", "endings", "from_message", "lasting"]

# A proper name: capitalised words ("Kestrel Health", "New York", "TU Delft").
_NAME = r"(?:[A-Z][\w&'.-]*)(?:\s+(?:[A-Z][\w&'.-]*|of|de|da|do|la|le|am|an|upon))*"
# Where a name or role ends: a time expression, a clause, the end.
_STOP = (
    r"(?=\s+(?:in|on|last|this|next|since|about|around|a\s+few|a\s+couple|the\s+week|"
    r"over|for|after|before|and|but|so|yesterday|today|recently|ago|two|three|four|"
    r"several|earlier|at\s+the)\b|\s*[,.;!?]|$)"
)
_ROLE = r"(?:an?\s+)?(?P<role>[a-z][\w-]*(?:\s+[a-z][\w-]*){0,4}?)"
# How a statement about the user starts: its verb, perhaps after an auxiliary or adverb
# (a statement about someone else starts with them: "Sister relocated to Ghent").
_LEAD = r"^(?:(?:has|have|had|was|is)\s+)?(?:(?:just|finally|recently|also|now|since)\s+)*"

_RESIDENCE = re.compile(
    _LEAD + r"(?:moved|relocated|settled)\s+(?:back\s+|over\s+|here\s+)?"
    r"(?:(?:from|out\s+of)\s+" + _NAME + r"\s+)?(?:back\s+)?(?:to|in|into)\s+"
    r"(?:(?:my|our|his|her|their|an?|the)\s+(?:own\s+)?[a-z]+(?:\s+[a-z]+)?\s+in\s+)?"
    r"(?P<place>" + _NAME + r")" + _STOP,
)
_JOINED = (
    r"(?:joined|started\s+(?:at|working\s+(?:at|for)|a\s+(?:new\s+)?job\s+(?:at|with))|"
    r"was\s+hired\s+by|got\s+hired\s+(?:at|by)|got\s+a\s+(?:new\s+)?job\s+(?:at|with)|"
    r"is\s+now\s+(?:at|with)|moved\s+to\s+a\s+job\s+at)"
)
_EMPLOYER = re.compile(
    r"(?:" + _LEAD + r"|\band\s+(?:then\s+)?)" + _JOINED + r"\s+(?P<org>" + _NAME + r")"
    r"(?:\s+as\s+" + _ROLE + r")?" + _STOP,
)
_HIRED_ME = re.compile(
    r"\b(?P<org>" + _NAME + r")\s+(?:has\s+)?(?:hired|took\s+me\s+on|offered\s+me\s+a\s+job)"
    r"(?:\s+me)?(?:\s+as\s+" + _ROLE + r")?" + _STOP,
)
_PROMOTED = re.compile(
    r"\b(?:got|was|been|am\s+now|is\s+now|was\s+just|just\s+got)\s+promoted\s+to\s+"
    + _ROLE
    + _STOP,
)
_LEFT = re.compile(
    _LEAD + r"(?:quit|left|resigned\s+from|was\s+laid\s+off\s+from|got\s+laid\s+off\s+from)\s+"
    r"(?:my\s+job\s+at\s+)?(?P<org>" + _NAME + r")" + _STOP,
)
_SWITCHED = re.compile(
    _LEAD + r"(?:switched|moved|migrated|changed)\s+(?:everything\s+|all\s+\w+\s+|over\s+)?"
    r"from\s+(?P<old>" + _NAME + r")\s+to\s+(?P<new>" + _NAME + r")" + _STOP,
)
_BECAME = re.compile(
    r"^(?:(?:have|has|'ve)\s+)?(?:gone|went|became|turned|switched\s+to\s+being)\s+"
    r"(?P<diet>vegan|vegetarian|pescatarian)\b",
    re.IGNORECASE,
)
# Not places, employers or tools, however capitalised.
_NOT_NAMES = frozenset(
    "I Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March "
    "April May June July August September October November December".split()
)


def _ok(name: str | None) -> bool:
    return name is not None and bool(name.split()) and name.split()[0] not in _NOT_NAMES


def _job(role: str | None, org: str | None) -> str:
    role = (role or "").strip()
    article = "" if not role else ("an " if role[0] in "aeiou" else "a ")
    if role and org:
        return f"Works as {article}{role} at {org}"
    if role:
        return f"Works as {article}{role}"
    return f"Works at {org}"


def lasting(text: str) -> list[tuple[str, str]]:
    """(fact, category) pairs that hold after the change `text` states."""
    # Statements start with their verb, capitalised: names are the only capitals left.
    text = text[:1].lower() + text[1:]
    out: list[tuple[str, str]] = []
    if (m := _RESIDENCE.search(text)) and _ok(m.group("place")):
        out.append((f"Lives in {m.group('place')}", "identity"))
    left = _LEFT.search(text)
    joined = _EMPLOYER.search(text)
    if joined and _ok(joined.group("org")):
        out.append((_job(joined.group("role"), joined.group("org")), "career"))
    elif left and _ok(left.group("org")):
        out.append((f"No longer works at {left.group('org')}", "career"))
    if m := _PROMOTED.search(text):
        out.append((_job(m.group("role"), None), "career"))
    if (m := _SWITCHED.search(text)) and _ok(m.group("new")) and not out:
        out.append((f"Uses {m.group('new')}", "productivity"))
        out.append((f"No longer uses {m.group('old')}", "productivity"))
    if m := _BECAME.search(text):
        out.append((f"Is {m.group('diet').lower()}", "health"))
    return out


# The user speaking in the first person, or (chat style) with the subject left out.
_FIRST_PERSON = re.compile(
    r"(?:^|(?<=[.!?\n])\s*|(?<=,)\s*)(?:(?:ok|so|well|also|big\s+news|update|news)[,:]?\s+)?"
    r"(?:(?:i|we)(?:'ve|\s+have|'d|\s+had)?\s+)?(?P<rest>[^.!?\n]+)",
    re.IGNORECASE,
)


def from_message(content: str) -> list[tuple[str, str]]:
    """Lasting facts in raw user text the statement rules leave out: a change said with
    no subject ("quit Solvia and joined Brightwave as an analyst"), or with someone else
    as the subject ("Brightwave hired me as a product owner")."""
    out: list[tuple[str, str]] = []
    for m in _FIRST_PERSON.finditer(content):
        out += [f for f in lasting(m.group("rest").strip()) if f not in out]
    for m in _HIRED_ME.finditer(content):
        if _ok(m.group("org")):
            out.append((_job(m.group("role"), m.group("org")), "career"))
    for m in _PROMOTED.finditer(content):  # often said with no object the rules keep
        out.append((_job(m.group("role"), None), "career"))
    return out


# Events that end a relation or a pet: who (or which pet) by name.
_PET = r"(?:dog|cat|puppy|kitten|rabbit|hamster|parrot|horse|tortoise|beagle|terrier|tabby)"
_ENDED = re.compile(
    r"\b(?:broke|splits?|split)\s+up\s+with\s+(?P<a>[A-Z]\w+)"
    r"|\b(?:separated|divorced)\s+(?:from\s+)?(?P<b>[A-Z]\w+)"
    r"|\b(?:rehomed|re-homed|gave\s+away|had\s+to\s+rehome|lost|put\s+down)\s+"
    r"(?:(?:our|my|his|her|their|the)\s+)?(?:old\s+)?(?:" + _PET + r"\s+)?(?P<c>[A-Z]\w+)"
    r"|\b" + _PET + r"\s+(?P<d>[A-Z]\w+)\s+(?:died|passed\s+away|was\s+put\s+down)"
)
_ENDED_RAW = re.compile(
    r"\b(?P<name>[A-Z]\w+)\s+and\s+I\s+(?:broke|split)\s+up\b"
    r"|\bI\s+(?:broke|split)\s+up\s+with\s+(?P<name2>[A-Z]\w+)"
)


def ended(text: str) -> str | None:
    """The name of the partner or pet an event ends ("Broke up with Hugo", "Had to
    rehome Juno", "Cat Pico died"), or None."""
    m = _ENDED.search(text[:1].lower() + text[1:])
    if m is None:
        return None
    name = next(g for g in m.groups() if g)
    return name if _ok(name) else None


def endings(content: str) -> list[str]:
    """Endings in raw user text the statement rules lose ("Hugo and I broke up")."""
    return [
        f"Broke up with {m.group('name') or m.group('name2')}" for m in _ENDED_RAW.finditer(content)
    ]
