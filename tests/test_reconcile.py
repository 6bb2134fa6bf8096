"""Reconciliation: the offline rules, and what they do to a real vault on ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conftest import FixedClock
from memsync.extract.base import Candidate
from memsync.model import Category, Kind, Memory, Message, SearchFilters, Status
from memsync.reconcile.decide import Neighbour, decide, strip_dates, words
from memsync.reconcile.decision import Decision
from memsync.vault import Vault

T = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def cand(
    text: str,
    kind: Kind = Kind.SEMANTIC,
    category: Category = Category.IDENTITY,
    *,
    valid_until: datetime | None = None,
    observed: datetime = T,
) -> Candidate:
    return Candidate(
        text=text,
        kind=kind,
        category=category,
        valid_from=observed if kind is Kind.EPISODIC else None,
        valid_until=valid_until,
        confidence=0.8,
        turn=0,
        start=0,
        end=len(text),
        extractor="rules",
        extractor_version="1",
        observed_at=observed,
    )


def mem(
    text: str,
    kind: Kind = Kind.SEMANTIC,
    category: Category = Category.IDENTITY,
    *,
    observed: datetime = T - 30 * DAY,
    valid_until: datetime | None = None,
    mid: str = "m-old",
) -> Memory:
    return Memory(
        id=mid,
        text=text,
        kind=kind,
        category=category,
        tags=(),
        created_at=observed,
        updated_at=observed,
        observed_at=observed,
        valid_from=observed if kind is Kind.EPISODIC else None,
        valid_until=valid_until,
    )


def one(c: Candidate, m: Memory, similarity: float = 0.5) -> Decision:
    return decide(c, [Neighbour(m, similarity)], observed_at=c.observed_at or T).decision


@pytest.mark.parametrize(
    ("old", "new", "category", "expected"),
    [
        ("Is vegetarian", "Is a vegetarian", Category.HEALTH, Decision.NOOP),
        ("Works night shifts most weeks", "Works night shifts", Category.CAREER, Decision.NOOP),
        ("Lives in Lisbon", "Lives in Porto", Category.IDENTITY, Decision.INVALIDATE),
        ("Lives in Lisbon", "Moved to Berlin", Category.IDENTITY, Decision.INVALIDATE),
        ("Lives in Lisbon", "Lives in Lisbon, Portugal", Category.IDENTITY, Decision.UPDATE),
        ("Works at Google", "Works at Spotify", Category.CAREER, Decision.INVALIDATE),
        ("Works as a nurse", "Works as a teacher", Category.CAREER, Decision.INVALIDATE),
        (
            "Is a nurse at a hospital",
            "Works as a data analyst",
            Category.CAREER,
            Decision.INVALIDATE,
        ),
        ("Is 34 years old", "Is 35 years old", Category.IDENTITY, Decision.INVALIDATE),
        ("Is married to Ana", "Is married to Ana", Category.RELATIONSHIPS, Decision.NOOP),
        ("Eats meat", "No longer eats meat", Category.HEALTH, Decision.INVALIDATE),
        ("Drinks coffee", "Does not drink coffee anymore", Category.HEALTH, Decision.INVALIDATE),
        ("Loves coffee", "Hates coffee", Category.INTERESTS, Decision.INVALIDATE),
        ("Loves coffee", "Loves coffee", Category.INTERESTS, Decision.NOOP),
        ("Has two kids", "Has three kids", Category.RELATIONSHIPS, Decision.UPDATE),
        ("Has a dog", "Has a dog named Rex", Category.RELATIONSHIPS, Decision.UPDATE),
        ("Has a dog named Rex", "Has a cat named Tom", Category.RELATIONSHIPS, Decision.ADD),
        ("Is vegetarian", "Plays the cello", Category.HEALTH, Decision.ADD),
    ],
)
def test_offline_rules(old: str, new: str, category: Category, expected: Decision) -> None:
    assert one(cand(new, category=category), mem(old, category=category)) is expected


def test_an_older_statement_does_not_replace_a_newer_one() -> None:
    newer = mem("Lives in Porto", observed=T)
    older = cand("Lives in Lisbon", observed=T - 400 * DAY)
    plan = decide(older, [Neighbour(newer, 0.8)], observed_at=older.observed_at or T)
    assert plan.decision is Decision.ADD and plan.stale and plan.target == newer
    detail = cand("Lives in Porto, in Bonfim", observed=T - 400 * DAY)
    assert one(detail, newer) is Decision.NOOP


def test_the_invalidated_memory_ends_when_the_new_fact_starts() -> None:
    plan = decide(cand("Lives in Porto"), [Neighbour(mem("Lives in Lisbon"), 0.7)], observed_at=T)
    assert plan.decision is Decision.INVALIDATE and plan.ends_at == T


def test_episodes() -> None:
    appointment = "Has a dentist appointment on 13 March 2026"
    old = mem(appointment, Kind.EPISODIC, Category.HEALTH, valid_until=T + 12 * DAY)
    same = cand(appointment, Kind.EPISODIC, Category.HEALTH, valid_until=T + 12 * DAY)
    assert one(same, old) is Decision.NOOP
    moved = cand(
        "Has a dentist appointment on 20 March 2026",
        Kind.EPISODIC,
        Category.HEALTH,
        valid_until=T + 19 * DAY,
    )
    assert one(moved, old) is Decision.UPDATE  # still ahead: the plan moved
    hike = mem(
        "Went hiking on 7 February 2026",
        Kind.EPISODIC,
        Category.INTERESTS,
        valid_until=T - 20 * DAY,
    )
    again = cand("Went hiking on 28 February 2026", Kind.EPISODIC, Category.INTERESTS)
    plan = decide(again, [Neighbour(hike, 0.9)], observed_at=T)
    assert plan.decision is Decision.PROMOTE and plan.kind is Kind.SEMANTIC
    assert plan.text == "Went hiking"


def test_a_lasting_statement_of_an_event_promotes_it() -> None:
    old = mem("Is training for a marathon", Kind.EPISODIC, Category.HEALTH, valid_until=T + DAY)
    assert one(cand("Is training for a marathon", category=Category.HEALTH), old) is (
        Decision.PROMOTE
    )


def test_helpers() -> None:
    assert words("Is a vegetarian") == words("is vegetarian")
    assert strip_dates("Has interview with Spotify on 13 March 2026", T) == (
        "Has interview with Spotify"
    )


class Counting:
    """A judge that answers from a script: the Judge protocol, as an LLM would."""

    name = "scripted"

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.calls: list[tuple[str, list[str]]] = []

    def judge(self, candidate: Candidate, neighbours: object) -> object:
        ids = [m.id for m in neighbours]  # type: ignore[attr-defined]
        self.calls.append((candidate.text, ids))

        class Verdict:
            decision = self.decision
            target = ids[0]
            reason = "scripted"

        return Verdict()


def test_hard_cases_go_to_the_judge_and_only_them() -> None:
    old = mem("Enjoys hiking in the Alps", category=Category.INTERESTS)
    hard = cand("Enjoys long hikes in the mountains", category=Category.INTERESTS)
    judge = Counting(Decision.UPDATE)
    plan = decide(hard, [Neighbour(old, 0.85)], judge=judge, observed_at=T)
    assert plan.decision is Decision.UPDATE and plan.target == old
    assert judge.calls == [(hard.text, [old.id])]
    easy = cand("Enjoys hiking in the Alps", category=Category.INTERESTS)
    assert decide(easy, [Neighbour(old, 1.0)], judge=judge, observed_at=T).decision is (
        Decision.NOOP
    )
    far = cand("Collects stamps", category=Category.INTERESTS)
    assert decide(far, [Neighbour(old, 0.2)], judge=judge, observed_at=T).decision is (Decision.ADD)
    assert len(judge.calls) == 1
    # Without a judge a hard case is added, never merged on a guess.
    assert decide(hard, [Neighbour(old, 0.85)], observed_at=T).decision is Decision.ADD


# The rules on a real vault, through ingest.


def said(text: str, when: datetime) -> list[Message]:
    return [Message("user", text, timestamp=when), Message("assistant", "Noted!", timestamp=when)]


def active(vault: Vault) -> dict[str, Memory]:
    page = vault.list(SearchFilters(), limit=1000)
    return {m.text: m for m in page.items}


def test_the_same_fact_twice_is_one_memory(vault: Vault) -> None:
    first = vault.ingest(said("I'm vegetarian, by the way.", T))
    second = vault.ingest(said("As I said, I am a vegetarian", T + DAY))
    assert [o.decision for o in first.outcomes] == [Decision.ADD]
    assert [o.decision for o in second.outcomes] == [Decision.NOOP]
    (memory,) = [m for m in active(vault).values() if "vegetarian" in m.text]
    # The memory now points at both conversations.
    assert {p.source_id for p in memory.provenance} == {first.source.id, second.source.id}
    assert len(vault.why(memory.id).evidence) == 2


def test_a_new_city_invalidates_the_old_one(vault: Vault) -> None:
    vault.clock = FixedClock(T + 40 * DAY)
    vault.ingest(said("I live in Lisbon.", T))
    moved = T + 30 * DAY
    result = vault.ingest(said("I live in Porto now.", moved))
    (outcome,) = result.outcomes
    assert outcome.decision is Decision.INVALIDATE
    old = vault.get(outcome.target_id or "")
    assert old.text == "Lives in Lisbon" and old.status is Status.INVALIDATED
    assert old.valid_until == moved
    assert [m.text for m in active(vault).values()] == ["Lives in Porto now"]
    assert vault.check().ok


def test_a_new_job_supersedes_or_invalidates_and_history_stays(vault: Vault) -> None:
    vault.ingest(said("I work at Google as a software engineer.", T))
    vault.ingest(said("I work at Spotify these days.", T + 60 * DAY))
    texts = [m.text for m in active(vault).values()]
    assert any("Spotify" in t for t in texts) and not any("Google" in t for t in texts)
    everything = vault.list(SearchFilters(statuses=(), include_expired=True), limit=100).items
    google = next(m for m in everything if "Google" in m.text)
    assert google.status in (Status.INVALIDATED, Status.SUPERSEDED)
    hits = vault.search("Google", filters=SearchFilters(include_turns=False))
    assert not any("Google" in h.text for h in hits)


def test_reimporting_changes_nothing(vault: Vault) -> None:
    msgs = said("I'm a nurse and I have two cats named Miso and Tofu.", T)
    vault.ingest(msgs)
    before = vault.check().state_digest
    again = vault.ingest(msgs)
    assert not again.added and again.outcomes == ()
    assert vault.check().state_digest == before


def test_repeated_episodes_are_promoted(vault: Vault) -> None:
    vault.clock = FixedClock(T + 60 * DAY)
    vault.ingest(said("I went bouldering yesterday.", T))
    result = vault.ingest(said("I went bouldering yesterday.", T + 14 * DAY))
    assert [o.decision for o in result.outcomes] == [Decision.PROMOTE]
    promoted = vault.get(result.outcomes[0].memory_id)
    assert promoted.kind is Kind.SEMANTIC and promoted.valid_until is None
    assert "yesterday" not in promoted.text and "bouldering" in promoted.text
    assert len({p.source_id for p in promoted.provenance}) == 2
    assert vault.history(promoted.id)[0].kind is Kind.EPISODIC


def test_a_change_within_one_conversation_is_reconciled_before_writing(vault: Vault) -> None:
    result = vault.ingest(
        [
            Message("user", "I live in Lisbon.", timestamp=T),
            Message("assistant", "Lovely city.", timestamp=T),
            Message("user", "Well, I actually moved to Porto last month.", timestamp=T),
        ]
    )
    decisions = [o.decision for o in result.outcomes]
    assert decisions == [Decision.ADD, Decision.INVALIDATE]
    assert [m.text for m in active(vault).values()] == [result.outcomes[1].text]
    assert vault.check().ok


def test_expired_episodes_are_hidden_unless_asked_for(vault: Vault) -> None:
    vault.clock = FixedClock(T)
    vault.ingest(said("I have a dentist appointment tomorrow.", T))
    (m,) = active(vault).values()
    assert m.kind is Kind.EPISODIC and m.valid_until is not None
    vault.clock = FixedClock(m.valid_until + DAY)
    hidden = SearchFilters(include_turns=False)
    assert vault.search("dentist appointment", filters=hidden) == []
    shown = vault.search(
        "dentist appointment", filters=SearchFilters(include_turns=False, include_expired=True)
    )
    assert [h.text for h in shown] == [m.text]


def test_an_event_that_changes_a_lasting_fact_ends_it_and_lasts(vault: Vault) -> None:
    vault.clock = FixedClock(T + 90 * DAY)
    vault.ingest(said("I work at Google.", T))
    result = vault.ingest(said("I just started a new job at Spotify!", T + 40 * DAY))
    # The event, and the lasting fact it implies (already said by the event: a no-op).
    outcome, *implied = result.outcomes
    assert all(o.decision is Decision.NOOP for o in implied)
    assert outcome.decision is Decision.INVALIDATE
    new = vault.get(outcome.memory_id)
    assert new.kind is Kind.SEMANTIC and new.valid_until is None and "Spotify" in new.text
    assert vault.get(outcome.target_id or "").status is Status.INVALIDATED
    # Long after the event's own horizon, the new job is still what the vault knows.
    assert [m.text for m in active(vault).values()] == [new.text]
