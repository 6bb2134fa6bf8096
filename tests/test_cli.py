"""CLI tests for memories: add, list, show, edit, rm, search."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cli_support import add, cli_env, home, init, ok, ok_json, one_line_error, ring, run
from memsync.cli import unlock

__all__ = ["cli_env", "home", "ring"]  # fixtures used by every test here


def test_help_lists_every_command() -> None:
    out = ok("--help").stdout
    for command in (
        "init",
        "add",
        "list",
        "show",
        "edit",
        "rm",
        "search",
        "ingest",
        "sources",
        "source",
        "info",
        "check",
        "export",
        "import",
        "unlock",
        "lock",
        "recover",
        "passwd",
        "demo",
    ):
        assert f"  {command} " in out, command
    assert "Example:" in ok("add", "--help").stdout


def test_add_prints_the_new_id_and_json_prints_the_memory() -> None:
    init()
    mid = add("Prefers short answers", "--category", "productivity", "--tag", "Style")
    assert mid.startswith("m-") and len(mid.split()) == 1
    data = ok_json(
        "add",
        "Flying to Lisbon on 12 March",
        "--kind",
        "episodic",
        "--category",
        "travel",
        "--valid-from",
        "2026-03-12",
        "--valid-until",
        "2099-03-13T10:00",
        "--tag",
        "trip",
        "--confidence",
        "0.8",
    )
    assert data["kind"] == "episodic" and data["category"] == "travel"
    assert data["valid_from"] == "2026-03-12T00:00:00.000Z"
    assert data["valid_until"] == "2099-03-13T10:00:00.000Z"
    assert data["tags"] == ["trip"] and data["confidence"] == 0.8
    assert ok_json("show", mid)["memory"]["tags"] == ["style"]


@pytest.mark.parametrize(
    "args",
    [
        ["--valid-until", "next tuesday"],
        ["--confidence", "1.5"],
        ["--kind", "factual"],
        ["--category", "gossip"],
    ],
)
def test_add_bad_options_are_usage_errors(args: list[str]) -> None:
    init()
    result = run("add", "some text", *args)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


def test_add_blank_text_is_refused() -> None:
    init()
    one_line_error(run("add", "   "), 2, "needs some text")


def test_list_pages_filters_and_footer() -> None:
    init()
    ids = [
        add(f"memory number {i}", "--category", "career" if i % 2 else "health") for i in range(5)
    ]
    out = ok("list", "--limit", "2").stdout
    assert "showing 1-2 of 5" in out
    assert ids[-1] in out  # newest first
    out = ok("list", "--limit", "2", "--offset", "4").stdout
    assert "showing 5-5 of 5" in out and ids[0] in out
    data = ok_json("list", "--category", "career")
    assert data["total"] == 2
    assert {m["id"] for m in data["items"]} == {ids[1], ids[3]}
    assert ok_json("list", "--kind", "episodic")["total"] == 0
    assert "no memories match" in ok("list", "--tag", "nothing").stdout


def test_list_time_range_and_expired() -> None:
    init()
    add("Old plan", "--kind", "episodic", "--valid-until", "2001-01-01")
    add("Current fact")
    assert [m["text"] for m in ok_json("list")["items"]] == ["Current fact"]
    assert ok_json("list", "--include-expired")["total"] == 2
    assert ok_json("list", "--since", "2000-01-01", "--include-expired")["total"] == 2
    assert ok_json("list", "--until", "2000-01-01", "--include-expired")["total"] == 0


def test_show_prints_fields_provenance_and_accepts_a_prefix() -> None:
    init()
    mid = add("Allergic to peanuts", "--category", "health", "--tag", "diet")
    out = ok("show", mid[:6]).stdout
    for fragment in (mid, "Allergic to peanuts", "health", "diet", "active", "entered by hand"):
        assert fragment in out
    data = ok_json("show", mid)
    assert data["memory"]["id"] == mid and [m["id"] for m in data["history"]] == [mid]


def test_user_text_is_not_markup() -> None:
    init()
    mid = add("Likes [bold]brackets[/bold] and :smile: codes")
    assert "Likes [bold]brackets[/bold] and :smile: codes" in ok("show", mid).stdout


def test_edit_supersedes_and_keeps_history() -> None:
    init()
    old = add("Prefers short answers", "--category", "productivity")
    result = ok(
        "edit", old, "--text", "Prefers short answers; bullet points are fine", "--tag", "style"
    )
    new = result.stdout.strip()
    assert new.startswith("m-") and new != old
    assert f"{old} is superseded by {new}" in result.stderr
    data = ok_json("show", new)
    assert data["memory"]["supersedes"] == old and data["memory"]["tags"] == ["style"]
    assert [(m["id"], m["status"]) for m in data["history"]] == [
        (old, "superseded"),
        (new, "active"),
    ]
    out = ok("show", new).stdout
    assert "history (2 versions" in out and "▶" in out and "active (current)" in out
    assert ok_json("show", old)["memory"]["superseded_by"] == new
    listed = ok_json("list")["items"]
    assert [m["id"] for m in listed] == [new]
    assert ok_json("list", "--status", "all")["total"] == 2
    one_line_error(run("edit", old, "--text", "again"), 2, "superseded")


def test_edit_without_changes_is_refused() -> None:
    init()
    mid = add("Prefers tea")
    one_line_error(run("edit", mid), 2, "nothing to change")
    one_line_error(run("edit", mid, "--text", "Prefers tea"), 2, "nothing to change")


def test_edit_opens_the_editor_in_memory_backed_storage(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    init()
    mid = add("Prefers tea")
    seen = tmp_path / "seen"
    script = tmp_path / "fake_editor.py"
    script.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        f"pathlib.Path({str(seen)!r}).write_text(str(p))\n"
        "p.write_text(p.read_text().replace('tea', 'green tea'))\n"
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    monkeypatch.setattr(unlock, "is_interactive", lambda: True)
    new = ok("edit", mid).stdout.strip()
    assert ok_json("show", new)["memory"]["text"] == "Prefers green tea"
    edited_at = Path(seen.read_text())
    assert not edited_at.exists()  # removed afterwards
    assert str(edited_at).startswith(("/dev/shm", "/run"))


def test_rm_forgets_and_show_says_so() -> None:
    init()
    mid = add("Secret project codename")
    assert ok("rm", mid).stdout.strip() == f"forgotten {mid}"
    assert "forgotten" in ok("show", mid).stdout
    data = ok_json("show", mid)["memory"]
    assert data["status"] == "forgotten" and data["text"] == ""
    assert ok_json("list")["total"] == 0
    assert ok_json("search", "codename") == []
    one_line_error(run("rm", mid), 2, "already forgotten")


def test_rm_asks_in_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    init()
    mid = add("Keep me")
    monkeypatch.setattr(unlock, "is_interactive", lambda: True)
    result = run("rm", mid, input="n\n")
    assert result.exit_code == 1
    assert "Forget this memory for good?" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "memsync: error: aborted"
    assert ok_json("show", mid)["memory"]["status"] == "active"
    assert ok("rm", mid, input="y\n").stdout.strip() == f"forgotten {mid}"
    mid2 = add("Also me")
    assert ok("rm", "--yes", mid2).stdout.strip() == f"forgotten {mid2}"


def test_unknown_and_ambiguous_ids() -> None:
    init()
    add("memory one")
    add("memory two")
    for command in ("show", "rm", "edit"):
        one_line_error(
            run(command, "m-zzzzzzzzzz", "--text", "x")
            if command == "edit"
            else run(command, "m-zzzzzzzzzz"),
            6,
            "no memory",
        )
    one_line_error(run("show", "m-"), 2, "more than one")


def test_search_table_json_and_filters(tmp_path: Path) -> None:
    init()
    mid = add("Allergic to peanuts", "--category", "health", "--tag", "diet")
    add("Works as a data engineer", "--category", "career")
    convo = tmp_path / "chat.json"
    convo.write_text(
        json.dumps(
            {
                "title": "Dinner plans",
                "messages": [
                    {"role": "user", "content": "Which restaurant avoids peanuts?"},
                    {"role": "assistant", "content": "Try the noodle bar on Rua Augusta."},
                ],
            }
        )
    )
    src = ok_json("ingest", str(convo))[0]["sources"][0]

    out = ok("search", "peanuts").stdout
    assert mid in out and "memory" in out
    assert f"{src}#0" in out and "turn" in out
    assert "from conversation “Dinner plans”, turn 0 (user)" in out

    hits = ok_json("search", "peanuts", "-k", "5")
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    turn = next(h for h in hits if h["type"] == "turn")["turn"]
    assert turn["source_id"] == src and turn["source_title"] == "Dinner plans"
    assert turn["index"] == 0

    only = ok_json("search", "peanuts", "--memories-only")
    assert only and all(h["type"] == "memory" for h in only)
    career = ok_json("search", "peanuts", "--category", "career")
    assert [h["memory"]["category"] for h in career] == ["career"]
    assert len(ok_json("search", "peanuts", "-k", "1")) == 1
    assert ok_json("search", "peanuts", "--until", "2000-01-01") == []


def test_search_with_no_results() -> None:
    init()
    assert ok("search", "anything").stdout.strip() == "no results"


def test_tags_match_whatever_their_case() -> None:
    init()
    mid = add("Flying to Lisbon", "--tag", "Trip")
    assert [m["id"] for m in ok_json("list", "--tag", "TRIP")["items"]] == [mid]
    assert [h["memory"]["id"] for h in ok_json("search", "Lisbon", "--tag", "trip")] == [mid]
