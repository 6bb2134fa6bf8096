"""Statements the assistant put to the user, taken as memories only when the user confirms.

An assistant turn proposes a fact about the user when one of its last three sentences is a
yes/no question about them ("Are you fairly risk averse?", "Have you set aside an emergency
fund?") or states something about them and checks it ("It sounds like you're a night owl.
Is that right?"). If the user's next message starts with an affirmation ("yes", "exactly",
"that's right") and not a denial, each proposal becomes a statement ("Is fairly risk
averse"). Offers ("Would you like ...?"), alternatives ("planets or galaxies?") and vague
ones ("Do you live with anyone ...?") are never taken.
"""

from __future__ import annotations

import re

from memsync.extract.lexicon import third_person
from memsync.extract.text import Piece, normalise, sentences

__all__ = ["confirms", "proposals"]

_RE = re.IGNORECASE
_AFFIRM = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|exactly|correct|right|that's right|that is right|that's correct|"
    r"true|indeed|absolutely|definitely|of course|mhm|uh-huh|spot on|precisely|totally|"
    r"you got it|you're right|that's it)(?![\w'])(?!\W*but\b)",
    _RE,
)
_DENY = re.compile(r"^\W*(?:no|nope|nah|not really|not exactly|not quite|wrong)(?![\w'])", _RE)
_CHECK = re.compile(
    r"\b(?:is that (?:right|correct|true|so)|am I right|right\?|correct\?|"
    r"did I get that right)",
    _RE,
)
_YOU_ARE = re.compile(r"\byou(?:'re| are)\s+(?P<p>[^,.?!;]+)|\byou have\s+(?P<h>[^,.?!;]+)", _RE)
_ASK = re.compile(
    r"^(?:so,?\s+)?(?:(?P<be>are|were) you|(?P<have>have) you|(?P<do>do) you)\s+(?P<p>[^?]+)\?",
    _RE,
)
_VAGUE = re.compile(
    r"\b(?:anyone|anybody|anything|anywhere|someone|somebody|something| or )\b|"
    r"\b(?:would you like|do you want|want me to|like me to|shall I|should I)\b",
    _RE,
)


def confirms(reply: str) -> bool:
    """Whether a user message starts by confirming what the assistant said."""
    text = normalise(reply)
    return bool(_AFFIRM.match(text)) and not _DENY.match(text)


def proposals(content: str) -> list[tuple[Piece, str]]:
    """(sentence, third-person statement) for each fact an assistant message puts to the
    user, in order."""
    sents = sentences(content)[-3:]
    out: list[tuple[Piece, str]] = []
    for k, sent in enumerate(sents):
        text = normalise(sent.text)
        if _VAGUE.search(text):
            continue
        body = ""
        ask = _ASK.match(text)
        if ask:
            p = ask.group("p")
            if ask.group("be"):
                body = f"is {p}"
            elif ask.group("have"):
                body = f"has {p}"
            else:
                words = p.split()
                body = " ".join([third_person(words[0]), *words[1:]])
        else:
            after = normalise(sents[k + 1].text) if k + 1 < len(sents) else ""
            checked = _CHECK.search(text) or (
                _CHECK.search(after) and not _YOU_ARE.search(after.split("?")[0])
            )
            m = _YOU_ARE.search(text) if checked else None
            if m:
                body = f"is {m.group('p')}" if m.group("p") else f"has {m.group('h')}"
        if not body:
            continue
        body = re.sub(r"\b(?:is that right|is that correct|right|correct)\s*$", "", body)
        body = body.replace("your ", "their ").replace("yourself", "themselves")
        body = re.sub(r"\byou\b", "they", body).strip(" ,")
        out.append((sent, body[:1].upper() + body[1:]))
    return out
