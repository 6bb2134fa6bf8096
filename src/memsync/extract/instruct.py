"""Standing instructions to the assistant, written down as preferences.

"please always answer in bullet points" -> "Wants answers in bullet points";
"don't change my tone" -> "Does not want their tone changed"; "never suggest keto to me"
-> "Does not want keto suggested to them"; "no emojis" -> "Does not want emojis"; anything
that does not fit those shapes -> "Wants the assistant to ...".

An imperative is taken as an instruction only when it is about how the assistant should
behave: a verb of answering/writing/formatting with "please", "always", "never", "don't",
a "when you ..." condition or "from now on"; or a bare such verb continuing an instruction
from the user's previous message ("and use metric units"). "Help me plan meals" or
"translate this" are requests for the task at hand, not preferences, and give nothing.
"""

from __future__ import annotations

import re

from memsync.extract.lexicon import is_past, word_set
from memsync.extract.text import third_person_text

__all__ = ["ASSISTANT_VERBS", "instruction_text"]

_RE = re.IGNORECASE
ASSISTANT_VERBS = word_set(
    """answer reply respond write use suggest recommend give show tell say change edit
    rewrite add include make apologize apologise ask call mention remind send explain
    format translate summarize summarise correct fix keep put list repeat assume sugarcoat
    lecture moralize moralise hedge bother talk address speak refer start end sign be"""
)
_RESPONSES = {"answer": "answers", "reply": "replies", "respond": "responses"}
_PARTICIPLE = {
    "give": "given",
    "write": "written",
    "keep": "kept",
    "show": "shown",
    "tell": "told",
    "say": "said",
    "make": "made",
    "put": "put",
    "send": "sent",
    "speak": "spoken",
    "take": "taken",
    "read": "read",
    "set": "set",
    "do": "done",
}
_NO_PASSIVE = word_set("apologize apologise talk be ask bother hedge lecture moralize")
_INSTRUCTION = re.compile(
    r"^(?P<please>(?:please|kindly)\s+)?(?P<adv>always\s+|never\s+|don't\s+|do not\s+|stop\s+|"
    r"avoid\s+|no more\s+)?(?:(?P<ever>ever|also)\s+)?(?P<verb>[a-z]+)\b(?P<rest>.*)$",
    _RE,
)
_STANDING = re.compile(
    r"\b(?:from now on|going forward|in future|in the future|every time|each time|always|"
    r"never)\b",
    _RE,
)
_NO_THING = re.compile(r"^no\s+(?P<np>[\w'-]+(?:\s+[\w'-]+){0,3}?)(?:\s+(?:ever|please))?$", _RE)
# Words that end the object of an instruction ("use metric units | in recipes").
_NP_END = word_set(
    """in on at for to with by from about instead when whenever unless if but so as like than
    during before after without into over unless because"""
)
_RELATIVE = frozenset({"that", "which", "who"})
_OBJECT_PRONOUNS = word_set("it that this them those these me us sure certain")


def _participle(verb: str) -> str:
    if verb in _PARTICIPLE:
        return _PARTICIPLE[verb]
    if verb.endswith("e"):
        return verb + "d"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ied"
    return verb + "ed"


def _render(verb: str, rest: str, negative: bool) -> str:
    """The preference an instruction expresses; `rest` follows the verb, already in the
    third person. The object goes first with a participle ("Wants metric units used")
    when it can be found, else "Wants the assistant to ..."."""
    want = "Does not want" if negative else "Wants"
    words = rest.split()
    if verb in _RESPONSES and (not words or words[0].lower() in _NP_END):
        return f"{want} {_RESPONSES[verb]} {rest}".strip()
    if verb not in _NO_PASSIVE and words and words[0].lower() == "them" and len(words) > 1:
        words = words[1:]  # "give me times in ..." -> indirect object dropped
    if verb not in _NO_PASSIVE and words and words[0].lower() not in _OBJECT_PRONOUNS:
        if words[0].lower() in _NP_END:
            return f"{want} the assistant to {verb} {rest}".strip()
        lowered = [w.lower() for w in words]
        rel = next((i for i, w in enumerate(lowered) if w in _RELATIVE and i > 0), None)
        end = next((i for i, w in enumerate(lowered) if w in _NP_END and i > 0), len(words))
        if rel is not None and rel < end:
            end = len(words)  # "charts that rely on red" is all object
        if end <= 6 or (rel is not None and rel <= 6):
            obj = " ".join(words[:end]).rstrip(",")
            tail = " ".join(words[end:])
            return f"{want} {obj} {_participle(verb)} {tail}".strip()
    return f"{want} the assistant to {verb} {rest}".strip()


def instruction_text(
    text: str, condition: str, *, continuation: bool, after_self: bool, short: bool
) -> tuple[str, bool] | None:
    """(statement, negative) for an instruction in `text`, or None.

    `condition` is a moved "when you ..." clause; `continuation` says the user's previous
    message held an instruction and this clause continues it ("and ..."); `after_self` says
    the clause follows the user's own statement (so "no debt" is not an instruction);
    `short` says the clause is a whole, short sentence.
    """
    no = _NO_THING.match(text)
    if no and short and not after_self:
        return f"Does not want {third_person_text(no.group('np'))}", True
    m = _INSTRUCTION.match(text)
    if not m:
        return None
    please = bool(m.group("please"))
    adv = (m.group("adv") or "").strip().lower()
    verb, rest = m.group("verb").lower(), m.group("rest")
    known = verb in ASSISTANT_VERBS
    body = third_person_text(f"{rest}{condition}").strip()
    if adv in {"never", "don't", "do not", "avoid"} and (known or please):
        return _render(verb, body, True), True
    if adv == "stop" and (known or please or verb.endswith("ing")):
        return f"Wants the assistant to stop {verb} {body}".strip(), False
    if adv == "always" and (known or please):
        return _render(verb, body, False), False
    standing = please or condition or continuation or _STANDING.search(text)
    if not adv and known and not is_past(verb) and standing:
        return _render(verb, body, False), False
    return None
