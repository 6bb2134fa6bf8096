"""`memsync remote …` and `memsync sync`: this device's remotes, and syncing with them."""

from __future__ import annotations

import dataclasses
import json
import socket
from urllib.parse import urlencode

import click
from rich.table import Table

from memsync.cli.options import json_option
from memsync.cli.output import console, print_json, progress_bar
from memsync.cli.unlock import (
    NEW_PASSPHRASE_ENV,
    ask_new_passphrase,
    kdf_params,
    open_vault,
    vault_paths,
    warn_if_test_kdf,
)
from memsync.codec import from_ms
from memsync.errors import UsageError
from memsync.sync.engine import SyncReport
from memsync.vault import Vault


@click.group()
def remote() -> None:
    """Where this vault syncs: folders and S3-compatible storage that see only ciphertext.

    Example: memsync remote add usb /media/stick/memsync
    """


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--endpoint-url", help="S3: the endpoint of R2, MinIO, B2 or another store.")
@click.option("--profile", help="S3: the credentials profile to use (else the usual chain).")
@click.option("--region", help="S3: the region.")
def remote_add(
    name: str, url: str, endpoint_url: str | None, profile: str | None, region: str | None
) -> None:
    """Add a remote: a folder (/path, file:///path) or S3 (s3://bucket/prefix).

    S3 credentials come from the environment or a profile, as for the aws CLI.

    Example: memsync remote add backup s3://my-bucket/memsync --endpoint-url https://…
    """
    options = {"endpoint": endpoint_url, "profile": profile, "region": region}
    chosen = {k: v for k, v in options.items() if v}
    if chosen:
        if not url.startswith("s3://"):
            raise UsageError("--endpoint-url, --profile and --region are for s3:// remotes")
        url = url + ("&" if "?" in url else "?") + urlencode(chosen)
    with open_vault() as vault:
        info = vault.remotes.add(name, url)
    click.echo(f"added remote {info.name}: {info.url} (run `memsync sync` to push)")


@remote.command("list")
@json_option
def remote_list(as_json: bool) -> None:
    """List this device's remotes.

    Example: memsync remote list
    """
    with open_vault() as vault:
        remotes = vault.remotes.list()
    if as_json:
        print_json([dataclasses.asdict(r) for r in remotes])
        return
    if not remotes:
        click.echo("no remotes (add one with `memsync remote add NAME URL`)")
        return
    table = Table("name", "url", "added")
    for r in remotes:
        table.add_row(r.name, r.url, from_ms(r.added_at).strftime("%Y-%m-%d %H:%M"))
    console().print(table)


@remote.command("remove")
@click.argument("name")
def remote_remove(name: str) -> None:
    """Stop syncing with a remote (what it holds stays there).

    Example: memsync remote remove usb
    """
    with open_vault() as vault:
        vault.remotes.remove(name)
    click.echo(f"removed remote {name}")


def _describe(report: SyncReport) -> list[str]:
    lines = [f"{report.remote}: pushed {report.pushed}, received {report.pulled} entries"]
    for c in report.changes:
        parts = [
            f"{n} {what}"
            for n, what in (
                (c.added, "added"),
                (c.updated, "updated"),
                (c.forgotten, "forgotten"),
                (c.conversations, "conversations"),
            )
            if n
        ]
        who = f"{c.device_name} ({c.device_id})" if c.device_name else c.device_id
        lines.append(f"  from {who}: " + (", ".join(parts) or f"{c.entries} entries"))
    lines += [f"  waiting: {w}" for w in report.waiting]
    lines += [f"  chain: {c}" for c in report.chain]
    return lines


@click.command()
@click.argument("name", required=False)
@click.option("--evidence", is_flag=True, help="Show what refused syncs kept as proof.")
@json_option
def sync(name: str | None, evidence: bool, as_json: bool) -> None:
    """Push this device's changes and bring in the other devices', verified.

    Every entry is checked (signature, hash chain, the device's enrolment) before it is
    applied; a remote that rolls back, forks or alters anything is refused, nothing
    changes here, and the proof is kept (--evidence shows it).

    Example: memsync sync usb
    """
    with open_vault() as vault:
        if evidence:
            items = vault.remotes.evidence(name)
            if as_json:
                print_json([dataclasses.asdict(e) for e in items])
                return
            if not items:
                click.echo("no evidence: no sync was ever refused")
            for e in items:
                detail = json.loads(e.detail)
                when = from_ms(e.at).strftime("%Y-%m-%d %H:%M:%S")
                click.echo(f"{when} {e.remote} {e.what}: {detail.get('message', '')}")
            return
        with progress_bar("sync") as bar:
            reports = vault.sync(name, lambda _stage, done, total: bar(done, total))
    if as_json:
        print_json([dataclasses.asdict(r) for r in reports])
        return
    for r in reports:
        for line in _describe(r):
            click.echo(line)


@click.group()
def device() -> None:
    """The devices of this vault: join one, approve one, list them.

    Example: memsync device list
    """


@device.command("join")
@click.argument("url")
@click.option("--name", help="A name for this device (default: the host name).")
@click.option(
    "--timeout",
    type=click.FloatRange(1, 3600),
    default=600,
    show_default=True,
    help="Seconds to wait for a device to approve.",
)
def device_join(url: str, name: str | None, timeout: float) -> None:
    """Join the vault on a remote as a new device (on a machine that has no vault).

    Shows a safety code; on a device already in, `memsync device approve` shows the same
    six words, and the person types them there. Asks for this device's passphrase first
    (or reads $MEMSYNC_NEW_PASSPHRASE).

    Example: memsync device join s3://my-bucket/memsync --name phone
    """
    paths = vault_paths()
    paths.require_absent()  # before the passphrase is asked for
    passphrase = ask_new_passphrase(NEW_PASSPHRASE_ENV)

    def show(code: str) -> None:
        click.echo(f"safety code: {code}")
        click.echo("check that the approving device shows the same words, and type them there")

    click.echo("waiting for a device to approve (run `memsync device approve` on one) ...")
    with Vault.join(
        url,
        paths.home,
        passphrase,
        show,
        kdf=kdf_params(),
        name=name or socket.gethostname(),
        timeout=timeout,
    ) as vault:
        warn_if_test_kdf()
        click.echo(
            f"joined vault {vault.header.vault_id} as {vault.device.device_id}: "
            f"{vault.info().memories} memories; it syncs with remote 'origin'"
        )


@device.command("approve")
@click.option("--remote", "remote_name", help="The remote the new device joins (if several).")
@click.option("--code", help="The six words the new device shows (else asked for).")
def device_approve(remote_name: str | None, code: str | None) -> None:
    """Let in the device that is waiting to join, once its safety code matches.

    Example: memsync device approve
    """
    from memsync.sync.pairing import normalize_code

    def confirm(expected: str) -> bool:
        click.echo(f"safety code here: {expected}")
        typed = code if code is not None else click.prompt("Type the words the new device shows")
        return normalize_code(typed) == normalize_code(expected)

    with open_vault() as vault:
        request = vault.remotes.approve(confirm, remote_name)
    click.echo(f"approved device {request.device_id}: it now receives the vault")


@device.command("revoke")
@click.argument("device_name")
def device_revoke(device_name: str) -> None:
    """Revoke a device (lost, sold, no longer yours), by its id or name.

    Everything written from now on is encrypted under a new key that only the remaining
    devices and the recovery phrase can open, and whatever the revoked device writes
    later is ignored by every device. What it already held, it keeps: treat that as seen.
    Syncs with every remote afterwards.

    Example: memsync device revoke phone
    """
    with open_vault() as vault:
        revoked = vault.remotes.revoke(device_name)
        click.echo(f"revoked device {revoked.device_id} ({revoked.name or 'no name'})")
        if vault.remotes.list():
            for report in vault.sync():
                click.echo(f"{report.remote}: the other devices learn of it when they sync")


@device.command("list")
@json_option
def device_list(as_json: bool) -> None:
    """List the vault's devices, who let each in, and when each last wrote.

    Example: memsync device list
    """
    with open_vault() as vault:
        devices = vault.remotes.devices()
    if as_json:
        print_json([dataclasses.asdict(d) for d in devices])
        return
    table = Table("device", "name", "enrolled", "by", "last seen", "revoked")
    for d in devices:
        seen = "-" if d.last_seen is None else from_ms(d.last_seen).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            d.device_id + (" (this one)" if d.this_device else ""),
            d.name or "-",
            from_ms(d.added_at).strftime("%Y-%m-%d %H:%M"),
            d.enrolled_by,
            seen,
        )
    console().print(table)


@click.group()
def recovery() -> None:
    """The recovery phrase: the one thing that brings the vault back from nothing.

    Example: memsync recovery rotate
    """


@recovery.command("rotate")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
def recovery_rotate(yes: bool, as_json: bool) -> None:
    """Replace the recovery phrase with a new one, shown once.

    The old phrase then opens nothing written afterwards and can no longer bring a
    device in; the new one alone restores the whole vault. This device syncs first (so
    every device it can hear of stays trusted) and after (to tell the remotes). A
    configured chain's record moves to the new phrase's owner address.

    Example: memsync recovery rotate
    """
    from memsync.cli.setup import recovery_panel
    from memsync.errors import MemsyncError

    with open_vault() as vault:
        synced = bool(vault.remotes.list())
        if synced:
            try:
                vault.sync()
            except MemsyncError as exc:
                raise UsageError(f"sync first failed ({exc}); fix that, then rotate") from None
        if not yes:
            click.confirm("Replace the recovery phrase? The old one stops working.",
                          abort=True, err=True)  # fmt: skip
        rotated = vault.remotes.rotate_recovery()
        if synced:
            vault.sync()
    if as_json:
        print_json(dataclasses.asdict(rotated))
        return
    console().print(recovery_panel(rotated.recovery_phrase))
    if rotated.chain:
        click.echo(rotated.chain)
