"""Apps and their scopes: who may talk to the vault, and what each may read and write.

An app is a name, a token (shown once, stored as its SHA-256) and a `Scope`. The scope is
enforced by `memsync.disclose.access.AppSession`, which every server adapter goes
through; registering and revoking an app are operations in the log
(`memsync.store.apps`), so every device learns of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memsync.errors import InvalidInput, UsageError
from memsync.model import Category, Kind, Memory

__all__ = ["PUBLIC_CATEGORIES", "App", "Scope", "parse_categories", "parse_kinds"]

PUBLIC_CATEGORIES = frozenset(Category) - {Category.PRIVATE}


@dataclass(frozen=True)
class Scope:
    """What an app may see and change.

    `read` and `write` are categories; `private` is in them only when granted by name.
    A memory without a category is readable (writable) when every category but `private`
    is. `kinds` limits both reading and writing. `conversations` lets the app read
    excerpts of stored conversations, which carry no category and so are off by default.
    """

    read: frozenset[Category] = PUBLIC_CATEGORIES
    write: frozenset[Category] = PUBLIC_CATEGORIES
    kinds: frozenset[Kind] = frozenset(Kind)
    conversations: bool = False

    def can_read(self, memory: Memory) -> bool:
        return memory.kind in self.kinds and _covers(self.read, memory.category)

    def can_write(self, kind: Kind, category: Category | None) -> bool:
        return kind in self.kinds and _covers(self.write, category)

    @property
    def reads_uncategorised(self) -> bool:
        return self.read >= PUBLIC_CATEGORIES

    def describe(self) -> str:
        """The scope in the words `memsync app add` takes: read=…; write=…; kinds=…."""
        parts = [f"read={_names(self.read)}", f"write={_names(self.write)}"]
        parts.append("kinds=" + (",".join(sorted(self.kinds)) or "none"))
        if self.conversations:
            parts.append("conversations")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": sorted(self.read),
            "write": sorted(self.write),
            "kinds": sorted(self.kinds),
            "conversations": self.conversations,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scope:
        try:
            return cls(
                read=frozenset(Category(c) for c in data["read"]),
                write=frozenset(Category(c) for c in data["write"]),
                kinds=frozenset(Kind(k) for k in data["kinds"]),
                conversations=bool(data["conversations"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed app scope: {exc}") from None


def _covers(categories: frozenset[Category], category: Category | None) -> bool:
    return categories >= PUBLIC_CATEGORIES if category is None else category in categories


def _names(categories: frozenset[Category]) -> str:
    if not categories:
        return "none"
    if categories == PUBLIC_CATEGORIES:
        return "all"
    if categories == frozenset(Category):
        return "all,private"
    return ",".join(c.value for c in Category if c in categories)


@dataclass(frozen=True)
class App:
    """A registered app. `revoked_at` is set once it may no longer connect."""

    name: str
    scope: Scope
    rate_per_minute: int
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def parse_categories(text: str) -> frozenset[Category]:
    """`all` (every category but private), `none`, or names joined by commas.

    `private` is granted only by naming it: `all,private` or `career,private`.
    """
    chosen: set[Category] = set()
    for word in (w.strip().lower() for w in text.split(",")):
        if not word:
            continue
        if word == "all":
            chosen |= PUBLIC_CATEGORIES
        elif word == "none":
            continue
        else:
            try:
                chosen.add(Category(word))
            except ValueError:
                names = ", ".join(c.value for c in Category)
                raise UsageError(
                    f"unknown category {word!r}: use all, none or some of {names}"
                ) from None
    return frozenset(chosen)


def parse_kinds(text: str) -> frozenset[Kind]:
    """`all`, or `semantic` / `episodic` joined by commas."""
    chosen: set[Kind] = set()
    for word in (w.strip().lower() for w in text.split(",")):
        if word == "all":
            chosen |= set(Kind)
        elif word:
            try:
                chosen.add(Kind(word))
            except ValueError:
                raise UsageError(f"unknown kind {word!r}: use all, semantic or episodic") from None
    if not chosen:
        raise UsageError("an app needs at least one kind: all, semantic or episodic")
    return frozenset(chosen)
