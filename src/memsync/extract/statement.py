"""What a rewritten clause says, and what the rules carry from clause to clause."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Context", "Statement", "cap", "low"]


@dataclass(frozen=True)
class Statement:
    """A rewritten clause. `subject` says whose fact it is and how it was found: self,
    fragment (subject left out), relation (my wife ...), possession (my contract ...),
    thing (the deadline ...), instruction (please always ...), assistant (confirmed by the
    user)."""

    text: str
    subject: str
    hedged: bool = False
    negated: bool = False
    past: bool = False
    progressive: bool = False
    verb: str = ""
    uptalk: bool = False
    relation: str = ""  # for relation statements: "wife", "best friend"
    name: str = ""  # and the relation's name, when given
    predicate: str = ""  # and what is said of them ("works from home")


@dataclass
class Context:
    """What the rules remember across the clauses of one conversation."""

    antecedent: str | None = None  # the last relation mentioned ("wife")
    instructed: bool = False  # the previous user message held an instruction
    instructing: bool = False  # this user message holds an instruction
    introduced: bool = False  # the user introduces themselves in this message
    self_seen: bool = False  # this message already had a statement by the user
    condition: str = ""  # a "when you ..." condition that coordinated clauses share


def cap(text: str) -> str:
    """Collapse spaces, trim, and upper-case the first letter."""
    text = re.sub(r"\s+", " ", text).strip(" ,")
    return text[:1].upper() + text[1:] if text else text


def low(text: str) -> str:
    """Lower-case the first letter of a clause that starts a sentence with a verb."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text
