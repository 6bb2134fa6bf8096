"""The `memsync` command line: a thin layer over `memsync.Vault`.

`main` is the console-script entry point; `cli` is the click group (tests drive it with
click's CliRunner). Each module holds a few commands: `setup` (init, unlock, lock,
recover, passwd), `memories`, `sources`, `maintenance` (info, check, export, import) and
`demo`; `unlock` is how every command opens the vault and `output` how it prints.
"""

from __future__ import annotations

from collections.abc import Sequence

from memsync.cli.app import cli


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (errors become one line on stderr and an exit code)."""
    cli.main(args=None if argv is None else list(argv), prog_name="memsync")


__all__ = ["cli", "main"]
