"""The period a search query refers to ("last weekend", "in May", "two weeks ago").

People remember when something happened as often as what it was: "what did I buy last
weekend", "the restaurant I went to in May", "two weeks ago I told you about my sister".
Keyword and vector search cannot use that, so search asks this module for the period and
boosts items from it. The rules favour precision: most queries name no period and must
give None, and boosting the wrong period is worse than boosting none. So ambiguous words
need a cue. "may", "march", "mar" and "jan" are months only after a word such as "in",
"last", "early" or "since", before a day or a year, or, for May and March, when
capitalised mid-sentence. A bare four-digit number (1900 to 2100) is a year only after
a word such as "in", "during", "of", "back in" or "since", and not when a noun follows it
("in 2000 grams").

Windows are whole calendar units in `now`'s timezone: days start at midnight, weeks on
Monday. Seasons are the northern hemisphere's meteorological ones: spring is March to
May, summer June to August, autumn September to November and winter December to
February. A winter with a year ("winter 2022") is the one that starts in December of
that year.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = ["TimeWindow", "time_window"]


@dataclass(frozen=True)
class TimeWindow:
    """A period: `start` inclusive, `end` exclusive, both in the timezone of `now`."""

    start: datetime
    end: datetime
    phrase: str  # the text matched in the query, e.g. "last month"


_Span = tuple[datetime, datetime]
# Re-resolves an expression inside a container ("May" + "last year", "Friday" + "last
# week"): the container's kind ("year" or "week") and first day, or None if it does not fit.
_Anchor = Callable[[str, date], _Span | None]


@dataclass(frozen=True)
class _Hit:
    start: datetime
    end: datetime
    unit: tuple[str, date] | None = None  # set when this hit is a whole year or week
    anchor: _Anchor | None = None  # set when this hit can be placed in a year or week


@dataclass(frozen=True)
class _Found:
    first: int  # character span in the query
    last: int
    hit: _Hit


@dataclass(frozen=True)
class _Ctx:
    query: str
    now: datetime

    @property
    def today(self) -> date:
        return self.now.date()

    def at(self, d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=self.now.tzinfo)

    def days(self, start: date, end: date) -> _Span:
        return self.at(start), self.at(end)


_NUMBERS: dict[str, int] = dict(
    zip(
        "a an one two three four five six seven eight nine ten eleven twelve".split(),
        [1, 1, *range(1, 13)],
        strict=True,
    )
) | {"couple": 2, "few": 3, "several": 4}
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
_PARTS = {"early": 0, "beginning": 0, "start": 0, "mid": 1, "middle": 1, "late": 2, "end": 2}
_AMBIGUOUS = {"may", "march", "mar", "jan"}  # also a verb or a name
_CUES = set("in last early late mid since of during before after until till through past".split())
# Back ten years is as far as "before X" reaches: old enough to cover what people keep.
_BEFORE_REACH_MONTHS = 120

# An optional leading preposition, kept in the phrase but not changing the meaning.
_PRE = r"(?:\b(?P<pre>back\s+in|in|during|on|over|throughout)\s+(?:the\s+)?)?"
_NUM = (
    r"\b(?P<n>\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few|several|an?)"
)
_MONTH = (
    r"\b(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?"
    r"|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
_DAY = r"\b(?P<day>[12]\d|3[01]|0?[1-9])(?P<ord>st|nd|rd|th)?\b"
_YEAR = r"(?<![\d$€£.,/-])(?P<year>19\d\d|20\d\d|2100)(?![\d%-]|[.,/]\d)"
_OPT_YEAR = rf"(?:,?\s+(?:of\s+)?{_YEAR})?"
_MODIFIER = re.compile(r"\b(?P<mod>since|after|before|until|till|prior\s+to)\s+(?:the\s+)?$", re.I)
_MAY_VERB = re.compile(
    r"\s+(?:be|have|not|also|well|never|just|still|need|want|get|go"
    r"|take|make|help|seem|do|come|see|find|know|as)\b",
    re.I,
)
# What may follow a year: the end, punctuation or a word that cannot be counted ("in 2019
# when I..." but not "in 2000 grams").
_AFTER_YEAR = re.compile(
    r"\s*(?:$|[^\w\s]|(?:and|or|to|when|where|what|who|which|while|i|we|you|he|she|they|it"
    r"|my|our|his|her|their|me|us|at|in|on|for|with|from|that|about|so|but|then|because|as"
    r"|is|was|were|did|do|had|have|has|the|a|an|until|till|before|after|during)\b)",
    re.I,
)
# Between two expressions that combine ("May of last year", "Friday last week").
_JOIN = re.compile(r"[\s,]*(?:(?:of|in|on|during)\s+(?:the\s+)?)?")


def _add_months(d: date, months: int) -> date:
    year, month = divmod(d.year * 12 + d.month - 1 + months, 12)
    return date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def _shift(dt: datetime, months: int) -> datetime:
    d = _add_months(dt.date(), months)
    return dt.replace(year=d.year, month=d.month, day=d.day)


def _unit_start(d: date, unit: str) -> date:
    if unit == "week":
        return d - timedelta(days=d.weekday())
    return d.replace(day=1) if unit == "month" else date(d.year, 1, 1)


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    return next(_NUMBERS[w] for w in reversed(text.lower().split()) if w in _NUMBERS)


def _recurring(today: date, first: int, length: int, rel: str, year: int | None) -> date:
    """The first day of a named month or season (`length` months from month `first`).

    With a year, the one starting that year. Otherwise the plain name is the most recent
    that has begun; "last" the one before if we are in it; "next" the next to begin;
    "this" the current one, or else whichever of the last and the next is nearer.
    """
    if year is not None:
        return date(year, first, 1)
    start = date(today.year if today.month >= first else today.year - 1, first, 1)
    end = _add_months(start, length)
    if rel in ("last", "past") and end > today:
        return _add_months(start, -12)
    upcoming = _add_months(start, 12)
    if rel == "next" or (rel == "this" and end <= today and upcoming - today < today - end):
        return upcoming
    return start


def _in_year(today: date, month: int, day: int, year: int | None) -> date:
    """A day of a month; without a year, the most recent such date not after today."""
    if year is not None:
        return date(year, month, day)
    for y in range(today.year, today.year - 9, -1):  # back far enough for any 29 February
        if day <= calendar.monthrange(y, month)[1] and date(y, month, day) <= today:
            return date(y, month, day)
    raise ValueError(f"no day {day} in month {month}")


def _month_cue(query: str, m: re.Match[str], strong: bool) -> bool:
    """Whether a month name is meant as a month, not as "may", "to march" or "Jan"."""
    name = m["month"].rstrip(".")
    if name.lower() not in _AMBIGUOUS or strong:
        return True
    if name.lower() == "may" and _MAY_VERB.match(query, m.end("month")):
        return False
    before = query[: m.start("month")].rstrip(" -")
    word = re.search(r"(\w+)$", before)
    if word and word[1].lower() in _CUES:
        return True
    mid_sentence = bool(before) and before[-1] not in ".!?:"
    return mid_sentence and name.lower() in ("may", "march") and name == name.capitalize()


def _days_ago(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    n, unit, today = _number(m["n"]), m["unit"].lower(), c.today
    # People are vague about distance in time: "two weeks ago" is rarely exactly 14 days.
    # So the window is centred on the point named with slack growing with the unit: a day
    # either side for days, the week around the point plus three days either side for
    # weeks, fifteen days either side for months (so "a month ago" is 15 to 45 days
    # back) and two months either side of that month for years.
    if unit == "day":
        start, end = today - timedelta(days=n + 1), today - timedelta(days=n - 2)
    elif unit == "week":
        point = today - timedelta(weeks=n)
        start, end = point - timedelta(days=6), point + timedelta(days=7)
    elif unit == "month":
        point = _add_months(today, -n)
        start, end = point - timedelta(days=15), point + timedelta(days=16)
    else:
        point = _add_months(today.replace(day=1), -12 * n)
        start, end = _add_months(point, -2), _add_months(point, 3)
    return _Hit(*c.days(start, end))


def _day_word(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    word = " ".join(m["w"].lower().split()).removeprefix("the ")
    if word == "earlier today":
        return _Hit(c.at(c.today), c.now)
    offsets = {"day before yesterday": -2, "yesterday": -1, "last night": -1, "tomorrow": 1}
    day = c.today + timedelta(days=offsets.get(word, 2 if "after" in word else 0))
    return _Hit(*c.days(day, day + timedelta(days=1)))


def _back(now: datetime, n: int, unit: str) -> datetime:
    if unit in ("month", "year"):
        return _shift(now, -n * (12 if unit == "year" else 1))
    return now - timedelta(hours=n * {"hour": 1, "day": 24, "week": 168}[unit])


def _rolling(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    n, unit = _number(m["n"]) if m["n"] else 1, m["unit"].lower()
    return _Hit(_back(c.now, n, unit), c.now)


def _earlier(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    return _Hit(c.at(_unit_start(c.today, m["unit"].lower())), c.now)


def _relative(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    step = {"last": -1, "previous": -1, "this": 0, "current": 0, "next": 1, "coming": 1}
    k, unit = step[m["rel"].lower()], m["unit"].lower()
    if re.search(r"\bthe\s+last\b", m[0], re.I):  # "over the last week": up to now
        return _Hit(_back(c.now, 1, unit), c.now)
    start = _unit_start(c.today, unit)
    if unit == "week":
        start += timedelta(weeks=k)
        end = start + timedelta(weeks=1)
    else:
        start = _add_months(start, k * (12 if unit == "year" else 1))
        end = _add_months(start, 12 if unit == "year" else 1)
    return _Hit(*c.days(start, end), unit=(unit, start) if unit != "month" else None)


def _weekend(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    rel = " ".join((m["rel"] or "the").lower().split())
    saturday = c.today + timedelta(days=5 - c.today.weekday())  # this week's
    if rel in ("last", "previous") or (rel in ("the", "past", "this past") and saturday > c.today):
        saturday -= timedelta(weeks=1)
    elif rel == "next":
        saturday += timedelta(weeks=1)
    return _Hit(*c.days(saturday, saturday + timedelta(days=2)))


def _weekday(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    wd, rel, today = _WEEKDAYS.index(m["wd"].lower()), (m["rel"] or "").lower(), c.today
    back = (today.weekday() - wd) % 7
    if rel in ("next", "coming"):
        day = today + timedelta(days=(wd - today.weekday()) % 7 or 7)
    elif rel == "this":
        day = _unit_start(today, "week") + timedelta(days=wd)
    else:  # plain: today if it is that day; last/past/previous: strictly before today
        day = today - timedelta(days=back or (7 if rel else 0))

    def anchor(kind: str, first: date) -> _Span | None:
        day = first + timedelta(days=wd)
        return c.days(day, day + timedelta(days=1)) if kind == "week" else None

    return _Hit(*c.days(day, day + timedelta(days=1)), anchor=None if rel else anchor)


def _named(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    """A month or a season by name, possibly with a year, "last"/"this"/"next" or part."""
    if "season" in m.groupdict():
        if not (m["pre"] or m["rel"] or m["year"] or _MODIFIER.search(c.query, 0, m.start())):
            return None  # "spring onions", "I fall asleep"
        first, length, part = _SEASONS[m["season"].lower()], 3, None
    elif _month_cue(c.query, m, strong=bool(m["year"])):
        first, length, part = _MONTHS.index(m["month"][:3].lower()) + 1, 1, m["part"]
    else:
        return None
    rel = (m["rel"] or "").lower()

    def window(year: int | None) -> _Span:
        start = _recurring(c.today, first, length, rel, year)
        end = _add_months(start, length)
        if part:  # early, mid, late: days 1-10, 11-20, 21 to the end
            k = next(_PARTS[w] for w in re.split(r"\W+", part.lower()) if w in _PARTS)
            start += timedelta(days=10 * k)
            end = end if k == 2 else start + timedelta(days=10)
        return c.days(start, end)

    def anchor(kind: str, first: date) -> _Span | None:
        return window(first.year) if kind == "year" else None

    year = int(m["year"]) if m["year"] else None
    return _Hit(*window(year), anchor=anchor if year is None and not rel else None)


def _date(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    groups = m.groupdict()
    if "month" in groups and not groups["month"].isdigit():
        strong = bool(m["year"] or m["ord"] or re.search(r"\bof\b", m[0], re.I))
        if not _month_cue(c.query, m, strong or m.start("day") > m.start("month")):
            return None
        month = _MONTHS.index(m["month"][:3].lower()) + 1
    else:
        month = int(m["month"])
    day, year = int(m["day"]), m["year"]
    if year and len(year) == 2:
        year = "20" + year
    found = _in_year(c.today, month, day, int(year) if year else None)

    def anchor(kind: str, first: date) -> _Span | None:
        d = date(first.year, month, day)
        return c.days(d, d + timedelta(days=1)) if kind == "year" else None

    return _Hit(*c.days(found, found + timedelta(days=1)), anchor=None if year else anchor)


def _year(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    cue = m["pre"] or _MODIFIER.search(c.query, 0, m.start())
    if not cue or not _AFTER_YEAR.match(c.query, m.end()):
        return None
    start = date(int(m["year"]), 1, 1)
    return _Hit(*c.days(start, date(start.year + 1, 1, 1)), unit=("year", start))


def _recent(c: _Ctx, m: re.Match[str]) -> _Hit | None:
    return _Hit(c.now - timedelta(days=30), c.now)


_Resolver = Callable[[_Ctx, re.Match[str]], _Hit | None]
# In order of priority: an earlier rule's match hides any later one that overlaps it.
_RULES: list[tuple[re.Pattern[str], _Resolver]] = [
    (re.compile(pattern, re.I), resolve)
    for pattern, resolve in [
        (rf"{_PRE}\b(?P<year>\d{{4}})-(?P<month>\d{{1,2}})-(?P<day>\d{{1,2}})\b", _date),
        (rf"{_PRE}\b(?P<month>\d{{1,2}})/(?P<day>\d{{1,2}})/(?P<year>\d{{4}}|\d\d)\b", _date),
        (rf"{_PRE}{_MONTH}\s+(?:the\s+)?{_DAY}{_OPT_YEAR}", _date),
        (rf"{_PRE}{_DAY}\s+(?:of\s+)?{_MONTH}{_OPT_YEAR}", _date),
        (
            rf"{_PRE}(?:(?P<rel>last|this|next|past)\s+)?"
            rf"(?P<season>spring|summer|autumn|fall|winter)\b{_OPT_YEAR}",
            _named,
        ),
        (
            rf"{_PRE}(?:(?P<part>early|mid|late|(?:the\s+)?(?:beginning|start|middle|end)\s+of)"
            rf"[\s-]*)?(?:(?P<rel>last|this|next|past)\s+)?{_MONTH}{_OPT_YEAR}",
            _named,
        ),
        (
            rf"{_PRE}\b(?P<w>(?:the\s+)?day\s+before\s+yesterday|(?:the\s+)?day\s+after\s+tomorrow"
            r"|earlier\s+today|today|tonight|this\s+(?:morning|afternoon|evening)|yesterday"
            r"|last\s+night|tomorrow)\b",
            _day_word,
        ),
        (rf"{_NUM}\s+(?P<unit>day|week|month|year)s?\s+ago\b", _days_ago),
        (
            rf"{_PRE}\b(?:(?:past|last|previous)\s+{_NUM}\s+|past\s+)"
            r"(?P<unit>hour|day|week|month|year)s?\b",
            _rolling,
        ),
        (r"\bearlier\s+this\s+(?P<unit>week|month|year)\b", _earlier),
        (
            rf"{_PRE}(?:\b(?P<rel>last|previous|this\s+past|this|next|coming|past)\s+|\bthe\s+)"
            r"weekend\b",
            _weekend,
        ),
        (
            rf"{_PRE}\b(?P<rel>last|previous|this|current|next|coming)\s+(?P<unit>week|month|year)\b",
            _relative,
        ),
        (
            rf"{_PRE}(?:\b(?P<rel>last|this|next|past|previous|coming)\s+)?"
            rf"\b(?P<wd>{'|'.join(_WEEKDAYS)})\b",
            _weekday,
        ),
        (r"\b(?:recently|lately)\b", _recent),
        (rf"(?:\b(?P<pre>back\s+in|in|during|of|the\s+year)\s+(?:the\s+year\s+)?)?{_YEAR}", _year),
    ]
]


def _modified(c: _Ctx, f: _Found) -> _Found:
    """`f` widened by "since", "after", "before" or "until" just before it, if any."""
    mod = _MODIFIER.search(c.query, 0, f.first)
    if mod is None:
        return f
    word, start, end = mod["mod"].lower(), f.hit.start, f.hit.end
    reach = _shift(start, -_BEFORE_REACH_MONTHS)
    span = {"since": (start, c.now), "after": (end, c.now), "before": (reach, start)}
    hit = _Hit(*span.get(word, (reach, start) if word.startswith("prior") else (reach, end)))
    return _Found(mod.start(), f.last, hit)


def _joined(c: _Ctx, a: _Found, b: _Found) -> _Found | None:
    """Two adjacent expressions read as one ("May last year"), or None."""
    if not _JOIN.fullmatch(c.query, a.last, b.first):
        return None
    for inner, outer in ((a, b), (b, a)):
        if inner.hit.anchor and outer.hit.unit:
            try:
                span = inner.hit.anchor(*outer.hit.unit)
            except ValueError:  # 29 February in a year without one
                return None
            if span is not None:
                return _Found(a.first, b.last, _Hit(*span))
    return None


def time_window(query: str, now: datetime) -> TimeWindow | None:
    """The period a query refers to, or None when it names none.

    When several expressions appear, the narrowest window wins (the first of equally
    narrow ones): "yesterday or maybe last week" means yesterday. Adjacent expressions
    that combine are read as one ("May last year", "Friday of last week"). "since X"
    runs from the start of X to now, "after X" from its end to now, "before X" from ten
    years before X to its start and "until X" from there to its end. "last week" is the
    calendar week, "over the last week" the seven days up to now. A naive `now` is taken
    as UTC.

    >>> now = datetime(2023, 5, 28, 19, 47, tzinfo=UTC)  # a Sunday
    >>> w = time_window("what did I buy last weekend?", now)
    >>> w.start.date(), w.end.date(), w.phrase
    (datetime.date(2023, 5, 20), datetime.date(2023, 5, 22), 'last weekend')
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    c = _Ctx(query, now)
    found: list[_Found] = []
    for pattern, resolve in _RULES:
        for m in pattern.finditer(query):
            if any(m.start() < f.last and f.first < m.end() for f in found):
                continue
            try:
                hit = resolve(c, m)
            except (ValueError, OverflowError):  # no such date, or out of range
                hit = None
            if hit is not None:
                found.append(_Found(m.start(), m.end(), hit))
    found.sort(key=lambda f: f.first)
    merged: list[_Found] = []
    for f in found:
        joined = _joined(c, merged[-1], f) if merged else None
        if joined is not None:
            merged[-1] = joined
        else:
            merged.append(f)
    kept = [g for g in (_modified(c, f) for f in merged) if g.hit.start < g.hit.end]
    if not kept:
        return None
    best = min(kept, key=lambda f: (f.hit.end - f.hit.start, f.first))
    return TimeWindow(best.hit.start, best.hit.end, query[best.first : best.last].strip())
