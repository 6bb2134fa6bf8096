"""Apps and their scopes: who may talk to the vault, and what each may read and write.

An app is a name, a token (shown once, stored as its SHA-256) and a `Scope`. Registering
and revoking an app are operations in the log, so every device learns of them. The scope
is enforced by `memsync.access.AppSession`, which every server adapter goes through.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import apsw

from memsync import codec
from memsync.errors import InvalidInput, NotFound, UsageError
from memsync.model import Category, Kind, Memory

__all__ = [
    "DEFAULT_RATE",
    "TOKEN_PREFIX",
    "App",
    "Scope",
    "hash_token",
    "new_token",
    "parse_categories",
    "parse_kinds",
]

TOKEN_PREFIX = "msk_"
# Requests per minute an app may make unless told otherwise; 0 means no limit.
DEFAULT_RATE = 600
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
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


def check_name(name: str) -> str:
    """App names are short, lower-case words (they go into client configs and the ledger)."""
    cleaned = name.strip().lower()
    if not cleaned or len(cleaned) > 64 or not set(cleaned) <= _NAME_CHARS:
        raise UsageError(f"bad app name {name!r}: use up to 64 letters, digits, '-', '_' or '.'")
    return cleaned


def new_token() -> str:
    """A fresh 256-bit bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # The token is 256 random bits, so a plain hash is as good as a slow one here.
    return hashlib.sha256(token.encode()).hexdigest()


# Reading the registry.


def _from_row(row: tuple[Any, ...]) -> App:
    return App(
        name=str(row[0]),
        scope=Scope.from_json(json.loads(row[1])),
        rate_per_minute=int(row[2]),
        created_at=codec.from_ms(int(row[3])),
        revoked_at=None if row[4] is None else codec.from_ms(int(row[4])),
    )


_COLS = "name, scope, rate_per_minute, created_at, revoked_at"


def all_apps(conn: apsw.Connection) -> list[App]:
    return [_from_row(r) for r in conn.execute(f"SELECT {_COLS} FROM apps ORDER BY name")]


def get_app(conn: apsw.Connection, name: str) -> App:
    row = conn.execute(f"SELECT {_COLS} FROM apps WHERE name=?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no app named {name!r} (see `memsync app list`)")
    return _from_row(row)


def app_for_token(conn: apsw.Connection, token: str) -> App | None:
    """The active app holding `token`, or None."""
    wanted = hash_token(token)
    row = conn.execute(
        f"SELECT {_COLS}, token_hash FROM apps WHERE token_hash=? AND revoked_at IS NULL",
        (wanted,),
    ).fetchone()
    if row is None or not hmac.compare_digest(str(row[5]), wanted):
        return None
    return _from_row(row)


# Operations (applied by `memsync.store.state.apply`).


def add_op(name: str, token: str, scope: Scope, rate: int, at: datetime) -> dict[str, Any]:
    return {
        "op": "add_app",
        "name": name,
        "token_hash": hash_token(token),
        "scope": scope.to_json(),
        "rate": rate,
        "at": codec.to_ms(at),
    }


def revoke_op(name: str, at: datetime) -> dict[str, Any]:
    return {"op": "revoke_app", "name": name, "at": codec.to_ms(at)}


def apply_add(conn: apsw.Connection, op: dict[str, Any]) -> None:
    # Re-registering a revoked name replaces it; the ledger keeps the old disclosures.
    conn.execute(
        "INSERT OR REPLACE INTO apps(name, token_hash, scope, rate_per_minute, created_at, "
        "revoked_at) VALUES(?,?,?,?,?,NULL)",
        (
            str(op["name"]),
            str(op["token_hash"]),
            json.dumps(op["scope"], sort_keys=True),
            int(op["rate"]),
            int(op["at"]),
        ),
    )


def apply_revoke(conn: apsw.Connection, op: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE apps SET revoked_at=? WHERE name=? AND revoked_at IS NULL",
        (int(op["at"]), str(op["name"])),
    )
