"""Rewrite one clause a user wrote into a standalone third-person statement.

"I am a nurse" -> "Is a nurse"; "I love hiking" -> "Loves hiking"; "I don't eat meat" ->
"Does not eat meat"; "my wife Ana is a teacher" -> "Wife Ana is a teacher" (the extractor
turns lasting facts about a named relation into "Has a wife named Ana who is a teacher");
"please always answer in bullet points" -> "Wants answers in bullet points" (see
`instruct`). Remaining first-person words become "they/their/them". Questions, requests for
help and unresolvable pronouns give nothing; the extractor filters reactions to the
conversation ("Is nervous", "Likes the second one").

Subjects understood: I / we / "me and my wife" (the user); "my <relation> [Name]"; "my
<thing>" ("my contract ends ..."); he / she when they refer back to a relation mentioned
earlier; "the <thing> is ... <date>"; and clauses with the subject left out ("Booking
flights to Tokyo", "been baking every weekend", "love spicy food").
"""

from __future__ import annotations

import re
from dataclasses import replace

from memsync.extract.instruct import instruction_text
from memsync.extract.lexicon import DEMONYMS, MODALS, NOT_NAMES, is_past, third_person, word_set
from memsync.extract.statement import Context, Statement, cap
from memsync.extract.subjects import SUBJECT_HANDLERS
from memsync.extract.text import third_person_text

__all__ = ["Context", "Statement", "rewrite"]

_RE = re.IGNORECASE
_LEAD = re.compile(
    r"^(?:(?:ok(?:ay)?|so|and|also|but|btw|by the way|anyway|anyways|oh|o+h+|well|yeah|yes|"
    r"yep|yup|hey|hi|hiya|hello|ugh|plus|then|honestly|actually|basically|um+|uh+|hmm+|right|"
    r"sorry|thanks|thank you|thx|cool|nice|great|perfect|awesome|sure|alright|fyi|"
    r"for context|for reference|just so you know|quick one|ps|good point|good idea|"
    r"sounds good|fair enough|got it|wow|omg|damn|please remember(?: that)?|"
    r"remember(?: that)?|note that|just to note|as I said|like I said|exactly|true|"
    r"speaking of which|by the way|funny enough|to be honest|in any case|"
    r"no,|nope|nah|k)(?![\w'])[\s,.!:;-]*)+",
    _RE,
)
# "... and was wondering if you could ...": the request that often rides on a fact.
_REQUEST_TAIL = re.compile(
    r",?\s+(?:and|so|but)\s+(?:I\s+)?(?:was|am|'m)\s+(?:wondering|hoping|curious)\b.*$"
    r"|,?\s+(?:and\s+)?(?:could|can|would|will) you\b.*$"
    r"|,?\s+and\s+(?:I\s+)?(?:need|want|would like)s?\s+(?:some\s+|a little\s+)?"
    r"(?:help|advice|tips|ideas|suggestions|recommendations)\b.*$",
    _RE,
)
_CONTINUES = re.compile(r"^(?:and|also|plus|oh and|and also)\b", _RE)
_TRAIL = re.compile(
    r"(?:[\s,]+(?:though|honestly|obviously|anyway|btw|fwiw|just saying|ok|okay|thanks|thx|"
    r"please|if that matters(?: for [^,.]*)?|if that helps|as well|at all|lately though|too|"
    r"if (?:I|they) can(?:'t)? (?:avoid|help) it))+[\s,.!?]*$|[\s,.!?;:]+$",
    _RE,
)
_HEDGE_LEAD = re.compile(
    r"^(?:I think(?: that)?|I guess|I suppose|I believe|I feel like|I reckon|I'd say|"
    r"I'm not sure(?: if| whether)?,?(?: but)?|not sure,?(?: but)?|maybe|probably|perhaps|"
    r"possibly|I'm pretty sure(?: that)?)(?![\w'])[\s,]*",
    _RE,
)
_HEDGE = re.compile(r"\b(?:might|maybe|probably|possibly|perhaps|not sure|I think|I guess)\b", _RE)
_QUESTION = re.compile(
    r"^(?:what|what's|how|how's|why|where|where's|which|who|who's|whose|is|isn't|are|"
    r"aren't|am|was|were|do|does|did|can|can't|could|should|shouldn't|would|will|shall|may|"
    r"any|anything|thoughts|ideas|tips|advice|help|recommend|suggest|got|tell|give|show|"
    r"find|make|draft|translate|convert|explain|check|review|write|plan|list)\b",
    _RE,
)
_CONDITION = re.compile(r"^(?:when|whenever|if)\s+you\s+(?P<cond>[^,]+),\s*(?P<main>.+)$", _RE)
_AUX = (
    r"'m|'re|'ve|'d|'ll|\s+am|\s+are|\s+have|\s+has|\s+had|\s+was|\s+were|\s+will|\s+would|"
    r"\s+do|\s+does|\s+did|\s+can(?='t)|\s+can|\s+could|\s+should|\s+must|\s+might|"
    r"\s+may|\s+wo(?=n't)"
)
_SELF = re.compile(
    rf"^(?P<pre>(?:[\w',]+\s+){{0,5}}?)(?P<subj>I|we|me and my \w+|my \w+ and I|me and \w+)"
    rf"(?P<aux>{_AUX})?(?P<neg>n't|'t|\s+not|\s+never)?(?=[\s,.!?]|$)(?P<rest>.*)$",
    _RE,
)
_PRE_OK = re.compile(
    r"^(?:over|for|in|at|on|during|since|after|these|this|last|lately|recently|currently|now|"
    r"nowadays|every|each|most|some|as a|as an|at the moment|right now|outside|besides)\b",
    _RE,
)
_PRE_BAD = re.compile(r"\b(?:that|it|what|why|how|if|because|before|when|where|which|who)\b", _RE)
_ADVERBS = word_set(
    """always never usually often sometimes also really just still mostly currently actually
    only absolutely totally definitely rarely seldom hardly normally generally typically
    even already recently finally honestly seriously literally kind sort of probably maybe
    now then genuinely truly constantly regularly occasionally barely almost nearly mainly
    basically simply personally especially strongly"""
)
_AGE = re.compile(r"^is (\d{1,3})$", _RE)
_NAME = re.compile(r"^is ([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)$")
# "I prefer it when you ...", "I'd like you to always ...": an instruction in the first
# person. ("I want you to explain X" is a request for the task at hand, not a preference.)
_WISH = re.compile(
    r"^(?:I|we)(?:'d| would)?\s+(?:(?:prefer|like|love)s?\s+(?:it\s+)?(?:when|if)\s+you\s+"
    r"|(?:prefer|like|want|need)s?\s+you\s+to\s+(?=always|never|stop|keep|not)(?:not\s+)?)"
    r"(?P<x>.+)$",
    _RE,
)
_BASED = re.compile(r"^is in ([A-Z][\w-]+(?: [A-Z][\w-]+)*)(\s*\([^)]*\))?$")
_TENDS = re.compile(r"^(never |always |usually |often )?tends? to ([a-z]+)\b", _RE)


def _split_adverbs(rest: str) -> tuple[str, str, str]:
    """(leading adverbs, verb, remainder) of a predicate."""
    words = rest.split()
    advs: list[str] = []
    while words and words[0].lower() in _ADVERBS:
        advs.append(words.pop(0))
    if not words:
        return " ".join(advs), "", ""
    return " ".join(advs), words[0], " ".join(words[1:])


def rewrite(
    raw: str,
    ctx: Context,
    *,
    after_self: bool = False,
    short: bool = False,
    coordinated: bool = False,
) -> Statement | None:
    """The statement `raw` (one normalised clause of a user message) makes, if any.

    `after_self`: the clause follows a statement by the user in the same sentence (so a
    verbless "no debt" means "has no debt"); `short`: the clause is a whole short sentence;
    `coordinated`: it was joined to the previous clause by "and" (and shares its "when
    you ..." condition).
    """
    continues = bool(_CONTINUES.match(raw))
    text = _LEAD.sub("", raw).strip()
    text = _REQUEST_TAIL.sub("", text)
    text = _TRAIL.sub("", text).strip()
    uptalk = raw.rstrip().endswith("?")
    hedged = bool(_HEDGE.search(text))
    text = _HEDGE_LEAD.sub("", text).strip()
    if not text:
        return None
    condition = ctx.condition if coordinated else ""
    cm = _CONDITION.match(text)
    if cm:
        text, condition = cm.group("main"), " when you " + cm.group("cond")
        ctx.condition = condition
    wish = _WISH.match(text)
    if wish:
        text = "please " + wish.group("x")
    found = instruction_text(
        text,
        condition,
        continuation=ctx.instructed and continues,
        after_self=after_self,
        short=short,
    )
    if found is not None:
        ctx.instructing = True
        return Statement(cap(found[0]), "instruction", negated=found[1])
    if _QUESTION.match(text):
        return None
    for handler in (_self, *SUBJECT_HANDLERS):
        st = handler(text, ctx, after_self)
        if st is not None:
            return replace(st, hedged=hedged or st.hedged, uptalk=uptalk)
    return None


def _self(text: str, ctx: Context, after_self: bool) -> Statement | None:
    m = _SELF.match(text)
    if not m:
        return None
    pre = m.group("pre").strip(" ,")
    if pre and (not _PRE_OK.match(pre) or _PRE_BAD.search(pre)):
        return None
    with_whom = ""
    rel = re.match(r"(?:me and (?:my )?(\w+)|my (\w+) and i)$", m.group("subj"), _RE)
    if rel:
        with_whom = " with " + (rel.group(1) or rel.group(2))
    aux = (m.group("aux") or "").strip().lstrip("'").lower()
    neg = (m.group("neg") or "").strip().lower()
    rest = m.group("rest").strip()
    past = progressive = False
    advs, verb, tail = _split_adverbs(rest)
    if aux in {"m", "am", "re", "are"}:
        head = "is"
    elif aux in {"ve", "have", "has"}:
        head = "has"
        if verb.lower() == "got" and not tail.lower().startswith("to "):
            verb, _, tail = tail.partition(" ")
    elif aux == "d":
        head = "had" if verb.lower() == "been" or is_past(verb) else "would"
    elif aux in {"ll", "will", "wo"}:
        head = "will"
    elif aux in {"was", "were"}:
        head, past = "was", True
    elif aux in {"do", "does"}:
        head = "does"
    elif aux in {"did", "had"}:
        head, past = aux, True
    else:
        head = aux
    if head:
        if neg == "never":
            words = f"{head} never"
        elif neg:
            words = "cannot" if head == "can" else f"{head} not"
        else:
            words = head
        second = tail.split()[0].lower() if tail else ""
        if head == "is" and (verb.lower().endswith("ing") or second.endswith("ing")):
            progressive = True
            verb_out = verb.lower() if verb.lower().endswith("ing") else second
        else:
            verb_out = verb.lower() if head in {"has", "had"} else head
        body = " ".join(p for p in (words, advs, verb, tail) if p)
    else:
        if not verb:
            return None
        if neg and neg != "never":
            lead, conj = "does not", verb
        else:
            lead = "never" if neg == "never" else ""
            past = is_past(verb)
            conj = verb if past or verb.lower() in MODALS else third_person(verb)
        body = " ".join(p for p in (lead, advs, conj, tail) if p)
        verb_out = verb.lower()
    body = third_person_text(body) + with_whom
    if pre:
        body = f"{body} {pre[0].lower()}{pre[1:]}"
    age = _AGE.match(body)
    if age:
        if not 5 <= int(age.group(1)) <= 110:
            return None
        body = f"is {age.group(1)} years old"
    based = _BASED.match(body)
    if based:
        body = f"is based in {based.group(1)}"
    tends = _TENDS.match(body)
    if tends:
        body = f"{tends.group(1) or ''}{third_person(tends.group(2))}{body[tends.end() :]}"
    name = _NAME.match(body)
    first_name = name.group(1).split()[0] if name else ""
    if name and first_name.lower() not in DEMONYMS and first_name not in NOT_NAMES:
        body = f"is named {name.group(1)}"
    ctx.self_seen = True
    return Statement(
        cap(body), "self", negated=bool(neg), past=past, progressive=progressive, verb=verb_out
    )
