"""The profile: bio, per-category sections and insights derived from memories."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from memsync.errors import InvalidInput
from memsync.model import Category, Kind, Memory, Status
from memsync.profile.build import (
    Insight,
    InsightKind,
    Profile,
    RuleSummarizer,
    Summarizer,
    build_profile,
    profile_from_json,
    profile_to_json,
)

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
C = Category


def mem(
    mid: str,
    text: str,
    category: Category | None,
    *,
    day: int = 1,
    confidence: float = 0.8,
    kind: Kind = Kind.SEMANTIC,
    status: Status = Status.ACTIVE,
    valid_until: datetime | None = None,
) -> Memory:
    at = datetime(2026, 3, day, 9, 0, tzinfo=UTC)
    return Memory(
        id=mid,
        text=text,
        kind=kind,
        category=category,
        tags=(),
        created_at=at,
        updated_at=at,
        observed_at=at,
        valid_until=valid_until,
        confidence=confidence,
        status=status,
    )


# One person, as the rule extractor would have written them down over a few weeks.
PERSON = (
    mem("i1", "Is from Brazil", C.IDENTITY, day=2),
    mem("i2", "Lives in Porto", C.IDENTITY, day=3),
    mem("c1", "Is a nurse at a children's hospital in Leeds", C.CAREER, day=4),
    mem("c2", "Works night shifts most weeks", C.CAREER, day=3),
    mem("r1", "Has a husband named Tom who works from home", C.RELATIONSHIPS, day=4),
    mem("r3", "Has a sister named Ines", C.RELATIONSHIPS, day=3),
    mem("r2", "Partner is into climbing and board games", C.INTERESTS, day=5),
    mem("n1", "Loves climbing", C.INTERESTS, day=6),
    mem("n2", "Plays board games every Friday", C.INTERESTS, day=7),
    mem("n3", "Is obsessed with sourdough lately", C.INTERESTS, day=8),
    mem("h1", "Is vegetarian", C.HEALTH, day=2),
    mem("h2", "Is allergic to tree nuts", C.HEALTH, day=3),
    mem("p1", "Hates long paragraphs", C.PRODUCTIVITY, day=2),
    mem("p2", "Wants answers in bullet points", C.PRODUCTIVITY, day=2, confidence=0.9),
    mem("x1", "Cannot stand mushrooms", None, day=9),
)


def section(p: Profile, cat: Category) -> str:
    return next(s.summary for s in p.sections if s.category is cat)


def insights(p: Profile, kind: InsightKind) -> dict[str, Insight]:
    return {i.text: i for i in p.insights if i.kind is kind}


class CountingSummarizer:
    """A summarizer that records what it was asked to write."""

    name = "counting"

    def __init__(self) -> None:
        self.sections: list[Category] = []
        self.bios = 0

    def summarize(self, category: Category, statements: Sequence[str]) -> str:
        self.sections.append(category)
        return f"{category.value}: " + " | ".join(statements)

    def bio(self, statements: Sequence[str]) -> str:
        self.bios += 1
        return " | ".join(statements)


def test_bio_names_the_key_facts_in_prose() -> None:
    p = build_profile(PERSON, now=NOW)
    assert p.bio == (
        "Lives in Porto and is from Brazil. "
        "Is a nurse at a children's hospital in Leeds and works night shifts most weeks. "
        "Has a husband named Tom who works from home and has a sister named Ines."
    )
    assert p.builder == "rules"
    assert p.memory_count == len(PERSON)
    assert p.built_at == NOW


def test_sections_follow_category_order_and_list_their_memories() -> None:
    p = build_profile(PERSON, now=NOW)
    assert [s.category for s in p.sections] == [
        C.IDENTITY,
        C.CAREER,
        C.INTERESTS,
        C.RELATIONSHIPS,
        C.HEALTH,
        C.PRODUCTIVITY,
    ]
    career = p.sections[1]
    assert career.summary == (
        "Is a nurse at a children's hospital in Leeds and works night shifts most weeks."
    )
    assert set(career.memory_ids) == {"c1", "c2"}
    # The uncategorised memory feeds no section.
    assert all("x1" not in s.memory_ids for s in p.sections)
    # Surer first: the instruction (0.9) leads.
    assert section(p, C.PRODUCTIVITY) == (
        "Wants answers in bullet points and hates long paragraphs."
    )


def test_only_active_semantic_unexpired_memories_count() -> None:
    gone = (
        mem("e1", "Is a surgeon", C.CAREER, valid_until=NOW - timedelta(days=1)),
        mem("e2", "Is flying to Berlin for a conference", C.CAREER, kind=Kind.EPISODIC),
        mem("e3", "Is a chef in Lisbon", C.CAREER, status=Status.SUPERSEDED),
        mem("e4", "Is a pilot", C.CAREER, status=Status.FORGOTTEN),
        mem("e5", "Hates the cold", C.INTERESTS, status=Status.INVALIDATED),
    )
    still = mem("e6", "Is a night nurse", C.CAREER, valid_until=NOW + timedelta(days=1))
    p = build_profile((*PERSON, *gone, still), now=NOW)
    texts = " ".join([p.bio, *(s.summary for s in p.sections)])
    for word in ("surgeon", "Berlin", "chef", "pilot", "cold"):
        assert word not in texts
    assert "night nurse" in texts
    assert p.memory_count == len(PERSON) + 1
    assert "the cold" not in insights(p, InsightKind.DISLIKE)


def test_likes_and_dislikes_name_their_objects() -> None:
    extra = (
        mem("l1", "Really enjoys long walks by the sea", C.INTERESTS),
        mem("l2", "Does not like Duolingo", C.LEARNING),
        mem("l3", "Works like a developer at a small startup", C.CAREER),
        mem("l4", "Drinks like 4 coffees a day", C.HEALTH),
        mem("l5", "Has been to Valencia 3 times and loved it every time", C.TRAVEL),
        mem("l6", "Lives in Porto and loves spicy food, the spicier the better", C.IDENTITY),
    )
    p = build_profile((*PERSON, *extra), now=NOW)
    likes = insights(p, InsightKind.LIKE)
    dislikes = insights(p, InsightKind.DISLIKE)
    assert set(likes) == {"climbing", "sourdough", "long walks by the sea", "spicy food"}
    assert likes["climbing"].memory_ids == ("n1",)
    assert set(dislikes) == {"long paragraphs", "mushrooms", "Duolingo"}
    # An allergy is a health fact; the partner's hobbies are not the user's.
    assert "tree nuts" not in dislikes and "board games" not in likes


def test_the_same_like_twice_weighs_two() -> None:
    p = build_profile(
        (mem("a", "Loves climbing", C.INTERESTS), mem("b", "Loves climbing", None, day=2)),
        now=NOW,
    )
    assert insights(p, InsightKind.LIKE)["climbing"] == Insight(
        InsightKind.LIKE, "climbing", ("a", "b"), 2
    )


def test_topics_recur_across_at_least_two_memories() -> None:
    p = build_profile(PERSON, now=NOW)
    topics = insights(p, InsightKind.RECURRING_TOPIC)
    assert topics["board games"].memory_ids == ("r2", "n2")
    assert topics["climbing"].weight == 2
    # Each pair subsumes its words; one-off words and verbs are no topic.
    for absent in ("board", "games", "sourdough", "nurse", "loves", "works"):
        assert absent not in topics
    solo = build_profile([mem("s", "Bakes sourdough, sourdough and more sourdough", None)], now=NOW)
    assert not solo.insights or all(
        i.kind is not InsightKind.RECURRING_TOPIC for i in solo.insights
    )


def test_private_facts_stay_out_of_bio_and_insights() -> None:
    secret = (
        mem("s1", "Is gay", C.PRIVATE, confidence=1.0),
        mem("s2", "Hates their boss", C.PRIVATE),
        mem("s3", "Boss does not know about the interview", C.PRIVATE),
    )
    p = build_profile((*PERSON, *secret), now=NOW)
    assert "gay" not in p.bio
    assert section(p, C.PRIVATE).startswith("Is gay")
    assert all(not set(i.memory_ids) & {"s1", "s2", "s3"} for i in p.insights)


def test_rule_prose_joins_clauses_and_keeps_proper_nouns() -> None:
    r = RuleSummarizer()
    assert r.summarize(C.CAREER, ["Is a backend dev", "Rust is just for fun"]) == (
        "Is a backend dev. Rust is just for fun."
    )
    # A relation gets "their", and ends the sentence so the next clause keeps the user.
    assert r.summarize(C.RELATIONSHIPS, ["Has a son", "Wife is an accountant", "Loves dogs"]) == (
        "Has a son and their wife is an accountant. Loves dogs."
    )
    three = ["Uses Obsidian for notes and Todoist for tasks", "Never checks email before 11"]
    assert r.summarize(C.PRODUCTIVITY, [*three, "Is a night owl."]) == (
        "Uses Obsidian for notes and Todoist for tasks; never checks email before 11; "
        "is a night owl."
    )
    assert r.summarize(C.HEALTH, [f"Is fact number {n}" for n in range(9)]).count("fact") == 5


def test_near_duplicates_give_way_to_the_fuller_statement() -> None:
    p = build_profile(
        (
            mem("v1", "Is vegetarian", C.HEALTH, day=9),
            mem("v2", "Is vegetarian but eats fish sometimes", C.HEALTH, day=3),
            mem("v3", "Runs 30km a week", C.HEALTH, day=2),
        ),
        now=NOW,
    )
    assert section(p, C.HEALTH) == "Is vegetarian but eats fish sometimes and runs 30km a week."
    # The dropped one still counts as the section's input.
    assert set(p.sections[0].memory_ids) == {"v1", "v2", "v3"}


def test_bio_falls_back_to_interests() -> None:
    interests = [m for m in PERSON if m.category is C.INTERESTS]
    p = build_profile([mem("a", "Is a teacher", C.CAREER), *interests], now=NOW)
    assert (
        p.bio
        == "Is a teacher and is obsessed with sourdough lately. Plays board games every Friday."
    )


def test_bio_leaves_out_hedged_statements_and_stays_short() -> None:
    hedged = build_profile(
        [mem("m", "Might be moving to Oslo", C.IDENTITY, confidence=0.4)], now=NOW
    )
    assert hedged.bio == ""
    long = [mem(f"k{n}", "Is " + "very " * 40 + f"tall {n}", C.IDENTITY) for n in range(3)]
    long += [mem(f"j{n}", "Works as a " + "senior " * 40 + "engineer", C.CAREER) for n in range(3)]
    bio = build_profile(long, now=NOW).bio
    assert 0 < len(bio) <= 400
    assert bio.endswith((".", "…"))


def test_sections_reuse_their_summary_when_their_memories_are_unchanged() -> None:
    writer = CountingSummarizer()
    first = build_profile(PERSON, now=NOW, summarizer=writer)
    assert sorted(writer.sections) == sorted(s.category for s in first.sections)
    assert writer.bios == 1
    assert first.builder == "counting"

    writer.sections.clear()
    same = build_profile(PERSON, now=NOW + timedelta(hours=1), previous=first, summarizer=writer)
    assert writer.sections == [] and writer.bios == 1
    assert same.sections == first.sections and same.bio == first.bio

    # A new interest is outside the bio's inputs (identity, career and relationships fill
    # it), so only that section is rewritten.
    more = (*PERSON, mem("n9", "Is learning the cello", C.INTERESTS, day=10))
    second = build_profile(more, now=NOW, previous=same, summarizer=writer)
    assert writer.sections == [C.INTERESTS] and writer.bios == 1
    assert "cello" in section(second, C.INTERESTS)
    assert second.bio == first.bio

    # A new identity fact changes the bio's inputs.
    writer.sections.clear()
    moved = (*more, mem("i9", "Is named Ana", C.IDENTITY, day=11, confidence=0.9))
    third = build_profile(moved, now=NOW, previous=second, summarizer=writer)
    assert writer.sections == [C.IDENTITY] and writer.bios == 2
    assert "Is named Ana" in third.bio and third.bio_fingerprint != second.bio_fingerprint


def test_a_different_summarizer_rewrites_everything() -> None:
    rules = build_profile(PERSON, now=NOW)
    writer = CountingSummarizer()
    p = build_profile(PERSON, now=NOW, previous=rules, summarizer=writer)
    assert len(writer.sections) == len(rules.sections) and writer.bios == 1
    assert p.sections[0].fingerprint == rules.sections[0].fingerprint
    assert isinstance(writer, Summarizer) and isinstance(RuleSummarizer(), Summarizer)


def test_an_empty_vault_has_an_empty_profile() -> None:
    p = build_profile([], now=NOW)
    assert (p.bio, p.sections, p.insights, p.memory_count) == ("", (), (), 0)
    assert profile_from_json(json.loads(json.dumps(profile_to_json(p)))) == p


def test_json_round_trip_is_exact_and_stable() -> None:
    # A naive time with microseconds: stored as whole milliseconds in UTC.
    p = build_profile(PERSON, now=datetime(2026, 3, 20, 12, 0, 0, 123456))
    assert p.built_at == datetime(2026, 3, 20, 12, 0, 0, 123000, tzinfo=UTC)
    data = json.loads(json.dumps(profile_to_json(p)))
    assert data["built_at"] == "2026-03-20T12:00:00.123Z"
    back = profile_from_json(data)
    assert back == p
    assert profile_to_json(back) == data


def _valid() -> dict[str, Any]:
    return profile_to_json(build_profile(PERSON, now=NOW))


def _set(path: str, value: Any) -> dict[str, Any]:
    data = _valid()
    *parents, last = path.split(".")
    target: Any = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is _DROP:
        del target[last]
    else:
        target[last] = value
    return data


_DROP = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("bio", None, "'bio'"),
        ("bio", _DROP, "'bio'"),
        ("version", 2, "version"),
        ("memory_count", True, "memory_count"),
        ("memory_count", -1, "memory_count"),
        ("built_at", "yesterday", "built_at"),
        ("sections", {}, "sections"),
        ("sections.0", "identity", "sections[0]"),
        ("sections.0.category", "hobbies", "sections[0].category"),
        ("sections.1.category", "identity", "twice"),
        ("sections.0.memory_ids", "i1", "memory_ids"),
        ("sections.0.memory_ids", [1], "memory_ids"),
        ("sections.0.fingerprint", None, "fingerprint"),
        ("insights.0.kind", "favourite", "insights[0].kind"),
        ("insights.0.weight", "2", "weight"),
        ("insights.0.weight", -2, "weight"),
        ("builder", 3, "builder"),
    ],
)
def test_profile_from_json_rejects_malformed_input(path: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        profile_from_json(_set(path, value))


@pytest.mark.parametrize("data", [None, [], "profile", 3])
def test_profile_from_json_rejects_non_objects(data: Any) -> None:
    with pytest.raises(InvalidInput):
        profile_from_json(data)


def test_building_is_deterministic_whatever_the_input_order() -> None:
    forward = build_profile(PERSON, now=NOW)
    backward = build_profile(tuple(reversed(PERSON)), now=NOW)
    assert forward == backward
    assert forward == build_profile([replace(m) for m in PERSON], now=NOW)
