"""Helpers shared by the importers: bounded file and zip reading, JSON, places, ids.

Every failure is an `InvalidInput` whose message starts with the file's name (for a zip
member, `archive.zip:member.json`) and then says where in it the problem is.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from memsync.capture.types import ImportedConversation
from memsync.codec import parse_time
from memsync.errors import InvalidInput
from memsync.model import Message

MAX_BYTES = 1 << 30
"""Default cap on what one import may read or decompress (1 GiB), against zip bombs."""

ZIP_MAGIC = b"PK\x03\x04"
_EXPORT_MEMBER = re.compile(r"conversations(-\d+)?\.json", re.IGNORECASE)
_READ_CHUNK = 1 << 20


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn the OS errors of reading `path` into `InvalidInput` naming it."""
    try:
        yield
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a directory") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None


def is_zip(path: Path) -> bool:
    """Whether `path` starts like a zip archive (its size is not limited: exports carry
    images and audio beside the JSON, and only the members read are counted)."""
    with reading(path), path.open("rb") as fh:
        return fh.read(len(ZIP_MAGIC)) == ZIP_MAGIC


def read_file(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of `path`, refusing files larger than `max_bytes`."""
    with reading(path):
        size = path.stat().st_size
        if path.is_dir():
            raise InvalidInput(f"{path}: is a directory")
        if size > max_bytes:
            raise InvalidInput(f"{path}: too large ({size} bytes; the limit is {max_bytes})")
        return path.read_bytes()


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text (a BOM is dropped), with newlines normalised to `\\n`."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{name}: not UTF-8 text (byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_json(data: bytes, name: str) -> object:
    """Parse JSON, reporting the line and column of a syntax error."""
    text = decode_text(data, name)
    if not text.strip():
        raise InvalidInput(f"{name}: the file is empty")
    try:
        doc: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise InvalidInput(f"{name}: JSON nested too deeply") from None
    return doc


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, budget: int) -> bytes:
    """A member's bytes, counting what is actually inflated (headers can lie)."""
    if info.file_size > budget:
        raise InvalidInput(f"{name}: too large when unpacked ({info.file_size} bytes)")
    out = bytearray()
    try:
        with zf.open(info) as fh:
            while block := fh.read(_READ_CHUNK):
                out += block
                if len(out) > budget:
                    raise InvalidInput(f"{name}: too large when unpacked (over {budget} bytes)")
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise InvalidInput(f"{name}: damaged zip member ({exc})") from None
    return bytes(out)


def read_zip_exports(path: Path, max_bytes: int = MAX_BYTES) -> list[tuple[str, bytes]]:
    """The export members of a zip as `(display name, bytes)`, in name order.

    An export member is `conversations.json` (or `conversations-NNN.json`) at any depth;
    failing that, the zip's only `.json`/`.jsonl` member. `max_bytes` caps the total
    unpacked size.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [
                i
                for i in zf.infolist()
                if not i.is_dir() and not i.filename.startswith("__MACOSX/")
            ]
            chosen = [i for i in infos if _EXPORT_MEMBER.fullmatch(PurePosixPath(i.filename).name)]
            if not chosen:
                chosen = [i for i in infos if i.filename.lower().endswith((".json", ".jsonl"))]
                if len(chosen) != 1:
                    listing = ", ".join(i.filename for i in infos[:8]) or "none"
                    raise InvalidInput(
                        f"{path}: no conversations.json in the zip (members: {listing})"
                    )
            out = []
            budget = max_bytes
            for info in sorted(chosen, key=lambda i: i.filename):
                data = _read_member(zf, info, f"{path}:{info.filename}", budget)
                budget -= len(data)
                out.append((f"{path}:{info.filename}", data))
            return out
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"{path}: not a readable zip ({exc})") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None


def read_export(
    path: Path, max_bytes: int, parse: Callable[[object, str], Iterator[ImportedConversation]]
) -> Iterator[ImportedConversation]:
    """`parse(document, name)` over each export member of a zip, or over the JSON file."""
    if is_zip(path):
        for member, blob in read_zip_exports(path, max_bytes):
            yield from parse(load_json(blob, member), member)
    else:
        yield from parse(load_json(read_file(path, max_bytes), str(path)), str(path))


def each_conversation(
    doc: object,
    name: str,
    what: str,
    convert: Callable[[object, str, int], ImportedConversation],
) -> Iterator[ImportedConversation]:
    """`convert(raw, name, number)` over a list of conversations, yielding those with
    a visible message; `what` names the export in the error for anything but a list."""
    if not isinstance(doc, list):
        raise InvalidInput(f"{name}: expected a list of {what} conversations")
    for number, conv in enumerate(doc, start=1):
        result = convert(conv, name, number)
        if result.messages:
            yield result


def conversation_where(ident: object, name: str, number: int, id_key: str) -> str:
    """`name: conversation 3 (id abc)`, after checking that the id is a string or absent."""
    where = f"{name}: {place('conversation', number, ident)}"
    if ident is not None and not isinstance(ident, str):
        raise InvalidInput(f"{where}: '{id_key}' must be a string")
    return where


MessageReader = Callable[[object, str, datetime | None], tuple[Message | None, int]]
"""`(raw message, where, time of the turn before)` -> the message or None, and its notes."""


def build_conversation(
    conv: dict[str, Any],
    where: str,
    *,
    origin: str,
    ident: str | None,
    created: datetime | None,
    turns: Iterable[tuple[object, str]],
    read_message: MessageReader,
    title_key: str,
    updated_key: str,
) -> ImportedConversation:
    """The conversation from its raw `(message, where)` turns, in order.

    A message without a time takes the time of the one before it (or `created`); those
    `read_message` drops are counted in `skipped_messages`, its notes in `skipped_parts`.
    """
    messages: list[Message] = []
    notes = skipped = 0
    last_time = created
    for raw_msg, msg_where in turns:
        message, n_notes = read_message(raw_msg, msg_where, last_time)
        notes += n_notes
        if message is None:
            skipped += 1
        else:
            messages.append(message)
            last_time = message.timestamp
    return ImportedConversation(
        external_id=ident,
        title=opt_str(conv, title_key, where),
        created_at=created,
        messages=tuple(messages),
        origin=origin,
        skipped_parts=notes,
        skipped_messages=skipped,
        updated_at=opt_time(conv.get(updated_key), f"{where}: {updated_key}"),
    )


def message_text(segments: list[str], files: Iterable[str], notes: int) -> tuple[str, int]:
    """A message's non-blank segments and then a `[file: name]` note per file, one a line;
    and `notes` counting those file notes too."""
    file_notes = [f"[file: {label}]" for label in files]
    text = "\n".join(s for s in [*segments, *file_notes] if s.strip()).strip()
    return text, notes + len(file_notes)


def place(kind: str, number: int, ident: object = None) -> str:
    """`conversation 3 (id abc)`: a 1-based position, with the record's id when it has one."""
    if isinstance(ident, str) and ident:
        shown = ident if len(ident) <= 40 else ident[:36] + "…"
        return f"{kind} {number} (id {shown})"
    return f"{kind} {number}"


def content_id(value: object) -> str:
    """A stable id for a record with none of its own: sha256 of its canonical JSON."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def opt_time(value: object, where: str) -> datetime | None:
    """`parse_time`, with null meaning "no time"."""
    return None if value is None else parse_time(value, where)


def opt_str(record: dict[str, Any], key: str, where: str) -> str | None:
    """A string field that may be absent or null; an empty string counts as absent."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: '{key}' must be a string, got {type(value).__name__}")
    return value or None


def as_list(value: object, where: str, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{where}: '{key}' must be a list")
    return value


def as_dict(value: object, where: str, what: str = "an object") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: expected {what}, got {type(value).__name__}")
    return value
