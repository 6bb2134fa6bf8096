"""mem0 exports: its memories as JSON, so mem0 users can move over.

Accepted shapes: `{"results": [...]}` (what mem0's `get_all` returns), `{"memories":
[...]}`, a bare list, or JSON Lines with one memory per line. A memory has `id`, `memory`
(its text; `text` is accepted too), `created_at`/`updated_at` (ISO 8601), and optional
`categories`, `metadata`, `hash` and `user_id`.

Categories: a mem0 category whose name is one of memsync's ten becomes the memory's
`category`, as do mem0's default categories that are only renamed versions of ours
(`personal_details` → identity, `professional_details` → career, `family` →
relationships, `hobbies` → interests). Every other category is kept as a tag.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from memsync.capture.common import (
    MAX_BYTES,
    as_dict,
    content_id,
    decode_text,
    load_json,
    opt_time,
    place,
    read_file,
)
from memsync.capture.types import ImportedMemory
from memsync.errors import InvalidInput
from memsync.model import Category

ORIGIN = "mem0"
ALIASES: dict[str, Category] = {
    "personal_details": Category.IDENTITY,
    "professional_details": Category.CAREER,
    "family": Category.RELATIONSHIPS,
    "hobbies": Category.INTERESTS,
}
_RECORD_KEYS = ("results", "memories")


def map_category(name: str) -> Category | None:
    """memsync's category for a mem0 category name, if one matches."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return Category(key)
    except ValueError:
        return ALIASES.get(key)


def parse_mem0(doc: object, name: str) -> Iterator[ImportedMemory]:
    """The memories of a parsed mem0 export."""
    if isinstance(doc, dict):
        key = next((k for k in _RECORD_KEYS if k in doc), None)
        if key is None:
            raise InvalidInput(f"{name}: expected 'results' or 'memories' with mem0 memories")
        doc = doc[key]
    if not isinstance(doc, list):
        raise InvalidInput(f"{name}: expected a list of mem0 memories")
    for number, record in enumerate(doc, start=1):
        yield _memory(record, name, number)


def read_mem0(path: Path, max_bytes: int = MAX_BYTES) -> Iterator[ImportedMemory]:
    """The memories of a mem0 export file (JSON or JSON Lines)."""
    data = read_file(path, max_bytes)
    name = str(path)
    try:
        doc = load_json(data, name)
    except InvalidInput:
        lines = decode_text(data, name).splitlines()
        if sum(1 for line in lines if line.strip()) < 2:
            raise
        doc = _jsonl(lines, name)
    yield from parse_mem0(doc, name)


def _jsonl(lines: list[str], name: str) -> list[object]:
    records: list[object] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{name}: line {n}: not valid JSON ({exc.msg})") from None
    return records


def _memory(raw: object, name: str, number: int) -> ImportedMemory:
    record = as_dict(raw, f"{name}: {place('memory', number)}", "a memory object")
    ident = record.get("id")
    where = f"{name}: {place('memory', number, ident)}"
    if ident is not None and not isinstance(ident, str | int):
        raise InvalidInput(f"{where}: 'id' must be a string")
    text = record.get("memory", record.get("text"))
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{where}: 'memory' must be a non-empty string")
    categories = record.get("categories") or []
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise InvalidInput(f"{where}: 'categories' must be a list of strings")
    category: Category | None = None
    tags: set[str] = set()
    for label in categories:
        mapped = map_category(label)
        if category is None and mapped is not None:
            category = mapped
        elif label.strip():
            tags.add(label.strip())
    created = opt_time(record.get("created_at"), f"{where}: created_at")
    return ImportedMemory(
        external_id=content_id([text, record.get("created_at")]) if ident is None else str(ident),
        text=text.strip(),
        created_at=created,
        updated_at=opt_time(record.get("updated_at"), f"{where}: updated_at") or created,
        tags=tuple(sorted(tags)),
        category=category,
        origin=ORIGIN,
    )
