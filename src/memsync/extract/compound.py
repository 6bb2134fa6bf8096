"""One fact per memory: statements that pack several facts are split, and pieces of one
fact said apart are put back together.

- A self-introduction ("Is Dana, a nurse at St Olav's, based in Trondheim") becomes one
  memory per fact ("Is named Dana", "Is a nurse at St Olav's", "Lives in Trondheim"), so
  each can change on its own.
- "Cannot eat shellfish" with a bare "Is allergic" from the same message is one fact:
  "Is allergic to shellfish".
"""

from __future__ import annotations

import re

__all__ = ["allergy", "split_intro"]

_INTRO = re.compile(r"^Is (?P<name>[A-Z][\w'-]+),\s*(?P<rest>.+)$")
_PARTS = re.compile(r",\s*(?:and\s+)?|\s+and\s+(?=(?:a|an|based|living|from|\d)\b)")
_AGE = re.compile(r"^(?P<n>\d{1,3})(?:\s+years?\s+old)?$")
_LIVES = re.compile(r"^(?:based|living|settled|who\s+lives)\s+in\s+(?P<place>.+)$")
_CANT_EAT = re.compile(
    r"^(?:cannot|can't|can\s+not|does\s+not|doesn't|must\s+not)\s+(?:eat|have|drink|touch)\s+"
    r"(?P<what>[\w -]+)$",
    re.IGNORECASE,
)


def split_intro(text: str) -> list[tuple[str, str]] | None:
    """(fact, category) for each fact of a self-introduction; None if `text` is not one."""
    m = _INTRO.match(text.strip().rstrip("."))
    if m is None:
        return None
    out = [(f"Is named {m.group('name')}", "identity")]
    for part in _PARTS.split(m.group("rest")):
        part = part.strip()
        if not part:
            continue
        if age := _AGE.match(part):
            out.append((f"Is {age.group('n')} years old", "identity"))
        elif lives := _LIVES.match(part):
            out.append((f"Lives in {lives.group('place')}", "identity"))
        elif part.startswith("from "):
            out.append((f"Is {part}", "identity"))
        elif part.startswith(("a ", "an ")):
            out.append((f"Is {part}", "career"))
        else:
            out.append((f"Is {part}", "identity"))
    return out if len(out) > 1 else None


def allergy(texts: list[str]) -> tuple[str, str] | None:
    """(merged fact, the "cannot eat" text it replaces) when a message says both a bare
    "Is allergic" and what cannot be eaten."""
    if "Is allergic" not in texts:
        return None
    for t in texts:
        m = _CANT_EAT.match(t)
        if m:
            return f"Is allergic to {m.group('what').strip()}", t
    return None
