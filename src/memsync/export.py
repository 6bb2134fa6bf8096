"""The export format: JSON Lines, one record per line, plaintext by design.

Line 1 is a header:
    {"type": "memsync-export", "version": 1, "vault_id": "v-…", "exported_at": "…Z"}
Then one line per source, then one per memory (so provenance points backwards):
    {"type": "source", "source": {id, kind, title, origin, created_at, captured_at,
                                  digest, messages: [{role, content, timestamp?, name?}]}}
    {"type": "memory", "memory": {id, text, kind, category, tags, created_at, updated_at,
                                  observed_at, valid_from, valid_until, confidence, status,
                                  supersedes, superseded_by, provenance: [...]}}
Since version 2, then one line per app and one per disclosure (the ledger):
    {"type": "app", "app": {name, token_hash, scope, rate, created_at, revoked_at}}
    {"type": "disclosure", "disclosure": {id, app, at, action, query, items: [...]}}
(an app's token is kept only as its hash, so an imported app connects with the same token).
Times are ISO 8601 in UTC. Forgotten memories are not exported: a tombstone carries
nothing worth moving. Import checks the whole file before it writes anything, and skips
records whose ids (or, for sources, contents) are already in the vault, so importing the
same file twice adds nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from memsync import codec
from memsync.core import Progress
from memsync.errors import InvalidInput, UsageError
from memsync.model import ImportReport, Memory, SearchFilters, Source, Status
from memsync.store import ledger
from memsync.vault import Vault

FORMAT = "memsync-export"
VERSION = 2
READS = (1, 2)


@dataclass(frozen=True)
class ExportFile:
    """A parsed, fully validated export."""

    vault_id: str | None
    sources: tuple[Source, ...]
    memories: tuple[Memory, ...]
    apps: tuple[dict[str, Any], ...] = ()
    disclosures: tuple[dict[str, Any], ...] = ()


def write_export(vault: Vault, out: IO[str]) -> tuple[int, int]:
    """Write every source and every non-forgotten memory; returns (sources, memories)."""
    header = {
        "type": FORMAT,
        "version": VERSION,
        "vault_id": vault.header.vault_id,
        "exported_at": codec.iso(vault.clock()),
    }
    out.write(json.dumps(header) + "\n")
    sources: list[Source] = vault.sources()
    for s in sources:
        out.write(
            json.dumps({"type": "source", "source": codec.source_to_json(s)}, ensure_ascii=False)
            + "\n"
        )
    statuses = tuple(s for s in Status if s is not Status.FORGOTTEN)
    count, offset = 0, 0
    filters = SearchFilters(statuses=statuses, include_expired=True)
    while True:
        page = vault.list(filters, limit=500, offset=offset)
        for m in page.items:
            out.write(
                json.dumps(
                    {"type": "memory", "memory": codec.memory_to_json(m)}, ensure_ascii=False
                )
                + "\n"
            )
        count += len(page.items)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    disclosures = (("disclosure", d) for d in ledger.docs(vault.conn))
    for kind, doc in [*(("app", a) for a in _apps(vault)), *disclosures]:
        out.write(json.dumps({"type": kind, kind: doc}, ensure_ascii=False) + "\n")
    return len(sources), count


def _apps(vault: Vault) -> list[dict[str, Any]]:
    rows = vault.conn.execute(
        "SELECT name, token_hash, scope, rate_per_minute, created_at, revoked_at FROM apps "
        "ORDER BY name"
    ).fetchall()
    return [
        {"name": n, "token_hash": t, "scope": json.loads(sc), "rate": r, "created_at": c,
         "revoked_at": rv}
        for n, t, sc, r, c, rv in rows
    ]  # fmt: skip


def export_to_path(vault: Vault, path: Path, *, overwrite: bool = False) -> tuple[int, int]:
    """Export into `path`, written aside and renamed so a failure leaves no half file."""
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    tmp = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            counts = write_export(vault, out)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counts


def read_export(path: Path) -> ExportFile:
    """Parse and validate a whole export file; raises `InvalidInput` naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read: {exc}") from None
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}: line {n}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InvalidInput(f"{path}: line {n}: expected an object")
        records.append((n, obj))
    if not records or records[0][1].get("type") != FORMAT:
        raise InvalidInput(f"{path}: not a memsync export (no header line)")
    header = records[0][1]
    if header.get("version") not in READS:
        raise InvalidInput(f"{path}: unsupported export version {header.get('version')!r}")
    sources: list[Source] = []
    memories: list[Memory] = []
    apps: list[dict[str, Any]] = []
    disclosures: list[dict[str, Any]] = []
    for n, obj in records[1:]:
        where = f"{path}: line {n}"
        kind = obj.get("type")
        if kind == "source":
            sources.append(codec.source_from_json(obj.get("source"), f"{where}: source"))
        elif kind == "memory":
            memories.append(codec.memory_from_json(obj.get("memory"), f"{where}: memory"))
        elif kind in ("app", "disclosure"):
            (apps if kind == "app" else disclosures).append(_checked(obj.get(kind), kind, where))
        else:
            raise InvalidInput(f"{where}: unknown record type {kind!r}")
    vault_id = header.get("vault_id")
    return ExportFile(
        vault_id if isinstance(vault_id, str) else None, tuple(sources), tuple(memories),
        tuple(apps), tuple(disclosures),
    )  # fmt: skip


_FIELDS = {
    "app": {"name": str, "token_hash": str, "scope": dict, "rate": int, "created_at": int},
    "disclosure": {"id": str, "app": str, "at": int, "action": str, "items": list},
}


def _checked(doc: object, kind: str, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidInput(f"{where}: {kind}: expected an object")
    for name, typ in _FIELDS[kind].items():
        if not isinstance(doc.get(name), typ):
            raise InvalidInput(f"{where}: {kind}: {name!r} is missing or not a {typ.__name__}")
    return doc


def import_from_path(vault: Vault, path: Path, progress: Progress | None = None) -> ImportReport:
    """Import an export file into `vault`, idempotently; `progress(done, total)` is called
    as the imported records are embedded."""
    parsed = read_export(path)
    added_sources, added_memories = vault.import_records(parsed.memories, parsed.sources, progress)
    known_apps = {str(r[0]) for r in vault.conn.execute("SELECT name FROM apps")}
    known = {str(r[0]) for r in vault.conn.execute("SELECT id FROM disclosures")}
    ops: list[dict[str, Any]] = []
    for a in parsed.apps:
        if a["name"] not in known_apps:
            ops.append({"op": "add_app", **{k: a[k] for k in ("name", "token_hash", "scope",
                        "rate")}, "at": a["created_at"]})  # fmt: skip
            if a.get("revoked_at") is not None:
                ops.append({"op": "revoke_app", "name": a["name"], "at": a["revoked_at"]})
    ops += [{"op": "disclose", **d} for d in parsed.disclosures if d["id"] not in known]
    if ops:
        vault.commit_ops(ops)
    return ImportReport(
        sources_added=added_sources,
        sources_skipped=len(parsed.sources) - added_sources,
        memories_added=added_memories,
        memories_skipped=len(parsed.memories) - added_memories,
    )
