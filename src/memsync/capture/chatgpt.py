"""ChatGPT data exports: the zip, or the `conversations.json` inside it.

`conversations.json` is a list of conversations. Each has `title`, `create_time` and
`update_time` (Unix seconds), and a `mapping` of node id to `{id, message, parent,
children}`: a tree, because editing a message or regenerating an answer starts a new
branch. `current_node` is the leaf the person last looked at, so the conversation they
saw is the path from the root down to it; every other branch was abandoned and is skipped.

Along that path, system messages, messages marked hidden, the model's reasoning and its
internal calls to tools (an assistant message whose `recipient` is not `all`) are left
out. Text parts are kept; images, files, code and other non-text parts become a short
note such as `[image]` or `[file: lease.pdf]` and are counted in `skipped_parts`.

Times are Unix seconds; a message without one takes the time of the turn before it (or
the conversation's `create_time`), so turns stay in order.
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

ORIGIN = "chatgpt"
_KEPT_ROLES = frozenset({"user", "assistant", "tool"})
# Content types that are context or reasoning the person never saw as a turn.
_INTERNAL = frozenset(
    {"thoughts", "reasoning_recap", "user_editable_context", "model_editable_context"}
)
_NOTES = {
    "image_asset_pointer": "image",
    "audio_asset_pointer": "audio",
    "real_time_user_audio_video_asset_pointer": "audio/video",
    "video_container_asset_pointer": "video",
    "code": "code",
    "execution_output": "code output",
    "tether_browsing_display": "web results",
    "tether_quote": "quote",
    "system_error": "tool error",
}


def parse_chatgpt(doc: object, name: str) -> Iterator[ImportedConversation]:
    """The conversations of a parsed `conversations.json` (a list, `{"conversations":
    [...]}`, or one conversation). Conversations with no visible message are not yielded.
    """
    if isinstance(doc, dict) and "mapping" in doc:
        doc = [doc]
    elif isinstance(doc, dict) and "conversations" in doc:
        doc = doc["conversations"]
    yield from each_conversation(doc, name, "ChatGPT", _conversation)


def read_chatgpt(path: Path, max_bytes: int = MAX_BYTES) -> Iterator[ImportedConversation]:
    """The conversations of a ChatGPT export zip or of its `conversations.json`."""
    return read_export(path, max_bytes, parse_chatgpt)


def _conversation(raw: object, name: str, number: int) -> ImportedConversation:
    conv = as_dict(raw, f"{name}: conversation {number}", "a conversation object")
    ident = conv.get("conversation_id") or conv.get("id")
    where = conversation_where(ident, name, number, "id")
    created = opt_time(conv.get("create_time"), f"{where}: create_time")
    mapping = as_dict(conv.get("mapping"), where, "'mapping' to be an object")
    _check_tree(mapping, where)
    return build_conversation(
        conv,
        where,
        origin=ORIGIN,
        ident=ident,
        created=created,
        turns=_turns(mapping, conv.get("current_node"), where),
        read_message=_message,
        title_key="title",
        updated_key="update_time",
    )


def _turns(mapping: dict[str, Any], current: object, where: str) -> Iterator[tuple[object, str]]:
    """The messages along the active path, each with where it is; empty nodes are passed."""
    number_in_path = 0
    for node_id in _active_path(mapping, current, where):
        raw_msg = mapping[node_id].get("message")
        if raw_msg is None:
            continue
        number_in_path += 1
        msg_id = raw_msg.get("id", node_id) if isinstance(raw_msg, dict) else node_id
        yield raw_msg, f"{where}, {place('message', number_in_path, msg_id)}"


def _check_tree(mapping: dict[str, Any], where: str) -> None:
    """Every node is an object whose parent and children are nodes of the mapping."""
    for key, node in mapping.items():
        node_where = f"{where}, node {key!r}"
        node = as_dict(node, node_where, "a node object")
        parent = node.get("parent")
        if parent is not None and (not isinstance(parent, str) or parent not in mapping):
            raise InvalidInput(f"{node_where}: parent {parent!r} is not in the mapping")
        for child in as_list(node.get("children", []), node_where, "children"):
            if not isinstance(child, str) or child not in mapping:
                raise InvalidInput(f"{node_where}: child {child!r} is not in the mapping")


def _active_path(mapping: dict[str, Any], current: object, where: str) -> list[str]:
    """Node ids from the root to `current_node` (or, without one, along the last children)."""
    if current is None:
        roots = [k for k, n in mapping.items() if n.get("parent") is None]
        if not roots:
            return []
        if len(roots) > 1:
            raise InvalidInput(f"{where}: no current_node and {len(roots)} root nodes")
        path = [roots[0]]
        while children := mapping[path[-1]].get("children"):
            if len(path) > len(mapping):
                raise InvalidInput(f"{where}: the mapping has a cycle")
            path.append(children[-1])
        return path
    if not isinstance(current, str) or current not in mapping:
        raise InvalidInput(f"{where}: current_node {current!r} is not in the mapping")
    path = []
    seen: set[str] = set()
    node_id: str | None = current
    while node_id is not None:
        if node_id in seen:
            raise InvalidInput(f"{where}: the mapping has a cycle at node {node_id!r}")
        seen.add(node_id)
        path.append(node_id)
        node_id = mapping[node_id].get("parent")
    path.reverse()
    return path


def _message(raw: object, where: str, fallback: datetime | None) -> tuple[Message | None, int]:
    """The message as a person saw it, or None if it is not a visible turn; and its notes."""
    msg = as_dict(raw, where, "a message object")
    author = as_dict(msg.get("author"), where, "'author' to be an object")
    role = author.get("role")
    if not isinstance(role, str):
        raise InvalidInput(f"{where}: 'author.role' must be a string")
    metadata = as_dict(msg.get("metadata") or {}, where, "'metadata' to be an object")
    recipient = msg.get("recipient")
    if (
        role not in _KEPT_ROLES
        or metadata.get("is_visually_hidden_from_conversation")
        or metadata.get("is_user_system_message")
        or (role == "assistant" and recipient not in (None, "all"))
    ):
        return None, 0
    content = as_dict(msg.get("content"), where, "'content' to be an object")
    ctype = content.get("content_type")
    if not isinstance(ctype, str):
        raise InvalidInput(f"{where}: 'content.content_type' must be a string")
    if ctype in _INTERNAL:
        return None, 0
    attachments = _attachments(metadata, where)
    segments, notes = _content(content, ctype, attachments, where)
    text, notes = message_text(segments, attachments.values(), notes)
    if not text:
        return None, notes
    when = opt_time(msg.get("create_time"), f"{where}: create_time") or fallback
    name = author.get("name") if isinstance(author.get("name"), str) else None
    return Message(role=role, content=text, timestamp=when, name=name), notes


def _attachments(metadata: dict[str, Any], where: str) -> dict[str, str]:
    """Uploaded files by id (or by name when they have no id), as their names."""
    out: dict[str, str] = {}
    for i, item in enumerate(as_list(metadata.get("attachments", []), where, "attachments")):
        item = as_dict(item, f"{where}: attachment {i + 1}")
        label = item.get("name") if isinstance(item.get("name"), str) else "unnamed"
        key = item.get("id") if isinstance(item.get("id"), str) else label
        out[str(key)] = str(label)
    return out


def _content(
    content: dict[str, Any], ctype: str, attachments: dict[str, str], where: str
) -> tuple[list[str], int]:
    """Text segments in order, with notes for non-text parts; and the number of notes.

    An image part whose file is also listed in `attachments` is noted with the file's
    name, and the attachment is then not noted twice.
    """
    if "parts" not in content and ctype not in ("text", "multimodal_text"):
        title = content.get("title") if ctype == "tether_quote" else None
        label = _NOTES.get(ctype, ctype.replace("_", " "))
        return [f"[{label}: {title}]" if isinstance(title, str) else f"[{label}]"], 1
    segments: list[str] = []
    notes = 0
    for j, part in enumerate(as_list(content.get("parts"), where, "parts"), start=1):
        if isinstance(part, str):
            segments.append(part)
        elif isinstance(part, dict):
            ptype = part.get("content_type")
            if ptype == "audio_transcription" and isinstance(part.get("text"), str):
                segments.append(part["text"])
                continue
            label = _NOTES.get(ptype, "attachment") if isinstance(ptype, str) else "attachment"
            pointer = part.get("asset_pointer")
            file_id = pointer.rsplit("/", 1)[-1] if isinstance(pointer, str) else None
            if file_id is not None and file_id in attachments:
                label = f"{label}: {attachments.pop(file_id)}"
            segments.append(f"[{label}]")
            notes += 1
        elif part is not None:
            raise InvalidInput(f"{where}: part {j} must be a string or an object")
    return segments, notes
