"""Claude.ai data exports: the zip, or the `conversations.json` inside it.

`conversations.json` is a list (or `{"conversations": [...]}`) of conversations, each with
`uuid`, `name`, `created_at`/`updated_at` (ISO 8601) and `chat_messages`. A message has
`uuid`, `sender` (`human` or `assistant`), `created_at`, and its words either in `text`
or as `content` parts (`{"type": "text", "text": ...}`, tool use, tool results,
thinking). Text parts are kept, the model's thinking is dropped, and tool use, images and
attached files become notes such as `[tool use: web_search]` or `[file: notes.pdf]`,
counted in `skipped_parts`. A message without `created_at` takes the time of the turn
before it (or the conversation's).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from memsync.capture.common import (
    MAX_BYTES,
    as_dict,
    as_list,
    build_conversation,
    conversation_where,
    each_conversation,
    message_text,
    opt_time,
    place,
    read_export,
)
from memsync.capture.types import ImportedConversation
from memsync.errors import InvalidInput
from memsync.model import Message

ORIGIN = "claude"
_ROLES = {"human": "user", "assistant": "assistant"}
_DROPPED_PARTS = frozenset({"thinking", "redacted_thinking"})


def parse_claude(doc: object, name: str) -> Iterator[ImportedConversation]:
    """The conversations of a parsed Claude export (a list, `{"conversations": [...]}`,
    or one conversation). Conversations with no visible message are not yielded."""
    if isinstance(doc, dict) and "conversations" in doc:
        doc = doc["conversations"]
    elif isinstance(doc, dict) and "chat_messages" in doc:
        doc = [doc]
    yield from each_conversation(doc, name, "Claude", _conversation)


def read_claude(path: Path, max_bytes: int = MAX_BYTES) -> Iterator[ImportedConversation]:
    """The conversations of a Claude.ai export zip or of its `conversations.json`."""
    return read_export(path, max_bytes, parse_claude)


def _conversation(raw: object, name: str, number: int) -> ImportedConversation:
    conv = as_dict(raw, f"{name}: conversation {number}", "a conversation object")
    ident = conv.get("uuid")
    where = conversation_where(ident, name, number, "uuid")
    created = opt_time(conv.get("created_at"), f"{where}: created_at")
    raw_messages = as_list(conv.get("chat_messages"), where, "chat_messages")
    turns = (
        (raw_msg, f"{where}, {place('message', i, _uuid(raw_msg))}")
        for i, raw_msg in enumerate(raw_messages, start=1)
    )
    return build_conversation(
        conv,
        where,
        origin=ORIGIN,
        ident=ident,
        created=created,
        turns=turns,
        read_message=_message,
        title_key="name",
        updated_key="updated_at",
    )


def _uuid(raw_msg: object) -> object:
    return raw_msg.get("uuid") if isinstance(raw_msg, dict) else None


def _message(raw: object, where: str, fallback: datetime | None) -> tuple[Message | None, int]:
    msg = as_dict(raw, where, "a message object")
    sender = msg.get("sender")
    if not isinstance(sender, str) or sender not in _ROLES:
        raise InvalidInput(f"{where}: 'sender' must be 'human' or 'assistant', got {sender!r}")
    content = msg.get("content")
    segments: list[str] = []
    notes = 0
    if content:
        segments, notes = _parts(as_list(content, where, "content"), where)
    if not any(s.strip() for s in segments):
        text = msg.get("text")
        if text is not None and not isinstance(text, str):
            raise InvalidInput(f"{where}: 'text' must be a string")
        segments.insert(0, text or "")
    text, notes = message_text(segments, _files(msg, where), notes)
    if not text:
        return None, notes
    when = opt_time(msg.get("created_at"), f"{where}: created_at") or fallback
    return Message(role=_ROLES[sender], content=text, timestamp=when), notes


def _parts(parts: list[Any], where: str) -> tuple[list[str], int]:
    segments: list[str] = []
    notes = 0
    for j, raw in enumerate(parts, start=1):
        part = as_dict(raw, f"{where}: content part {j}", "a content part object")
        ptype = part.get("type")
        if not isinstance(ptype, str):
            raise InvalidInput(f"{where}: content part {j}: 'type' must be a string")
        if ptype == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidInput(f"{where}: content part {j}: 'text' must be a string")
            segments.append(text)
        elif ptype not in _DROPPED_PARTS:
            tool = part.get("name")
            label = ptype.replace("_", " ")
            segments.append(f"[{label}: {tool}]" if isinstance(tool, str) else f"[{label}]")
            notes += 1
    return segments, notes


def _files(msg: dict[str, Any], where: str) -> list[str]:
    """Names of the message's attachments and files, each once, in order."""
    names: list[str] = []
    for key in ("attachments", "files"):
        for i, raw in enumerate(as_list(msg.get(key) or [], where, key), start=1):
            item = as_dict(raw, f"{where}: {key} {i}")
            label = item.get("file_name")
            label = label if isinstance(label, str) and label else "unnamed"
            if label not in names:
                names.append(label)
    return names
