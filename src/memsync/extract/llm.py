"""The opt-in LLM extractor: a chat model reads the conversation and lists memories.

The model sees each message with its global turn number, role and timestamp (weekday
included, so "next Tuesday" can be resolved) and answers with JSON: statements about the
user, each pointing at the user turn it came from and quoting it. Everything the model
says is validated; an answer with any invalid memory is sent back once with the reason
(`ask_validated`), because dropping parts silently would lose what the user said.

Validity follows the rule extractor's conventions: semantic memories carry no validity
times; an episodic memory is valid from its start when that is in the past, else from the
observation, until the end of the date the model gives, or, for a past or undated event,
the observation plus `horizon_days`. A date-only valid_until means the end of that day.

Long conversations are split into windows of about 40 messages or 24,000 characters; the
two messages before a window are shown as context that must not be cited.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from memsync.codec import parse_time
from memsync.errors import InvalidInput
from memsync.extract.base import Candidate, dedup
from memsync.llm.client import ChatModel, ask_validated
from memsync.model import Category, Kind, Message

__all__ = ["PROMPT_VERSION", "LLMExtractor"]

PROMPT_VERSION = "2"
_MAX_TEXT = 300
_CONTEXT = 2
_CATEGORY_HINTS = {
    Category.IDENTITY: "name, age, pronouns, where they live, languages, background",
    Category.CAREER: "job, employer, profession, work projects, career plans",
    Category.INTERESTS: "hobbies, tastes, sports, books, music, food they like",
    Category.RELATIONSHIPS: "family, partner, friends, pets, named people in their life",
    Category.HEALTH: "conditions, allergies, diet, fitness, medical appointments",
    Category.FINANCE: "income, budget, savings, debts, investments, big purchases",
    Category.LEARNING: "studies, courses, skills they are learning",
    Category.TRAVEL: "trips taken or planned, places they visit",
    Category.PRODUCTIVITY: "routines, tools, how they work, how they want answers given",
    Category.PRIVATE: "anything the user asks to keep private or secret",
}
SYSTEM = f"""You extract memories about the USER from a conversation between the user and \
an AI assistant, so that later conversations can be personalised.

Rules:
- Take only what the user states about themselves and their world: identity, job, \
preferences, interests, relationships, health, money, learning, travel, plans and events \
with their dates, projects. Skip small talk, questions, general knowledge, and anything \
about the assistant.
- Never take a fact from the assistant's words unless the user confirms it; then cite \
the user's confirming turn.
- Write each memory as one standalone third-person statement without a subject, e.g. \
"Works as a nurse in Leeds", "Prefers short answers", "Has a dentist appointment on 13 \
March 2026", "Has a sister named Ana". Never "The user ..." or "I ...". One fact each.
- One fact per memory: split "I'm Priya, a designer at Fern, based in Leeds" into "Is \
named Priya", "Works as a designer at Fern", "Lives in Leeds"; keep one fact whole ("Is \
allergic to shellfish", never a bare "Is allergic").
- When a lasting fact changes ("moved from Bristol to Leeds", "quit Fern and joined Kite \
as an analyst", "switched from Notion to Obsidian", "went vegan"), also write the fact \
that holds now as a semantic memory ("Lives in Leeds", "Works as an analyst at Kite", \
"Uses Obsidian", "Is vegan"); the change itself may be an episodic memory.
- Resolve relative dates ("tomorrow", "next Tuesday", "in June", "a few weeks ago") \
against the timestamp of the message they were said in, and write the absolute date or \
period in the statement ("in early February 2026"), never the relative words.
- When several named people speak, a fact from another person's turn is about them: \
name them ("Marta is training for the Chicago marathon in October 2026").
- kind: "semantic" for a lasting fact or preference; "episodic" for a time-bound event, \
plan or situation.
- category, one of: {"; ".join(f"{c.value} ({h})" for c, h in _CATEGORY_HINTS.items())}.
- turn: the number of the user turn the memory comes from. quote: the words of that turn \
it is based on, copied exactly.
- valid_from, valid_until: for episodic memories, when the event or situation begins and \
ends, as ISO 8601 dates (YYYY-MM-DD) or date-times; null when unknown and for semantic \
memories.
- confidence: 0 to 1, how sure you are that the user stated this about themselves; lower \
it for hedged or hypothetical statements.
- Answer {{"memories": []}} when there is nothing worth remembering.
Answer with JSON only."""

_NULLABLE_STRING = {"type": ["string", "null"]}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "memories": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "kind": {"type": "string", "enum": [k.value for k in Kind]},
                    "category": {"type": "string", "enum": [c.value for c in Category]},
                    "turn": {"type": "integer"},
                    "quote": {"type": "string"},
                    "valid_from": _NULLABLE_STRING,
                    "valid_until": _NULLABLE_STRING,
                    "confidence": {"type": "number"},
                },
                "required": [
                    "text",
                    "kind",
                    "category",
                    "turn",
                    "quote",
                    "valid_from",
                    "valid_until",
                    "confidence",
                ],
                "additionalProperties": False,
            },
        }
    },
    "required": ["memories"],
    "additionalProperties": False,
}
E = TypeVar("E", bound=StrEnum)
_SUBJECT = re.compile(r"^(?:the\s+)?user\s+(?=[a-z])", re.IGNORECASE)
_APOSTROPHES = "['\u2019]"
_APOSTROPHE = re.compile(_APOSTROPHES)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class LLMExtractor:
    """`Extractor` backed by a chat model (see the module docstring for the conventions).

    Args:
        model: the chat model to ask, e.g. an `OpenAIChat`.
        horizon_days: how long an episodic memory without a usable future end stays valid.
        user_roles: message roles whose text is the user's own.
        window_messages, window_chars: the most messages / characters sent in one request.
    """

    name: str = "llm"

    def __init__(
        self,
        model: ChatModel,
        *,
        horizon_days: int = 30,
        user_roles: Iterable[str] = ("user", "human"),
        window_messages: int = 40,
        window_chars: int = 24_000,
    ) -> None:
        if horizon_days < 1:
            raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
        if window_messages < 1 or window_chars < 1:
            raise ValueError("window_messages and window_chars must be at least 1")
        self.model = model
        # The model's name without the "llm:" the extractor name already says.
        self.version = f"{PROMPT_VERSION}:{model.name.removeprefix('llm:')}"
        self.horizon_days = horizon_days
        self.user_roles = frozenset(r.lower() for r in user_roles)
        self.window_messages = window_messages
        self.window_chars = window_chars

    def extract(
        self, messages: Sequence[Message], *, now: datetime | None = None
    ) -> list[Candidate]:
        """Candidates in `messages`; see `Extractor.extract`.

        A message without a timestamp is taken to be from `now` (default: the current
        time); a naive timestamp is taken to be UTC. Raises `LLMError` when the endpoint
        fails or the model's answer for a window stays invalid after one retry.
        """
        fallback = now if now is not None else datetime.now(UTC)
        whens = [_aware(m.timestamp or fallback) for m in messages]
        out: list[Candidate] = []
        for window in split_windows(messages, self.window_messages, self.window_chars):
            if not any(self._is_user(messages[i]) for i in window):
                continue
            user = self._prompt(messages, whens, window)
            out.extend(
                ask_validated(
                    self.model,
                    SYSTEM,
                    user,
                    "memories",
                    SCHEMA,
                    partial(self._validate, messages=messages, whens=whens, window=window),
                )
            )
        return sorted(dedup(out), key=lambda c: (c.turn, c.start))

    def _is_user(self, msg: Message) -> bool:
        return msg.role.lower() in self.user_roles

    def _prompt(self, messages: Sequence[Message], whens: list[datetime], window: range) -> str:
        def show(i: int) -> str:
            when = whens[i]
            stamp = f"{when:%A} {when.isoformat(timespec='minutes')}"
            who = (
                f"{messages[i].role} ({messages[i].name})" if messages[i].name else messages[i].role
            )
            return f"[turn {i}] {who}, {stamp}:\n{messages[i].content}"

        parts = []
        context = range(max(0, window.start - _CONTEXT), window.start)
        if context:
            parts.append("Earlier messages, for context only (do not cite these turns):")
            parts.extend(show(i) for i in context)
            parts.append("")
        parts.append(f"Conversation (turns {window.start} to {window.stop - 1}):")
        parts.extend(show(i) for i in window)
        return "\n\n".join(parts)

    def _validate(
        self, answer: Any, messages: Sequence[Message], whens: list[datetime], window: range
    ) -> list[Candidate]:
        if not isinstance(answer, dict) or not isinstance(answer.get("memories"), list):
            raise TypeError('the answer must be an object with a "memories" array')
        return [
            self._candidate(f"memories[{k}]", item, messages, whens, window)
            for k, item in enumerate(answer["memories"])
        ]

    def _candidate(
        self,
        where: str,
        item: Any,
        messages: Sequence[Message],
        whens: list[datetime],
        window: range,
    ) -> Candidate:
        if not isinstance(item, dict):
            raise TypeError(f"{where} must be an object")
        for key in SCHEMA["properties"]["memories"]["items"]["required"]:
            if key not in item:
                raise KeyError(f"{where}.{key}")
        text = _statement(where, item["text"])
        kind = _enum(Kind, f"{where}.kind", item["kind"])
        category = _enum(Category, f"{where}.category", item["category"])
        turn = item["turn"]
        if not isinstance(turn, int) or isinstance(turn, bool) or turn not in window:
            raise ValueError(
                f"{where}.turn must be a turn number from {window.start} to "
                f"{window.stop - 1}, not {turn!r}"
            )
        if not self._is_user(messages[turn]):
            raise ValueError(f"{where}.turn {turn} is not a user message; cite the user's turn")
        quote = item["quote"]
        if not isinstance(quote, str):
            raise TypeError(f"{where}.quote must be a string")
        confidence = item["confidence"]
        if (
            not isinstance(confidence, int | float)
            or isinstance(confidence, bool)
            or not math.isfinite(confidence)
            or not 0 <= confidence <= 1
        ):
            raise ValueError(f"{where}.confidence must be a number from 0 to 1")
        when = whens[turn]
        start = _time(f"{where}.valid_from", item["valid_from"], when, end_of_day=False)
        until = _time(f"{where}.valid_until", item["valid_until"], when, end_of_day=True)
        if start is not None and until is not None and until < start:
            raise ValueError(f"{where}.valid_until is before its valid_from")
        valid_from = valid_until = None
        if kind is Kind.EPISODIC:
            valid_from = min(start, when) if start is not None else when
            valid_until = until if until is not None and until >= when else None
            valid_until = valid_until or when + timedelta(days=self.horizon_days)
        span_start, span_end = find_span(messages[turn].content, quote)
        return Candidate(
            text=text,
            kind=kind,
            category=category,
            valid_from=valid_from,
            valid_until=valid_until,
            confidence=round(float(confidence), 3),
            turn=turn,
            start=span_start,
            end=span_end,
            extractor=self.name,
            extractor_version=self.version,
            observed_at=when,
        )


def split_windows(messages: Sequence[Message], max_messages: int, max_chars: int) -> list[range]:
    """Consecutive index ranges covering `messages`, each within both limits (a single
    message longer than `max_chars` gets a window of its own)."""
    out: list[range] = []
    start = chars = 0
    for i, msg in enumerate(messages):
        if i > start and (i - start >= max_messages or chars + len(msg.content) > max_chars):
            out.append(range(start, i))
            start, chars = i, 0
        chars += len(msg.content)
    if start < len(messages):
        out.append(range(start, len(messages)))
    return out


def find_span(content: str, quote: str) -> tuple[int, int]:
    """Where `quote` is in `content`: exactly, else ignoring case, spacing and the kind
    of apostrophe; the whole message when it is not there."""
    q = quote.strip()
    if q:
        exact = content.find(q)
        if exact >= 0:
            return exact, exact + len(q)
        words = (_APOSTROPHE.sub(_APOSTROPHES, re.escape(w)) for w in q.split())
        loose = re.search(r"\s+".join(words), content, re.IGNORECASE)
        if loose:
            return loose.start(), loose.end()
    return 0, len(content)


def _statement(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}.text must be a non-empty statement")
    text = _SUBJECT.sub("", value.strip()).rstrip(".").strip()
    if not text:
        raise ValueError(f"{where}.text must be a non-empty statement")
    if len(text) > _MAX_TEXT:
        raise ValueError(f"{where}.text is longer than {_MAX_TEXT} characters; one fact each")
    return text[0].upper() + text[1:]


def _enum(cls: type[E], where: str, value: Any) -> E:
    allowed = [m.value for m in cls]
    if value not in allowed:
        raise ValueError(f"{where} must be one of {', '.join(allowed)}, not {value!r}")
    return cls(value)


def _time(where: str, value: Any, when: datetime, *, end_of_day: bool) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{where} must be an ISO 8601 date, date-time or null")
    text = value.strip()
    if _DATE_ONLY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{where}: not a calendar date: {value!r}") from None
        return datetime.combine(day, time(23, 59, 59) if end_of_day else time(0), when.tzinfo)
    try:
        return parse_time(text, where)
    except InvalidInput as e:
        raise ValueError(str(e)) from None


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when
