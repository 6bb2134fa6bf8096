"""`memsync mcp config` and the client config files it writes, and how `memsync mcp`
refuses to start (no app, an unknown one, a locked vault) without ever prompting."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_support import PASS, cli_env, home, init, ok, one_line_error, ring, run
from memsync.cli import unlock
from memsync.errors import InvalidInput
from memsync.server import mcp_config
from memsync.server.mcp_config import CLIENTS, default_path, launch_for, merge_into, snippet

__all__ = ["cli_env", "home", "ring"]  # fixtures used by every test here

EXE = ["/opt/memsync/bin/memsync"]
OTHERS: dict[str, Any] = {
    "theme": "dark",
    "mcpServers": {"files": {"command": "npx", "args": ["-y", "server-files"]}},
}


def expected_entry(client: str, home: Path, app: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "stdio"} if client in ("vscode", "claude-code") else {}
    entry |= {
        "command": EXE[0],
        "args": ["mcp", "--app", app],
        "env": {"MEMSYNC_HOME": str(home)},
    }
    return entry


@pytest.mark.parametrize("client", CLIENTS)
def test_snippets_have_each_clients_shape(client: mcp_config.ClientName, tmp_path: Path) -> None:
    launch = launch_for("notes", tmp_path / "vault", EXE)
    data = json.loads(json.dumps(snippet(client, launch)))
    root = "servers" if client == "vscode" else "mcpServers"
    assert data == {root: {"memsync": expected_entry(client, tmp_path / "vault", "notes")}}


def test_without_a_script_the_interpreter_runs_the_module(tmp_path: Path) -> None:
    launch = launch_for("notes", tmp_path, [sys.executable, "-m", "memsync"])
    assert launch.command == sys.executable
    assert launch.args == ("-m", "memsync", "mcp", "--app", "notes")
    found = mcp_config.memsync_executable()
    assert Path(found[0]).is_absolute() and Path(found[0]).exists()


def test_default_paths_follow_each_client_and_platform(tmp_path: Path) -> None:
    h, cwd = tmp_path / "me", tmp_path / "project"

    def where(client: mcp_config.ClientName, platform: str, **environ: str) -> Path:
        return default_path(client, home=h, cwd=cwd, platform=platform, environ=environ)

    desktop = Path("Claude") / "claude_desktop_config.json"
    assert where("claude-desktop", "darwin") == h / "Library" / "Application Support" / desktop
    assert where("claude-desktop", "win32", APPDATA=str(tmp_path / "roaming")) == (
        tmp_path / "roaming" / desktop
    )
    assert where("claude-desktop", "linux") == h / ".config" / desktop
    assert where("claude-desktop", "linux", XDG_CONFIG_HOME=str(tmp_path / "x")) == (
        tmp_path / "x" / desktop
    )
    assert where("cursor", "darwin") == h / ".cursor" / "mcp.json"
    assert where("vscode", "win32") == cwd / ".vscode" / "mcp.json"
    assert where("claude-code", "linux") == h / ".claude.json"


def test_merge_keeps_everything_else_and_a_backup_of_each_version(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    original = json.dumps(OTHERS, indent=4).encode()
    path.write_bytes(original)
    path.chmod(0o600)
    launch = launch_for("notes", tmp_path / "vault", EXE)
    first = merge_into(path, "claude-desktop", launch)
    assert first == mcp_config.Written(path, tmp_path / "claude_desktop_config.json.bak", False)
    assert first.backup is not None and first.backup.read_bytes() == original
    merged = json.loads(path.read_text())
    assert merged["theme"] == "dark" and list(merged["mcpServers"]) == ["files", "memsync"]
    assert merged["mcpServers"]["files"] == OTHERS["mcpServers"]["files"]
    assert path.stat().st_mode & 0o777 == 0o600
    second = merge_into(path, "claude-desktop", launch_for("other", tmp_path / "vault", EXE))
    assert second.replaced and second.backup == tmp_path / "claude_desktop_config.json.bak.1"
    assert first.backup.read_bytes() == original  # the oldest backup is never overwritten
    assert json.loads(path.read_text())["mcpServers"]["memsync"]["args"][-1] == "other"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "claude_desktop_config.json",
        "claude_desktop_config.json.bak",
        "claude_desktop_config.json.bak.1",
    ]


def test_merge_creates_a_missing_file_and_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "work" / ".vscode" / "mcp.json"
    written = merge_into(path, "vscode", launch_for("code", tmp_path, EXE))
    assert written.backup is None and not written.replaced
    assert json.loads(path.read_text()) == snippet("vscode", launch_for("code", tmp_path, EXE))


@pytest.mark.parametrize(
    "content",
    ['{"mcpServers": {"files": {}},}', "// comments\n{}", '["a list"]', '{"mcpServers": []}'],
)
def test_merge_refuses_what_is_not_a_json_object_and_leaves_it(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(content)
    with pytest.raises(InvalidInput, match="left it untouched"):
        merge_into(path, "cursor", launch_for("notes", tmp_path, EXE))
    assert path.read_text() == content
    assert [p.name for p in tmp_path.iterdir()] == ["mcp.json"]


# The commands.


def test_config_prints_the_snippet_and_says_how_to_unlock(home: Path) -> None:
    for client in CLIENTS:
        result = ok("mcp", "config", "--client", client)
        data = json.loads(result.stdout)
        entry = data["servers" if client == "vscode" else "mcpServers"]["memsync"]
        assert Path(entry["command"]).is_absolute()
        assert entry["args"][-3:] == ["mcp", "--app", client]  # the app defaults to the client
        assert entry["env"] == {"MEMSYNC_HOME": str(home.absolute())}
        assert "memsync unlock --remember" in result.stderr
        assert f"memsync app add {client}" in result.stderr
        assert PASS not in result.stdout + result.stderr
    assert "Example:" in ok("mcp", "config", "--help").stdout
    assert "Example:" in ok("mcp", "--help").stdout


def test_config_write_merges_into_the_given_file(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(OTHERS))
    result = ok(
        "mcp", "config", "--client", "cursor", "--app", "Cursor", "--write", "--path", str(path)
    )
    assert f"added memsync to {path}" in result.stdout and f"{path}.bak" in result.stdout
    merged = json.loads(path.read_text())
    assert merged["theme"] == "dark" and set(merged["mcpServers"]) == {"files", "memsync"}
    assert merged["mcpServers"]["memsync"]["args"][-1] == "cursor"
    again = ok("mcp", "config", "--client", "cursor", "--write", "--path", str(path))
    assert "replaced the memsync server in" in again.stdout


def test_config_refuses_a_malformed_file_and_bad_options(tmp_path: Path) -> None:
    path = tmp_path / "claude.json"
    path.write_text("{not json")
    args = ("mcp", "config", "--client", "claude-code")
    one_line_error(run(*args, "--write", "--path", str(path)), 7, "not valid JSON", "untouched")
    assert path.read_text() == "{not json"
    one_line_error(run(*args, "--path", str(path)), 2, "add --write")
    one_line_error(run(*args, "--app", "has space"), 2, "bad app name")


def test_serving_needs_an_app_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    init()
    one_line_error(run("mcp"), 2, "memsync mcp --app NAME")
    monkeypatch.setenv("MEMSYNC_APP", "nobody")
    one_line_error(
        run("mcp"), 6, "no app named 'nobody': register it with `memsync app add nobody`"
    )


def test_serving_never_prompts_for_the_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    init()
    monkeypatch.delenv("MEMSYNC_PASSPHRASE")
    monkeypatch.setattr(unlock, "is_interactive", lambda: True)  # even at a terminal
    result = run("mcp", "--app", "notes", input=f"{PASS}\n")
    one_line_error(result, 4, "vault is locked", "memsync unlock --remember")
    assert "Passphrase" not in result.stderr


def test_serving_opens_the_vault_with_the_remembered_key(monkeypatch: pytest.MonkeyPatch) -> None:
    init()
    ok("unlock", "--remember")
    monkeypatch.delenv("MEMSYNC_PASSPHRASE")
    # Unlocked without a passphrase: what stops it now is the missing app, not the lock.
    one_line_error(run("mcp", "--app", "nobody"), 6, "no app named 'nobody'")
