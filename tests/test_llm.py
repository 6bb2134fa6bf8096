"""The LLM backend against a real loopback HTTP server speaking chat completions."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llm_server import (
    CONVERSATION,
    GOOD,
    T0,
    ChatServer,
    Reply,
    answer,
    memory,
    rate_limited,
    rejects_json_schema,
    server,
    user_prompt,
)
from memsync.errors import LLMError, UsageError
from memsync.extract.base import Candidate, Extractor
from memsync.extract.llm import LLMExtractor, split_windows
from memsync.llm import LLMSettings, MalformedOutput, OpenAIChat
from memsync.model import Category, Kind, Memory, Message
from memsync.profile.llm import LLMSummarizer
from memsync.reconcile.decision import Decision
from memsync.reconcile.judge import Judgement, LLMJudge

__all__ = ["server"]  # the fixture, from llm_server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def chat(server: ChatServer, sleeps: list[float]) -> Iterator[OpenAIChat]:
    with OpenAIChat(LLMSettings(server.base_url, "test-model"), sleep=sleeps.append) as c:
        yield c


def test_extracts_candidates_with_spans_dates_and_provenance(
    server: ChatServer, chat: OpenAIChat
) -> None:
    server.script(answer(GOOD))
    extractor = LLMExtractor(chat)
    assert isinstance(extractor, Extractor)
    assert (extractor.name, extractor.version) == ("llm", "2:test-model")

    nurse, dentist, marathon = extractor.extract(CONVERSATION)

    assert nurse == Candidate(
        text="Works as a nurse in Leeds",
        kind=Kind.SEMANTIC,
        category=Category.CAREER,
        valid_from=None,
        valid_until=None,
        confidence=0.9,
        turn=0,
        start=4,
        end=30,
        extractor="llm",
        extractor_version="2:test-model",
        observed_at=T0,
    )
    assert CONVERSATION[0].content[nurse.start : nurse.end] == "I work as a nurse in Leeds"
    assert dentist.kind is Kind.EPISODIC and dentist.category is Category.HEALTH
    assert CONVERSATION[2].content[dentist.start : dentist.end] == (
        "I have a Dentist appointment next Friday"
    )
    # A future event: valid from the observation to the end of its day.
    assert dentist.valid_from == T0 + timedelta(minutes=2)
    assert dentist.valid_until == datetime(2026, 3, 6, 23, 59, 59, tzinfo=UTC)
    # Subject dropped; quote not found -> the whole message; no end -> 30-day horizon.
    assert marathon.text == "Is training for a marathon"
    assert (marathon.start, marathon.end) == (0, len(CONVERSATION[3].content))
    assert marathon.valid_until == T0 + timedelta(minutes=3, days=30)

    body = server.requests[0].body
    assert body["model"] == "test-model" and body["temperature"] == 0.0
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "memories"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    prompt = user_prompt(server)
    assert "[turn 2] user, Sunday 2026-03-01T09:02+00:00:\nI have a Dentist" in prompt
    assert "[turn 1] assistant" in prompt
    assert "authorization" not in server.requests[0].headers


def test_messages_without_timestamp_use_now_and_past_events_get_the_horizon(
    server: ChatServer, chat: OpenAIChat
) -> None:
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    went = memory(
        text="Went to Rome in April 2026",
        kind="episodic",
        category="travel",
        quote="I went to Rome last month",
        valid_from="2026-04-01",
        valid_until="2026-04-30",
    )
    server.script(answer({"memories": [went]}))
    (c,) = LLMExtractor(chat).extract([Message("user", "I went to Rome last month")], now=now)
    assert c.observed_at == now
    assert c.valid_from == datetime(2026, 4, 1, tzinfo=UTC)
    assert c.valid_until == now + timedelta(days=30)


def test_bad_json_then_good_is_retried_once_with_the_reason(
    server: ChatServer, chat: OpenAIChat
) -> None:
    server.script(answer("Sure! Here are the memories: {"), answer(GOOD))
    assert len(LLMExtractor(chat).extract(CONVERSATION)) == 3
    assert len(server.requests) == 2
    retry = server.requests[1].body["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == "Sure! Here are the memories: {"
    assert retry[3]["content"].startswith("Your answer was not valid: it is not valid JSON")


def test_bad_json_twice_raises_naming_the_problem(server: ChatServer, chat: OpenAIChat) -> None:
    server.script(answer("no"), answer("still no"))
    with pytest.raises(LLMError, match=r"invalid memories answer twice: it is not valid JSON"):
        LLMExtractor(chat).extract(CONVERSATION)
    assert len(server.requests) == 2


def test_fenced_json_is_accepted(server: ChatServer, chat: OpenAIChat) -> None:
    server.script(answer(f"<think>hmm</think>\n```json\n{json.dumps(GOOD)}\n```"))
    assert len(LLMExtractor(chat).extract(CONVERSATION)) == 3


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (memory(category="work"), "memories[0].category must be one of identity, career"),
        (memory(kind="fact"), "memories[0].kind must be one of semantic, episodic"),
        (memory(turn=9), "memories[0].turn must be a turn number from 0 to 3, not 9"),
        (memory(turn=1), "memories[0].turn 1 is not a user message"),
        (memory(turn="0"), "memories[0].turn must be a turn number"),
        (memory(confidence=1.5), "memories[0].confidence must be a number from 0 to 1"),
        (memory(text="  "), "memories[0].text must be a non-empty statement"),
        (memory(valid_until="next week"), "memories[0].valid_until: not an ISO 8601 time"),
        (
            memory(kind="episodic", valid_from="2026-03-09", valid_until="2026-03-02"),
            "memories[0].valid_until is before its valid_from",
        ),
        ({"text": "Is a nurse"}, "missing field 'memories[0].kind'"),
    ],
)
def test_invalid_memories_are_retried_with_the_reason(
    server: ChatServer, chat: OpenAIChat, bad: dict[str, Any], reason: str
) -> None:
    server.script(answer({"memories": [bad]}), answer(GOOD))
    assert len(LLMExtractor(chat).extract(CONVERSATION)) == 3
    follow_up = server.requests[1].body["messages"][3]["content"]
    assert reason in follow_up
    assert json.loads(server.requests[1].body["messages"][2]["content"]) == {"memories": [bad]}


def test_invalid_twice_raises_naming_the_problem(server: ChatServer, chat: OpenAIChat) -> None:
    bad = answer({"memories": [memory(category="work")]})
    server.script(bad, bad)
    with pytest.raises(LLMError, match=r"memories\[0\]\.category must be one of"):
        LLMExtractor(chat).extract(CONVERSATION)


def test_long_conversations_are_windowed_with_global_turns(
    server: ChatServer, chat: OpenAIChat
) -> None:
    messages = [
        Message("user" if i % 2 == 0 else "assistant", f"message {i}", T0 + timedelta(minutes=i))
        for i in range(90)
    ]
    for turn in (10, 50, 88):
        server.script(answer({"memories": [memory(text=f"Fact {turn}", turn=turn, quote="")]}))
    found = LLMExtractor(chat, window_messages=40).extract(messages)
    assert [(c.turn, c.observed_at) for c in found] == [
        (t, T0 + timedelta(minutes=t)) for t in (10, 50, 88)
    ]
    assert len(server.requests) == 3
    second = user_prompt(server, 1)
    assert "Conversation (turns 40 to 79)" in second
    assert "[turn 38]" in second and "[turn 39]" in second and "[turn 37]" not in second
    assert "[turn 80]" not in second


def test_a_turn_outside_its_window_is_invalid(server: ChatServer, chat: OpenAIChat) -> None:
    messages = [Message("user", f"message {i}", T0) for i in range(6)]
    server.script(
        answer({"memories": []}),
        answer({"memories": [memory(turn=1, quote="")]}),  # cites the earlier window
        answer({"memories": [memory(turn=4, quote="")]}),
    )
    (c,) = LLMExtractor(chat, window_messages=3).extract(messages)
    assert c.turn == 4
    assert "turn must be a turn number from 3 to 5, not 1" in str(server.requests[2].body)


def test_windows_respect_the_character_budget() -> None:
    messages = [Message("user", "x" * n) for n in (10, 10, 25, 5, 5)]
    assert split_windows(messages, 40, 30) == [range(0, 2), range(2, 4), range(4, 5)]
    assert split_windows([Message("user", "x" * 99)], 40, 30) == [range(0, 1)]
    assert split_windows([], 40, 30) == []


def test_windows_without_user_messages_are_not_sent(server: ChatServer, chat: OpenAIChat) -> None:
    assert LLMExtractor(chat).extract([Message("assistant", "Hello there")]) == []
    assert server.requests == []


def test_rate_limit_then_success_honours_retry_after(server: ChatServer) -> None:
    server.script(rate_limited("0"), answer({"ok": True}))
    with OpenAIChat(LLMSettings(server.base_url, "m")) as real_sleep:
        assert real_sleep.complete_json("s", "u", schema_name="x", schema={}) == {"ok": True}
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("header", "waits"),
    [("7", [7.0, 7.0]), ("120", [30.0, 30.0]), (None, [1.0, 2.0]), ("soon", [1.0, 2.0])],
)
def test_rate_limit_waits(
    server: ChatServer,
    chat: OpenAIChat,
    sleeps: list[float],
    header: str | None,
    waits: list[float],
) -> None:
    server.script(rate_limited(header), rate_limited(header), answer({"ok": 1}))
    assert chat.complete_json("s", "u", schema_name="x", schema={}) == {"ok": 1}
    assert sleeps == waits


def test_rate_limited_forever_raises(server: ChatServer, chat: OpenAIChat) -> None:
    server.script(*[rate_limited("0")] * 3)
    with pytest.raises(LLMError, match=r"rate limited every request \(3 attempts"):
        chat.complete_json("s", "u", schema_name="x", schema={})
    assert len(server.requests) == 3 and server.pending == 0


def test_timeout_names_the_endpoint(server: ChatServer) -> None:
    server.script(Reply(content="{}", delay=3.0))
    began = time.monotonic()
    with (
        OpenAIChat(LLMSettings(server.base_url, "m", timeout=0.3)) as slow,
        pytest.raises(LLMError, match=r"/v1/chat/completions did not answer within 0\.3 s"),
    ):
        slow.complete_json("s", "u", schema_name="x", schema={})
    assert time.monotonic() - began < 2


def test_connection_refused_names_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        OpenAIChat(LLMSettings(f"http://127.0.0.1:{port}/v1/", "m")) as chat,
        pytest.raises(LLMError, match=f"cannot connect to http://127.0.0.1:{port}/v1/chat/"),
    ):
        chat.complete_json("s", "u", schema_name="x", schema={})


def test_refused_key_is_reported_without_the_key(server: ChatServer) -> None:
    server.script(Reply(status=401, body='{"error": "Incorrect API key provided: sk-secret"}'))
    with (
        OpenAIChat(LLMSettings(server.base_url, "m", api_key="sk-secret")) as chat,
        pytest.raises(LLMError, match="refused the API key") as caught,
    ):
        chat.complete_json("s", "u", schema_name="x", schema={})
    assert "sk-secret" not in str(caught.value)
    assert server.requests[0].headers["authorization"] == "Bearer sk-secret"
    assert "sk-secret" not in repr(chat.settings)


def test_missing_key_is_reported(server: ChatServer, chat: OpenAIChat) -> None:
    server.script(Reply(status=403, body="forbidden"))
    with pytest.raises(LLMError, match=r"requires an API key \(HTTP 403\); none is set"):
        chat.complete_json("s", "u", schema_name="x", schema={})


def test_other_errors_show_status_and_a_redacted_excerpt(server: ChatServer) -> None:
    server.script(Reply(status=500, body="model crashed\n while loading key sk-abc " + "x" * 500))
    with (
        OpenAIChat(LLMSettings(server.base_url, "m", api_key="sk-abc")) as chat,
        pytest.raises(LLMError, match=r"HTTP 500: model crashed while loading key \*\*\*") as e,
    ):
        chat.complete_json("s", "u", schema_name="x", schema={})
    assert "x" * 250 not in str(e.value)


def test_non_completion_body_and_empty_content(server: ChatServer, chat: OpenAIChat) -> None:
    server.script(Reply(body='{"hello": 1}'), answer(""))
    with pytest.raises(LLMError, match="did not answer like a chat-completions endpoint"):
        chat.complete_json("s", "u", schema_name="x", schema={})
    with pytest.raises(MalformedOutput, match="the answer was empty"):
        chat.complete_json("s", "u", schema_name="x", schema={})


def test_malformed_output_carries_the_raw_text(server: ChatServer, chat: OpenAIChat) -> None:
    server.script(answer("{'single': 'quotes'}" + " " * 5000))
    with pytest.raises(MalformedOutput) as caught:
        chat.complete_json("s", "u", schema_name="x", schema={})
    assert caught.value.raw.startswith("{'single': 'quotes'}") and len(caught.value.raw) == 2000
    assert "not valid JSON" in caught.value.reason


def test_json_schema_rejected_falls_back_to_json_object_and_remembers(
    server: ChatServer, chat: OpenAIChat
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    server.script(rejects_json_schema(), answer({"a": 1}), answer({"a": 2}))
    assert chat.complete_json("sys", "u", schema_name="x", schema=schema) == {"a": 1}
    assert chat.complete_json("sys", "u", schema_name="x", schema=schema) == {"a": 2}
    formats = [r.body["response_format"]["type"] for r in server.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    system = server.requests[1].body["messages"][0]["content"]
    assert system.startswith("sys\n\n") and json.dumps(schema) in system


def test_json_object_rejected_too_is_an_error(server: ChatServer, chat: OpenAIChat) -> None:
    server.script(rejects_json_schema(), rejects_json_schema())
    with pytest.raises(LLMError, match=r"HTTP 400: .*json_schema is not supported"):
        chat.complete_json("s", "u", schema_name="x", schema={})


def test_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="http:// or https://"):
        LLMSettings("localhost:11434/v1", "m")
    with pytest.raises(UsageError, match="timeout"):
        LLMSettings("http://localhost/v1", "m", timeout=0)
    assert LLMSettings("http://h/v1/", "m").url == "http://h/v1/chat/completions"


NEIGHBOURS = [
    Memory("m-aaaa", "Works as a nurse", Kind.SEMANTIC, Category.CAREER, (), T0, T0, T0),
    Memory("m-bbbb", "Lives in Leeds", Kind.SEMANTIC, None, (), T0, T0, T0),
]
CANDIDATE = Candidate(
    "Works as a senior nurse in Leeds",
    Kind.SEMANTIC,
    Category.CAREER,
    None,
    None,
    0.9,
    0,
    0,
    10,
    "llm",
    "1:m",
    observed_at=datetime(2026, 4, 2, tzinfo=UTC),
)


def test_judge_answers_and_prompt(server: ChatServer, chat: OpenAIChat) -> None:
    server.script(answer({"decision": "update", "target": "m-aaaa", "reason": " More  detail. "}))
    judge = LLMJudge(chat)
    assert judge.name == "llm:test-model/2"
    got = judge.judge(CANDIDATE, NEIGHBOURS)
    assert got == Judgement(Decision.UPDATE, "m-aaaa", "More detail.")
    prompt = user_prompt(server)
    assert "New statement: 'Works as a senior nurse in Leeds'" in prompt
    assert "observed: 2026-04-02" in prompt
    assert "1. id m-aaaa: 'Works as a nurse' (semantic, career, observed 2026-03-01)" in prompt
    assert "2. id m-bbbb: 'Lives in Leeds' (semantic, none," in prompt


def test_judge_add_needs_no_target_and_no_neighbours_needs_no_model(
    server: ChatServer, chat: OpenAIChat
) -> None:
    assert LLMJudge(chat).judge(CANDIDATE, []).decision is Decision.ADD
    assert server.requests == []
    server.script(answer({"decision": "add", "target": "m-aaaa", "reason": "New fact"}))
    assert LLMJudge(chat).judge(CANDIDATE, NEIGHBOURS) == Judgement(Decision.ADD, None, "New fact")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"decision": "noop", "target": "1", "reason": "same"}, "(m-aaaa, m-bbbb) for noop"),
        ({"decision": "invalidate", "target": None, "reason": "x"}, "not None"),
        ({"decision": "promote", "target": "m-aaaa", "reason": "x"}, "decision must be one of"),
        ({"decision": "noop", "target": "m-aaaa", "reason": ""}, "reason must be"),
        ({"decision": "noop", "target": "m-aaaa"}, "missing field 'reason'"),
    ],
)
def test_judge_validates_and_retries(
    server: ChatServer, chat: OpenAIChat, bad: dict[str, Any], reason: str
) -> None:
    good = {"decision": "invalidate", "target": "m-bbbb", "reason": "Moved"}
    server.script(answer(bad), answer(good))
    assert LLMJudge(chat).judge(CANDIDATE, NEIGHBOURS).target == "m-bbbb"
    assert reason in server.requests[1].body["messages"][3]["content"]


def test_summarizer(server: ChatServer, chat: OpenAIChat) -> None:
    summarizer = LLMSummarizer(chat)
    assert summarizer.name == "llm:test-model/1"
    server.script(
        answer({"summary": "  "}),
        answer({"summary": "The user works as a nurse in Leeds."}),
        answer({"summary": "A nurse in Leeds with a sister, Ana."}),
    )
    text = summarizer.summarize(Category.CAREER, ["Works as a nurse in Leeds", "Likes\nnights"])
    assert text == "The user works as a nurse in Leeds."
    assert "Category: career" in user_prompt(server)
    assert "- Works as a nurse in Leeds\n- Likes nights" in user_prompt(server)
    assert "summary must be non-empty" in server.requests[1].body["messages"][3]["content"]
    assert summarizer.bio(["Works as a nurse", "Has a sister named Ana"]).startswith("A nurse")
    assert "bio" in server.requests[2].body["messages"][0]["content"]
    assert summarizer.summarize(Category.HEALTH, []) == "" and len(server.requests) == 3


def test_summary_too_long_twice_raises(server: ChatServer, chat: OpenAIChat) -> None:
    server.script(*[answer({"summary": "word " * 200})] * 2)
    with pytest.raises(LLMError, match="summary is 999 characters; keep it under 600"):
        LLMSummarizer(chat).summarize(Category.CAREER, ["Works as a nurse"])
