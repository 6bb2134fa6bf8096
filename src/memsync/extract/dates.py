"""Find time expressions in English text and resolve them against a reference date.

A deliberately small resolver (no `dateparser`): it knows the expressions people use when
they talk about their plans and recent past, and nothing else.

Conventions (documented because several are genuinely ambiguous in English):
- Weeks start on Monday.
- "Friday", "on Friday": the next Friday strictly after today. "this Friday": the next
  Friday on or after today. "next Friday": the Friday of next week. "last Friday": the most
  recent Friday strictly before today. A weekday after "a", "every", "each" or "other"
  ("the 5th, a Thursday", "every other Sunday") is a description or a habit, not a date.
- "on the 14th": the next 14th on or after today (next month if the 14th has passed), or
  the last one when `prefer_past`.
- A month without a year ("in June") is the next occurrence from this month on, or the
  most recent one when `prefer_past` (the clause is in the past tense) or after "since" /
  "last". A day and month without a year ("May 15") is the next occurrence from today; in
  a past-tense clause, whichever of the last and the next occurrence is nearer ("I got a
  letter about my court date on February 3rd", said in January, is still ahead).
- Seasons are northern-hemisphere meteorological seasons (spring = March-May, summer =
  June-August, autumn = September-November, winter = December-February) and need a
  preposition or "this/next/last" ("in the summer", "this winter"; not "winter tyres").
- "in N days/weeks" resolves to a day; "in N months/years" to the day N months/years on,
  rendered as "around <day>". "a few"/"several" are too vague and are not resolved.
- "end of the month/year/Qn" resolves to the last day of that period; "over the last
  year" is a duration, not a date. A bare number is never a year ("2000 euros"); a year
  needs a preposition ("in 2027").
- Holidays: Christmas (Eve), New Year's Eve/Day, Halloween, Easter (computed).

Every `TimeExpr` covers an inclusive range of days `first..last` and carries `text`, an
absolute rendering ("on 10 March 2026", "in June 2026") that replaces the expression when a
statement is rewritten to stand on its own.
"""

from __future__ import annotations

import re
from datetime import date

from memsync.extract import date_handlers as h
from memsync.extract.timeexpr import (
    MONTH_RE,
    NUM_RE,
    ORD_RE,
    PREP_RE,
    UNIT_RE,
    WEEKDAY_RE,
    Ctx,
    Handler,
    TimeExpr,
)

__all__ = ["TimeExpr", "find_times", "render"]

_EDGE = r"(?P<edge>(?:the\s+)?end\s+of\s+)?"

# Order is priority: an earlier pattern's match wins over an overlapping later one.
_PATTERNS: list[tuple[re.Pattern[str], Handler]] = [
    (re.compile(rf"\b{PREP_RE}(?P<y>\d{{4}})-(?P<mo>\d{{2}})-(?P<d>\d{{2}})\b", re.I), h.iso),
    (
        re.compile(
            rf"\b{PREP_RE}(?:{WEEKDAY_RE},?\s+)?(?:the\s+)?(?P<d>\d{{1,2}}){ORD_RE}?(?:\s+of)?\s+"
            rf"(?P<month>{MONTH_RE})\b\.?(?:,?\s+(?P<y>\d{{4}})\b)?",
            re.I,
        ),
        h.day_month,
    ),
    (
        re.compile(
            rf"\b{PREP_RE}(?:{WEEKDAY_RE},?\s+)?(?P<month>{MONTH_RE})\.?\s+(?:the\s+)?"
            rf"(?P<d>\d{{1,2}}){ORD_RE}?\b(?!:)(?:,?\s+(?P<y>\d{{4}})\b)?",
            re.I,
        ),
        h.day_month,
    ),
    (
        re.compile(
            rf"\b{PREP_RE}(?:the\s+)?(?P<h>christmas eve|christmas|xmas|new year'?s eve|nye|"
            rf"new year'?s day|easter|halloween)\b",
            re.I,
        ),
        h.holiday,
    ),
    (
        re.compile(
            rf"\b{PREP_RE}(?:(?:this|next|last)\s+)?(?:{WEEKDAY_RE},?\s+)?the\s+(?P<d>\d{{1,2}}){ORD_RE}\b",
            re.I,
        ),
        h.ordinal,
    ),
    (
        re.compile(rf"\b(?P<prep>on)\s+(?P<d>\d{{1,2}}){ORD_RE}\b", re.I),
        h.ordinal,
    ),
    (
        re.compile(
            rf"\b{PREP_RE}(?P<edge>(?:the\s+)?(?:end\s+of|beginning\s+of|start\s+of)\s+|early\s+|"
            rf"mid-?\s*|late\s+)?(?:(?P<mod>next|last|this)\s+)?(?P<month>{MONTH_RE})\b"
            rf"(?:,?\s+(?P<y>\d{{4}})\b)?",
            re.I,
        ),
        h.month,
    ),
    (
        re.compile(
            rf"\b{PREP_RE}{_EDGE}(?:the\s+)?(?P<unit>q|quarter\s*)(?P<q>[1-4])\b(?:\s+(?P<y>\d{{4}}))?",
            re.I,
        ),
        h.quarter,
    ),
    (
        re.compile(
            rf"\b{PREP_RE}(?P<w>the day after tomorrow|tomorrow morning|tomorrow evening|"
            rf"tomorrow night|tomorrow|tmrw|tmr|today|tonight|this morning|this afternoon|"
            rf"this evening|yesterday|last night)\b",
            re.I,
        ),
        h.simple_day,
    ),
    (
        re.compile(
            rf"\b{PREP_RE}(?:(?P<mod>this\s+coming|this|next|last|coming)\s+)?(?P<wd>{WEEKDAY_RE})\b",
            re.I,
        ),
        h.weekday,
    ),
    (
        re.compile(
            rf"\b{PREP_RE}{_EDGE}(?P<mod>this|next|last|the following|the coming)\s+"
            rf"(?P<unit>weekend|week|month|year)\b",
            re.I,
        ),
        h.relative_period,
    ),
    (
        re.compile(
            rf"\b{PREP_RE}(?:the\s+)?end\s+of\s+(?:the|this)\s+(?P<unit>week|month|year)\b", re.I
        ),
        h.end_of_current,
    ),
    (
        re.compile(
            rf"\bin\s+(?:about\s+|around\s+|roughly\s+|just\s+)?{NUM_RE}\s+{UNIT_RE}\b", re.I
        ),
        h.in_n,
    ),
    (re.compile(rf"\b{NUM_RE}\s+{UNIT_RE}\s+ago\b", re.I), h.ago),
    (
        re.compile(
            r"\b(?:a\s+few|several|some|a\s+number\s+of)\s+(?P<unit>day|week|month)s\s+ago\b", re.I
        ),
        h.vague_ago,
    ),
    (
        re.compile(
            r"\b(?:(?P<prep>on|in|by|until|till|before|after|since|from|during|for|around|through|"
            r"over)\s+(?:(?P<mod>this|next|last|the)\s+)?|(?P<mod2>this|next|last)\s+)"
            r"(?P<season>spring|summer|autumn|fall|"
            r"winter)\b",
            re.I,
        ),
        h.season,
    ),
    # A bare number like 2000 is too often an amount; a year needs a preposition.
    (
        re.compile(
            r"\b(?P<prep>in|by|since|until|till|before|after|during|from|of|for)\s+"
            r"(?P<edge>(?:the\s+)?end\s+of\s+)?(?P<y>(?:19|20)\d\d)\b(?![-/:.,]\d)",
            re.I,
        ),
        h.year,
    ),
]


# Every pattern needs one of these; most clauses have none, and skip the 16 patterns.
_TRIGGER = re.compile(
    rf"\d|{MONTH_RE}|{WEEKDAY_RE}|\b(?:today|tonight|tomorrow|tmrw|tmr|yesterday|week|weekend|"
    r"month|year|spring|summer|autumn|fall|winter|christmas|xmas|nye|new year|easter|"
    r"halloween|morning|afternoon|evening|night|ago)",
    re.IGNORECASE,
)


def find_times(text: str, today: date, *, prefer_past: bool = False) -> list[TimeExpr]:
    """All non-overlapping time expressions in `text`, in textual order."""
    if not _TRIGGER.search(text):
        return []
    ctx = Ctx(today, prefer_past)
    taken: list[TimeExpr] = []
    for pattern, handler in _PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < t.end and t.start < m.end() for t in taken):
                continue
            found = handler(m, ctx)
            if found is not None:
                taken.append(found)
    taken.sort(key=lambda t: t.start)
    return taken


def render(text: str, times: list[TimeExpr]) -> str:
    """`text` with every expression replaced by its absolute rendering."""
    out: list[str] = []
    pos = 0
    for t in sorted(times, key=lambda t: t.start):
        out.append(text[pos : t.start])
        out.append(t.text)
        pos = t.end
    out.append(text[pos:])
    return re.sub(r"\s{2,}", " ", "".join(out)).strip()
