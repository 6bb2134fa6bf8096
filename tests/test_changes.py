"""Changes of lasting facts stated as events, as families of phrasings: the fact that
holds afterwards is extracted as lasting, and it ends the old one in the vault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FixedClock, create_vault
from memsync.extract import RuleExtractor
from memsync.model import Kind, Message

WHEN = datetime(2026, 5, 12, 10, 0, tzinfo=UTC)


def facts(text: str) -> set[str]:
    return {
        c.text
        for c in RuleExtractor().extract([Message("user", text, WHEN)])
        if c.kind is Kind.SEMANTIC
    }


@pytest.mark.parametrize(
    "said",
    [
        "I moved to Ghent last month",
        "we relocated from Antwerp to Ghent a couple of weeks ago",
        "just moved over to Ghent!",
        "I've moved from Antwerp to Ghent",
        "we finally settled in Ghent in April",
        "I moved into a new flat in Ghent",
    ],
)
def test_a_move_gives_where_the_person_lives_now(said: str) -> None:
    assert "Lives in Ghent" in facts(said)


@pytest.mark.parametrize(
    ("said", "fact"),
    [
        (
            "I joined Brightwave as a data scientist in March",
            "Works as a data scientist at Brightwave",
        ),
        ("started at Brightwave last week", "Works at Brightwave"),
        ("Brightwave hired me as a product owner!", "Works as a product owner at Brightwave"),
        ("I was hired by Brightwave as a nurse", "Works as a nurse at Brightwave"),
        ("quit Solvia and joined Brightwave as an analyst", "Works as an analyst at Brightwave"),
        ("I got promoted to team lead last week", "Works as a team lead"),
        ("I was promoted to senior editor this spring", "Works as a senior editor"),
        ("I left Solvia in April", "No longer works at Solvia"),
    ],
)
def test_a_job_change_gives_the_job_now(said: str, fact: str) -> None:
    assert fact in facts(said)


@pytest.mark.parametrize(
    "said",
    [
        "I switched from Trello to Asana",
        "we moved everything from Trello to Asana over the weekend",
    ],
)
def test_a_tool_switch_gives_the_tool_now(said: str) -> None:
    assert {"Uses Asana", "No longer uses Trello"} <= facts(said)


@pytest.mark.parametrize("said", ["I've gone vegan since January", "I became vegetarian last year"])
def test_a_diet_change_gives_the_diet_now(said: str) -> None:
    assert any(f in facts(said) for f in ("Is vegan", "Is vegetarian"))


@pytest.mark.parametrize(
    "said",
    [
        "I moved on from that idea",  # no place
        "I started at 9 this morning",  # no employer
        "we moved the meeting to Monday",  # not a home
        "my sister relocated to Ghent",  # not the user
    ],
)
def test_what_is_not_a_change_of_the_users_facts(said: str) -> None:
    assert not {f for f in facts(said) if f.startswith(("Lives in", "Works", "Uses"))}


@pytest.mark.parametrize(
    ("before", "after", "new", "old"),
    [
        ("I live in Antwerp.", "I relocated from Antwerp to Ghent a few weeks ago.",
         "Lives in Ghent", "Lives in Antwerp"),
        ("I work as a designer at Solvia.", "I quit Solvia and joined Brightwave as an analyst.",
         "Works as an analyst at Brightwave", "Works as a designer at Solvia"),
    ],
)  # fmt: skip
def test_in_the_vault_the_change_ends_the_old_fact(
    fast_dir: Path, before: str, after: str, new: str, old: str
) -> None:
    v = create_vault(fast_dir / "v").vault
    v.clock = FixedClock(datetime(2026, 1, 10, tzinfo=UTC))
    v.ingest([Message("user", before, datetime(2026, 1, 10, tzinfo=UTC))])
    v.clock = FixedClock(WHEN)
    v.ingest([Message("user", after, WHEN)])
    active = {m.text for m in v.list(limit=None).items}
    assert new in active and old not in active
    v.close()


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("I'm Dana, a nurse at St Olav's, based in Trondheim.",
         {"Is named Dana", "Is a nurse at St Olav's", "Lives in Trondheim"}),
        ("Hi, I'm Kenji, 41, a pilot at Skyrail, living in Osaka.",
         {"Is named Kenji", "Is 41 years old", "Is a pilot at Skyrail"}),
    ],
)  # fmt: skip
def test_a_self_introduction_is_one_memory_per_fact(said: str, expected: set[str]) -> None:
    got = facts(said)
    assert expected <= got
    assert not [f for f in got if f.count(",") >= 1 and f.startswith("Is ")]


@pytest.mark.parametrize(
    ("said", "fact"),
    [
        ("I can't eat shellfish, I'm allergic.", "Is allergic to shellfish"),
        ("I cannot eat walnuts, I'm allergic", "Is allergic to walnuts"),
    ],
)
def test_what_belongs_together_stays_together(said: str, fact: str) -> None:
    got = facts(said)
    assert fact in got and "Is allergic" not in got


@pytest.mark.parametrize(
    ("plan", "mention"),
    [
        ("I'm flying to Rome with my brother Marco in two months.",
         "my brother Marco just got engaged!"),
        ("I'm going to a concert with my friend Ana next Friday.", "my friend Ana is a drummer."),
        ("We're visiting my aunt Rosa in Seville in June.", "I have an aunt named Rosa."),
    ],
)  # fmt: skip
def test_a_fact_about_a_person_never_replaces_a_plan_with_them(
    fast_dir: Path, plan: str, mention: str
) -> None:
    v = create_vault(fast_dir / "v").vault
    v.clock = FixedClock(WHEN)
    v.ingest([Message("user", plan, WHEN)])
    planned = [m for m in v.list(limit=None).items if m.kind is Kind.EPISODIC]
    assert planned
    v.ingest([Message("user", mention, WHEN)])
    active = {m.id for m in v.list(limit=None).items}
    assert all(p.id in active for p in planned)
    v.close()


@pytest.mark.parametrize(
    ("said", "written"),
    [
        ("I relocated to Ghent a few weeks ago", "in late April 2026"),
        ("I started a pottery course a few days ago", "the week of 4 May 2026"),
        ("I left Solvia a few months ago", "around February 2026"),
        ("we moved here several weeks ago", "in late April 2026"),
    ],
)
def test_a_vague_time_in_the_past_is_written_as_the_date_it_meant(said: str, written: str) -> None:
    texts = [c.text for c in RuleExtractor().extract([Message("user", said, WHEN)])]
    assert any(written in t for t in texts), texts
    assert not any(" ago" in t for t in texts)


@pytest.mark.parametrize("owner", [None, "Elif"])
def test_in_a_group_conversation_what_others_say_is_about_them(owner: str | None) -> None:
    said = [
        Message("user", "I'm training for the Berlin marathon in September", WHEN, "Jonas"),
        Message("user", "I have a cat named Olive", WHEN, "Noor"),
        Message("user", "nice! can you make Jonas a training plan?", WHEN, "Elif"),
    ]
    texts = {c.text for c in RuleExtractor(owner=owner).extract(said)}
    assert "Jonas is training for the Berlin marathon in September 2026" in texts
    assert any(t.startswith("Noor has a cat named Olive") for t in texts)
    assert not any(t.startswith(("Is training", "Has a cat")) for t in texts)


def test_the_owner_name_setting_reaches_the_extractor(fast_dir: Path) -> None:
    v = create_vault(fast_dir / "v").vault
    v.configure("owner.name", "Jonas")
    v.clock = FixedClock(WHEN)
    v.ingest([
        Message("user", "I'm training for the Berlin marathon in September", WHEN, "Jonas"),
        Message("user", "I'll come and cheer for you!", WHEN, "Elif"),
    ])  # fmt: skip
    texts = {m.text for m in v.list(limit=None).items}
    assert "Is training for the Berlin marathon in September 2026" in texts
    assert not any(t.startswith("Jonas ") for t in texts)
    v.close()


POOL = (
    "I live in Ghent.",
    "I work as a baker at Crumb.",
    "I'm vegetarian.",
    "I have a dog named Pepper.",
    "My sister Ana is a dentist.",
    "I'm flying to Lisbon with my sister Ana in July.",
    "I'm going to a jazz concert in Ghent next Friday.",
    "I use Obsidian for notes.",
    "I speak Dutch and French.",
    "I'm allergic to peanuts.",
    "I'm training for a half marathon in October.",
    "Pepper loves the beach.",
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(POOL), n=st.integers(3, len(POOL)))
def test_nothing_stated_and_not_contradicted_is_lost(order: list[str], n: int) -> None:
    import tempfile

    from memsync.reconcile.decide import strip_dates, words

    with tempfile.TemporaryDirectory(prefix="memsync-prop-") as tmp:
        v = create_vault(Path(tmp) / "v").vault
        said: list[str] = []
        for i, text in enumerate(order[:n]):
            at = datetime(2026, 3, 1, 9, tzinfo=UTC) + timedelta(hours=i)
            v.clock = FixedClock(at)
            said += [c.text for c in RuleExtractor().extract([Message("user", text, at)])]
            v.ingest([Message("user", text, at)])
        now = v.clock()
        active = [words(strip_dates(m.text, now)) for m in v.list(limit=None).items]
        for text in said:
            w = words(strip_dates(text, now))
            assert any(w <= a for a in active), f"lost: {text!r}"
        v.close()


def test_leaving_an_employer_ends_the_job_there(fast_dir: Path) -> None:
    v = create_vault(fast_dir / "v").vault
    v.clock = FixedClock(datetime(2026, 1, 10, tzinfo=UTC))
    v.ingest(
        [Message("user", "I work as a designer at Solvia.", datetime(2026, 1, 10, tzinfo=UTC))]
    )
    v.clock = FixedClock(WHEN)
    v.ingest([Message("user", "I left Solvia in April.", WHEN)])
    active = {m.text for m in v.list(limit=None).items}
    assert "Works as a designer at Solvia" not in active
    assert "No longer works at Solvia" in active
    v.close()


def test_the_owner_is_learnt_from_an_introduction(fast_dir: Path) -> None:
    v = create_vault(fast_dir / "v").vault
    v.clock = FixedClock(WHEN)
    v.ingest([Message("user", "Hi, I'm Elif, a teacher in Izmir.", WHEN)])
    # Jonas speaks last: without the owner's name he would be taken for the owner.
    v.ingest([
        Message("user", "I'm learning the violin", WHEN, "Elif"),
        Message("user", "I'm training for the Berlin marathon in September", WHEN, "Jonas"),
    ])  # fmt: skip
    texts = {m.text for m in v.list(limit=None).items}
    assert "Jonas is training for the Berlin marathon in September 2026" in texts
    assert any(t.startswith("Is learning the violin") for t in texts)
    v.close()


@pytest.mark.parametrize(
    ("before", "after", "gone"),
    [
        ("My boyfriend Hugo is a chef.", "Hugo and I broke up last month.",
         "Has a boyfriend named Hugo"),
        ("I have a partner named Rowan.", "I split up with Rowan in April.",
         "Has a partner named Rowan"),
        ("I have a dog named Juno.", "We had to rehome Juno, our new flat bans dogs.",
         "Has a dog named Juno"),
        ("I have a cat named Pico.", "Sad news: our cat Pico died last week.",
         "Has a cat named Pico"),
    ],
)  # fmt: skip
def test_an_ending_ends_the_relation_or_pet(
    fast_dir: Path, before: str, after: str, gone: str
) -> None:
    v = create_vault(fast_dir / "v").vault
    v.clock = FixedClock(datetime(2026, 1, 10, tzinfo=UTC))
    v.ingest([Message("user", before, datetime(2026, 1, 10, tzinfo=UTC))])
    assert any(m.text.startswith(gone) for m in v.list(limit=None).items)
    v.clock = FixedClock(WHEN)
    v.ingest([Message("user", after, WHEN)])
    assert not any(m.text.startswith(gone) for m in v.list(limit=None).items)
    v.close()
