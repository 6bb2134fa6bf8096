"""`memsync chain …` and `memsync anchor`: the vault's record on an EVM chain."""

from __future__ import annotations

import dataclasses
import signal
import threading

import click
from rich.table import Table

from memsync.chain.contract import ChainEvent, Receipt
from memsync.cli.options import json_option
from memsync.cli.output import console, print_json
from memsync.cli.unlock import RECOVERY_PHRASE_ENV, ask_secret, open_vault
from memsync.errors import ChainError
from memsync.sync.anchor import mask

SENDER_KEY_ENV = "MEMSYNC_CHAIN_SENDER_KEY"
RPC_KEY_ENV = "MEMSYNC_CHAIN_RPC_KEY"


@click.group()
def chain() -> None:
    """The vault's record on an EVM chain: who owns it and its latest checkpoint.

    The chain sees a commitment, an owner address made for this vault alone, and opaque
    roots: nothing readable. Once configured, every sync is checked against it.

    Example: memsync chain dev   (a local chain to try it on, no network or funds)
    """


def _tx(r: Receipt) -> str:
    return f"tx {r.tx} (block {r.block}, {r.gas:,} gas)"


@chain.command("config")
@click.option("--rpc", required=True, help="The chain's JSON-RPC endpoint (http or https).")
@click.option("--contract", help="The registry's address (else `memsync chain deploy`).")
@click.option("--chain-id", type=int, help="The chain id to expect (else read from the RPC).")
@click.option("--rpc-key", envvar=RPC_KEY_ENV, help=f"A bearer token for the RPC (${RPC_KEY_ENV}).")
@click.option(
    "--sender-key",
    envvar=SENDER_KEY_ENV,
    help=f"A funded key that pays for transactions (${SENDER_KEY_ENV}); else the owner pays.",
)
@click.option(
    "--anchor-every",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Anchor after a sync at most this often (seconds; 0: after every sync).",
)
@click.option("--no-auto-anchor", is_flag=True, help="Anchor only with `memsync anchor`.")
@click.option("--from-block", type=int, default=0, help="The block the registry was deployed in.")
@json_option
def config(
    rpc: str,
    contract: str | None,
    chain_id: int | None,
    rpc_key: str | None,
    sender_key: str | None,
    anchor_every: int,
    no_auto_anchor: bool,
    from_block: int,
    as_json: bool,
) -> None:
    """Use a chain: its RPC endpoint, registry and chain id (keys kept encrypted).

    Example: memsync chain config --rpc http://127.0.0.1:8545 --contract 0x5FbD…
    """
    with open_vault() as vault:
        s = vault.chain.configure(
            rpc, contract=contract, chain_id=chain_id, rpc_key=rpc_key,
            sender_key=sender_key, anchor_every=None if no_auto_anchor else anchor_every,
            from_block=from_block,
        )  # fmt: skip
    if as_json:
        print_json({**dataclasses.asdict(s), "rpc": mask(s.rpc)})
        return
    click.echo(f"chain {s.chain_id} at {mask(s.rpc)}; registry: {s.contract or 'none yet'}")


@chain.command("deploy")
def deploy() -> None:
    """Deploy a new registry on the configured chain and use it (private chains, tests).

    Example: memsync chain deploy
    """
    with open_vault() as vault:
        receipt = vault.chain.deploy()
        address = vault.chain.settings().contract  # type: ignore[union-attr]
    click.echo(f"deployed the vault registry at {address}: {_tx(receipt)}")


@chain.command("register")
def register() -> None:
    """Register the vault under the owner address its recovery phrase derives, and let
    this device anchor. Asks for the phrase ($MEMSYNC_RECOVERY_PHRASE for scripts).

    Example: memsync chain register
    """
    with open_vault() as vault:
        words = ask_secret(
            "Recovery phrase (24 words)",
            RECOVERY_PHRASE_ENV,
            f"no recovery phrase given: set {RECOVERY_PHRASE_ENV} or run this in a terminal",
        )
        receipt = vault.chain.register(words)
        owner = vault.chain.settings().owner  # type: ignore[union-attr]
    if receipt is None:
        click.echo(f"already registered to {owner}: this device can now anchor")
    else:
        click.echo(f"registered, owned by {owner}: {_tx(receipt)}")


@click.command("anchor")
@json_option
def anchor(as_json: bool) -> None:
    """Publish this device's view of the vault as the next on-chain checkpoint.

    Also done after every sync once the chain is configured and this device registered.

    Example: memsync anchor
    """
    with open_vault() as vault:
        done = vault.chain.anchor()
    if as_json:
        print_json(None if done is None else dataclasses.asdict(done))
    elif done is None:
        click.echo("nothing to anchor: the chain already records this device's view")
    else:
        where = ", ".join(done.stored_on) or "no remote (the pointer is empty)"
        click.echo(f"anchored checkpoint {done.counter}: {_tx(done.receipt)}; state on {where}")


@chain.command("status")
@json_option
def status(as_json: bool) -> None:
    """The on-chain record against this device's view: up to date, behind, ahead or
    contradicted. Exits 1 when contradicted.

    Example: memsync chain status
    """
    with open_vault() as vault:
        s = vault.chain.status()
        settings = vault.chain.settings()
    assert settings is not None
    rec = s.record
    if as_json:
        print_json(
            {
                "state": s.state, "detail": s.detail, "local_root": s.local_root,
                "owner_here": s.owner_here, "chain_id": settings.chain_id,
                "contract": settings.contract,
                "record": None if rec is None else {
                    "owner": rec.owner, "epoch": rec.epoch, "counter": rec.counter,
                    "root": rec.root.hex(), "pointer": rec.pointer.hex(),
                },
            }
        )  # fmt: skip
    else:
        click.echo(f"{s.state}: {s.detail}")
        click.echo(f"chain {settings.chain_id}, registry {settings.contract}")
        if rec is not None:
            click.echo(f"owner {rec.owner}{' (this device anchors)' if s.owner_here else ''}")
        if rec is not None and rec.counter:
            click.echo(f"checkpoint {rec.counter}, epoch {rec.epoch}, root {rec.root.hex()}")
        click.echo(f"this device's root {s.local_root}")
    if s.state == "contradicted":
        raise SystemExit(1)


@chain.command("history")
@json_option
def history(as_json: bool) -> None:
    """Every on-chain change of this vault, oldest first.

    Example: memsync chain history
    """
    with open_vault() as vault:
        events = vault.chain.history()
    if as_json:
        print_json([_event_json(e) for e in events])
        return
    table = Table("block", "what", "detail", "tx")
    for e in events:
        if e.what == "checkpoint":
            detail = f"{e.counter} epoch {e.epoch} root {(e.root or b'').hex()[:16]}…"
        else:
            detail = str(e.owner)
        table.add_row(str(e.block), e.what, detail, e.tx)
    console().print(table)


def _event_json(e: ChainEvent) -> dict[str, object]:
    doc = dataclasses.asdict(e)
    for k in ("root", "pointer"):
        doc[k] = None if doc[k] is None else doc[k].hex()
    return doc


@chain.command("transfer")
@click.argument("new_owner")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def transfer(new_owner: str, yes: bool) -> None:
    """Hand the vault's on-chain record to another address (a new phrase, a new owner).

    Example: memsync chain transfer 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
    """
    if not yes:
        click.confirm(f"hand the vault's on-chain record to {new_owner}?", abort=True, err=True)
    with open_vault() as vault:
        receipt = vault.chain.transfer(new_owner)
    click.echo(f"the record now belongs to {new_owner}: {_tx(receipt)}")


@chain.command("dev")
@click.option("--port", default=8545, show_default=True, help="The port on 127.0.0.1.")
def dev(port: int) -> None:
    """Run a local EVM chain on loopback with the registry deployed, until Ctrl-C.

    Its accounts are funded test accounts; it lives in memory and is gone when stopped.

    Example: memsync chain dev --port 8545
    """
    from memsync.chain.contract import Registry, Sender
    from memsync.chain.node import start_dev_node

    node = start_dev_node(port=port)
    try:
        reg, _ = Registry.deploy(Registry.web3(node.url), Sender(), node.url)
    except ChainError:
        node.stop()
        raise
    click.echo(f"a local EVM chain (id {node.chain_id}) on {node.url}")
    click.echo(f"the vault registry at {reg.address}")
    click.echo("in another terminal:")
    click.echo(f"  memsync chain config --rpc {node.url} --contract {reg.address}")
    click.echo("  memsync chain register && memsync anchor && memsync chain status")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
