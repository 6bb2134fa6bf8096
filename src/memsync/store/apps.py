"""The app registry: apps as the log records them (registered, revoked) and as the
`apps` table holds them, and their bearer tokens (kept only as a SHA-256)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime
from typing import Any

import apsw

from memsync import codec
from memsync.errors import NotFound, UsageError
from memsync.scope import App, Scope

__all__ = [
    "DEFAULT_RATE",
    "TOKEN_PREFIX",
    "all_apps",
    "app_for_token",
    "check_name",
    "get_app",
    "hash_token",
    "new_token",
]

TOKEN_PREFIX = "msk_"
# Requests per minute an app may make unless told otherwise; 0 means no limit.
DEFAULT_RATE = 600
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


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
