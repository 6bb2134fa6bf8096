"""OpenAI-style message lists, as a JSON array or JSON Lines, read into a conversation.

Accepted shapes: a JSON array of messages; an object with a `messages` array (and an
optional `title`); or JSON Lines with one message per line. Each message has `role` and
`content` (a string or a list of text parts) and optionally `timestamp` (ISO 8601 or Unix
seconds) and `name`. Errors name the file and the message or line at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from memsync.capture.common import decode_text, reading
from memsync.codec import message_from_json
from memsync.errors import InvalidInput
from memsync.model import Message


@dataclass(frozen=True)
class Conversation:
    """A parsed conversation, ready for `Vault.ingest`."""

    messages: tuple[Message, ...]
    title: str | None = None


def parse_messages(data: bytes, name: str) -> Conversation:
    """Parse `data` (the contents of the file called `name`) as a conversation."""
    text = decode_text(data, name)
    if not text.strip():
        raise InvalidInput(f"{name}: the file is empty")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as whole_error:
        return _parse_jsonl(text, name, whole_error)
    title = None
    if isinstance(doc, dict) and "messages" in doc:
        title = doc.get("title") if isinstance(doc.get("title"), str) else None
        doc = doc["messages"]
    elif isinstance(doc, dict) and "role" in doc:
        doc = [doc]  # a single-line JSONL file
    if not isinstance(doc, list):
        raise InvalidInput(f"{name}: expected a list of messages or an object with 'messages'")
    if not doc:
        raise InvalidInput(f"{name}: the conversation has no messages")
    msgs = tuple(message_from_json(m, f"{name}: message {i + 1}") for i, m in enumerate(doc))
    return Conversation(msgs, title)


def _parse_jsonl(text: str, name: str, whole_error: json.JSONDecodeError) -> Conversation:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) < 2:
        raise InvalidInput(
            f"{name}: not valid JSON (line {whole_error.lineno}, column {whole_error.colno}: "
            f"{whole_error.msg})"
        )
    msgs = []
    for n, line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{name}: line {n}: not valid JSON ({exc.msg})") from None
        msgs.append(message_from_json(obj, f"{name}: line {n}"))
    return Conversation(tuple(msgs))


def read_conversation(path: Path) -> Conversation:
    with reading(path):
        data = path.read_bytes()
    return parse_messages(data, str(path))
