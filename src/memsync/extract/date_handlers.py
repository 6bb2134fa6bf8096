"""The resolvers behind each time pattern (see `dates` for the conventions)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date, timedelta

from memsync.extract.timeexpr import (
    MONTHS,
    NOT_DATE_AFTER,
    NUMBER_WORDS,
    SEASONS,
    WEEKDAYS,
    Ctx,
    TimeExpr,
    add_months,
    day_expr,
    easter,
    fmt_day,
    fmt_month,
    make_expr,
    month_end,
    prep_of,
    safe_date,
    with_prep,
    year_for,
)


def iso(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    d = safe_date(int(m.group("y")), int(m.group("mo")), int(m.group("d")))
    return day_expr(m, d, prep_of(m)) if d else None


def day_month(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    month = MONTHS[m.group("month").lower()]
    day = int(m.group("d"))
    prep = prep_of(m)
    if m.group("y"):
        year = int(m.group("y"))
    elif prep == "since":
        year = year_for(month, day, ctx, True)
    elif ctx.prefer_past:
        # In a past-tense clause, the nearer of the last and the next occurrence: "I got a
        # letter about my court date on February 3rd" (said in January) is still ahead.
        before, after = year_for(month, day, ctx, True), year_for(month, day, ctx, False)
        gap_before = (ctx.today - (safe_date(before, month, day) or ctx.today)).days
        gap_after = ((safe_date(after, month, day) or ctx.today) - ctx.today).days
        year = before if gap_before <= gap_after else after
    else:
        year = year_for(month, day, ctx, False)
    d = safe_date(year, month, day)
    return day_expr(m, d, prep) if d else None


def ordinal(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    if NOT_DATE_AFTER.match(m.string, m.end()):
        return None
    day = int(m.group("d"))
    if not 1 <= day <= 31:
        return None
    today = ctx.today
    step = -1 if ctx.prefer_past else 1
    for offset in range(0, 13):
        base = add_months(date(today.year, today.month, 1), step * offset)
        d = safe_date(base.year, base.month, day)
        if d is None:
            continue
        if (not ctx.prefer_past and d >= today) or (ctx.prefer_past and d <= today):
            return day_expr(m, d, prep_of(m))
    return None


def month(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    word = m.group("month").lower()
    mod = (m.group("mod") or "").lower()
    prep = prep_of(m)
    if word == "may" and not (prep or mod or m.group("y")):
        return None  # the modal verb
    if word == "mar" and not m.group("y"):
        return None  # "mar" is a verb far more often than March
    month = MONTHS[word]
    if m.group("y"):
        year = int(m.group("y"))
    elif mod == "next":
        year = ctx.today.year + (1 if month <= ctx.today.month else 0)
    elif mod == "last":
        year = ctx.today.year - (1 if month >= ctx.today.month else 0)
    elif ctx.prefer_past or prep == "since":
        year = ctx.today.year - (1 if month > ctx.today.month else 0)
    else:
        year = ctx.today.year + (1 if month < ctx.today.month else 0)
    edge = (m.group("edge") or "").lower()
    first, last = date(year, month, 1), month_end(year, month)
    label = fmt_month(year, month)
    if edge.endswith("end of") or edge == "late":
        return make_expr(m, last, last, "day", with_prep(prep, "at", f"the end of {label}"), prep)
    if edge.startswith("early") or edge.endswith("beginning of") or edge.endswith("start of"):
        return make_expr(m, first, first + timedelta(days=9), "month", f"in early {label}", prep)
    if edge == "mid":
        return make_expr(
            m,
            first + timedelta(days=10),
            first + timedelta(days=19),
            "month",
            f"in mid {label}",
            prep,
        )
    return make_expr(m, first, last, "month", with_prep(prep, "in", label), prep)


def weekday(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    before = m.string[: m.start()].rstrip().lower()
    if re.search(r"(?:^|\s)(?:a|every|each|other|alternate)$", before):
        return None  # "a Thursday", "every other Sunday": a description or a habit
    wd = WEEKDAYS[m.group("wd").lower()]
    mod = (m.group("mod") or "").lower()
    today = ctx.today
    if mod == "next":
        monday_next = today + timedelta(days=7 - today.weekday())
        d = monday_next + timedelta(days=wd)
    elif mod == "last" or (not mod and ctx.prefer_past):
        back = (today.weekday() - wd) % 7 or 7
        d = today - timedelta(days=back)
    elif mod in {"this", "this coming"}:
        d = today + timedelta(days=(wd - today.weekday()) % 7)
    else:
        d = today + timedelta(days=((wd - today.weekday()) % 7) or 7)
    day_name = calendar.day_name[d.weekday()]
    return make_expr(
        m, d, d, "day", with_prep(prep_of(m), "on", f"{day_name} {fmt_day(d)}"), prep_of(m)
    )


def simple_day(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    word = m.group("w").lower()
    offsets = {
        "today": 0,
        "tonight": 0,
        "this morning": 0,
        "this afternoon": 0,
        "this evening": 0,
        "tomorrow": 1,
        "tmrw": 1,
        "tmr": 1,
        "tomorrow morning": 1,
        "tomorrow evening": 1,
        "tomorrow night": 1,
        "the day after tomorrow": 2,
        "yesterday": -1,
        "last night": -1,
    }
    d = ctx.today + timedelta(days=offsets[word])
    return day_expr(m, d, prep_of(m))


def relative_period(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    if re.search(r"\b(?:the|over|in|during|for)\s*$", m.string[: m.start()], re.I) and not (
        m.group("prep") or m.group("edge")
    ):
        return None  # "over the last year" is a duration, not a calendar period
    mod = m.group("mod").lower()
    unit = m.group("unit").lower()
    prep = prep_of(m)
    edge = bool(m.group("edge"))
    shift = {"this": 0, "next": 1, "last": -1, "the following": 1, "the coming": 1}[mod]
    today = ctx.today
    if unit in {"week", "weekend"}:
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
        if unit == "weekend":
            sat = monday + timedelta(days=5)
            label = f"the weekend of {fmt_day(sat)}"
            return make_expr(
                m, sat, sat + timedelta(days=1), "week", with_prep(prep, "", label), prep
            )
        sunday = monday + timedelta(days=6)
        if edge:
            return make_expr(
                m,
                sunday,
                sunday,
                "day",
                with_prep(prep, "at", f"the end of the week of {fmt_day(monday)}"),
                prep,
            )
        return make_expr(
            m, monday, sunday, "week", with_prep(prep, "", f"the week of {fmt_day(monday)}"), prep
        )
    if unit == "month":
        start = add_months(date(today.year, today.month, 1), shift)
        end = month_end(start.year, start.month)
        label = fmt_month(start.year, start.month)
        if edge:
            return make_expr(m, end, end, "day", with_prep(prep, "at", f"the end of {label}"), prep)
        return make_expr(m, start, end, "month", with_prep(prep, "in", label), prep)
    year = today.year + shift
    if edge:
        end = date(year, 12, 31)
        return make_expr(m, end, end, "day", with_prep(prep, "at", f"the end of {year}"), prep)
    return make_expr(
        m, date(year, 1, 1), date(year, 12, 31), "year", with_prep(prep, "in", str(year)), prep
    )


def end_of_current(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    unit = m.group("unit").lower()
    today = ctx.today
    prep = prep_of(m)
    if unit == "week":
        d = today + timedelta(days=6 - today.weekday())
        return make_expr(m, d, d, "day", with_prep(prep, "by", fmt_day(d)), prep)
    if unit == "month":
        d = month_end(today.year, today.month)
        label = f"the end of {fmt_month(today.year, today.month)}"
        return make_expr(m, d, d, "day", with_prep(prep, "at", label), prep)
    d = date(today.year, 12, 31)
    return make_expr(m, d, d, "day", with_prep(prep, "at", f"the end of {today.year}"), prep)


def quarter(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    q = int(m.group("q"))
    if not 1 <= q <= 4:
        return None
    year = int(m.group("y")) if m.group("y") else ctx.today.year
    if not m.group("y") and month_end(year, q * 3) < ctx.today and not ctx.prefer_past:
        year += 1
    first, last = date(year, q * 3 - 2, 1), month_end(year, q * 3)
    prep = prep_of(m)
    if m.group("edge"):
        return make_expr(
            m, last, last, "day", with_prep(prep, "at", f"the end of Q{q} {year}"), prep
        )
    return make_expr(m, first, last, "quarter", with_prep(prep, "in", f"Q{q} {year}"), prep)


def in_n(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    n = number(m.group("n"))
    if n is None:
        return None
    unit = m.group("unit").lower()
    today = ctx.today
    if unit == "day":
        d = today + timedelta(days=n)
    elif unit == "week":
        d = today + timedelta(weeks=n)
    elif unit == "month":
        d = add_months(today, n)
    else:
        d = add_months(today, 12 * n)
    if unit in {"day", "week"}:
        return make_expr(m, d, d, "day", f"on {fmt_day(d)}", "in")
    return make_expr(m, d, d, "day", f"around {fmt_day(d)}", "in")


def ago(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    n = number(m.group("n"))
    if n is None:
        return None
    unit = m.group("unit").lower()
    today = ctx.today
    if unit == "day":
        d = today - timedelta(days=n)
        return make_expr(m, d, d, "day", f"on {fmt_day(d)}", None)
    if unit == "week":
        d = today - timedelta(weeks=n)
        monday = d - timedelta(days=d.weekday())
        return make_expr(
            m, monday, monday + timedelta(days=6), "week", f"the week of {fmt_day(monday)}", None
        )
    if unit == "month":
        d = add_months(today, -n)
        return make_expr(
            m,
            date(d.year, d.month, 1),
            month_end(d.year, d.month),
            "month",
            f"in {fmt_month(d.year, d.month)}",
            None,
        )
    year = today.year - n
    return make_expr(m, date(year, 1, 1), date(year, 12, 31), "year", f"in {year}", None)


def vague_ago(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    """ "A few weeks ago": said again a month later it means nothing, so it is written as
    the part of the month it meant ("in early February 2026"); a few days ago, as the
    week; a few months ago, as the season's months ("around February 2026")."""
    unit = m.group("unit").lower()
    today = ctx.today
    if unit == "day":
        d = today - timedelta(days=3)
        monday = d - timedelta(days=d.weekday())
        return make_expr(
            m, monday, monday + timedelta(days=6), "week", f"the week of {fmt_day(monday)}", None
        )
    if unit == "week":
        d = today - timedelta(weeks=3)
        part = "early" if d.day <= 10 else "mid" if d.day <= 20 else "late"
        lo, hi = {"early": (1, 10), "mid": (11, 20), "late": (21, 31)}[part]
        last = min(hi, month_end(d.year, d.month).day)
        text = f"in {part} {fmt_month(d.year, d.month)}"
        return make_expr(
            m, date(d.year, d.month, lo), date(d.year, d.month, last), "month", text, None
        )
    d = add_months(today, -3)
    text = f"around {fmt_month(d.year, d.month)}"
    return make_expr(m, date(d.year, d.month, 1), month_end(d.year, d.month), "month", text, None)


def season(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    mod = (m.group("mod") or m.group("mod2") or "").lower()
    name = m.group("season").lower()
    start_month = SEASONS[name]
    today = ctx.today

    # The season that contains today, identified by its starting year/month.
    def start_of(year: int) -> date:
        return date(year, start_month, 1)

    def end_of(start: date) -> date:
        e = add_months(start, 2)
        return month_end(e.year, e.month)

    year = today.year
    if start_month == 12 and today.month <= 2:
        year -= 1  # we are in the winter that started last December
    current = start_of(year)
    if mod == "last" or ((not mod or mod == "the") and ctx.prefer_past):
        start = current if end_of(current) < today else start_of(year - 1)
    elif mod == "next":
        start = current if current > today else start_of(year + 1)
    else:  # this / in (the) / bare: the current one if we are in it, else the next
        start = current if end_of(current) >= today else start_of(year + 1)
    end = end_of(start)
    label = (
        f"winter {start.year}-{str(start.year + 1)[2:]}"
        if name == "winter"
        else f"{'autumn' if name == 'fall' else name} {start.year}"
    )
    prep = prep_of(m)
    return make_expr(m, start, end, "season", with_prep(prep, "in", label), prep)


def year(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    year = int(m.group("y"))
    prep = prep_of(m)
    if m.group("edge"):
        d = date(year, 12, 31)
        return make_expr(m, d, d, "day", with_prep(prep, "at", f"the end of {year}"), prep)
    return make_expr(
        m, date(year, 1, 1), date(year, 12, 31), "year", with_prep(prep, "in", str(year)), prep
    )


def holiday(m: re.Match[str], ctx: Ctx) -> TimeExpr | None:
    word = m.group("h").lower()
    today = ctx.today
    past = ctx.prefer_past

    def pick(make: Callable[[int], date]) -> date:
        this = make(today.year)
        if past:
            return this if this <= today else make(today.year - 1)
        return this if this >= today else make(today.year + 1)

    if word in {"christmas", "xmas"}:
        d = pick(lambda y: date(y, 12, 25))
        label = f"Christmas {d.year}"
    elif word in {"christmas eve"}:
        d = pick(lambda y: date(y, 12, 24))
        label = f"Christmas Eve {d.year}"
    elif word in {"new year's eve", "new years eve", "nye"}:
        d = pick(lambda y: date(y, 12, 31))
        label = f"New Year's Eve {d.year}"
    elif word in {"new year's day", "new years day"}:
        d = pick(lambda y: date(y, 1, 1))
        label = f"New Year's Day {d.year}"
    elif word == "halloween":
        d = pick(lambda y: date(y, 10, 31))
        label = f"Halloween {d.year}"
    else:  # easter
        d = pick(easter)
        label = f"Easter {d.year} ({fmt_day(d)})"
    prep = prep_of(m)
    return make_expr(m, d, d, "day", with_prep(prep, "", label), prep)


def number(word: str) -> int | None:
    word = word.lower()
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)
