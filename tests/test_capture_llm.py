"""Capture with a language model configured: the vault's settings choose the LLM
extractor, judge and summarizer, which talk to a real scripted OpenAI-compatible server
on loopback (tests/llm_server.py). The vault is real (encrypted, hash embedder)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli_support import cli_env, init, ok, ok_json, one_line_error, ring, run, tree_bytes
from conftest import FixedClock, open_vault
from llm_server import (
    CONVERSATION,
    GOOD,
    T0,
    ChatServer,
    Reply,
    answer,
    memory,
    server,
    user_prompt,
)
from memsync.errors import LLMError
from memsync.extract.rules import RuleExtractor
from memsync.model import Category, Kind, Message, SearchFilters, Status
from memsync.reconcile.decide import AMBIGUOUS, Neighbour, decide, words
from memsync.reconcile.decision import Decision
from memsync.vault import Vault

__all__ = ["cli_env", "ring", "server"]  # fixtures: every test gets an isolated CLI environment

FIXTURES = Path(__file__).parent / "fixtures"
CHATGPT = FIXTURES / "chatgpt" / "conversations.json"
OPENAI = FIXTURES / "openai" / "messages.jsonl"
MODEL = "test-model"
ALL_ACTIVE = SearchFilters(statuses=(Status.ACTIVE,), include_expired=True)


@pytest.fixture
def llm_vault(vault: Vault, server: ChatServer) -> Vault:
    """The vault with the server configured as its model (the extractor stays `rules`)."""
    vault.configure("llm.base_url", server.base_url)
    vault.configure("llm.model", MODEL)
    return vault


def system(server: ChatServer, n: int = -1) -> str:
    content: str = server.requests[n].body["messages"][0]["content"]
    return content


def active_texts(vault: Vault) -> list[str]:
    return sorted(m.text for m in vault.list(ALL_ACTIVE, limit=1000).items)


def fingerprint(vault: Vault) -> tuple[int, int, str]:
    """What a write would change: sources, log entries and the state digest."""
    return len(vault.sources()), vault.log.count(), vault.check().state_digest


# 1. The LLM extractor, chosen by the settings.


def test_configured_llm_extractor_makes_memories_with_spans(
    llm_vault: Vault, server: ChatServer
) -> None:
    llm_vault.configure("extractor", "llm")
    server.script(answer(GOOD))

    result = llm_vault.ingest(CONVERSATION, title="Intro")

    assert len(server.requests) == 1  # no judge request: nothing similar in the vault
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == MODEL and "authorization" not in request.headers
    sent = user_prompt(server)
    for i, m in enumerate(CONVERSATION):
        assert f"[turn {i}] {m.role}, " in sent and m.content in sent
    assert "Sunday 2026-03-01T09:02+00:00" in sent

    source = result.source
    assert result.added and source.messages == tuple(CONVERSATION)
    assert [o.decision for o in result.outcomes] == [Decision.ADD] * 3
    memories = {o.text: llm_vault.get(o.memory_id) for o in result.outcomes}
    assert sorted(memories) == [
        "Has a dentist appointment on 6 March 2026",
        "Is training for a marathon",  # the subject dropped
        "Works as a nurse in Leeds",
    ]
    quotes = {
        "Works as a nurse in Leeds": "I work as a nurse in Leeds",
        "Has a dentist appointment on 6 March 2026": "I have a Dentist appointment next Friday",
        "Is training for a marathon": "Also I'm training for a marathon.",
    }
    for text, m in memories.items():
        (p,) = m.provenance
        assert (p.source_id, p.extractor, p.extractor_version) == (source.id, "llm", "2:test-model")
        assert p.turn is not None and p.start is not None and p.end is not None
        assert CONVERSATION[p.turn].content[p.start : p.end] == quotes[text]
        (e,) = llm_vault.why(m.id).evidence
        assert e.quote == quotes[text] and e.role == "user"
    nurse = memories["Works as a nurse in Leeds"]
    assert (nurse.kind, nurse.category, nurse.confidence) == (Kind.SEMANTIC, Category.CAREER, 0.9)
    assert nurse.observed_at == T0
    dentist = memories["Has a dentist appointment on 6 March 2026"]
    assert (dentist.kind, dentist.category) == (Kind.EPISODIC, Category.HEALTH)
    assert dentist.valid_from == T0 + timedelta(minutes=2)
    assert dentist.valid_until == datetime(2026, 3, 6, 23, 59, 59, tzinfo=UTC)
    assert llm_vault.check().ok


def test_llm_extractor_reads_only_the_new_turns_of_a_grown_conversation(
    llm_vault: Vault, server: ChatServer
) -> None:
    llm_vault.configure("extractor", "llm")
    server.script(answer({"memories": [memory()]}))
    first = llm_vault.ingest(CONVERSATION, origin="chatgpt", external_id="conv-1")
    grown = [*CONVERSATION, Message("user", "We adopted a cat named Pixel.", T0 + timedelta(1))]
    # The model sees the new turn and the two before it, numbered from 0 in its window:
    # turn 2 there is turn 4 of the conversation.
    server.script(
        answer(
            {
                "memories": [
                    memory(  # from a context turn: already read, dropped
                        text="Is training for a marathon",
                        category="health",
                        turn=1,
                        quote="training for a marathon",
                    ),
                    memory(
                        text="Has a cat named Pixel",
                        category="relationships",
                        turn=2,
                        quote="adopted a cat named Pixel",
                    ),
                ]
            }
        )
    )

    second = llm_vault.ingest(grown, origin="chatgpt", external_id="conv-1")

    assert second.added and second.source.id != first.source.id
    assert [(o.decision, o.text) for o in second.outcomes] == [
        (Decision.ADD, "Has a cat named Pixel")
    ]
    (p,) = llm_vault.get(second.outcomes[0].memory_id).provenance
    assert (p.source_id, p.turn) == (second.source.id, 4)
    assert "We adopted a cat named Pixel." in user_prompt(server)
    assert "I work as a nurse in Leeds" not in user_prompt(server)  # old turns are not sent again
    assert active_texts(llm_vault) == ["Has a cat named Pixel", "Works as a nurse in Leeds"]
    assert len(server.requests) == 2


def test_every_llm_setting_reaches_the_endpoint(llm_vault: Vault, server: ChatServer) -> None:
    llm_vault.configure("extractor", "llm")
    llm_vault.configure("llm.api_key", "sk-test-123")
    llm_vault.configure("llm.timeout", "0.3")
    server.script(answer({"memories": [memory()]}))

    llm_vault.ingest(CONVERSATION[:1])

    (request,) = server.requests
    assert request.headers["authorization"] == "Bearer sk-test-123"
    assert request.body["model"] == MODEL
    server.script(Reply(content='{"memories": []}', delay=3.0))
    began = time.monotonic()
    with pytest.raises(LLMError, match=r"did not answer within 0\.3 s"):
        llm_vault.ingest(CONVERSATION[1:])
    assert time.monotonic() - began < 2
    assert len(llm_vault.sources()) == 1


# 2. A model that keeps answering nonsense.


def test_malformed_answer_twice_raises_and_writes_nothing(
    llm_vault: Vault, server: ChatServer
) -> None:
    llm_vault.configure("extractor", "llm")
    before = fingerprint(llm_vault)
    server.script(answer("Sure! Here you go: {"), answer({"memories": "none"}))

    with pytest.raises(LLMError, match="invalid memories answer twice"):
        llm_vault.ingest(CONVERSATION)

    assert len(server.requests) == 2
    assert fingerprint(llm_vault) == before
    assert llm_vault.sources() == [] and active_texts(llm_vault) == []


def _configure_cli(server: ChatServer, *extra: tuple[str, str]) -> None:
    for key, value in (("llm.base_url", server.base_url), ("llm.model", MODEL), *extra):
        ok("config", key, value)


def test_cli_malformed_answer_exits_9_with_one_line_and_writes_nothing(
    home: Path, server: ChatServer
) -> None:
    init()
    _configure_cli(server, ("extractor", "llm"))
    before = tree_bytes(home)
    server.script(answer("no"), answer("still no"))

    result = run("ingest", str(OPENAI))

    one_line_error(result, 9, "invalid memories answer twice", "not valid JSON")
    assert tree_bytes(home) == before
    assert ok_json("sources") == []
    assert len(server.requests) == 2


def test_cli_llm_failure_midway_keeps_finished_conversations_and_resumes(
    home: Path, server: ChatServer
) -> None:
    init()
    _configure_cli(server, ("extractor", "llm"))
    race = answer(
        {
            "memories": [
                memory(
                    text="Is vegetarian",
                    category="health",
                    turn=6,
                    quote="I'm vegetarian",
                )
            ]
        }
    )
    server.script(race, answer("no"), answer("no"))

    one_line_error(run("ingest", str(CHATGPT)), 9, "invalid memories answer twice")

    (stored,) = ok_json("sources")
    assert stored["title"] == "Half marathon plan"
    assert len(server.requests) == 3
    book = answer(
        {
            "memories": [
                memory(
                    text="Is writing a book about octopus cognition",
                    category="career",
                    quote="I'm writing a popular-science book about octopus cognition",
                )
            ]
        }
    )
    server.script(answer({"memories": []}), book)

    (report,) = ok_json("ingest", str(CHATGPT))

    assert (report["unchanged_sources"], report["conversations"]) == (1, 2)
    assert [o["text"] for o in report["outcomes"]] == ["Is writing a book about octopus cognition"]
    assert len(server.requests) == 5  # the stored conversation was not sent again
    assert "Half marathon" not in json.dumps(
        [r.body for r in server.requests[3:]], ensure_ascii=False
    )
    assert len(ok_json("sources")) == 3
    with open_vault(home) as vault:
        assert active_texts(vault) == ["Is vegetarian", "Is writing a book about octopus cognition"]
        assert vault.check().ok


# 3. The judge: hard reconciliation cases go to the model.

OLD = "Enjoys hiking in the Alps"
SAID = "I enjoy hiking in the Swiss mountains."
NEW = "Enjoys hiking in the Swiss mountains"


@pytest.fixture
def hiker(llm_vault: Vault, t0: datetime) -> tuple[Vault, str, list[Message]]:
    """A vault that knows OLD (as of t0), and a later conversation saying something close."""
    llm_vault.clock = FixedClock(t0)
    old = llm_vault.add(OLD, category=Category.INTERESTS)
    later = t0 + timedelta(days=1)
    said = [Message("user", SAID, later), Message("assistant", "Lovely!", later)]
    # The precondition: the pair is close (a hard case) and the offline rules cannot
    # settle it, so without a judge the candidate is simply added.
    (candidate,) = RuleExtractor().extract(said, now=later)
    assert candidate.text == NEW and candidate.kind is Kind.SEMANTIC
    vec = llm_vault.embedder.embed([NEW])[0]
    (nb,) = llm_vault.similar_memories(vec)
    assert nb.memory.id == old.id
    shared = len(words(NEW) & words(OLD)) / min(len(words(NEW)), len(words(OLD)))
    assert nb.similarity >= AMBIGUOUS or shared >= 0.5
    plan = decide(candidate, [Neighbour(old, nb.similarity)], judge=None, observed_at=later)
    assert plan.decision is Decision.ADD and plan.target is None and plan.reason != "new"
    return llm_vault, old.id, said


def test_judge_update_supersedes_the_old_memory(
    hiker: tuple[Vault, str, list[Message]], server: ChatServer
) -> None:
    vault, old_id, said = hiker
    server.script(answer({"decision": "update", "target": old_id, "reason": "More detail."}))

    result = vault.ingest(said)

    assert len(server.requests) == 1
    sent = user_prompt(server)
    assert f"New statement: {NEW!r}" in sent
    assert f"1. id {old_id}: {OLD!r} (semantic, interests, observed 2026-03-01)" in sent
    assert "2. id" not in sent
    (o,) = result.outcomes
    assert (o.decision, o.target_id, o.text) == (Decision.UPDATE, old_id, NEW)
    assert o.reason == f"llm:{MODEL}/2: More detail."
    old, new = vault.get(old_id), vault.get(o.memory_id)
    assert old.status is Status.SUPERSEDED and old.superseded_by == new.id
    assert new.status is Status.ACTIVE and new.supersedes == old_id
    assert new.provenance[: len(old.provenance)] == old.provenance
    assert (new.provenance[-1].source_id, new.provenance[-1].extractor) == (
        result.source.id,
        "rules",
    )
    assert [m.id for m in vault.history(new.id)] == [old_id, new.id]
    assert active_texts(vault) == [NEW]
    assert vault.check().ok


@pytest.mark.parametrize("decision", ["add", "noop", "invalidate"])
def test_judge_other_decisions_are_carried_out(
    hiker: tuple[Vault, str, list[Message]], server: ChatServer, decision: str
) -> None:
    vault, old_id, said = hiker
    target = None if decision == "add" else old_id
    server.script(answer({"decision": decision, "target": target, "reason": "Judged."}))

    result = vault.ingest(said)

    assert len(server.requests) == 1 and old_id in user_prompt(server)
    (o,) = result.outcomes
    assert o.decision is Decision(decision)
    old = vault.get(old_id)
    if decision == "add":
        assert o.target_id is None and old.status is Status.ACTIVE
        assert active_texts(vault) == [OLD, NEW]
    elif decision == "noop":
        assert o.memory_id == old_id and old.status is Status.ACTIVE
        assert [p.source_id for p in old.provenance] == [None, result.source.id]
        assert active_texts(vault) == [OLD]
    else:
        assert o.target_id == old_id and old.status is Status.INVALIDATED
        assert old.valid_until == said[0].timestamp
        assert active_texts(vault) == [NEW]
    assert vault.check().ok


def test_without_reconcile_llm_the_model_is_not_asked(
    hiker: tuple[Vault, str, list[Message]], server: ChatServer
) -> None:
    vault, old_id, said = hiker
    vault.configure("reconcile.llm", "false")

    (o,) = vault.ingest(said).outcomes

    assert server.requests == []
    assert o.decision is Decision.ADD and o.target_id is None
    assert not o.reason.startswith("llm:")
    assert vault.get(old_id).status is Status.ACTIVE
    assert active_texts(vault) == [OLD, NEW]


def test_a_failing_judge_writes_nothing(
    hiker: tuple[Vault, str, list[Message]], server: ChatServer
) -> None:
    vault, old_id, said = hiker
    before = fingerprint(vault)
    bad = answer({"decision": "update", "target": "m-nope", "reason": "x"})
    server.script(bad, bad)

    with pytest.raises(LLMError, match="target must be the id of one of the existing"):
        vault.ingest(said)

    assert len(server.requests) == 2
    assert fingerprint(vault) == before
    assert vault.get(old_id).status is Status.ACTIVE


# 4. The profile written by the model.

FACTS = [
    ("Works as a marine biologist in Gothenburg", Category.CAREER),
    ("Has a partner named Tomás", Category.RELATIONSHIPS),
    ("Is vegetarian", Category.HEALTH),
    ("Is seeing a therapist about panic attacks", Category.PRIVATE),
    ("Keeps a secret savings account in Jersey", Category.PRIVATE),
]


def test_profile_with_the_model_is_incremental_and_keeps_private_memories_local(
    llm_vault: Vault, server: ChatServer, t0: datetime
) -> None:
    llm_vault.clock = FixedClock(t0)
    for text, category in FACTS:
        llm_vault.add(text, category=category)
    server.script(*(answer({"summary": f"Summary {n} by the model."}) for n in range(4)))

    profile = llm_vault.profile()

    assert len(server.requests) == 4 and server.pending == 0
    summaries = {s.category.value: s.summary for s in profile.sections}
    topics = []
    for n in range(4):
        user, sys_text = user_prompt(server, n), system(server, n)
        topic = "bio" if "bio" in sys_text else user.split("\n", 1)[0].removeprefix("Category: ")
        topics.append(topic)
        assert (profile.bio if topic == "bio" else summaries[topic]) == f"Summary {n} by the model."
    assert topics == ["career", "relationships", "health", "bio"]
    assert profile.builder == f"llm:{MODEL}/1"
    assert "- Works as a marine biologist in Gothenburg" in user_prompt(server, 0)
    private = next(s for s in profile.sections if s.category is Category.PRIVATE)
    assert "therapist" in private.summary and "Jersey" in private.summary
    everything_sent = json.dumps([r.body for r in server.requests], ensure_ascii=False)
    for text, category in FACTS:
        assert (text in everything_sent) is (category is not Category.PRIVATE), text
    assert "panic" not in everything_sent and "Jersey" not in everything_sent

    again = llm_vault.profile()  # nothing changed: nothing is asked

    assert len(server.requests) == 4
    assert (again.bio, again.sections) == (profile.bio, profile.sections)

    llm_vault.add("Leads the octopus cognition lab", category=Category.CAREER)
    server.script(answer({"summary": "New career."}), answer({"summary": "New bio."}))

    third = llm_vault.profile()

    assert len(server.requests) == 6 and server.pending == 0
    assert "Category: career" in user_prompt(server, 4) and "bio" in system(server, 5)
    assert "Leads the octopus cognition lab" in user_prompt(server, 4)
    assert third.bio == "New bio."
    now = {s.category: s.summary for s in third.sections}
    assert now[Category.CAREER] == "New career."
    assert now[Category.RELATIONSHIPS] == "Summary 1 by the model."
    assert now[Category.HEALTH] == "Summary 2 by the model."
    assert "panic" not in json.dumps([r.body for r in server.requests], ensure_ascii=False)

    llm_vault.configure("profile.llm", "false")
    offline = llm_vault.profile()
    assert offline.builder == "rules" and len(server.requests) == 6
    assert "New career." not in [s.summary for s in offline.sections]


def test_cli_profile_asks_the_model_once_across_commands(home: Path, server: ChatServer) -> None:
    init()
    for text, category in FACTS:
        ok("add", text, "--category", category.value)
    _configure_cli(server)
    server.script(*(answer({"summary": f"Summary {n}."}) for n in range(4)))

    first = ok_json("profile")

    assert len(server.requests) == 4 and first["builder"] == f"llm:{MODEL}/1"
    assert first["bio"] == "Summary 3."
    summaries = {s["category"]: s["summary"] for s in first["sections"]}
    assert summaries["career"] == "Summary 0." and summaries["health"] == "Summary 2."
    assert "therapist" in summaries["private"]

    again = ok_json("profile")  # a new command opens the vault anew: the stored profile

    assert len(server.requests) == 4
    assert again["sections"] == first["sections"] and again["bio"] == first["bio"]
    shown = " ".join(ok("profile").stdout.split())
    assert "Summary 3." in shown and f"by llm:{MODEL}/1" in shown
    assert len(server.requests) == 4

    server.script(answer("not json"), answer("still not json"))
    one_line_error(run("profile", "--rebuild"), 9, "invalid summary answer twice")
    after = ok_json("profile")  # the failed rebuild changed nothing
    assert (after["sections"], after["bio"]) == (again["sections"], again["bio"])
    assert len(server.requests) == 6


def test_no_lock_is_held_while_the_model_answers(llm_vault: Vault, server: ChatServer) -> None:
    """An ingest waiting on a slow model holds no lock: meanwhile the same vault adds,
    searches and records disclosures at their usual speed, from another thread."""
    llm_vault.configure("extractor", "llm")
    server.script(Reply(content=json.dumps(GOOD), delay=2.0))
    done = threading.Event()

    def slow_ingest() -> None:
        llm_vault.ingest(CONVERSATION, title="Intro")
        done.set()

    worker = threading.Thread(target=slow_ingest)
    worker.start()
    try:
        while not server.requests:
            time.sleep(0.01)
        started = time.monotonic()
        memory = llm_vault.add("Prefers tea to coffee")
        _, _ = llm_vault.add_app("notes")
        hits = llm_vault.as_app("notes").search("tea")
        took = time.monotonic() - started
        assert not done.is_set(), "the model answered before the other writes finished"
    finally:
        worker.join()
    assert took < 1.0
    assert [h.memory.id for h in hits if h.memory] == [memory.id]
    assert done.is_set() and llm_vault.check().ok


def test_the_prompts_carry_the_slot_and_never_lose_a_fact_rules(
    llm_vault: Vault, server: ChatServer, t0: datetime
) -> None:
    from memsync.extract.llm import SYSTEM as EXTRACT
    from memsync.reconcile.judge import SYSTEM as JUDGE

    assert "Lives in Leeds" in EXTRACT and "One fact per memory" in EXTRACT
    assert "a few weeks ago" in EXTRACT and "several named people speak" in EXTRACT
    assert "Never lose a fact" in JUDGE


def test_the_judge_cannot_drop_a_plan_for_a_fact_that_only_mentions_the_same_person(
    llm_vault: Vault, server: ChatServer, t0: datetime
) -> None:
    llm_vault.clock = FixedClock(t0)
    plan = llm_vault.add(
        "Is flying to Lisbon with her sister Ana in July 2026",
        kind=Kind.EPISODIC,
        category=Category.TRAVEL,
        valid_until=datetime(2026, 7, 31, tzinfo=UTC),
    )
    later = t0 + timedelta(days=1)
    # Whatever the model answers about the plan, the plan stays and the new fact is kept.
    for decision in ("invalidate", "update", "noop"):
        server.script(answer({"decision": decision, "target": plan.id, "reason": "Same sister."}))
    llm_vault.clock = FixedClock(later)
    result = llm_vault.ingest([Message("user", "my sister Ana is a dentist", later)])
    assert server.requests, "the pair must reach the judge for this test to mean anything"
    assert all(o.decision is Decision.ADD for o in result.outcomes)
    texts = active_texts(llm_vault)
    assert plan.text in texts and any("dentist" in t for t in texts)
