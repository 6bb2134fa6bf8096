"""Editing a memory's text in $EDITOR without writing it to a disk.

An editor needs a file. click.edit would put it in the system temp dir, which is usually
on disk, and memsync never writes readable content to disk. So the file goes in a
memory-backed directory (/dev/shm, or $XDG_RUNTIME_DIR), readable by the user only, and
is removed afterwards; where there is none, the person is asked to use --text.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import click

from memsync.errors import UsageError


def memory_backed_dir() -> Path | None:
    """A directory whose files live in RAM (tmpfs), or None if this machine has none."""
    for candidate in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR")):
        if candidate and Path(candidate).is_dir() and os.access(candidate, os.W_OK):
            return Path(candidate)
    return None


def edit_in_editor(text: str) -> str | None:
    """Open `text` in the user's editor; the edited text, or None if nothing changed."""
    where = memory_backed_dir()
    if where is None:
        raise UsageError("no memory-backed temp directory for an editor here; use --text")
    fd, name = tempfile.mkstemp(prefix="memsync-edit-", suffix=".txt", dir=where)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        click.edit(filename=name)
        edited = Path(name).read_text(encoding="utf-8").strip()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    return None if not edited or edited == text.strip() else edited
