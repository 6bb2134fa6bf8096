"""JSON forms of the domain types, shared by the operation log and the export format.

`*_from_json` functions validate strictly and raise `InvalidInput` naming the field, so
a malformed export or a damaged operation is reported, never half-applied.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from memsync.errors import InvalidInput
from memsync.model import (
    Category,
    Kind,
    Memory,
    Message,
    Provenance,
    Source,
    SourceKind,
    Status,
)

JSON = dict[str, Any]


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def opt_ms(dt: datetime | None) -> int | None:
    return None if dt is None else to_ms(dt)


def opt_from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: object, where: str) -> datetime:
    """An ISO 8601 string or Unix seconds, as an aware UTC datetime."""
    if isinstance(value, bool):
        raise InvalidInput(f"{where}: expected a time, got {value!r}")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidInput(f"{where}: time out of range: {value!r}") from None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"{where}: not an ISO 8601 time: {value!r}") from None
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    raise InvalidInput(f"{where}: expected a time, got {type(value).__name__}")


def _opt_time(d: JSON, key: str, where: str) -> datetime | None:
    value = d.get(key)
    return None if value is None else parse_time(value, f"{where}.{key}")


def _str(d: JSON, key: str, where: str, *, optional: bool = False) -> str | None:
    value = d.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: '{key}' must be a string")
    return value


def _enum(cls: Any, value: object, where: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise InvalidInput(f"{where}: {value!r} is not one of: {allowed}") from None


def provenance_to_json(p: Provenance) -> JSON:
    return {
        "source_id": p.source_id,
        "turn": p.turn,
        "start": p.start,
        "end": p.end,
        "extractor": p.extractor,
        "extractor_version": p.extractor_version,
    }


def provenance_from_json(d: object, where: str) -> Provenance:
    if not isinstance(d, dict):
        raise InvalidInput(f"{where}: provenance must be an object")
    ints = {}
    for key in ("turn", "start", "end"):
        value = d.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidInput(f"{where}: provenance '{key}' must be an integer")
        ints[key] = value
    return Provenance(
        source_id=_str(d, "source_id", where, optional=True),
        turn=ints["turn"],
        start=ints["start"],
        end=ints["end"],
        extractor=_str(d, "extractor", where, optional=True) or "manual",
        extractor_version=_str(d, "extractor_version", where, optional=True) or "1",
    )


def memory_to_json(m: Memory) -> JSON:
    return {
        "id": m.id,
        "text": m.text,
        "kind": m.kind.value,
        "category": None if m.category is None else m.category.value,
        "tags": list(m.tags),
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
        "observed_at": iso(m.observed_at),
        "valid_from": iso(m.valid_from),
        "valid_until": iso(m.valid_until),
        "confidence": m.confidence,
        "status": m.status.value,
        "supersedes": m.supersedes,
        "superseded_by": m.superseded_by,
        "provenance": [provenance_to_json(p) for p in m.provenance],
    }


def memory_from_json(d: object, where: str = "memory") -> Memory:
    if not isinstance(d, dict):
        raise InvalidInput(f"{where}: expected an object")
    mid = _str(d, "id", where)
    text = _str(d, "text", where)
    assert mid is not None and text is not None
    if not mid or not text.strip():
        raise InvalidInput(f"{where}: 'id' and 'text' must not be empty")
    tags = d.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidInput(f"{where}: 'tags' must be a list of strings")
    confidence = d.get("confidence", 1.0)
    if not isinstance(confidence, int | float) or not 0.0 <= float(confidence) <= 1.0:
        raise InvalidInput(f"{where}: 'confidence' must be a number between 0 and 1")
    prov = d.get("provenance", [])
    if not isinstance(prov, list):
        raise InvalidInput(f"{where}: 'provenance' must be a list")
    category = d.get("category")
    created = parse_time(d.get("created_at"), f"{where}.created_at")
    return Memory(
        id=mid,
        text=text,
        kind=_enum(Kind, d.get("kind", "semantic"), f"{where}.kind"),
        category=None if category is None else _enum(Category, category, f"{where}.category"),
        tags=tuple(sorted(set(tags))),
        created_at=created,
        updated_at=_opt_time(d, "updated_at", where) or created,
        observed_at=_opt_time(d, "observed_at", where) or created,
        valid_from=_opt_time(d, "valid_from", where),
        valid_until=_opt_time(d, "valid_until", where),
        confidence=float(confidence),
        status=_enum(Status, d.get("status", "active"), f"{where}.status"),
        supersedes=_str(d, "supersedes", where, optional=True),
        superseded_by=_str(d, "superseded_by", where, optional=True),
        provenance=tuple(
            provenance_from_json(p, f"{where}.provenance[{i}]") for i, p in enumerate(prov)
        ),
    )


def message_to_json(m: Message) -> JSON:
    out: JSON = {"role": m.role, "content": m.content}
    if m.timestamp is not None:
        out["timestamp"] = iso(m.timestamp)
    if m.name is not None:
        out["name"] = m.name
    return out


ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# A chunk of a document source: stored and exported, never read from a chat file.
SOURCE_ROLES = ROLES | {"document"}


def _content_text(content: object, where: str) -> str:
    """OpenAI content: a string, or a list of parts of which the text parts are kept."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif not isinstance(part, dict):
                raise InvalidInput(f"{where}.content[{i}]: expected a text part")
        return "\n".join(texts)
    raise InvalidInput(f"{where}: 'content' must be a string or a list of parts")


def message_from_json(d: object, where: str = "message", roles: frozenset[str] = ROLES) -> Message:
    """One OpenAI-style message: role, content, optional timestamp and name."""
    if not isinstance(d, dict):
        raise InvalidInput(f"{where}: expected a message object with 'role' and 'content'")
    role = d.get("role")
    if not isinstance(role, str) or role not in roles:
        raise InvalidInput(f"{where}: 'role' must be one of {', '.join(sorted(roles))}")
    if "content" not in d:
        raise InvalidInput(f"{where}: missing 'content'")
    ts = d.get("timestamp", d.get("created_at"))
    name = d.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidInput(f"{where}: 'name' must be a string")
    return Message(
        role=role,
        content=_content_text(d["content"], where),
        timestamp=None if ts is None else parse_time(ts, f"{where}.timestamp"),
        name=name,
    )


def source_to_json(s: Source) -> JSON:
    out: JSON = {
        "id": s.id,
        "kind": s.kind.value,
        "title": s.title,
        "origin": s.origin,
        "created_at": iso(s.created_at),
        "captured_at": iso(s.captured_at),
        "digest": s.digest,
        "messages": [message_to_json(m) for m in s.messages],
    }
    if s.external_id is not None:
        out["external_id"] = s.external_id
    if s.offsets:
        out["offsets"] = list(s.offsets)
    return out


def source_from_json(d: object, where: str = "source") -> Source:
    if not isinstance(d, dict):
        raise InvalidInput(f"{where}: expected an object")
    sid = _str(d, "id", where)
    assert sid is not None
    messages = d.get("messages", [])
    if not isinstance(messages, list):
        raise InvalidInput(f"{where}: 'messages' must be a list")
    msgs = tuple(
        message_from_json(m, f"{where}.messages[{i}]", SOURCE_ROLES) for i, m in enumerate(messages)
    )
    created = parse_time(d.get("created_at"), f"{where}.created_at")
    offsets = d.get("offsets", [])
    if (
        not isinstance(offsets, list)
        or not all(type(o) is int and o >= 0 for o in offsets)
        or (offsets and len(offsets) != len(msgs))
    ):
        raise InvalidInput(f"{where}: 'offsets' must list one non-negative integer per message")
    return Source(
        id=sid,
        kind=_enum(SourceKind, d.get("kind", "conversation"), f"{where}.kind"),
        title=_str(d, "title", where, optional=True),
        origin=_str(d, "origin", where, optional=True),
        created_at=created,
        captured_at=_opt_time(d, "captured_at", where) or created,
        messages=msgs,
        digest=_str(d, "digest", where, optional=True) or "",
        external_id=_str(d, "external_id", where, optional=True),
        offsets=tuple(offsets),
    )
