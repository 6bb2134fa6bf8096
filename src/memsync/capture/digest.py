"""How the vault recognises a source it already holds: the digest of its turns as they
are stored (timestamps in milliseconds), so importing the same export again adds nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from memsync import codec
from memsync.model import Message

__all__ = ["digest_messages", "same_turn"]


def _turn_key(m: Message) -> tuple[str, str, str | None, str | None]:
    return (m.role, m.content, codec.iso(m.timestamp), m.name)


def same_turn(a: Message, b: Message) -> bool:
    """Whether two messages are the same turn as the vault stores it (time in ms)."""
    return _turn_key(a) == _turn_key(b)


def digest_messages(messages: Sequence[Message], offsets: Sequence[int] = ()) -> str:
    h = hashlib.sha256()
    for m in messages:
        h.update(repr(_turn_key(m)).encode())
    if offsets:
        h.update(repr(tuple(offsets)).encode())
    return h.hexdigest()
