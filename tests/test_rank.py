"""Ranking: fused ranks plus the credits for replies, memories, conversations and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conftest import FixedClock
from memsync import Message, SearchMode, Vault, Weights
from memsync.retrieve.rank import Item, rank
from memsync.store import state

DAY = 86_400_000
T0 = 1_700_000_000_000


def turn(rowid: int, source: str, idx: int, role: str = "user", ts: int = T0) -> Item:
    return Item(rowid, state.ITEM_TURN, ts, ((source, idx),), role)


def memory(rowid: int, *points: tuple[str, int | None], ts: int = T0) -> Item:
    return Item(rowid, state.ITEM_MEMORY, ts, tuple(points))


NO_CREDITS = Weights(rrf_k=60, reply=0, key=0, session=0, in_window=0)


def test_without_credits_the_score_is_reciprocal_rank_fusion() -> None:
    items = {1: turn(1, "a", 0), 2: turn(2, "b", 0), 3: turn(3, "c", 0)}
    ranked = rank([1, 2], [3, 1], items, NO_CREDITS)
    scores = {r.rowid: r.score for r in ranked}
    assert scores == pytest.approx({1: 1 / 61 + 1 / 62, 2: 1 / 62, 3: 1 / 61})
    assert [r.rowid for r in ranked] == [1, 3, 2]
    tied = rank([2, 1], [1, 2], items, NO_CREDITS)
    assert [r.rowid for r in tied] == [1, 2]  # equal scores: lower rowid first
    assert (ranked[0].keyword_rank, ranked[0].vector_rank) == (1, 2)


def test_weights_scale_each_half() -> None:
    items = {1: turn(1, "a", 0), 2: turn(2, "b", 0)}
    only_vector = Weights(rrf_k=60, keyword=0, reply=0, key=0, session=0, in_window=0)
    assert rank([1], [2], items, only_vector)[0].rowid == 2
    assert rank([1], [2], items, NO_CREDITS)[0].rowid == 1


def test_a_reply_credits_the_user_turn_it_answers() -> None:
    # Turn 2 (user) of source b is weak alone, but its reply (3) matched well.
    items = {1: turn(1, "a", 0), 2: turn(2, "b", 0), 3: turn(3, "b", 1, "assistant")}
    keyword = [3, 1, 2]
    plain = rank(keyword, [], items, NO_CREDITS)
    assert [r.rowid for r in plain] == [3, 1, 2]
    credited = rank(keyword, [], items, Weights(rrf_k=60, reply=1.0, key=0, session=0, in_window=0))
    by_id = {r.rowid: r for r in credited}
    assert by_id[2].credits["reply"] == pytest.approx(1 / 61)
    assert by_id[2].score > by_id[1].score
    # A reply whose user turn is not a candidate credits nothing.
    lone = rank([3], [], {3: turn(3, "b", 1, "assistant")}, Weights(rrf_k=60, reply=1.0))
    assert lone[0].credits.get("reply") is None


def test_a_memory_credits_the_turns_it_came_from() -> None:
    items = {1: turn(1, "a", 0), 2: turn(2, "b", 4), 9: memory(9, ("b", 4), ("x", None))}
    ranked = rank([1, 9, 2], [], items, Weights(rrf_k=60, reply=0, key=1.0, session=0, in_window=0))
    by_id = {r.rowid: r for r in ranked}
    assert by_id[2].credits["memory"] == pytest.approx(1 / 62)
    assert [r.rowid for r in ranked][:2] == [2, 1]


def test_a_conversation_with_more_evidence_lifts_its_items() -> None:
    # Source a has one strong item; source b has three good ones.
    items = {
        1: turn(1, "a", 0),
        2: turn(2, "b", 0),
        3: turn(3, "b", 2),
        4: turn(4, "b", 4),
    }
    keyword = [1, 2, 3, 4]
    assert rank(keyword, [], items, NO_CREDITS)[0].rowid == 1
    weights = Weights(rrf_k=60, reply=0, key=0, session=1.0, session_decay=1.0, in_window=0)
    ranked = rank(keyword, [], items, weights)
    assert ranked[0].rowid == 2
    assert ranked[0].credits["session"] == pytest.approx(1 / 62 + 1 / 63 + 1 / 64)
    # With a steep decay only the best item of each conversation counts much.
    steep = rank(
        keyword, [], items, Weights(rrf_k=60, reply=0, key=0, session=1.0, session_decay=0.01)
    )
    assert steep[0].rowid == 1


def test_items_in_the_query_window_are_boosted() -> None:
    when = datetime.fromtimestamp(T0 / 1000, UTC)
    items = {1: turn(1, "a", 0, ts=T0), 2: turn(2, "b", 0, ts=T0 + 40 * DAY)}
    weights = Weights(rrf_k=60, reply=0, key=0, session=0, in_window=0.5)
    window = (when + timedelta(days=30), when + timedelta(days=60))
    ranked = rank([1, 2], [], items, weights, window)
    assert [r.rowid for r in ranked] == [2, 1]
    assert ranked[0].credits["time"] == pytest.approx(0.5 / 62)
    assert [r.rowid for r in rank([1, 2], [], items, weights, None)] == [1, 2]


# Through the vault.


def test_search_finds_the_round_through_its_reply(vault: Vault) -> None:
    """The user's words don't match; the reply does, and points back to the round."""
    vault.ingest(
        [
            Message("user", "What should I cook for my sister's birthday dinner?"),
            Message("assistant", "A mushroom risotto with parmesan would be lovely."),
        ],
        extract=False,
    )
    vault.ingest([Message("user", "Remind me to water the plants")], extract=False)
    texts = [h.text for h in vault.search("risotto", k=5)]
    # Both user turns are vector candidates (the test embedder knows no meaning); the
    # round whose reply matched comes first, the unrelated turn last.
    assert texts == [
        "What should I cook for my sister's birthday dinner?",
        "A mushroom risotto with parmesan would be lovely.",
        "Remind me to water the plants",
    ]
    keyword_only = vault.search("risotto", k=5, mode=SearchMode.KEYWORD)
    assert [h.text for h in keyword_only] == texts[1:2]


def test_replies_are_keyword_only_and_user_turns_are_embedded(vault: Vault) -> None:
    vault.ingest(
        [
            Message("user", "I adopted a greyhound called Pixel"),
            Message("assistant", "Congratulations on adopting Pixel!"),
        ],
        extract=False,
    )
    rows = dict(
        vault.conn.execute(
            "SELECT m.role, i.vec IS NOT NULL FROM items i JOIN messages m "
            "ON i.type=? AND m.rowid=i.ref",
            (state.ITEM_TURN,),
        ).fetchall()
    )
    assert rows == {"user": 1, "assistant": 0}
    assert [h.turn.role for h in vault.search("Pixel", k=5) if h.turn] == ["user", "assistant"]


def test_a_time_expression_prefers_turns_from_that_period(vault: Vault) -> None:
    now = datetime(2023, 5, 28, 12, tzinfo=UTC)
    vault.clock = FixedClock(now)
    for when, friend in (
        (datetime(2023, 1, 10, tzinfo=UTC), "Sam"),
        (datetime(2023, 4, 20, tzinfo=UTC), "Alex"),
    ):
        vault.ingest(
            [Message("user", f"I went to a jazz concert downtown with {friend}", timestamp=when)],
            created_at=when,
            extract=False,
        )
    hits = vault.search("the jazz concert last month", k=2, now=now)
    assert hits[0].turn is not None and "Alex" in hits[0].turn.text
    hits = vault.search("the jazz concert in January", k=2, now=now)
    assert hits[0].turn is not None and "Sam" in hits[0].turn.text


def test_the_window_stays_open_a_few_days_after_its_end() -> None:
    """An April event is often told on May 1st; a month's window reaches 7 days on."""
    start = datetime(2023, 4, 1, tzinfo=UTC)
    end = datetime(2023, 5, 1, tzinfo=UTC)
    ms = int(end.timestamp() * 1000)
    items = {
        1: turn(1, "a", 0, ts=ms + 3 * DAY),
        2: turn(2, "b", 0, ts=ms + 20 * DAY),
        3: turn(3, "c", 0, ts=ms - 40 * DAY),
    }
    weights = Weights(rrf_k=60, reply=0, key=0, session=0, in_window=0.5)
    ranked = {r.rowid: r for r in rank([3, 2, 1], [], items, weights, (start, end))}
    assert "time" in ranked[1].credits
    assert "time" not in ranked[2].credits and "time" not in ranked[3].credits
