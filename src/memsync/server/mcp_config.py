"""Client configuration for the stdio server: the entry that makes an MCP client start
`memsync mcp --app NAME`, for each client's file format, and merging it into that file.

The formats (a server named "memsync" under each file's root key):
- Claude Desktop, `claude_desktop_config.json`: `mcpServers` → command, args, env.
- Cursor, `~/.cursor/mcp.json`: the same shape.
- VS Code, `.vscode/mcp.json` in the workspace: `servers`, each with `"type": "stdio"`.
- Claude Code, `~/.claude.json` (user scope; `.mcp.json` in a project is the shared
  project scope): `mcpServers`, each with `"type": "stdio"`.

The entry never holds the passphrase: the client starts memsync without a terminal, so
the vault opens with the key that `memsync unlock --remember` keeps in the OS keyring.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from memsync.errors import InvalidInput

__all__ = [
    "CLIENTS",
    "SERVER_NAME",
    "ClientName",
    "Launch",
    "Written",
    "default_path",
    "launch_for",
    "merge_into",
    "snippet",
]

ClientName = Literal["claude-desktop", "cursor", "vscode", "claude-code"]
CLIENTS: tuple[ClientName, ...] = get_args(ClientName)
SERVER_NAME = "memsync"

_ROOT_KEY: dict[ClientName, str] = {
    "claude-desktop": "mcpServers",
    "cursor": "mcpServers",
    "vscode": "servers",
    "claude-code": "mcpServers",
}
# The clients whose format names the transport of a stdio server.
_TYPED: frozenset[ClientName] = frozenset({"vscode", "claude-code"})


@dataclass(frozen=True)
class Launch:
    """How a client starts the server: an absolute executable, its arguments, its env."""

    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]

    def entry(self, client: ClientName) -> dict[str, Any]:
        """This launch as one server entry in `client`'s format."""
        head: dict[str, Any] = {"type": "stdio"} if client in _TYPED else {}
        return {**head, "command": self.command, "args": list(self.args), "env": dict(self.env)}


def memsync_executable() -> list[str]:
    """The installed `memsync` by absolute path: the script beside this interpreter (the
    same installation), else the one on PATH, else this interpreter with `-m memsync`."""
    names = ("memsync.exe", "memsync") if sys.platform == "win32" else ("memsync",)
    # `absolute`, not `resolve`: a venv's python is a symlink out of the venv.
    here = Path(sys.executable).absolute()
    for folder in (here.parent, Path(sysconfig.get_path("scripts"))):
        for name in names:
            if (folder / name).is_file():
                return [str(folder / name)]
    found = shutil.which("memsync")
    if found:
        return [str(Path(found).absolute())]
    return [str(here), "-m", "memsync"]


def launch_for(app: str, home: Path, executable: list[str] | None = None) -> Launch:
    """The launch of `memsync mcp --app APP` on the vault at `home`."""
    command, *prefix = executable or memsync_executable()
    return Launch(
        command=command,
        args=(*prefix, "mcp", "--app", app),
        env=(("MEMSYNC_HOME", str(home.expanduser().absolute())),),
    )


def snippet(client: ClientName, launch: Launch) -> dict[str, Any]:
    """The whole configuration object for `client` with only the memsync server in it."""
    return {_ROOT_KEY[client]: {SERVER_NAME: launch.entry(client)}}


def default_path(
    client: ClientName,
    *,
    home: Path | None = None,
    cwd: Path | None = None,
    platform: str = sys.platform,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """Where `client` reads its MCP servers from, on this system."""
    home = home or Path.home()
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    if client == "vscode":
        return (cwd or Path.cwd()) / ".vscode" / "mcp.json"
    if client == "claude-code":
        return home / ".claude.json"
    if platform == "darwin":
        folder = home / "Library" / "Application Support"
    elif platform == "win32":
        folder = Path(environ.get("APPDATA") or home / "AppData" / "Roaming")
    else:  # no official Linux build; community builds follow XDG
        folder = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    return folder / "Claude" / "claude_desktop_config.json"


@dataclass(frozen=True)
class Written:
    """What `merge_into` did: the file, the copy of its old contents (None if it was new)
    and whether a memsync server was already there (and is now replaced)."""

    path: Path
    backup: Path | None
    replaced: bool


def _read_config(path: Path, root: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text; left it untouched") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); left it untouched: "
            "fix it, or add the snippet by hand"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get(root, {}), dict):
        raise InvalidInput(f"{path}: expected an object with an object {root!r}; left it untouched")
    return data


def _backup_path(path: Path) -> Path:
    # Never overwrite an older backup: the first one is the file before memsync touched it.
    candidate = path.with_name(path.name + ".bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak.{n}")
        n += 1
    return candidate


def merge_into(path: Path, client: ClientName, launch: Launch) -> Written:
    """Add (or replace) the memsync server in the config file at `path`.

    Every other server and setting is kept as it was; the old file is copied to a backup
    first; the new one replaces it in one rename, so a crash leaves one or the other.
    `InvalidInput` (and the file untouched) if it is not a JSON object.
    """
    if path.is_symlink():  # dotfiles kept elsewhere: update the file, keep the link
        path = path.resolve()
    root = _ROOT_KEY[client]
    data = _read_config(path, root)
    servers = dict(data.get(root, {}))
    replaced = SERVER_NAME in servers
    servers[SERVER_NAME] = launch.entry(client)
    data[root] = servers
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if path.exists():
        backup = _backup_path(path)
        shutil.copy2(path, backup)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        if backup is not None:
            shutil.copymode(backup, tmp)  # e.g. ~/.claude.json is private to its owner
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Written(path, backup, replaced)
