"""The decisions reconciliation makes about a candidate memory."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Decision"]


class Decision(StrEnum):
    """What happens to a candidate, compared with the active memories it resembles.

    ADD: a new memory. NOOP: a duplicate; the existing memory gains the new provenance.
    UPDATE: the same fact restated with changed or added detail; the old memory is
    superseded by the new one, history kept. INVALIDATE: a contradiction; the old memory's
    validity ends when the new fact starts, and the new one is added. PROMOTE: an episodic
    fact seen again in another session becomes a lasting (semantic) memory.
    """

    ADD = "add"
    NOOP = "noop"
    UPDATE = "update"
    INVALIDATE = "invalidate"
    PROMOTE = "promote"
