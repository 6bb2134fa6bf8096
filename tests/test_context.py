"""Vault.context: the best memories and turns for a query, in one block within a budget."""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FAST_TMP, PASSPHRASE, FixedClock, create_vault
from memsync import Context, ContextItem
from memsync.cli import cli
from memsync.errors import UsageError
from memsync.model import Category, Kind, Message, SearchFilters, SearchHit
from memsync.retrieve.context import (
    HEADER,
    MEMORIES_HEADING,
    TURNS_HEADING,
    assemble,
    count_tokens,
)
from memsync.vault import Vault

T0 = datetime.fromisoformat("2026-03-01T12:00:00+00:00")
DAY = timedelta(days=1)

WORDS = """peanuts allergy dinner Lisbon marathon Berlin cello piano budget savings dog
Biscuit flight window seat hiking Dolomites coffee tea novel thriller museum Sunday
restaurant noodles project deadline manager sister brother garden tomatoes bicycle
commute train weekend internationalisation conversation photography""".split()


def expected_text(ctx: Context) -> str:
    """The block as its items say it should read: header, then each non-empty section."""
    memories = [i.text for i in ctx.items if i.memory is not None]
    turns = [i.text for i in ctx.items if i.turn is not None]
    lines = [HEADER]
    if memories:
        lines += [MEMORIES_HEADING, *memories]
    if turns:
        lines += [TURNS_HEADING, *turns]
    return "\n".join(lines)


def ref(x: SearchHit | ContextItem) -> str:
    """The memory id or `source#turn` a hit or an item stands for."""
    if x.memory is not None:
        return x.memory.id
    assert x.turn is not None
    return f"{x.turn.source_id}#{x.turn.index}"


def check_consistent(ctx: Context) -> None:
    assert ctx.tokens <= ctx.budget_tokens
    assert ctx.tokens == count_tokens(ctx.text)
    if not ctx.items:
        assert ctx == Context("", 0, ctx.budget_tokens, ())
        return
    assert ctx.text == expected_text(ctx)
    for item in ctx.items:
        assert (item.memory is None) != (item.turn is None)
        assert item.tokens == count_tokens(item.text)


# Counting tokens.


def test_count_tokens_counts_words_punctuation_and_long_words() -> None:
    assert count_tokens("") == 0 and count_tokens(" \n\t ") == 0
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("don't") == 3  # don ' t
    assert count_tokens("planning") == 1  # 8 characters: 2 beyond 6, under 4
    assert count_tokens("conversation") == 2  # 12: 6 beyond the first 6
    assert count_tokens("internationalisation") == 4  # 20: 14 beyond
    assert count_tokens("2026-03-01") == 5
    assert count_tokens("- [2026-03-01, user] …") == 11
    lines = ["Memories:", "- Allergic to peanuts (health, since 2026-03-01)"]
    assert count_tokens("\n".join(lines)) == sum(count_tokens(line) for line in lines)


# The budget, on a vault with many memories and long turns.


@pytest.fixture(scope="module")
def big_vault() -> Iterator[Vault]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        v = create_vault(Path(tmp) / "big").vault
        v.clock = FixedClock(T0)
        for i in range(90):
            text = " ".join(rng.choices(WORDS, k=rng.choice([3, 6, 12, 40, 120])))
            v.add(f"{text} {i}.", category=rng.choice([None, *Category]))
        for c in range(6):
            sentences = [
                " ".join(rng.choices(WORDS, k=rng.randint(4, 30))).capitalize() + "."
                for _ in range(rng.randint(1, 25))
            ]
            v.ingest(
                [
                    Message("user", " ".join(sentences), timestamp=T0 - c * DAY),
                    Message("assistant", " ".join(rng.choices(WORDS, k=200)), timestamp=T0),
                ],
                title=f"chat {c}",
                extract=False,
            )
        yield v
        v.close()


QUERIES = ["peanuts allergy dinner", "Berlin marathon", "cello", "the", "zzz nothing", ""]


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(50, 2000), query=st.sampled_from(QUERIES))
def test_the_block_never_exceeds_the_budget(big_vault: Vault, budget: int, query: str) -> None:
    ctx = big_vault.context(query, budget_tokens=budget)
    assert ctx.budget_tokens == budget
    check_consistent(ctx)
    if query in ("peanuts allergy dinner", "Berlin marathon", "cello") and budget >= 120:
        assert ctx.items  # the budget is used, not just respected


@pytest.mark.parametrize("budget", [50, 64, 100, 250, 500, 1000, 2000])
def test_the_budget_is_used_and_the_best_hit_goes_in(big_vault: Vault, budget: int) -> None:
    query = "Berlin marathon"
    ctx = big_vault.context(query, budget_tokens=budget)
    check_consistent(ctx)
    best = big_vault.search(query, k=1)[0]
    if count_tokens(best.text) + count_tokens(HEADER) + 20 < budget:
        assert ref(best) in {ref(i) for i in ctx.items}
    if budget >= 250:
        assert ctx.tokens > budget * 0.8  # forty hits of random text fill it up


def test_the_best_hit_is_in_the_block(vault: Vault) -> None:
    vault.clock = FixedClock(T0)
    best = vault.add("Allergic to peanuts", category=Category.HEALTH)
    vault.add("Has a dog named Biscuit")
    vault.add("Plays the cello on Sundays", kind=Kind.EPISODIC, valid_from=T0 + 4 * DAY)
    ctx = vault.context("peanuts", budget_tokens=50)
    assert ctx.items[0].memory == best
    assert ctx.items[0].text == "- Allergic to peanuts (health, since 2026-03-01)"
    assert ctx.text.splitlines()[:3] == [HEADER, MEMORIES_HEADING, ctx.items[0].text]
    lines = {i.memory.text: i.text for i in vault.context("cello dog").items if i.memory}
    assert lines["Plays the cello on Sundays"] == "- Plays the cello on Sundays (on 2026-03-05)"
    assert lines["Has a dog named Biscuit"] == "- Has a dog named Biscuit (since 2026-03-01)"


def test_items_match_the_text_and_sections_keep_rank_order(vault: Vault) -> None:
    vault.clock = FixedClock(T0)
    m1 = vault.add("Training for the Berlin marathon in September")
    m2 = vault.add("Ran a marathon in Lisbon last year", kind=Kind.EPISODIC)
    src = vault.ingest(
        [
            Message("user", "How should I taper before the marathon?", timestamp=T0 - DAY),
            Message("assistant", "Cut your mileage over the last three weeks.", timestamp=T0),
        ],
        extract=False,
    ).source
    ctx = vault.context("marathon", budget_tokens=1000)
    check_consistent(ctx)
    hits = vault.search("marathon", k=40)
    assert [i.memory for i in ctx.items if i.memory] == [h.memory for h in hits if h.memory]
    assert [i.turn for i in ctx.items if i.turn] == [h.turn for h in hits if h.turn]
    assert {m1.id, m2.id} == {m.id for m in ctx.memories}
    assert "- [2026-02-28, user] How should I taper before the marathon?" in ctx.text.splitlines()
    assert (src.id, 0) in {(t.source_id, t.index) for t in ctx.turns}
    only_memories = vault.context("marathon", filters=SearchFilters(include_turns=False))
    assert TURNS_HEADING not in only_memories.text and MEMORIES_HEADING in only_memories.text
    only_turns = vault.context("taper")
    assert not only_turns.memories or MEMORIES_HEADING in only_turns.text


# Excerpts.

FILLER = [
    f"Sentence {n} is about {w} and nothing else of note here." for n, w in enumerate(WORDS[:24])
]


def test_a_long_turn_is_cut_to_the_sentences_with_the_query_words(vault: Vault) -> None:
    key = "My sister Ottoline moved to Reykjavik in the spring."
    text = " ".join([*FILLER[:12], key, *FILLER[12:]])
    vault.ingest([Message("user", text, timestamp=T0)], extract=False)
    assert count_tokens(text) > 200
    ctx = vault.context("where does Ottoline live now, Reykjavik?", budget_tokens=200)
    check_consistent(ctx)
    (item,) = ctx.items
    assert key in item.text
    assert item.text.startswith("- [2026-03-01, user] … ") and item.text.endswith(" …")
    assert item.tokens <= 60  # the per-item cap: max(60, 200 // 4)
    assert len(item.text) < len(text) / 2
    # A bigger budget keeps more of the turn, still around the same sentence.
    wide = vault.context("Ottoline Reykjavik", budget_tokens=1000).items[0]
    assert key in wide.text and item.tokens < wide.tokens <= 250


def test_one_overlong_sentence_is_cut_to_the_words_around_the_query(vault: Vault) -> None:
    words = [f"word{n}" for n in range(150)]
    words[90] = "Ottoline"
    vault.ingest([Message("user", " ".join(words), timestamp=T0)], extract=False)
    ctx = vault.context("Ottoline", budget_tokens=50)
    check_consistent(ctx)
    (item,) = ctx.items
    assert "Ottoline" in item.text
    assert item.text.startswith("- [2026-03-01, user] … word") and item.text.endswith(" …")


def test_a_turn_without_a_timestamp_shows_its_role(vault: Vault) -> None:
    vault.ingest([Message("assistant", "Try the noodle bar on Rua Augusta.")], extract=False)
    ctx = vault.context("noodle bar")
    assert [i.text for i in ctx.items] == ["- [assistant] Try the noodle bar on Rua Augusta."]


def test_the_same_turn_text_appears_once(vault: Vault) -> None:
    said = "I am training for the Berlin marathon in September."
    for n, reply in enumerate(["Good luck!", "How is the training going?"]):
        vault.ingest(
            [Message("user", said, timestamp=T0 + n * DAY), Message("assistant", reply)],
            extract=False,
        )
    assert sum(h.text == said for h in vault.search("Berlin marathon")) == 2
    ctx = vault.context("Berlin marathon")
    check_consistent(ctx)
    assert ctx.text.count(said) == 1
    assert sum(t.text == said for t in ctx.turns) == 1
    # A turn saying exactly what a memory already in the block says adds nothing either.
    memory = vault.add(said)
    turn_hit = next(h for h in vault.search("Berlin marathon") if h.turn is not None)
    both = assemble([SearchHit(1.0, memory=memory), turn_hit], "Berlin marathon", 1000)
    assert both.memories == (memory,) and both.turns == ()
    assert assemble([turn_hit], "Berlin marathon", 1000).turns == (turn_hit.turn,)


def test_an_item_too_big_is_skipped_and_a_smaller_later_one_goes_in(vault: Vault) -> None:
    big = vault.add(
        "zebra quilt with a striped pattern, " + " ".join(f"pattern{n}" for n in range(120))
    )
    small = vault.add("a zebra in the hallway")
    query = "zebra quilt striped pattern"
    assert [h.memory.id for h in vault.search(query, k=40) if h.memory] == [big.id, small.id]
    ctx = vault.context(query, budget_tokens=100)
    check_consistent(ctx)
    assert [m.id for m in ctx.memories] == [small.id]
    assert "pattern7" not in ctx.text
    wide = vault.context(query, budget_tokens=400)
    assert [m.id for m in wide.memories] == [big.id, small.id]


def test_an_empty_result_is_an_empty_block(vault: Vault) -> None:
    assert vault.context("anything at all") == Context("", 0, 1000, ())
    vault.add("Allergic to peanuts", category=Category.HEALTH)
    assert vault.context("peanuts").items
    nothing = SearchFilters(categories=(Category.FINANCE,))
    assert vault.context("peanuts", filters=nothing) == Context("", 0, 1000, ())


@pytest.mark.parametrize("budget", [49, 10, 0, -5])
def test_a_budget_too_small_is_a_usage_error(vault: Vault, budget: int) -> None:
    vault.add("Allergic to peanuts")
    with pytest.raises(UsageError, match=rf"budget of {budget} tokens is too small.*at least 50"):
        vault.context("peanuts", budget_tokens=budget)
    assert vault.context("peanuts", budget_tokens=50).items


def test_filters_and_now_are_respected(vault: Vault) -> None:
    vault.clock = FixedClock(T0)
    secret = vault.add("Sees a therapist about anxiety on Tuesdays", category=Category.PRIVATE)
    health = vault.add("Takes medication for anxiety", category=Category.HEALTH)
    trip = vault.add(
        "Anxiety about the flight to Oslo", kind=Kind.EPISODIC, valid_until=T0 + 2 * DAY
    )
    vault.ingest([Message("user", "my anxiety is worse this week", timestamp=T0)], extract=False)
    everything = vault.context("anxiety")
    assert {secret.id, health.id, trip.id} <= {m.id for m in everything.memories}
    assert everything.turns and secret.text in everything.text
    allowed = SearchFilters(categories=(Category.HEALTH, Category.TRAVEL))
    ctx = vault.context("anxiety", filters=allowed)
    assert {m.id for m in ctx.memories} == {health.id}
    assert secret.text not in ctx.text and not ctx.turns
    later = vault.context("anxiety", now=T0 + 5 * DAY)
    assert trip.id not in {m.id for m in later.memories} and health.id in {
        m.id for m in later.memories
    }


def test_public_types_are_exported() -> None:
    import memsync

    assert memsync.Context is Context and memsync.ContextItem is ContextItem
    assert {"Context", "ContextItem"} <= set(memsync.__all__)


# The command line.


@pytest.fixture
def cli_vault(vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch) -> Vault:
    """The `vault` fixture, also reachable by `memsync` commands."""
    monkeypatch.setenv("MEMSYNC_HOME", str(home))
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("MEMSYNC_TEST_FAST_KDF", "1")
    return vault


def memsync(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_prints_the_block_and_json(cli_vault: Vault) -> None:
    m = cli_vault.add("Allergic to peanuts", category=Category.HEALTH)
    src = cli_vault.ingest(
        [Message("user", "Which restaurant avoids peanuts?", timestamp=T0)], extract=False
    ).source
    expected = cli_vault.context("peanuts", budget_tokens=200)
    code, out, _ = memsync("context", "peanuts", "--budget", "200")
    assert code == 0 and out == expected.text + "\n"
    assert "- [2026-03-01, user] Which restaurant avoids peanuts?" in out
    code, out, _ = memsync("context", "peanuts", "--budget", "200", "--json")
    data = json.loads(out)
    assert data["text"] == expected.text and data["tokens"] == expected.tokens
    assert data["budget_tokens"] == 200
    assert [
        (i["type"], i.get("id"), i.get("source_id"), i.get("index")) for i in data["items"]
    ] == [
        ("memory", m.id, None, None),
        ("turn", None, src.id, 0),
    ]
    assert [i["text"] for i in data["items"]] == [i.text for i in expected.items]
    code, out, _ = memsync("context", "peanuts", "--memories-only", "--json")
    assert [i["type"] for i in json.loads(out)["items"]] == ["memory"]


def test_cli_empty_result_and_small_budget(cli_vault: Vault) -> None:
    code, out, err = memsync("context", "peanuts")
    assert (code, out) == (0, "") and "nothing in the vault matches" in err
    assert json.loads(memsync("context", "peanuts", "--json")[1])["items"] == []
    code, out, err = memsync("context", "peanuts", "--budget", "20")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "memsync: error: a context budget of 20 tokens is too small; "
        "use at least 50 (1000 is the default)"
    ]
    assert "Example: memsync context" in memsync("context", "--help")[1]
