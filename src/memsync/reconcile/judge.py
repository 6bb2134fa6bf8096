"""Reconciliation judgements by a chat model, for candidates rules cannot settle.

The model sees the new statement and the similar active memories (numbered, with their
ids) and answers add, noop, update or invalidate with the id it applies to. It never
answers PROMOTE: promotion depends on sessions and counts, which the caller knows and the
model does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memsync.extract.base import Candidate
from memsync.llm.client import ChatModel, ask_validated
from memsync.model import Memory
from memsync.reconcile.decision import Decision

__all__ = ["PROMPT_VERSION", "Judgement", "LLMJudge"]

PROMPT_VERSION = "2"
_MAX_REASON = 300
_CHOICES = (Decision.ADD, Decision.NOOP, Decision.UPDATE, Decision.INVALIDATE)
SYSTEM = """You keep a user's memory store consistent. A new statement about the user \
was just observed; compare it with the existing memories that resemble it and decide:
- "add": a new fact that no existing memory states (related is not the same).
- "noop": an existing memory already states the same fact.
- "update": it restates an existing memory with changed or added detail, so it should \
replace that memory ("Works as a nurse" -> "Works as a senior nurse in Leeds").
- "invalidate": it contradicts an existing memory, which is no longer true ("Lives in \
Leeds" -> "Moved to Lisbon in May 2026").
Never lose a fact: choose noop, update or invalidate only for a memory that states the \
same thing, the same attribute (home, employer, job, school, partner, pet, diet, allergy, \
language, tool) or the same content. A memory that only mentions the same person, place \
or date is a different fact: add ("Has a sister named Ana" does not replace "Is flying to \
Lisbon with her sister Ana in July").
target: the id of that existing memory (such as "m-3k9x", not its number) for noop, \
update and invalidate; null for add.
reason: one short sentence.
Answer with JSON only."""
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": [d.value for d in _CHOICES]},
        "target": {"type": ["string", "null"]},
        "reason": {"type": "string"},
    },
    "required": ["decision", "target", "reason"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Judgement:
    """What to do with a candidate: `target` is the memory id it applies to (None for
    ADD); `reason` is the model's one-line explanation."""

    decision: Decision
    target: str | None
    reason: str


class LLMJudge:
    """Decides add / noop / update / invalidate for a candidate with a chat model.

    Args:
        model: the chat model to ask, e.g. an `OpenAIChat`.

    Attributes:
        name: the model and prompt version, e.g. "llm:gpt-4o-mini/1".
    """

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        # Callers record it with the decision, so it names the model and the prompt.
        self.name = f"{model.name}/{PROMPT_VERSION}"

    def judge(self, candidate: Candidate, neighbours: Sequence[Memory]) -> Judgement:
        """The decision for `candidate` given the similar active memories.

        With no neighbours the answer is ADD without asking the model. Raises `LLMError`
        when the endpoint fails or the answer stays invalid after one retry.
        """
        if not neighbours:
            return Judgement(Decision.ADD, None, "no similar memory")
        ids = [m.id for m in neighbours]
        return ask_validated(
            self.model,
            SYSTEM,
            _prompt(candidate, neighbours),
            "judgement",
            SCHEMA,
            lambda answer: _validate(answer, ids),
        )


def _prompt(candidate: Candidate, neighbours: Sequence[Memory]) -> str:
    lines = [
        f"New statement: {candidate.text!r}",
        f"kind: {candidate.kind.value}; category: {candidate.category.value}; "
        f"observed: {_day(candidate.observed_at)}",
        "",
        "Existing memories:",
    ]
    for n, m in enumerate(neighbours, 1):
        category = m.category.value if m.category is not None else "none"
        lines.append(
            f"{n}. id {m.id}: {m.text!r} ({m.kind.value}, {category}, "
            f"observed {_day(m.observed_at)})"
        )
    return "\n".join(lines)


def _day(when: datetime | None) -> str:
    return when.date().isoformat() if when is not None else "unknown"


def _validate(answer: Any, ids: list[str]) -> Judgement:
    if not isinstance(answer, dict):
        raise TypeError("the answer must be a JSON object")
    for key in SCHEMA["required"]:
        if key not in answer:
            raise KeyError(key)
    allowed = [d.value for d in _CHOICES]
    if answer["decision"] not in allowed:
        raise ValueError(
            f"decision must be one of {', '.join(allowed)}, not {answer['decision']!r}"
        )
    decision = Decision(answer["decision"])
    target = answer["target"]
    if decision is Decision.ADD:
        target = None  # a target with "add" means nothing; not worth a retry
    elif target not in ids:
        raise ValueError(
            f"target must be the id of one of the existing memories ({', '.join(ids)}) "
            f"for {decision.value}, not {target!r}"
        )
    reason = answer["reason"]
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("reason must be a short non-empty sentence")
    reason = " ".join(reason.split())
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 1].rstrip() + "…"
    return Judgement(decision, target, reason)
