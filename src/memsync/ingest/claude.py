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

from memsync.errors import InvalidInput
from memsync.ingest.common import (
    MAX_BYTES,
    as_dict,
    as_list,
    is_zip,
    load_json,
    opt_str,
    opt_time,
    place,
    read_file,
    read_zip_exports,
)
from memsync.ingest.types import ImportedConversation
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
    if not isinstance(doc, list):
        raise InvalidInput(f"{name}: expected a list of Claude conversations")
    for number, conv in enumerate(doc, start=1):
        result = _conversation(conv, name, number)
        if result.messages:
            yield result


def read_claude(path: Path, max_bytes: int = MAX_BYTES) -> Iterator[ImportedConversation]:
    """The conversations of a Claude.ai export zip or of its `conversations.json`."""
    if is_zip(path):
        for member, blob in read_zip_exports(path, max_bytes):
            yield from parse_claude(load_json(blob, member), member)
    else:
        yield from parse_claude(load_json(read_file(path, max_bytes), str(path)), str(path))


def _conversation(raw: object, name: str, number: int) -> ImportedConversation:
    conv = as_dict(raw, f"{name}: conversation {number}", "a conversation object")
    ident = conv.get("uuid")
    where = f"{name}: {place('conversation', number, ident)}"
    if ident is not None and not isinstance(ident, str):
        raise InvalidInput(f"{where}: 'uuid' must be a string")
    created = opt_time(conv.get("created_at"), f"{where}: created_at")
    messages: list[Message] = []
    notes = skipped = 0
    last_time = created  # a message without a time gets the one before it
    raw_messages = as_list(conv.get("chat_messages"), where, "chat_messages")
    for i, raw_msg in enumerate(raw_messages, start=1):
        msg_id = raw_msg.get("uuid") if isinstance(raw_msg, dict) else None
        msg_where = f"{where}, {place('message', i, msg_id)}"
        message, n_notes = _message(raw_msg, msg_where, last_time)
        notes += n_notes
        if message is None:
            skipped += 1
        else:
            messages.append(message)
            last_time = message.timestamp
    return ImportedConversation(
        external_id=ident,
        title=opt_str(conv, "name", where),
        created_at=created,
        messages=tuple(messages),
        origin=ORIGIN,
        skipped_parts=notes,
        skipped_messages=skipped,
        updated_at=opt_time(conv.get("updated_at"), f"{where}: updated_at"),
    )


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
    for label in _files(msg, where):
        segments.append(f"[file: {label}]")
        notes += 1
    text = "\n".join(s for s in segments if s.strip()).strip()
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
