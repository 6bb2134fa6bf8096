"""The `memsync` command group and how it turns errors into one line and an exit code."""

from __future__ import annotations

import errno
from typing import Any

import apsw
import click

from memsync import __version__
from memsync.errors import MemsyncError
from memsync.store.connections import as_memsync_error

INTERRUPTED_EXIT = 130


def fail(message: str, code: int) -> None:
    """Print `memsync: error: <message>` as one line on stderr and exit with `code`."""
    one_line = " ".join(message.split()) or "unknown error"
    click.echo(f"memsync: error: {one_line}", err=True)
    raise click.exceptions.Exit(code)


class MemsyncGroup(click.Group):
    """A group that lists commands in the order they were added and reports errors tersely.

    Errors are handled here rather than in `main()` so that tests driving the group with
    click's `CliRunner` see exactly what a user sees: one line on stderr and the exit code.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MemsyncError as exc:
            fail(str(exc), exc.exit_code)
        except apsw.Error as exc:
            known = as_memsync_error(exc)
            if known is None:
                raise
            fail(str(known), known.exit_code)
        except KeyboardInterrupt:
            click.echo("\nmemsync: interrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED_EXIT) from None
        except click.exceptions.Abort as exc:
            # click turns Ctrl-C at a prompt into Abort; the interrupt stays in __context__.
            if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
                click.echo("memsync: interrupted", err=True)
                raise click.exceptions.Exit(INTERRUPTED_EXIT) from None
            fail("aborted", 1)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click handles a closed pipe quietly
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}", 1)
        return None


@click.group(
    cls=MemsyncGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="memsync")
def cli() -> None:
    """memsync: your memory for AI assistants, in an encrypted vault you own.

    The vault lives in $MEMSYNC_HOME, or in the platform's user data directory. Commands
    that open it use $MEMSYNC_PASSPHRASE, else a key remembered by `memsync unlock
    --remember`, else they ask for the passphrase.

    Times are ISO 8601 in UTC (2026-03-12 or 2026-03-12T09:30). Ids can be shortened to
    any unique prefix.

    Try it without touching your own data: memsync demo
    """


def _register() -> None:
    from memsync.cli import (
        apps,
        capture,
        chain,
        demo,
        forget,
        maintenance,
        mcp,
        memories,
        profile,
        serve,
        setup,
        sources,
        sync,
    )

    for command in (
        setup.init,
        memories.add,
        memories.list_memories,
        memories.show,
        memories.edit,
        memories.rm,
        forget.forget_command,
        memories.search,
        memories.context,
        capture.ingest,
        sources.list_sources,
        sources.source,
        profile.profile,
        profile.why,
        maintenance.info,
        maintenance.check,
        maintenance.export,
        maintenance.import_,
        setup.unlock,
        setup.lock,
        setup.recover,
        setup.passwd,
        capture.config_command,
        apps.app,
        apps.disclosures,
        sync.remote,
        sync.sync,
        sync.device,
        sync.recovery,
        chain.chain,
        chain.anchor,
        serve.serve,
        mcp.mcp,
        demo.demo,
    ):
        cli.add_command(command)


_register()
