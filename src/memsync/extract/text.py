"""Splitting a message into sentences and clauses, and normalising chat spelling.

Offsets are kept throughout: every `Piece` knows where it sits in the original message, so
provenance can point at the exact characters a memory came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memsync.extract.lexicon import third_person

__all__ = ["Piece", "clauses", "normalise", "sentences", "third_person_text"]


@dataclass(frozen=True)
class Piece:
    """A sentence or clause: `text` is `content[start:end]` of the message."""

    text: str
    start: int
    end: int
    sep: str = ""  # what separated it from the previous piece ("", ",", "and", "but", ...)


_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
# A line that looks like code, a shell command, a markdown heading or a table row.
_CODE_LINE = re.compile(
    r"^\s*(?:#{1,6}\s|\$ |>>>|[|]|(?:def|class|fn|let|const|var|import|from|return|print|"
    r"println!|SELECT|INSERT|UPDATE)\b)|[{};]\s*$|^\s{4,}\S|=>|::|\w\(.*\)\s*;?$"
)
_ABBREV = re.compile(
    r"\b(?:dr|mr|mrs|ms|prof|st|vs|etc|approx|e\.g|i\.e|a\.m|p\.m|jr|sr|inc|ltd)\.$", re.I
)
_INITIAL = re.compile(r"(?:^|\s)[A-Z]\.$")
_SENT_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s|$)|\n+")


def _mask(content: str) -> str:
    """`content` with code blocks and code-like lines blanked out (same length)."""
    masked = _FENCE.sub(lambda m: " " * len(m.group(0)), content)
    masked = _INLINE_CODE.sub(lambda m: "x" * len(m.group(0)), masked)
    lines = masked.split("\n")
    for i, line in enumerate(lines):
        if _CODE_LINE.search(line):
            lines[i] = " " * len(line)
    return "\n".join(lines)


def sentences(content: str) -> list[Piece]:
    """The sentences of a message, skipping code."""
    masked = _mask(content)
    out: list[Piece] = []
    start = 0
    for m in _SENT_END.finditer(masked):
        before = masked[start : m.start() + 1]
        if m.group(0)[0] == "." and (_ABBREV.search(before) or _INITIAL.search(before)):
            continue
        _add(out, content, masked, start, m.end())
        start = m.end()
    _add(out, content, masked, start, len(content))
    return out


def _add(out: list[Piece], content: str, masked: str, start: int, end: int) -> None:
    chunk = masked[start:end]
    stripped = chunk.strip()
    if not stripped:
        return
    lead = len(chunk) - len(chunk.lstrip())
    s, e = start + lead, start + lead + len(stripped)
    out.append(Piece(content[s:e], s, e))


_SUBJECT = (
    r"(?:i|i'm|im|i've|ive|i'd|i'll|my|we|we're|we've|we'd|our|she|he|she's|shes|he's|"
    r"they're|they|me and my|mine|please|pls|plz|don't|dont|never|always|it's|its|it|"
    r"that's|thats|there's|theres|you're|youre|you)\b"
)
_NOT_VERB_ING = (
    r"(?:nothing|something|anything|everything|morning|evening|during|thing|spring|king|ring|"
    r"string|ceiling|wedding|building|pudding|sibling|darling|feeling|meeting|clothing|"
    r"boring|amazing|interesting|exciting|according|including|regarding|missing)\b"
)
_VBG = rf"(?!{_NOT_VERB_ING})[a-z]{{2,}}ing\b"
_ADVERBS = (
    r"(?:(?:honestly|also|actually|really|now|then|currently|still|just|seriously|luckily|"
    r"unfortunately|sadly|basically|obviously|recently|lately|today|anyway|btw|besides|so|"
    r"sometimes|usually|often|always|never|absolutely|totally)"
    r",?\s+)*"
)
_QUESTION_START = (
    r"(?:what|what's|whats|how|why|where|when|which|who|whom|whose|is|are|am|was|were|do|does|"
    r"did|can|could|should|would|will|shall|may|might|any|is there|are there|anything|"
    r"thoughts|ideas|tips|advice)\b"
)
# "and one guest is vegan", ", the sign was covered": a new clause with a noun subject.
_NP_CLAUSE = (
    r"(?:one|a|an|the|some|two|three|my|our|his|her|their)\s+[\w'-]+\s+"
    r"(?:is|are|was|were|has|have)\b"
)
_NEG_START = r"(?:couldn't|can't|didn't|wasn't|won't|haven't|never)\b"
_LIKING = r"(?:loved|hated|liked|enjoyed|adored|love|hate|enjoy|prefer)\b"
# Where a sentence breaks into clauses. Conjunctions split only before a new subject (or an
# imperative, or an -ing clause); commas split before a subject, a question, a negated or
# liking verb ("absolutely loved Hoi An") or a noun clause; ";", ":" and dashes always split.
_CLAUSE_BREAK = re.compile(
    rf"\s*(?:;|:\s|\s[-\u2013\u2014]+\s|\((?=\s*{_SUBJECT}))\s*"
    rf"|,?\s+(?P<conj>but|so|because|cause|cuz|coz|bc|although|though|whereas|while|since|"
    rf"and then|then|and|or|plus)\s+(?={_ADVERBS}(?:{_SUBJECT}|{_VBG}))"
    rf"|,?\s+(?P<conj2>but|because|cause|cuz|although|whereas)\s+"
    rf"|,\s*(?P<conj3>so that|so)\s+"
    rf"|\s+(?P<conj4>so)\s+(?=(?:nothing|no|not|the|this|there)\b)"
    rf"|,?\s+(?P<conj5>and)\s+(?={_NP_CLAUSE})"
    rf"|,\s*(?={_ADVERBS}(?:{_SUBJECT}|{_VBG}|{_NEG_START}|{_LIKING}|no\s))"
    rf"|,\s*(?={_NP_CLAUSE})"
    rf"|,\s*(?={_QUESTION_START})",
    re.IGNORECASE,
)


def clauses(sentence: Piece) -> list[Piece]:
    """Split a sentence into clauses at conjunctions before a subject, commas, semicolons."""
    out: list[Piece] = []
    text = sentence.text
    pos, sep = 0, ""
    for m in _CLAUSE_BREAK.finditer(text):
        if m.start() == 0:
            continue
        _add_clause(out, sentence, pos, m.start(), sep)
        conj = next((g for g in m.groups() if g), None)
        sep = (conj or m.group(0).strip()[:1] or ",").lower()
        pos = m.end()
    _add_clause(out, sentence, pos, len(text), sep)
    merged: list[Piece] = []
    for piece in out:
        prev = merged[-1] if merged else None
        if prev is not None and piece.sep == "and" and _BARE_NP.match(prev.text):
            full = sentence.text[prev.start - sentence.start : piece.end - sentence.start]
            merged[-1] = Piece(full, prev.start, piece.end, prev.sep)
        else:
            merged.append(piece)
    return merged


# "my girlfriend", "me": a subject that a split at "and" would cut off from its verb.
_BARE_NP = re.compile(r"^(?:me|(?:my|our)\s+[\w'-]+(?:\s+[\w'-]+)?)$", re.IGNORECASE)


def _add_clause(out: list[Piece], sentence: Piece, start: int, end: int, sep: str) -> None:
    chunk = sentence.text[start:end]
    stripped = chunk.strip(" ,")
    if not stripped:
        return
    lead = len(chunk) - len(chunk.lstrip(" ,"))
    s = sentence.start + start + lead
    out.append(Piece(stripped, s, s + len(stripped), sep))


# Chat spelling -> standard spelling, applied on word boundaries, case-insensitively.
_SPELLING: dict[str, str] = {
    "im": "I'm",
    "i'm": "I'm",
    "ive": "I've",
    "i've": "I've",
    "i'd": "I'd",
    "i'll": "I'll",
    "i": "I",
    "dont": "don't",
    "doesnt": "doesn't",
    "didnt": "didn't",
    "cant": "can't",
    "wont": "won't",
    "isnt": "isn't",
    "arent": "aren't",
    "wasnt": "wasn't",
    "havent": "haven't",
    "hasnt": "hasn't",
    "couldnt": "couldn't",
    "wouldnt": "wouldn't",
    "shouldnt": "shouldn't",
    "thats": "that's",
    "whats": "what's",
    "shes": "she's",
    "hes": "he's",
    "theyre": "they're",
    "youre": "you're",
    "u": "you",
    "ur": "your",
    "pls": "please",
    "plz": "please",
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "tmrow": "tomorrow",
    "bc": "because",
    "cuz": "because",
    "coz": "because",
    "w/": "with",
    "abt": "about",
    "gf": "girlfriend",
    "bf": "boyfriend",
    "bday": "birthday",
    "b-day": "birthday",
    "rn": "right now",
    "kinda": "kind of",
    "sorta": "sort of",
    "wanna": "want to",
    "gonna": "going to",
    "gotta": "have to",
    "ya": "yeah",
    "yea": "yeah",
}
_SPELLING_RE = re.compile(
    r"(?<![\w'])("
    + "|".join(re.escape(k) for k in sorted(_SPELLING, key=len, reverse=True))
    + r")(?![\w'])",
    re.IGNORECASE,
)
_THOUGH = re.compile(r"\s+though(?=\s*,)", re.IGNORECASE)
_NOISE = re.compile(
    r"(?<![\w'])(?:lol|lmao|rofl|haha+|hehe+|tbh|tbf|imo|imho|xd|:\)|:\(|:D)(?![\w'])",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """Standard apostrophes and spelling, chat noise removed, whitespace collapsed."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")
    text = _NOISE.sub(" ", text)
    text = _THOUGH.sub("", text)
    # Case-insensitive matching also accepts letters whose lower case is not one letter
    # ("İ" lowers to "i" and a combining dot), so an unknown spelling stays as written.
    text = _SPELLING_RE.sub(lambda m: _SPELLING.get(m.group(1).lower(), m.group(1)), text)
    return re.sub(r"\s+", " ", text).strip()


# One pass over the text: each first- or second-person word, looked up case-insensitively
# except "I"-forms and "us" (which could be "US").
_PRONOUN_MAP = {
    "i'm": "they're",
    "i've": "they've",
    "i'd": "they'd",
    "i'll": "they'll",
    "i": "they",
    "myself": "themselves",
    "ourselves": "themselves",
    "my": "their",
    "our": "their",
    "mine": "theirs",
    "ours": "theirs",
    "me": "them",
    "we're": "they're",
    "we": "they",
    "us": "them",
    "you're": "the assistant is",
    "you are": "the assistant is",
    "you have": "the assistant has",
    "your": "the assistant's",
}
_PRONOUN_RE = re.compile(
    r"(?<![\w'])(?:(?-i:I'm|I've|I'd|I'll|I|us)|myself|ourselves|my|our|mine|ours|me|we're|we|"
    r"you're|you are|you have|your)(?![\w'])",
    re.IGNORECASE,
)
_YOU_VERB = re.compile(r"\byou\s+([a-z]+)\b", re.I)
_YOU = re.compile(r"\byou\b", re.I)
_NOT_VERBS = frozenset({"always", "never", "also", "just", "really"})


_AFTER_MODAL = re.compile(
    r"\b(?:can|could|would|will|should|shall|might|may|must|do|did|does|to|let|help|make)\s*$",
    re.IGNORECASE,
)


def _you_verb(m: re.Match[str]) -> str:
    word = m.group(1)
    low = word.lower()
    modal = _AFTER_MODAL.search(m.string, 0, m.start())
    if low in _NOT_VERBS or low.endswith(("ing", "ed")) or modal:
        return f"the assistant {word}"
    return f"the assistant {third_person(word)}"


_THEY_AGREE = re.compile(r"\bthey (am|is|was|has)\b")
_THEY_VERB = {"am": "are", "is": "are", "was": "were", "has": "have"}


def third_person_text(text: str) -> str:
    """First-person words as third person ("my" -> "their"); "you" -> "the assistant"."""
    text = _PRONOUN_RE.sub(lambda m: _PRONOUN_MAP[m.group(0).lower()], text)
    text = _THEY_AGREE.sub(lambda m: f"they {_THEY_VERB[m.group(1)]}", text)
    if "you" in text.lower():
        text = _YOU_VERB.sub(_you_verb, text)
        text = _YOU.sub("the assistant", text)
    return text
