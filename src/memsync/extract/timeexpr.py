"""Time expressions resolved to days, and the calendar helpers the resolver uses."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

__all__ = [
    "Ctx",
    "Handler",
    "TimeExpr",
    "add_months",
    "easter",
    "fmt_day",
    "fmt_month",
    "month_end",
]

Granularity = Literal["day", "week", "month", "season", "quarter", "year"]

_MONTH_WORDS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
MONTHS: dict[str, int] = {name: i for i, name in enumerate(_MONTH_WORDS, start=1)}
MONTHS.update({name[:3]: i for i, name in enumerate(_MONTH_WORDS, start=1)})
MONTHS["sept"] = 9
_WEEKDAY_WORDS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: dict[str, int] = {name: i for i, name in enumerate(_WEEKDAY_WORDS)}
_SMALL = ["one", "two", "three", "four", "five", "six"]
_SMALL += ["seven", "eight", "nine", "ten", "eleven", "twelve"]
NUMBER_WORDS: dict[str, int] = {name: i for i, name in enumerate(_SMALL, start=1)}
NUMBER_WORDS.update({"a": 1, "an": 1, "a couple of": 2, "couple of": 2})
SEASONS: dict[str, int] = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}

MONTH_NAMES = calendar.month_name  # index 1..12

MONTH_RE = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|"
    r"december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"
)
WEEKDAY_RE = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
ORD_RE = r"(?:st|nd|rd|th)"
PREP_RE = (
    r"(?:(?P<prep>on|in|by|until|till|before|after|since|from|during|for|around|through|over)\s+)?"
)
NUM_RE = (
    r"(?P<n>\d{1,3}|a couple of|couple of|a|an|one|two|three|four|five|six|seven|eight|nine|"
    r"ten|eleven|twelve)"
)
UNIT_RE = r"(?P<unit>day|week|month|year)s?"
# Words after an ordinal that show it is not a date ("the 3rd time", "my 5th grade").
NOT_DATE_AFTER = re.compile(
    r"\s*(?:time|times|grade|floor|place|one|ones|edition|century|anniversary|birthday|"
    r"attempt|try|round|year|day|week|month|child|kid|book|chapter|draft|step|option|idea|"
    r"version|in\s+line)\b",
    re.IGNORECASE,
)


def fmt_day(d: date) -> str:
    """`10 March 2026`."""
    return f"{d.day} {MONTH_NAMES[d.month]} {d.year}"


def fmt_month(year: int, month: int) -> str:
    return f"{MONTH_NAMES[month]} {year}"


def add_months(d: date, months: int) -> date:
    """`d` moved by `months`, clamped to the end of a shorter month."""
    index = d.year * 12 + (d.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(d.day, last))


def month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def easter(year: int) -> date:
    """Western Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


@dataclass(frozen=True)
class TimeExpr:
    """A resolved time expression: characters `start:end` of the text, days `first..last`.

    `text` is an absolute rendering of the expression including its preposition ("on 10
    March 2026"); `vague` marks "around"-style resolutions ("in 3 months").
    """

    start: int
    end: int
    first: date
    last: date
    granularity: Granularity
    text: str
    prep: str | None = None

    def relation(self, today: date) -> Literal["past", "present", "future"]:
        if self.last < today:
            return "past"
        if self.first > today:
            return "future"
        return "present"


@dataclass(frozen=True)
class Ctx:
    today: date
    prefer_past: bool


Handler = Callable[[re.Match[str], Ctx], TimeExpr | None]


def prep_of(m: re.Match[str]) -> str | None:
    try:
        value = m.group("prep")
    except IndexError:
        return None
    return value.lower() if value else None


def with_prep(prep: str | None, default: str, body: str) -> str:
    word = prep if prep is not None else default
    if word == "over":
        word = "during"
    return f"{word} {body}".strip() if word else body


def make_expr(
    m: re.Match[str], first: date, last: date, gran: Granularity, text: str, prep: str | None
) -> TimeExpr:
    return TimeExpr(m.start(), m.end(), first, last, gran, text, prep)


def day_expr(m: re.Match[str], d: date, prep: str | None, default: str = "on") -> TimeExpr:
    return make_expr(m, d, d, "day", with_prep(prep, default, fmt_day(d)), prep)


def year_for(month: int, day: int, ctx: Ctx, past: bool) -> int:
    """The year that makes month/day the next (or, when `past`, the latest) occurrence."""
    year = ctx.today.year
    try:
        candidate = date(year, month, day)
    except ValueError:
        candidate = month_end(year, month)
    if past:
        return year - 1 if candidate > ctx.today else year
    return year + 1 if candidate < ctx.today else year


def safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


# --- handlers ---------------------------------------------------------------------------
