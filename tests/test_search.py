"""Hybrid search: BM25 and vectors fused by rank, the same filters in both halves."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FAST_TMP, PASSPHRASE, FixedClock, create_vault
from memsync.crypto.device import FAST_KDF
from memsync.errors import EmbedderError
from memsync.index import vectors
from memsync.index.embed import HashEmbedder, MiniLMEmbedder
from memsync.index.vectors import VectorIndex
from memsync.model import Category, Kind, Message, SearchFilters, SearchHit, Status
from memsync.retrieve import search as hybrid
from memsync.retrieve.rank import Weights
from memsync.vault import Vault


def memory_ids(hits: Sequence[SearchHit]) -> list[str]:
    return [h.memory.id for h in hits if h.memory is not None]


def turns(hits: Sequence[SearchHit]) -> list[tuple[str, int]]:
    return [(h.turn.source_id, h.turn.index) for h in hits if h.turn is not None]


@pytest.fixture(scope="module")
def minilm_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    made = Vault.create(
        tmp_path_factory.mktemp("minilm") / "home",
        PASSPHRASE,
        kdf=FAST_KDF,
        embedder=MiniLMEmbedder(),
    )
    v = made.vault
    for text, category in (
        ("Allergic to peanuts", Category.HEALTH),
        ("Prefers window seats on long flights", Category.TRAVEL),
        ("Works as a software engineer at a bank", Category.CAREER),
        ("Has a dog named Biscuit", Category.RELATIONSHIPS),
        ("Is learning to play the cello", Category.LEARNING),
        ("Saves twenty percent of every paycheck", Category.FINANCE),
        ("Likes thrillers and detective novels", Category.INTERESTS),
        ("Goes to bed before eleven", Category.PRODUCTIVITY),
    ):
        v.add(text, category=category)
    v.ingest(
        [
            Message("user", "Can you suggest a weekend trip to the mountains?"),
            Message("assistant", "How about hiking in the Dolomites?"),
        ],
        extract=False,
    )
    yield v
    v.close()


def test_a_semantic_match_is_found_by_meaning(minilm_vault: Vault) -> None:
    """No word is shared: only the model knows peanuts are a food allergy."""
    hits = minilm_vault.search("food allergy", k=3)
    assert hits[0].memory is not None
    assert hits[0].memory.text == "Allergic to peanuts"
    assert hits[0].vector_rank == 1
    top = minilm_vault.search("which animals does the user keep as pets", k=1)
    assert top[0].text == "Has a dog named Biscuit"
    assert minilm_vault.search("trip to go hiking", k=1)[0].turn is not None


def test_an_exact_keyword_match_ranks_first(minilm_vault: Vault) -> None:
    hits = minilm_vault.search("Biscuit", k=3)
    assert hits[0].text == "Has a dog named Biscuit"
    assert hits[0].keyword_rank == 1
    assert hits[0].vector_rank is not None  # found by both halves, so it leads the fusion
    assert hits[0].score > hits[1].score


def test_fusion_scores_are_reciprocal_ranks(vault: Vault) -> None:
    vault.add("The quokka is my favourite animal")
    vault.add("Grocery list: apples, bread")
    plain = Weights(rrf_k=60, reply=0, key=0, session=0, in_window=0)
    hits = vault.search("quokka", k=5, weights=plain)
    for h in hits:
        expected = sum(1 / (60 + r) for r in (h.keyword_rank, h.vector_rank) if r is not None)
        assert h.score == pytest.approx(expected)
    assert hits[0].text == "The quokka is my favourite animal"
    assert (hits[0].keyword_rank, hits[0].vector_rank) == (1, 1)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


# Filters, in both halves.


def seed_filter_vault(v: Vault, t0: datetime) -> dict[str, str]:
    day = timedelta(days=1)
    v.clock = FixedClock(t0)
    ids = {
        "career": v.add(
            "quarterly planning for the team",
            category=Category.CAREER,
            tags=["work"],
            observed_at=t0 - 9 * day,
        ).id,
        "travel": v.add(
            "flight to Oslo for a conference",
            kind=Kind.EPISODIC,
            category=Category.TRAVEL,
            tags=["work", "trip"],
            valid_until=t0 + 9 * day,
            observed_at=t0 - 3 * day,
        ).id,
        "expired": v.add(
            "hotel in Rome booked",
            kind=Kind.EPISODIC,
            category=Category.TRAVEL,
            tags=["trip"],
            valid_until=t0 - day,
            observed_at=t0 - 6 * day,
        ).id,
        "plain": v.add("enjoys strong coffee", observed_at=t0 - day).id,
    }
    src = v.ingest(
        [
            Message("user", "planning a conference trip", timestamp=t0 - 2 * day),
            Message("assistant", "which city?", timestamp=t0 - 2 * day),
        ],
        extract=False,
    ).source
    ids["source"] = src.id
    return ids


# Memories (by name) and whether turns are expected, for each filter.
FILTER_CASES: list[tuple[SearchFilters, set[str], bool]] = [
    (SearchFilters(), {"career", "travel", "plain"}, True),
    (SearchFilters(include_expired=True), {"career", "travel", "expired", "plain"}, True),
    (SearchFilters(kinds=(Kind.EPISODIC,)), {"travel"}, False),
    (SearchFilters(kinds=(Kind.EPISODIC,), include_expired=True), {"travel", "expired"}, False),
    (SearchFilters(categories=(Category.CAREER,)), {"career"}, False),
    (SearchFilters(categories=(Category.FINANCE,)), set(), False),
    (SearchFilters(tags=("work",)), {"career", "travel"}, False),
    (SearchFilters(tags=("trip",), include_expired=True), {"travel", "expired"}, False),
    (SearchFilters(tags=("nothing",)), set(), False),
    (SearchFilters(include_turns=False), {"career", "travel", "plain"}, False),
    (SearchFilters(statuses=(Status.SUPERSEDED,)), set(), False),
]


@pytest.mark.parametrize("case", range(len(FILTER_CASES)))
def test_filters_restrict_both_halves(vault: Vault, t0: datetime, case: int) -> None:
    """The vault is tiny, so the vector half returns every item the filters allow: any
    item the filters forbid would show up here if that half ignored them."""
    ids = seed_filter_vault(vault, t0)
    filters, names, with_turns = FILTER_CASES[case]
    for query in ("conference trip planning", "coffee", "zzz unmatched"):
        hits = vault.search(query, k=50, filters=filters)
        assert set(memory_ids(hits)) == {ids[n] for n in names}, query
        # The reply ("which city?") is indexed for keywords only, and none match it.
        assert set(turns(hits)) == ({(ids["source"], 0)} if with_turns else set()), query
        # The keyword half alone obeys them too.
        keyword_only = [h for h in hits if h.keyword_rank is not None]
        assert {h.memory.id for h in keyword_only if h.memory} <= {ids[n] for n in names}


def test_time_range_filters(vault: Vault, t0: datetime) -> None:
    ids = seed_filter_vault(vault, t0)
    day = timedelta(days=1)
    window = SearchFilters(since=t0 - 4 * day, until=t0 - day)
    hits = vault.search("conference trip coffee", k=50, filters=window)
    assert set(memory_ids(hits)) == {ids["travel"]}  # "plain" is at t0-1d: until is exclusive
    assert set(turns(hits)) == {(ids["source"], 0)}
    hits = vault.search(
        "conference", k=50, filters=SearchFilters(since=t0 - 2 * day + timedelta(seconds=1))
    )
    assert set(memory_ids(hits)) == {ids["plain"]} and turns(hits) == []


def test_expired_episodic_memories_are_hidden_unless_asked_for(vault: Vault, t0: datetime) -> None:
    vault.clock = FixedClock(t0)
    gone = vault.add(
        "dentist appointment on Friday", kind=Kind.EPISODIC, valid_until=t0 - timedelta(hours=1)
    )
    soon = vault.add(
        "dentist checkup next month", kind=Kind.EPISODIC, valid_until=t0 + timedelta(days=30)
    )
    assert memory_ids(vault.search("dentist")) == [soon.id]
    shown = memory_ids(vault.search("dentist", filters=SearchFilters(include_expired=True)))
    assert set(shown) == {gone.id, soon.id}
    assert memory_ids(vault.search("dentist", now=t0 + timedelta(days=31))) == []


def test_turns_are_left_out_when_memory_only_filters_are_set(vault: Vault) -> None:
    src = vault.ingest([Message("user", "my favourite colour is teal")], extract=False).source
    vault.add("favourite colour is teal", category=Category.IDENTITY, tags=["colour"])
    assert turns(vault.search("teal")) == [(src.id, 0)]
    for filters in (
        SearchFilters(kinds=(Kind.SEMANTIC,)),
        SearchFilters(categories=(Category.IDENTITY,)),
        SearchFilters(tags=("colour",)),
        SearchFilters(include_turns=False),
    ):
        hits = vault.search("teal", filters=filters)
        assert turns(hits) == [] and len(memory_ids(hits)) == 1


# Random vaults and random filters: search returns exactly what list() allows.

attributes = st.tuples(
    st.sampled_from(list(Kind)),
    st.none() | st.sampled_from([Category.CAREER, Category.HEALTH, Category.TRAVEL]),
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=2),
    st.integers(-5, 5),  # observed, days from t0
    st.none() | st.integers(-3, 3),  # valid until, days from t0
    st.sampled_from(["keep", "edit", "forget"]),
)
filters_strategy = st.builds(
    SearchFilters,
    kinds=st.lists(st.sampled_from(list(Kind)), max_size=1).map(tuple),
    categories=st.lists(st.sampled_from([Category.CAREER, Category.TRAVEL]), max_size=2).map(tuple),
    tags=st.lists(st.sampled_from(["a", "b", "z"]), max_size=2).map(tuple),
    statuses=st.sampled_from([(Status.ACTIVE,), (Status.SUPERSEDED,), ()]),
    since=st.none() | st.integers(-6, 6).map(lambda d: T0 + timedelta(days=d)),
    until=st.none() | st.integers(-6, 6).map(lambda d: T0 + timedelta(days=d)),
    include_turns=st.booleans(),
    include_expired=st.booleans(),
)
T0 = datetime.fromisoformat("2026-03-01T12:00:00+00:00")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(attributes, min_size=1, max_size=8),
    filters=filters_strategy,
    query=st.sampled_from(["apple banana", "cherry", "a", ""]),
)
def test_search_returns_exactly_the_memories_the_filters_allow(
    items: list[tuple[object, ...]], filters: SearchFilters, query: str
) -> None:
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        v = create_vault(Path(tmp) / "v").vault
        try:
            v.clock = FixedClock(T0)
            words = ["apple", "banana", "cherry", "damson", "elder"]
            for i, (kind, category, tags, observed, until, fate) in enumerate(items):
                m = v.add(
                    f"{words[i % 5]} note {i}",
                    kind=kind,
                    category=category,
                    tags=tags,  # type: ignore[arg-type]
                    observed_at=T0 + timedelta(days=observed),  # type: ignore[operator]
                    valid_until=None if until is None else T0 + timedelta(days=until),  # type: ignore[operator]
                )
                if fate == "edit":
                    v.edit(m.id, text=f"{words[(i + 1) % 5]} edited {i}")
                elif fate == "forget":
                    v.forget(m.id)
            listed = v.list(filters, limit=1000).items
            # Tombstones are listed (by id, without text) but there is nothing to search.
            allowed = {m.id for m in listed if m.status is not Status.FORGOTTEN}
            hits = v.search(query, k=100, filters=filters, now=T0)
            found = set(memory_ids(hits))
            if query.strip():
                # A non-empty query embeds, and the vector half ranks every allowed item.
                assert found == allowed
            else:
                assert hits == []
            assert all(v.get(i).status is not Status.FORGOTTEN for i in found)
        finally:
            v.close()


# Queries that FTS5 would choke on if they reached MATCH as written.

HOSTILE = [
    "",
    " ",
    "\t\n",
    '"',
    '""',
    "'",
    "(",
    ")",
    "()",
    "(((",
    "a AND",
    "OR",
    "NOT",
    "AND OR NOT",
    "NEAR",
    "NEAR(a b)",
    "NEAR(a b, 2)",
    "a NEAR/2 b",
    "*",
    "a*",
    "*a",
    "-",
    "-a",
    "a - b",
    "^a",
    "a:b",
    "text:foo",
    "{a b}",
    "[x]",
    "a + b",
    "col:",
    ":",
    ";",
    "--",
    "/*",
    "'; DROP TABLE items; --",
    '"unbalanced',
    'a"b',
    "\\",
    "%",
    "_",
    "\x00",
    "\x00abc",
    "ß",
    "İstanbul",
    "日本語のテキスト",
    "emoji 🎉🎉",
    "🎉",
    "👩‍👩‍👧",
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǒ̡̻",
    "\u200b",
    "\ufeff",
    "\U0001d518\U0001d52b\U0001d526",  # mathematical fraktur letters (NFKC: "Uni")
    "a" * 5000,
    " ".join(["word"] * 500),
    "OR " * 100,
    "🙂" * 300,
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_never_raise(vault: Vault, query: str) -> None:
    vault.add("a b text foo word ß istanbul 日本語")
    vault.ingest([Message("user", "NEAR the AND of OR")], extract=False)
    hits = vault.search(query, k=5)
    assert len(hits) <= 5
    if not query.strip():
        assert hits == []
    vault.search(query, filters=SearchFilters(tags=("x",), categories=(Category.CAREER,)))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(max_size=60))
def test_any_text_query_never_raises(vault: Vault, query: str) -> None:
    if not vault.list().total:
        vault.add("some text to find")
    vault.search(query, k=3)


def test_hostile_queries_with_the_default_model(minilm_vault: Vault) -> None:
    for query in HOSTILE:
        minilm_vault.search(query, k=3)


# The in-memory vector cache stays in step with every write.


def test_vector_cache_follows_edits_and_forgets(vault: Vault) -> None:
    m = vault.add("owns a red bicycle")
    assert memory_ids(vault.search("red bicycle")) == [m.id]  # the cache is now loaded
    edited = vault.edit(m.id, text="owns a blue bicycle")
    assert memory_ids(vault.search("red bicycle")) == [edited.id]
    assert memory_ids(
        vault.search("bicycle", filters=SearchFilters(statuses=(Status.SUPERSEDED,)))
    ) == [m.id]
    vault.forget(edited.id)
    every = SearchFilters(statuses=(), include_expired=True)
    for query in ("blue bicycle", "red bicycle", "owns"):
        assert edited.id not in memory_ids(vault.search(query, filters=every))
    # Forgetting the newest version tombstones the superseded one too.
    assert vault.search("bicycle", filters=every) == []
    # A fresh load of the cache agrees with the one kept in step.
    vault.core.vectors = VectorIndex(vault.embedder.dim)  # a fresh load
    assert vault.search("bicycle", filters=every) == []


def test_vector_cache_matches_a_fresh_load_after_many_writes(vault: Vault) -> None:
    # Distinct words per note, so no two vector scores tie (tied items may come back in
    # either order, which depends on the cache's layout).
    ms = [
        vault.add(f"note {hashlib.sha256(bytes([i])).hexdigest()[: i % 7 + 4]} about gardening")
        for i in range(30)
    ]
    vault.search("gardening")
    for m in ms[::3]:
        vault.edit(m.id, text=m.text + " and roses")
    for m in ms[1::3]:
        vault.forget(m.id)
    vault.ingest([Message("user", "gardening tips please")], extract=False)
    kept = [
        (h.memory.id if h.memory else h.text, h.vector_rank)
        for h in vault.search("gardening roses", k=40)
    ]
    vault.core.vectors = VectorIndex(vault.embedder.dim)  # a fresh load
    fresh = [
        (h.memory.id if h.memory else h.text, h.vector_rank)
        for h in vault.search("gardening roses", k=40)
    ]
    assert kept == fresh


class FailingEmbedder(HashEmbedder):
    """An embedder (a pluggable backend) that fails on one text, to abort a write."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:  # type: ignore[override]
        if any("EXPLODE" in t for t in texts):
            raise EmbedderError("the model failed")
        return super().embed(texts)


def test_a_failed_write_leaves_no_trace_in_search(home: Path) -> None:
    v = create_vault(home, embedder=FailingEmbedder()).vault
    try:
        keep = v.add("apples and pears")
        assert memory_ids(v.search("apples")) == [keep.id]
        entries = v.log.count()
        with pytest.raises(EmbedderError):
            v.add("apples EXPLODE")
        with pytest.raises(EmbedderError):
            v.edit(keep.id, text="pears EXPLODE")
        assert v.log.count() == entries
        assert memory_ids(v.search("apples pears", k=10)) == [keep.id]
        assert v.get(keep.id).status is Status.ACTIVE
        assert v.list().total == 1
        assert v.check().ok
    finally:
        v.close()


def test_vector_cache_sees_writes_made_through_another_open_vault(home: Path) -> None:
    """A long-running adapter (a server) and the CLI each hold the vault open: the
    server's cache must not serve what the CLI has since edited or forgotten."""
    server = create_vault(home).vault
    try:
        m = server.add("owns a red bicycle")
        assert memory_ids(server.search("red bicycle")) == [m.id]  # cache loaded
        with Vault.open(home, PASSPHRASE, embedder=HashEmbedder()) as cli:
            edited = cli.edit(m.id, text="owns a blue bicycle")
            fish = cli.add("keeps goldfish")
        hits = server.search("red bicycle")
        assert memory_ids(hits)[0] == edited.id
        assert m.id not in memory_ids(hits)
        assert all(h.memory is None or h.memory.status is Status.ACTIVE for h in hits)
        found = next(h for h in server.search("goldfishes") if h.memory and h.memory.id == fish.id)
        assert found.vector_rank is not None  # the new memory is in the vector half too
        with Vault.open(home, PASSPHRASE, embedder=HashEmbedder()) as cli:
            cli.forget(edited.id)
        assert memory_ids(server.search("bicycle")) == [fish.id]
        # The server's own writes keep the cache in step as before.
        mine = server.add("owns a green bicycle")
        assert memory_ids(server.search("bicycle")) == [mine.id, fish.id]
        every = SearchFilters(statuses=(), include_expired=True)
        assert set(memory_ids(server.search("bicycle", filters=every))) == {mine.id, fish.id}
    finally:
        server.close()


def test_halves_run_side_by_side_give_the_same_answer(
    minilm_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large vault runs the keyword half on a helper thread and splits the vector scan;
    the answer is the one the halves give one after the other."""
    queries = ["food allergy", "mountain trip", "what do I read", "job", "cello lessons"]
    alone = [[(h.score, h.memory, h.turn) for h in minilm_vault.search(q)] for q in queries]
    monkeypatch.setattr(hybrid, "PARALLEL_ITEMS", 0)
    monkeypatch.setattr(vectors, "SPLIT_ROWS", 0)
    together = [[(h.score, h.memory, h.turn) for h in minilm_vault.search(q)] for q in queries]
    assert together == alone


def test_a_large_index_picks_candidates_in_fewer_dimensions_then_scores_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above PROJECT_ROWS the scan picks candidates in the vectors' main components and
    scores them exactly: the answer has exact cosines, in order, and (on vectors shaped
    like a sentence model's, most of their variance in few directions) the same items as
    a full scan."""
    from memsync.index.filters import Conditions

    monkeypatch.setattr(vectors, "PROJECT_ROWS", 2000)
    monkeypatch.setattr(vectors, "CANDIDATES", 300)
    rng = np.random.default_rng(1)
    dim, n = 384, 4000
    topics = rng.standard_normal((40, dim)).astype(np.float32)
    data = topics[rng.integers(0, 40, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    index = VectorIndex(dim)
    index._put_rows([(i + 1, 0, 0, 0, 0, 0, None, data[i].tobytes()) for i in range(n)])
    assert index._basis is not None and index.low.shape[1] == vectors.PROJECTED_DIMS
    cond = Conditions(
        types=(0,),
        statuses=(0,),
        kinds=(),
        categories=(),
        since=None,
        until=None,
        not_expired_at=None,
        tagged=None,
    )
    same = 0
    for _ in range(50):
        query = data[rng.integers(0, n)] + 0.2 * rng.standard_normal(dim).astype(np.float32)
        query /= np.linalg.norm(query)
        found = index.nearest(query, cond, 10)
        exact = np.argsort(-(data @ query), kind="stable")[:10] + 1
        scores = [s for _, s in found]
        assert scores == sorted(scores, reverse=True)
        for rowid, score in found:
            assert score == pytest.approx(float(data[rowid - 1] @ query), abs=1e-5)
        same += [r for r, _ in found] == list(exact)
    assert same >= 48
