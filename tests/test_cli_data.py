"""CLI tests for conversations and the whole vault: ingest, sources, source, info, check,
export, import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import (
    add,
    cli_env,
    home,
    init,
    ok,
    ok_json,
    one_line_error,
    ring,
    run,
    tree_bytes,
)
from memsync.model import CheckReport, LogProblem
from memsync.vault import Vault

__all__ = ["cli_env", "home", "ring"]  # fixtures used by every test here

MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {
        "role": "user",
        "content": "I'm training for the Porto marathon in October",
        "timestamp": "2026-03-01T09:00:00Z",
    },
    {"role": "assistant", "content": [{"type": "text", "text": "Great! How many km a week?"}]},
]


@pytest.fixture
def chat(tmp_path: Path) -> Path:
    path = tmp_path / "marathon.json"
    path.write_text(json.dumps(MESSAGES))
    return path


def test_ingest_json_then_again_adds_nothing(chat: Path) -> None:
    init()
    out = ok("ingest", str(chat), "--title", "Marathon").stdout
    assert "(openai): 1 conversations, 3 messages" in out and "1 added" in out
    (src,) = ok_json("sources")
    assert src["title"] == "Marathon" and src["message_count"] == 3
    again = ok("ingest", str(chat)).stdout
    assert "1 already in the vault" in again and "0 added, 0 updated, 0 unchanged" in again
    (data,) = ok_json("ingest", str(chat))
    assert data["format"] == "openai" and data["unchanged_sources"] == 1
    assert data["sources"] == [src["id"]] and data["memories"]["added"] == 0


def test_ingest_makes_memories_and_why_points_at_the_turn(chat: Path) -> None:
    init()
    (data,) = ok_json("ingest", str(chat))
    (outcome,) = data["outcomes"]
    assert outcome["decision"] == "add"
    assert "Porto marathon" in outcome["text"]
    why = ok_json("why", outcome["memory"])
    (evidence,) = why["evidence"]
    assert evidence["source"] == data["sources"][0] and evidence["turn"] == 1
    assert evidence["role"] == "user" and "Porto marathon" in evidence["quote"]
    assert evidence["timestamp"] == "2026-03-01T09:00:00.000Z"
    out = ok("why", outcome["memory"][:6]).stdout
    assert "turn 1 (user, 2026-03-01 09:00 UTC)" in out and "Porto marathon" in out


def test_ingest_without_extraction_and_verbose(chat: Path, tmp_path: Path) -> None:
    init()
    out = ok("ingest", "--no-extract", str(chat)).stdout
    assert "0 added" in out
    assert ok_json("info")["memories"] == 0
    other = tmp_path / "notes.md"
    other.write_text("# Me\n\nI live in Lisbon and I work as a translator.\n")
    out = ok("ingest", "-v", str(other)).stdout
    assert "(markdown): 1 documents" in out and "add" in out and "Lisbon" in out


def test_ingest_jsonl_uses_the_file_name_as_title(tmp_path: Path) -> None:
    init()
    path = tmp_path / "standup.jsonl"
    path.write_text("\n".join(json.dumps(m) for m in MESSAGES) + "\n")
    ok("ingest", str(path))
    assert ok_json("sources")[0]["title"] == "standup"


def test_sources_and_source(chat: Path) -> None:
    init()
    assert "no sources yet" in ok("sources").stdout
    src = ok_json("ingest", str(chat), "--title", "Marathon")[0]["sources"][0]
    out = ok("sources").stdout
    assert src in out and "Marathon" in out and "conversation" in out
    listed = ok_json("sources")
    assert [s["id"] for s in listed] == [src] and listed[0]["message_count"] == 3
    out = ok("source", src[:5]).stdout
    assert "Porto marathon" in out and "How many km a week?" in out and "assistant" in out
    full = ok_json("source", src)
    assert [m["role"] for m in full["messages"]] == ["system", "user", "assistant"]
    assert full["messages"][1]["timestamp"] == "2026-03-01T09:00:00.000Z"
    one_line_error(run("source", "s-zzzzzzzzzz"), 6, "s-zzzzzzzzzz")


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('[{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]', "message 2"),
        ('{"role": "user", "content": "a"}\n{"role": "user", "content": "b"\n', "line 2"),
        ('[{"role": "user"}]', "message 1"),
        ("[]", "empty list"),
        ("", "empty"),
        ('{"messages": 3}', "not a format memsync can import"),
    ],
)
def test_malformed_ingest_file_names_the_place_and_writes_nothing(
    tmp_path: Path, home: Path, content: str, where: str
) -> None:
    init()
    before = tree_bytes(home)
    path = tmp_path / "bad.json"
    path.write_text(content)
    one_line_error(run("ingest", str(path)), 7, str(path), where)
    assert tree_bytes(home) == before


def test_ingest_missing_file(tmp_path: Path) -> None:
    init()
    one_line_error(run("ingest", str(tmp_path / "nope.json")), 7, "no such file")
    (tmp_path / "empty").mkdir()
    one_line_error(run("ingest", str(tmp_path / "empty")), 2, "no files memsync can import")


def test_info(chat: Path) -> None:
    made = init()
    add("one")
    ok("ingest", str(chat))
    data = ok_json("info")
    assert data["vault_id"] == made["vault_id"] and data["path"] == made["path"]
    # "one" and the memory made from the conversation
    assert (data["memories"], data["sources"], data["embedder"]) == (2, 1, "hash-384@1")
    out = ok("info").stdout
    assert made["vault_id"] in out and "log entries" in out


def test_check_ok(chat: Path) -> None:
    init()
    add("one")
    ok("ingest", str(chat))
    out = ok("check").stdout
    # the device, "one", the conversation and the memory made from it
    assert "log entries: 4" in out and "devices: 1" in out and "ok" in out
    data = ok_json("check")
    assert data["ok"] is True and data["problems"] == [] and data["entries"] == 4


def test_check_failure_lists_problems_and_exits_5(monkeypatch: pytest.MonkeyPatch) -> None:
    init()
    bad = CheckReport(4, 1, (LogProblem("feed d-x entry 2", "hash mismatch"),), "a", "a")
    monkeypatch.setattr(Vault, "check", lambda self, progress=None: bad)
    result = run("check")
    assert result.exit_code == 5
    assert "problem: feed d-x entry 2: hash mismatch" in result.stdout
    assert result.stderr.strip() == "memsync: error: check failed: 1 problem found"
    result = run("check", "--json")
    assert result.exit_code == 5 and json.loads(result.stdout)["ok"] is False


def test_export_then_import_into_a_second_vault_is_idempotent(
    tmp_path: Path, chat: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init()
    old = add("Prefers short answers", "--tag", "style")
    new = ok("edit", old, "--text", "Prefers very short answers").stdout.strip()
    gone = add("Forget me")
    ok("rm", gone)
    ok("ingest", "--no-extract", str(chat))
    out_file = tmp_path / "backup.jsonl"
    result = ok("export", str(out_file))
    assert "exported 1 sources and 2 memories" in result.stdout
    assert "PLAINTEXT" in result.stderr
    assert out_file.stat().st_mode & 0o077 == 0
    one_line_error(run("export", str(out_file)), 2, "--force")
    assert ok_json("export", str(out_file), "--force")["memories"] == 2

    monkeypatch.setenv("MEMSYNC_HOME", str(tmp_path / "second"))
    init()
    report = ok_json("import", str(out_file))
    assert report == {
        "sources_added": 1,
        "sources_skipped": 0,
        "memories_added": 2,
        "memories_skipped": 0,
    }
    out = ok("import", str(out_file)).stdout
    assert "sources: 0 added, 1 already here" in out
    assert "memories: 0 added, 2 already here" in out
    history = ok_json("show", new)["history"]
    assert [(m["id"], m["status"]) for m in history] == [(old, "superseded"), (new, "active")]
    one_line_error(run("show", gone), 6)
    assert ok_json("info")["sources"] == 1


def test_import_rejects_a_malformed_file_and_writes_nothing(tmp_path: Path, home: Path) -> None:
    init()
    before = tree_bytes(home)
    path = tmp_path / "bad.jsonl"
    path.write_text('{"type": "memsync-export", "version": 1}\n{"type": "memory", "memory": 5}\n')
    one_line_error(run("import", str(path)), 7, "line 2")
    one_line_error(run("import", str(tmp_path / "missing.jsonl")), 7, "no such file")
    assert tree_bytes(home) == before


def test_export_to_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    init()
    one_line_error(
        run("export", str(tmp_path / "no" / "such" / "dir.jsonl")), 2, "No such file or directory"
    )
