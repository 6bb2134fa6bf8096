"""Time expressions in search queries: the window each form means, and queries with none."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone

import pytest

from memsync.retrieve import when
from memsync.retrieve.when import time_window

NOW = datetime(2023, 5, 28, 19, 47, tzinfo=UTC)  # a Sunday evening
JAN = datetime(2024, 1, 3, 10, 0, tzinfo=UTC)  # a Wednesday, just after New Year
MON = datetime(2023, 5, 29, 8, 0, tzinfo=UTC)  # a Monday morning


def d(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


CASES: list[tuple[str, datetime, datetime]] = [
    # days
    ("what did I eat today", d(2023, 5, 28), d(2023, 5, 29)),
    ("what did we talk about tonight", d(2023, 5, 28), d(2023, 5, 29)),
    ("the song I heard this morning", d(2023, 5, 28), d(2023, 5, 29)),
    ("what did I buy yesterday", d(2023, 5, 27), d(2023, 5, 28)),
    ("last night I told you about a movie", d(2023, 5, 27), d(2023, 5, 28)),
    ("the day before yesterday", d(2023, 5, 26), d(2023, 5, 27)),
    ("earlier today", d(2023, 5, 28), NOW),
    ("what is on tomorrow", d(2023, 5, 29), d(2023, 5, 30)),
    # N units ago, with slack
    ("3 days ago", d(2023, 5, 24), d(2023, 5, 27)),
    ("Three days ago I mentioned a book", d(2023, 5, 24), d(2023, 5, 27)),
    ("a couple of days ago", d(2023, 5, 25), d(2023, 5, 28)),
    ("a few days ago", d(2023, 5, 24), d(2023, 5, 27)),
    ("two weeks ago I told you about my sister", d(2023, 5, 8), d(2023, 5, 21)),
    ("about a week ago", d(2023, 5, 15), d(2023, 5, 28)),
    ("a month ago", d(2023, 4, 13), d(2023, 5, 14)),
    ("6 months ago", d(2022, 11, 13), d(2022, 12, 14)),
    ("a year ago", d(2022, 3, 1), d(2022, 8, 1)),
    ("several years ago", d(2019, 3, 1), d(2019, 8, 1)),
    # calendar weeks (Monday-based), months, years, weekends
    ("last week", d(2023, 5, 15), d(2023, 5, 22)),
    ("this week", d(2023, 5, 22), d(2023, 5, 29)),
    ("next week", d(2023, 5, 29), d(2023, 6, 5)),
    ("the previous week", d(2023, 5, 15), d(2023, 5, 22)),
    ("last month", d(2023, 4, 1), d(2023, 5, 1)),
    ("this month", d(2023, 5, 1), d(2023, 6, 1)),
    ("next month", d(2023, 6, 1), d(2023, 7, 1)),
    ("last year", d(2022, 1, 1), d(2023, 1, 1)),
    ("this year", d(2023, 1, 1), d(2024, 1, 1)),
    ("next year", d(2024, 1, 1), d(2025, 1, 1)),
    ("what did I buy last weekend", d(2023, 5, 20), d(2023, 5, 22)),
    ("this weekend", d(2023, 5, 27), d(2023, 5, 29)),
    ("what did I do over the weekend", d(2023, 5, 27), d(2023, 5, 29)),
    ("next weekend", d(2023, 6, 3), d(2023, 6, 5)),
    ("earlier this week", d(2023, 5, 22), NOW),
    ("earlier this month", d(2023, 5, 1), NOW),
    ("earlier this year", d(2023, 1, 1), NOW),
    # rolling windows up to now
    ("in the past 3 days", d(2023, 5, 25, 19, 47), NOW),
    ("over the last two weeks", d(2023, 5, 14, 19, 47), NOW),
    ("the past few months", d(2023, 2, 28, 19, 47), NOW),
    ("past year", d(2022, 5, 28, 19, 47), NOW),
    ("over the last week", d(2023, 5, 21, 19, 47), NOW),
    ("in the past 24 hours", d(2023, 5, 27, 19, 47), NOW),
    ("what have I been reading recently", d(2023, 4, 28, 19, 47), NOW),
    ("anything lately?", d(2023, 4, 28, 19, 47), NOW),
    # weekdays
    ("the meeting on Monday", d(2023, 5, 22), d(2023, 5, 23)),
    ("what did I cook on friday", d(2023, 5, 26), d(2023, 5, 27)),
    ("last Friday", d(2023, 5, 26), d(2023, 5, 27)),
    ("Sunday", d(2023, 5, 28), d(2023, 5, 29)),
    ("last Sunday", d(2023, 5, 21), d(2023, 5, 22)),
    ("next Tuesday", d(2023, 5, 30), d(2023, 5, 31)),
    ("this Wednesday", d(2023, 5, 24), d(2023, 5, 25)),
    # months
    ("the restaurant I went to in May", d(2023, 5, 1), d(2023, 6, 1)),
    ("in may I bought a bike", d(2023, 5, 1), d(2023, 6, 1)),
    ("in march", d(2023, 3, 1), d(2023, 4, 1)),
    ("the trip we took in March", d(2023, 3, 1), d(2023, 4, 1)),
    ("last May", d(2022, 5, 1), d(2022, 6, 1)),
    ("May 2022", d(2022, 5, 1), d(2022, 6, 1)),
    ("in May of 2021", d(2021, 5, 1), d(2021, 6, 1)),
    ("early May", d(2023, 5, 1), d(2023, 5, 11)),
    ("mid-May", d(2023, 5, 11), d(2023, 5, 21)),
    ("late April", d(2023, 4, 21), d(2023, 5, 1)),
    ("late February", d(2023, 2, 21), d(2023, 3, 1)),
    ("at the end of may", d(2023, 5, 21), d(2023, 6, 1)),
    ("in June", d(2022, 6, 1), d(2022, 7, 1)),
    ("in Dec", d(2022, 12, 1), d(2023, 1, 1)),
    ("in sept.", d(2022, 9, 1), d(2022, 10, 1)),
    ("this August", d(2023, 8, 1), d(2023, 9, 1)),
    ("next May", d(2024, 5, 1), d(2024, 6, 1)),
    # dates
    ("May 5", d(2023, 5, 5), d(2023, 5, 6)),
    ("what did I do on May 5th", d(2023, 5, 5), d(2023, 5, 6)),
    ("the party on 5 May", d(2023, 5, 5), d(2023, 5, 6)),
    ("the 5th of May", d(2023, 5, 5), d(2023, 5, 6)),
    ("on the 5th of May 2022", d(2022, 5, 5), d(2022, 5, 6)),
    ("May 5, 2021", d(2021, 5, 5), d(2021, 5, 6)),
    ("June 10", d(2022, 6, 10), d(2022, 6, 11)),
    ("Feb 29", d(2020, 2, 29), d(2020, 3, 1)),
    ("2023-05-05", d(2023, 5, 5), d(2023, 5, 6)),
    ("on 5/5/2023", d(2023, 5, 5), d(2023, 5, 6)),
    ("12/25/22", d(2022, 12, 25), d(2022, 12, 26)),
    # years
    ("in 2022", d(2022, 1, 1), d(2023, 1, 1)),
    ("during 2021", d(2021, 1, 1), d(2022, 1, 1)),
    ("back in 2019", d(2019, 1, 1), d(2020, 1, 1)),
    ("in 2019, when I lived in Paris", d(2019, 1, 1), d(2020, 1, 1)),
    # seasons (northern hemisphere)
    ("last summer", d(2022, 6, 1), d(2022, 9, 1)),
    ("this winter", d(2022, 12, 1), d(2023, 3, 1)),
    ("this summer", d(2023, 6, 1), d(2023, 9, 1)),
    ("in the spring", d(2023, 3, 1), d(2023, 6, 1)),
    ("last fall", d(2022, 9, 1), d(2022, 12, 1)),
    ("in the autumn", d(2022, 9, 1), d(2022, 12, 1)),
    ("in the summer of 2019", d(2019, 6, 1), d(2019, 9, 1)),
    ("winter 2021", d(2021, 12, 1), d(2022, 3, 1)),
    ("next spring", d(2024, 3, 1), d(2024, 6, 1)),
    # since / before / after / until
    ("since 2020", d(2020, 1, 1), NOW),
    ("since may", d(2023, 5, 1), NOW),
    ("since last week", d(2023, 5, 15), NOW),
    ("since yesterday", d(2023, 5, 27), NOW),
    ("before 2020", d(2010, 1, 1), d(2020, 1, 1)),
    ("after May 5", d(2023, 5, 6), NOW),
    ("anything before last summer", d(2012, 6, 1), d(2022, 6, 1)),
    ("until March", d(2013, 3, 1), d(2023, 4, 1)),
    # expressions read together, and the narrowest of several
    ("what did I buy in May last year", d(2022, 5, 1), d(2022, 6, 1)),
    ("in March of last year", d(2022, 3, 1), d(2022, 4, 1)),
    ("on June 10 last year", d(2022, 6, 10), d(2022, 6, 11)),
    ("Friday of last week", d(2023, 5, 19), d(2023, 5, 20)),
    ("last week on Friday", d(2023, 5, 19), d(2023, 5, 20)),
    ("in the summer of last year", d(2022, 6, 1), d(2022, 9, 1)),
    ("yesterday or maybe last week", d(2023, 5, 27), d(2023, 5, 28)),
    ("last month, around the 5th of May", d(2023, 5, 5), d(2023, 5, 6)),
]

OTHER_NOWS: list[tuple[datetime, str, datetime, datetime]] = [
    (JAN, "last month", d(2023, 12, 1), d(2024, 1, 1)),
    (JAN, "last December", d(2023, 12, 1), d(2024, 1, 1)),
    (JAN, "in December", d(2023, 12, 1), d(2024, 1, 1)),
    (JAN, "last week", d(2023, 12, 25), d(2024, 1, 1)),
    (JAN, "this week", d(2024, 1, 1), d(2024, 1, 8)),
    (JAN, "last year", d(2023, 1, 1), d(2024, 1, 1)),
    (JAN, "this winter", d(2023, 12, 1), d(2024, 3, 1)),
    (JAN, "last winter", d(2022, 12, 1), d(2023, 3, 1)),
    (JAN, "Dec 25", d(2023, 12, 25), d(2023, 12, 26)),
    (JAN, "a month ago", d(2023, 11, 18), d(2023, 12, 19)),
    (JAN, "earlier this month", d(2024, 1, 1), JAN),
    (JAN, "the past 2 months", d(2023, 11, 3, 10), JAN),
    (MON, "last Monday", d(2023, 5, 22), d(2023, 5, 23)),
    (MON, "Monday", d(2023, 5, 29), d(2023, 5, 30)),
    (MON, "on Monday", d(2023, 5, 29), d(2023, 5, 30)),
    (MON, "next Monday", d(2023, 6, 5), d(2023, 6, 6)),
    (MON, "last weekend", d(2023, 5, 27), d(2023, 5, 29)),
    (MON, "over the weekend", d(2023, 5, 27), d(2023, 5, 29)),
    (MON, "this weekend", d(2023, 6, 3), d(2023, 6, 5)),
    (d(2024, 3, 1), "Feb 29", d(2024, 2, 29), d(2024, 3, 1)),
]

NEGATIVE = [
    "what is my dog's name",
    "how many calories in 2000 grams",
    "I may go to the gym",
    "you may be right about my sister",
    "this may be wrong",
    "the first one works but the last may be broken",
    "Top 5 may be enough",
    "May I ask about my notes?",
    "2000 calories a day",
    "march to the beat of your own drum",
    "what did Jan say about the project",
    "what did I tell you about my weekend routine",
    "call mom on mondays",
    "the spring in my mattress is broken",
    "I fall asleep late",
    "remind me in 2 weeks",
    "the score was 5/5",
    "my PIN is 2023",
    "a 3 day sourdough recipe",
    "the last time I saw a doctor",
    "13/45/2023",
    "what's my favourite season",
    "",
]


@pytest.mark.parametrize(("query", "start", "end"), CASES)
def test_window(query: str, start: datetime, end: datetime) -> None:
    window = time_window(query, NOW)
    assert window is not None, query
    assert (window.start, window.end) == (start, end)


@pytest.mark.parametrize(("now", "query", "start", "end"), OTHER_NOWS)
def test_window_at_boundaries(now: datetime, query: str, start: datetime, end: datetime) -> None:
    window = time_window(query, now)
    assert window is not None, query
    assert (window.start, window.end) == (start, end)


@pytest.mark.parametrize("query", NEGATIVE)
def test_no_time_expression(query: str) -> None:
    assert time_window(query, NOW) is None


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        ("what did I buy last weekend?", "last weekend"),
        ("the restaurant I went to in May", "in May"),
        ("Since 2020 I have lived here", "Since 2020"),
        ("Friday of last week", "Friday of last week"),
        ("the book I mentioned two weeks ago", "two weeks ago"),
    ],
)
def test_phrase_is_the_matched_text(query: str, phrase: str) -> None:
    window = time_window(query, NOW)
    assert window is not None
    assert window.phrase == phrase


def test_windows_are_in_the_timezone_of_now() -> None:
    tz = timezone(timedelta(hours=-7))
    now = datetime(2023, 5, 28, 23, 30, tzinfo=tz)  # already 29 May in UTC
    window = time_window("yesterday", now)
    assert window is not None
    assert window.start.tzinfo is tz and window.end.tzinfo is tz
    assert (window.start, window.end) == (
        datetime(2023, 5, 27, tzinfo=tz),
        datetime(2023, 5, 28, tzinfo=tz),
    )


def test_naive_now_is_utc() -> None:
    window = time_window("today", datetime(2023, 5, 28, 19, 47))
    assert window is not None
    assert window.start.tzinfo is UTC
    assert (window.start, window.end) == (d(2023, 5, 28), d(2023, 5, 29))


def test_docstring_example() -> None:
    result = doctest.testmod(when, raise_on_error=True)
    assert (result.failed, result.attempted) == (0, 3)
