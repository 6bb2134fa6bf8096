"""The built-in offline extractor: rules over what the user says about themselves.

Pipeline for each user message: split into sentences and clauses (`text`), normalise chat
spelling, rewrite each clause as a third-person statement (`rewrite`, `subjects`,
`instruct`), drop chatter, resolve time expressions against the message's timestamp
(`dates`), then classify kind and category (`classify`) and score confidence. A few facts
are found by pattern anywhere in a message: pronouns ("they/them"), named relations ("my
brother Jonas" -> "Has a brother named Jonas") and birthdays. The assistant's words become
memories only when the user's next message confirms them (`confirm`).

valid_until for episodic memories: the end of the last day of the latest present/future
time expression ("next Tuesday", "in June" -> 30 June); when there is none (a past event,
or no date) the observation time plus `horizon_days` (30 by default): long enough to cover
the near future a plan like "I'm job hunting" refers to, short enough that an undated plan
stops surfacing once it is likely stale.

Confidence: 0.9 for explicit instructions, 0.8 for first-person statements, 0.75 for
statements about a relation, 0.7 for confirmed assistant statements and dated things, 0.65
for clauses with the subject left out; x0.6 when hedged ("I think", "maybe", "might"),
x0.8 for a statement phrased as a question, at least 0.95 when the user asks the
assistant to remember it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from memsync.extract import changes, compound
from memsync.extract.base import Candidate, dedup
from memsync.extract.classify import PRIVATE, category_of, is_chatter, kind_of
from memsync.extract.confirm import confirms, proposals
from memsync.extract.dates import TimeExpr, find_times, render
from memsync.extract.lexicon import FAMILY, NOT_NAMES, RELATIONS
from memsync.extract.rewrite import Context, Statement, rewrite
from memsync.extract.text import Piece, clauses, normalise, sentences, third_person_text
from memsync.extract.timeexpr import MONTH_NAMES
from memsync.model import Category, Kind, Message

__all__ = ["RuleExtractor"]

_RE = re.IGNORECASE
_CONFIDENCE = {
    "instruction": 0.9,
    "self": 0.8,
    "relation": 0.75,
    "assistant": 0.7,
    "thing": 0.7,
    "fragment": 0.65,
    "possession": 0.65,
}
_REMEMBER = re.compile(r"\b(?:please )?remember\b|\bnote that\b|\bfor the record\b", _RE)
_DIAGNOSED = re.compile(
    r"^(?:Got|Was|Has been|Had been) diagnosed with (?P<c>.+?)"
    r"(?P<t>\s+(?:in|on|the week of|during|at|around|last|this)\s+.+)?$"
)
_PRONOUNS_FACT = re.compile(
    r"\b(she/her|he/him|they/them|she/they|he/they|xe/xem|ze/zir|ze/hir|it/its)\b", _RE
)
_INTRO = re.compile(
    r"\b(?:my name is|i'm [A-Z][a-z]+\b(?!\s+(?:and|from|in|at|a|an)\b)|call me)", _RE
)
_BIRTHDAY = re.compile(
    r"\b(?:my|our)\s+(?P<who>(?:\w+\s+)?\w+)'s\s+(?:birthday|bday|b-day)\b(?P<rest>[^.;!?]*)",
    _RE,
)
_NAMED_REL = re.compile(
    r"\b(?i:my|our)\s+(?P<adj>(?i:older|younger|little|big|baby|best|eldest|oldest|youngest)"
    r"\s+)?(?P<rel>(?i:" + "|".join(sorted(FAMILY, key=len, reverse=True)) + r"))\s+"
    r"(?P<name>[A-Z][a-z]+)\b(?:\s*\((?P<age>\d{1,2})\))?"
)
_MENTION = re.compile(
    r"\b(?:my|our)\s+(?:\w+\s+)?(" + "|".join(sorted(RELATIONS, key=len, reverse=True)) + r")\b",
    _RE,
)


class RuleExtractor:
    """Offline, deterministic extractor of what the user states about themselves.

    Messages whose role is in `user_roles` are the user's words; any other role (the
    assistant, a tool, the system) is only read to find a statement the user then confirms.
    To extract from a document, pass its chunks as user messages.

    Args:
        horizon_days: how long an episodic memory without a usable future date stays
            valid after it was observed.
        user_roles: message roles whose text is the user's own.
        owner: the vault owner's name. In a conversation where several named people
            speak, what another one says is about them ("Marta is training for ...");
            without a name, the owner is whoever speaks last to the assistant.
    """

    name: str = "rules"
    version: str = "1"

    def __init__(
        self,
        *,
        horizon_days: int = 30,
        user_roles: Iterable[str] = ("user", "human"),
        owner: str | None = None,
        owner_lookup: Callable[[], str | None] | None = None,
    ) -> None:
        self.owner = owner
        # Asked only for a conversation with several named speakers (a query per ingest
        # otherwise).
        self.owner_lookup = owner_lookup
        if horizon_days < 1:
            raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
        self.horizon_days = horizon_days
        self.user_roles = frozenset(r.lower() for r in user_roles)

    def _owner(self) -> str | None:
        return self.owner or (self.owner_lookup() if self.owner_lookup else None)

    def extract(
        self, messages: Sequence[Message], *, now: datetime | None = None
    ) -> list[Candidate]:
        """Candidates in `messages`; see `Extractor.extract`.

        A message without a timestamp is taken to be from `now` (default: the current
        time); a naive timestamp is taken to be UTC.
        """
        ctx = Context()
        fallback = now if now is not None else datetime.now(UTC)
        out: list[Candidate] = []
        for i, msg in enumerate(messages):
            when = msg.timestamp or fallback
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            if msg.role.lower() in self.user_roles:
                out.extend(self._user_message(i, msg.content, when, ctx))
            elif (
                i + 1 < len(messages)
                and messages[i + 1].role.lower() in self.user_roles
                and confirms(messages[i + 1].content)
            ):
                for sent, text in proposals(msg.content):
                    st = Statement(text, "assistant", verb=text.split()[0].lower())
                    times = find_times(text, when.date())
                    cand = self._make(st, i, sent.start, sent.end, when, times)
                    out.append(replace(cand, confirmed_by=i + 1))
        found = _one_fact_each([*out, *_after_changes(out)])
        return dedup(_about_others(found, messages, self.user_roles, self._owner))

    def _user_message(
        self, turn: int, content: str, when: datetime, ctx: Context
    ) -> list[Candidate]:
        out: list[Candidate] = []
        remember = bool(_REMEMBER.search(content))
        ctx.introduced = bool(_INTRO.search(content))
        ctx.self_seen = ctx.instructing = False
        for sent in sentences(content):
            private = bool(PRIVATE.search(sent.text))
            parts = clauses(sent)
            ctx.condition = ""
            after_self = False
            for clause in parts:
                norm = normalise(clause.text)
                st = rewrite(
                    norm,
                    ctx,
                    after_self=after_self and clause.sep == ",",
                    short=len(parts) == 1 and len(norm.split()) <= 6,
                    coordinated=clause.sep == "and",
                )
                mentioned = _MENTION.findall(norm)
                if mentioned:
                    ctx.antecedent = mentioned[-1].lower()
                after_self = st is not None and st.subject in {"self", "fragment"}
                if st is not None:
                    cand = self._candidate(st, turn, clause, when, remember)
                    if cand is not None:
                        out.append(replace(cand, category=Category.PRIVATE) if private else cand)
        ctx.instructed = ctx.instructing
        said = " ".join(c.text for c in out)
        for text, _ in changes.from_message(content):
            st = Statement(text, "self", verb="works")
            out.append(self._make(st, turn, 0, len(content), when, [], 0.8, Kind.SEMANTIC))
        for text in changes.endings(content):
            said = normalise(content)
            found = find_times(said, when.date(), prefer_past=True)
            text = f"{text} {said[found[0].start : found[0].end]}" if found else text
            times = find_times(text, when.date(), prefer_past=True)
            st = Statement(text, "self", verb="broke", past=True)
            out.append(self._make(st, turn, 0, len(content), when, times, 0.8, Kind.EPISODIC))
        gone = {n for c in out if (n := changes.ended(c.text))}
        for fact in self._message_facts(turn, content, when):
            name = fact.text.split(" named ", 1)[-1].split(" who ")[0]
            if name in gone:
                continue  # "our cat Pico died": not a cat named Pico any more
            if " named " not in fact.text or f"named {name}" not in said:
                out.append(fact)
        return out

    def _message_facts(self, turn: int, content: str, when: datetime) -> list[Candidate]:
        """Facts found by pattern anywhere in a message: pronouns, named relations,
        birthdays."""
        out: list[Candidate] = []
        for m in _PRONOUNS_FACT.finditer(content):
            st = Statement(f"Uses {m.group(1).lower()} pronouns", "self", verb="uses")
            out.append(self._make(st, turn, m.start(), m.end(), when, [], 0.85))
        for m in _NAMED_REL.finditer(content):
            if m.group("name") in NOT_NAMES:
                continue
            rel = f"{(m.group('adj') or '').lower()}{m.group('rel').lower()}"
            article = "an" if rel[0] in "aeiou" else "a"
            text = f"Has {article} {rel} named {m.group('name')}"
            if m.group("age"):
                text += f" who is {m.group('age')}"
            st = Statement(text, "relation", verb="has")
            out.append(self._make(st, turn, m.start(), m.end(), when, [], 0.8))
        for m in _BIRTHDAY.finditer(content):
            days = [
                t
                for t in find_times(normalise(m.group("rest")), when.date())
                if t.granularity == "day"
            ]
            if not days:
                continue
            d = days[0].first
            who = third_person_text(m.group("who")).removeprefix("their ")
            text = f"{who[:1].upper()}{who[1:]}'s birthday is on {d.day} {MONTH_NAMES[d.month]}"
            st = Statement(text, "relation", verb="is")
            # A birthday recurs: semantic, and the year is left out on purpose.
            out.append(self._make(st, turn, m.start(), m.end(), when, [], 0.8, Kind.SEMANTIC))
        return out

    def _candidate(
        self, st: Statement, turn: int, piece: Piece, when: datetime, remember: bool
    ) -> Candidate | None:
        if is_chatter(st):
            return None
        times = find_times(st.text, when.date(), prefer_past=st.past)
        future = [t for t in times if t.relation(when.date()) != "past"]
        if st.subject in {"thing", "possession"} and not future:
            return None  # "the conference is about X", "my english is not perfect"
        if st.subject == "relation" and st.name and not times and not st.past:
            # "my husband Tom works from home": one memory, not "Husband Tom works ..."
            # next to "Has a husband named Tom".
            article = "an" if st.relation[:1] in "aeiou" else "a"
            merged = f"Has {article} {st.relation} named {st.name} who {st.predicate}"
            st = Statement(merged, "relation", verb="has", relation=st.relation, name=st.name)
        confidence = _CONFIDENCE.get(st.subject, 0.7)
        if st.hedged:
            confidence *= 0.6
        if st.uptalk:
            confidence *= 0.8
        if remember and not st.hedged:
            confidence = max(confidence, 0.95)
        return self._make(st, turn, piece.start, piece.end, when, times, confidence)

    def _make(
        self,
        st: Statement,
        turn: int,
        start: int,
        end: int,
        when: datetime,
        times: list[TimeExpr],
        confidence: float | None = None,
        kind: Kind | None = None,
    ) -> Candidate:
        today = when.date()
        text = render(st.text, times) if times else st.text
        kind = kind or kind_of(st, text, times, today)
        diagnosed = _DIAGNOSED.match(text)
        if diagnosed:  # "Got diagnosed with X last month" -> "Has X, diagnosed in <month>"
            text = f"Has {diagnosed.group('c')}, diagnosed{diagnosed.group('t') or ''}"
        valid_from = valid_until = None
        if kind is Kind.EPISODIC:
            future = [t for t in times if t.relation(today) != "past"]
            if future:
                valid_until = _end_of(max(t.last for t in future), when)
            else:
                valid_until = when + timedelta(days=self.horizon_days)
            started = [t.first for t in times if t.first <= today]
            valid_from = _start_of(min(started), when) if started else when
        if confidence is None:
            confidence = _CONFIDENCE.get(st.subject, 0.7)
        return Candidate(
            text=text,
            kind=kind,
            category=category_of(st, text),
            valid_from=valid_from,
            valid_until=valid_until,
            confidence=round(confidence, 3),
            turn=turn,
            start=start,
            end=end,
            extractor=self.name,
            extractor_version=self.version,
            observed_at=when,
        )


def _after_changes(found: Sequence[Candidate]) -> list[Candidate]:
    """The lasting facts that changes among `found` imply ("Relocated from A to B" ->
    "Lives in B"): semantic, from when the change happened, as sure as the change."""
    out = []
    for c in found:
        for text, category in changes.lasting(c.text):
            out.append(
                replace(
                    c, text=text, kind=Kind.SEMANTIC, category=Category(category),
                    valid_until=None, confidence=round(c.confidence * 0.95, 3),
                )
            )  # fmt: skip
    return out


_OPENERS = frozenset("Is Has Was Will Just Cannot Never No Does Did Can Must Wants".split())


def _about_others(
    found: list[Candidate],
    messages: Sequence[Message],
    roles: frozenset[str],
    owner: Callable[[], str | None],
) -> list[Candidate]:
    """Statements from another named speaker's turns, made about that speaker."""
    named = [(i, m.name) for i, m in enumerate(messages) if m.role.lower() in roles and m.name]
    if not named:
        return found
    known = owner()
    if len({n for _, n in named}) < 2 and not known:
        return found
    me = (known or named[-1][1]).strip().lower()
    others = {i: str(n) for i, n in named if str(n).strip().lower() != me}
    out = []
    for c in found:
        who = others.get(c.turn)
        if who is None:
            out.append(c)
            continue
        first, _, rest = c.text.partition(" ")
        # Statements start with their verb ("Is training ...", "Loves jazz"): lower-cased
        # after the name; anything else (a name, "TV") keeps its capital.
        verb = first in _OPENERS or (first.endswith(("s", "ed")) and first[1:].islower())
        text = f"{first.lower()} {rest}" if verb else c.text
        out.append(replace(c, text=f"{who} {text}", category=Category.RELATIONSHIPS))
    return out


def _one_fact_each(found: list[Candidate]) -> list[Candidate]:
    """Split self-introductions into their facts; join "cannot eat X" and a bare
    "is allergic" said in one message (`memsync.extract.compound`)."""
    out: list[Candidate] = []
    for c in found:
        parts = compound.split_intro(c.text)
        if parts is None:
            out.append(c)
            continue
        out += [replace(c, text=t, category=Category(cat)) for t, cat in parts]
    for turn in {c.turn for c in out}:
        texts = [c.text for c in out if c.turn == turn]
        merged = compound.allergy(texts)
        if merged is not None:
            fact, eaten = merged
            keep = next(c for c in out if c.turn == turn and c.text == eaten)
            out = [c for c in out if not (c.turn == turn and c.text in ("Is allergic", eaten))]
            out.append(replace(keep, text=fact, category=Category.HEALTH))
    return out


def _end_of(d: date, when: datetime) -> datetime:
    return datetime.combine(d, time(23, 59, 59), tzinfo=when.tzinfo)


def _start_of(d: date, when: datetime) -> datetime:
    return datetime.combine(d, time(0, 0), tzinfo=when.tzinfo)
