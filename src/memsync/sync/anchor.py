"""This device's chain: its settings, registering the vault, anchoring checkpoints, and
comparing the on-chain record with the local view (`Vault.chain`, `memsync chain …`).

The vault is known on chain only by its commitment, a key derived from the vault key
(which storage and chain never see); its owner is the address of the EVM key the
recovery phrase derives for this vault alone. A device anchors once it holds that key
(`register` checks the phrase is this vault's and keeps the key in the encrypted
database); every device checks its syncs against the chain whether it holds it or not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from memsync import codec
from memsync.chain.contract import ChainEvent, Receipt, Record, Registry, Sender, address_of
from memsync.core import Core
from memsync.crypto import aead, phrase
from memsync.errors import BadRecoveryPhrase, ChainError, RemoteError, UsageError
from memsync.sync.objects import SyncKeys, hex_heads, merkle_root
from memsync.sync.urls import open_remote
from memsync.sync.witness import (
    Anchor,
    Kept,
    Witness,
    anchor_name,
    heads_from_json,
    heads_json,
    open_anchor,
    seal_anchor,
)

__all__ = ["Anchored", "Chain", "ChainSettings", "ChainStatus", "ChainTarget", "commitment"]


def commitment(core: Core) -> bytes:
    """The vault's name on chain: derived from the vault key, so it links to nothing else."""
    return aead.hkdf(core.vault_key, b"memsync/v1/chain/commitment")


def stream(core: Core) -> bytes:
    """The name an `evm://` remote publishes ciphertext under: another derived key, so
    the registry record and the published objects are not linked by their topics."""
    return aead.hkdf(core.vault_key, b"memsync/v1/chain/stream")


@dataclass(frozen=True)
class ChainSettings:
    """The chain this device uses (`memsync chain config`); keys are never shown."""

    rpc: str
    chain_id: int
    contract: str | None
    has_rpc_key: bool
    sender: str | None  # the address that pays, if a key is configured
    owner: str | None  # the vault's owner address, if this device holds its key
    anchor_every: int | None  # seconds between anchors after syncs (0: each); None: never
    from_block: int = 0  # where the registry's history starts


@dataclass(frozen=True)
class ChainTarget:
    """A chain to check a restore against (`memsync recover --from URL --rpc … --contract …`)."""

    rpc: str
    contract: str
    chain_id: int | None = None


@dataclass(frozen=True)
class Anchored:
    """An anchor that went on chain."""

    counter: int
    receipt: Receipt
    root: str
    stored_on: tuple[str, ...]  # the remotes that hold the anchored state


@dataclass(frozen=True)
class ChainStatus:
    """The on-chain record against this device's view (`memsync chain status`).

    `state`: "not registered", "not anchored", "up to date", "behind" (the chain records
    entries this device has not got: sync), "ahead" (this device has entries the chain
    has not seen: anchor), or "contradicted" (the chain and this device disagree)."""

    state: str
    detail: str
    record: Record | None
    local_root: str
    owner_here: bool


def mask(url: str) -> str:
    """An RPC URL with any path or query hidden (providers put their key there)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0]
    return f"{scheme}://{host}" + ("/…" if len(rest) > len(host) else "")


@dataclass(frozen=True)
class _Row:
    """The `chain` table's one row, keys included (never returned to callers)."""

    rpc: str
    chain_id: int
    contract: str | None
    rpc_key: str | None
    sender_key: bytes | None
    owner_key: bytes | None
    anchor_every: int | None
    from_block: int
    anchored_at: int | None


class Chain:
    """This device's chain (`Vault.chain`)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # Settings.

    def _row(self) -> _Row | None:
        row = self.core.conn.execute(
            "SELECT rpc, chain_id, contract, rpc_key, sender_key, owner_key, anchor_every, "
            "from_block, anchored_at FROM chain WHERE id=1"
        ).fetchone()
        if row is None:
            return None
        rpc, chain_id, contract, rpc_key, sender, owner, every, from_block, at = row
        return _Row(
            str(rpc), int(chain_id), None if contract is None else str(contract),
            None if rpc_key is None else str(rpc_key), None if sender is None else bytes(sender),
            None if owner is None else bytes(owner), None if every is None else int(every),
            int(from_block), None if at is None else int(at),
        )  # fmt: skip

    def settings(self) -> ChainSettings | None:
        row = self._row()
        if row is None:
            return None
        return ChainSettings(
            row.rpc, row.chain_id, row.contract, row.rpc_key is not None,
            None if row.sender_key is None else address_of(row.sender_key),
            None if row.owner_key is None else address_of(row.owner_key),
            row.anchor_every, row.from_block,
        )  # fmt: skip

    def configure(
        self,
        rpc: str,
        *,
        contract: str | None = None,
        chain_id: int | None = None,
        rpc_key: str | None = None,
        sender_key: str | None = None,
        anchor_every: int | None = 0,
        from_block: int = 0,
    ) -> ChainSettings:
        """Use the chain at `rpc`, after checking it answers with `chain_id` (read from
        it if not given) and that `contract`, if given, is memsync's registry. After a
        sync, a device that holds the owner key anchors if `anchor_every` seconds have
        passed since its last anchor (0: after every sync; None: only `anchor`).

        >>> vault.chain.configure("http://127.0.0.1:8545", contract="0x…")  # doctest: +SKIP
        """
        if not rpc.startswith(("http://", "https://")):
            raise UsageError(f"an RPC endpoint is an http:// or https:// URL, not {rpc!r}")
        if anchor_every is not None and anchor_every < 0:
            raise UsageError("anchor_every is a number of seconds (0 or more), or None")
        old = self._row()
        # What is not given again is kept: the keys (the RPC's only for the same URL: it
        # must not go to another provider), and the registry on the same chain.
        key = _private_key(sender_key) if sender_key else (old.sender_key if old else None)
        if rpc_key is None and old is not None and old.rpc == rpc:
            rpc_key = old.rpc_key
        w3 = Registry.web3(rpc, rpc_key)
        from memsync.chain.contract import rpc_errors

        with rpc_errors(mask(rpc)):
            actual = int(w3.eth.chain_id)
        if chain_id is not None and chain_id != actual:
            raise ChainError(f"{mask(rpc)} is chain {actual}, not chain {chain_id}")
        if contract is None and old is not None and old.chain_id == actual and old.contract:
            contract, from_block = old.contract, from_block or old.from_block
        if contract is not None:
            contract = Registry.connect(w3, contract, actual, mask(rpc)).address
        with self.core.db.write() as w:
            w.execute(
                "INSERT OR REPLACE INTO chain(id, rpc, chain_id, contract, rpc_key, sender_key, "
                "owner_key, anchor_every, from_block, anchored_at) VALUES(1,?,?,?,?,?,?,?,?,?)",
                (
                    rpc, actual, contract, rpc_key, key, old.owner_key if old else None,
                    anchor_every, from_block, old.anchored_at if old else None,
                ),
            )  # fmt: skip
            if old is None or old.contract != contract or old.chain_id != actual:
                w.execute("DELETE FROM chain_seen")
        settings = self.settings()
        assert settings is not None
        return settings

    def forget_settings(self) -> None:
        """Stop using a chain on this device (the chain keeps what it recorded)."""
        with self.core.db.write() as w:
            w.execute("DELETE FROM chain")
            w.execute("DELETE FROM chain_seen")

    def _need(self) -> _Row:
        row = self._row()
        if row is None:
            raise ChainError("no chain configured: memsync chain config --rpc URL")
        return row

    def registry(self) -> Registry:
        row = self._need()
        if row.contract is None:
            raise ChainError(
                "no registry configured: memsync chain config --contract ADDR (or chain deploy)"
            )
        w3 = Registry.web3(row.rpc, row.rpc_key)
        return Registry.connect(w3, row.contract, row.chain_id, mask(row.rpc), row.from_block)

    def _sender(self, reg: Registry) -> Sender:
        row = self._need()
        if row.sender_key is not None:
            return Sender(row.sender_key)
        from memsync.chain.contract import rpc_errors

        with rpc_errors(reg.where):
            unlocked = bool(reg.w3.eth.accounts)
        # A development node pays from its own account; elsewhere the owner key pays.
        return Sender(None) if unlocked or row.owner_key is None else Sender(row.owner_key)

    def _owner_key(self) -> bytes:
        key = self._need().owner_key
        if key is None:
            raise ChainError(
                "this device does not hold the vault's owner key: run `memsync chain "
                "register` and type the recovery phrase"
            )
        return key

    # Acting.

    def deploy(self) -> Receipt:
        """Deploy a new registry and use it (a private chain or a test)."""
        row = self._need()
        w3 = Registry.web3(row.rpc, row.rpc_key)
        reg, receipt = Registry.deploy(w3, Sender(row.sender_key), mask(row.rpc), row.chain_id)
        with self.core.db.write() as w:
            w.execute(
                "UPDATE chain SET contract=?, from_block=? WHERE id=1", (reg.address, receipt.block)
            )
            w.execute("DELETE FROM chain_seen")
        return receipt

    def register(self, recovery_phrase: str) -> Receipt | None:
        """Register the vault (if it is not yet) under the owner address the phrase
        derives, and keep the owner key on this device so that it can anchor. None if the
        vault was registered already to that address."""
        ident = phrase.recovery_signing_key(recovery_phrase).public_key().public_bytes_raw()
        if ident != self.core.recovery_sign_pub():
            raise BadRecoveryPhrase("this recovery phrase is not this vault's")
        key = phrase.evm_owner_key(recovery_phrase)
        reg = self.registry()
        vault = commitment(self.core)
        record = reg.record(vault)
        receipt = None
        if record is None:
            receipt = reg.register(vault, key, self._sender(reg))
        elif record.owner != address_of(key):
            raise ChainError(
                f"the vault is registered to {record.owner}, not to this phrase's owner "
                f"address {address_of(key)} (ownership was transferred)"
            )
        with self.core.db.write() as w:
            w.execute("UPDATE chain SET owner_key=? WHERE id=1", (key,))
        return receipt

    def transfer(self, new_owner: str) -> Receipt:
        """Hand the on-chain record to `new_owner`; this device then no longer anchors."""
        reg = self.registry()
        vault = commitment(self.core)
        record = self._record(reg, vault)
        receipt = reg.transfer(vault, new_owner, self._owner_key(), self._sender(reg), record.nonce)
        with self.core.db.write() as w:
            w.execute("UPDATE chain SET owner_key=NULL WHERE id=1")
        return receipt

    def _record(self, reg: Registry, vault: bytes) -> Record:
        record = reg.record(vault)
        if record is None:
            raise ChainError("the vault is not registered on this chain: memsync chain register")
        return record

    def anchor(self) -> Anchored | None:
        """Publish this device's view of the vault as the next on-chain checkpoint: the
        anchored state goes to every remote, the root and its address on chain. None if
        the chain already records this view."""
        core = self.core
        key = self._owner_key()
        reg = self.registry()
        vault = commitment(core)
        heads = hex_heads(core.log.heads())
        root = merkle_root(heads)
        for attempt in range(3):
            record = self._record(reg, vault)
            if record.root.hex() == root:
                self._restore(record)
                return None
            anchor = Anchor(core.header.vault_id, record.counter + 1, core.epoch(), heads)
            name, blob, pointer = seal_anchor(SyncKeys.base(core.vault_key), anchor)
            stored = self._store(name, blob)
            try:
                receipt = reg.checkpoint(
                    vault, anchor.epoch, anchor.counter, bytes.fromhex(root),
                    pointer if stored else bytes(32), key, self._sender(reg), record.nonce,
                )  # fmt: skip
            except ChainError as exc:
                # Another device anchored in between: read the record again.
                if "counter must be higher" in str(exc) and attempt < 2:
                    continue
                raise
            self._seen(reg, anchor.counter, bytes.fromhex(root), Kept(blob, heads))
            with core.db.write() as w:
                w.execute("UPDATE chain SET anchored_at=? WHERE id=1", (codec.to_ms(core.clock()),))
            return Anchored(anchor.counter, receipt, root, stored)
        raise AssertionError("unreachable")

    def _store(self, name: str, blob: bytes) -> tuple[str, ...]:
        stored = []
        for name_here, url in self._remotes():
            try:
                remote = open_remote(url)
                remote.create(name, blob)
                got = remote.get(name)
            except (RemoteError, ChainError):
                continue
            if got is not None and got.data == blob:
                stored.append(name_here)
        return tuple(stored)

    def _remotes(self) -> list[tuple[str, str]]:
        rows = self.core.conn.execute("SELECT name, url FROM remotes ORDER BY name")
        return [(str(n), str(u)) for n, u in rows]

    def _kept(self, record: Record) -> Kept:
        """What this device verified of `record` before (nothing if another checkpoint)."""
        row = self.core.conn.execute(
            "SELECT counter, root, anchored, heads FROM chain_seen WHERE id=1"
        ).fetchone()
        if row is None or int(row[0]) != record.counter or bytes(row[1]) != record.root:
            return Kept()
        blob = None if row[2] is None else bytes(row[2])
        if blob is not None and hashlib.sha256(blob).digest() != record.pointer:
            blob = None
        return Kept(blob, None if row[3] is None else heads_from_json(str(row[3])))

    def _restore(self, record: Record) -> None:
        """Put the state this device anchored back on any remote that lost it."""
        blob = self._kept(record).blob
        if blob is not None:
            self._store(anchor_name(record.pointer), blob)

    def _seen(self, reg: Registry, counter: int, root: bytes, kept: Kept = Kept()) -> None:
        heads = None if kept.heads is None else heads_json(kept.heads)
        with self.core.db.write() as w:
            w.execute(
                "INSERT INTO chain_seen(id, contract, counter, root, anchored, heads) "
                "VALUES(1,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "contract=excluded.contract, counter=excluded.counter, root=excluded.root, "
                "anchored=coalesce(excluded.anchored, chain_seen.anchored), "
                "heads=coalesce(excluded.heads, chain_seen.heads) "
                "WHERE excluded.counter > chain_seen.counter OR "
                "excluded.contract != chain_seen.contract OR "
                "(excluded.counter = chain_seen.counter AND excluded.root = chain_seen.root)",
                (reg.address, counter, root, kept.blob, heads),
            )

    def seen_counter(self) -> int:
        row = self.core.conn.execute("SELECT counter FROM chain_seen WHERE id=1").fetchone()
        return 0 if row is None else int(row[0])

    # Reading.

    def after_sync(self) -> str | None:
        """Anchor after a sync when this device can and is set to; what happened, in a
        line, or None. A failure here never fails the sync that went before."""
        row = self._row()
        if row is None or row.owner_key is None or row.anchor_every is None:
            return None
        now = codec.to_ms(self.core.clock())
        if row.anchored_at is not None and now - row.anchored_at < row.anchor_every * 1000:
            return None
        try:
            done = self.anchor()
        except ChainError as exc:
            return f"not anchored: {exc}"
        return None if done is None else f"anchored as chain checkpoint {done.counter}"

    def history(self) -> list[ChainEvent]:
        """The vault's on-chain history, oldest first."""
        return self.registry().history(commitment(self.core))

    def witness(self) -> Witness | None:
        """What checks a sync against the chain, if one is configured with a registry."""
        row = self._row()
        if row is None or row.contract is None:
            return None
        vault = commitment(self.core)
        state: dict[str, Registry] = {}

        def read() -> Record | None:
            state["reg"] = reg = state.get("reg") or self.registry()
            return reg.record(vault)

        def where(counter: int) -> dict[str, Any]:
            reg = state["reg"]
            done = [e for e in reg.history(vault) if e.counter == counter]
            return {
                "chain_id": reg.chain_id, "contract": reg.address, "counter": counter,
                "block": done[-1].block if done else None, "tx": done[-1].tx if done else None,
            }  # fmt: skip

        def seen(record: Record, kept: Kept) -> None:
            self._seen(state["reg"], record.counter, record.root, kept)

        return Witness(self.core, read, where, seen, self._kept, self.seen_counter)

    def status(self) -> ChainStatus:
        """The on-chain record against this device's view."""
        core = self.core
        reg = self.registry()
        record = reg.record(commitment(core))
        heads = hex_heads(core.log.heads())
        root = merkle_root(heads)
        owner_here = self._need().owner_key is not None
        if record is None:
            return ChainStatus("not registered", "memsync chain register", None, root, owner_here)
        if record.counter == 0:
            return ChainStatus("not anchored", "memsync anchor", record, root, owner_here)
        if record.counter < self.seen_counter():
            detail = f"the chain serves checkpoint {record.counter}; this device verified "
            detail += f"checkpoint {self.seen_counter()}"
            return ChainStatus("contradicted", detail, record, root, owner_here)
        if record.root.hex() == root:
            return ChainStatus(
                "up to date", f"checkpoint {record.counter}", record, root, owner_here
            )
        anchored = self._anchored(record)
        if anchored is None:
            detail = "the chain records a state no remote of this device holds"
            return ChainStatus("behind", detail, record, root, owner_here)
        if anchored.root != record.root:
            detail = f"the root of checkpoint {record.counter} is not that of the state it names"
            return ChainStatus("contradicted", detail, record, root, owner_here)
        state, detail = _compare(core, anchored.heads, heads)
        return ChainStatus(state, detail, record, root, owner_here)

    def _anchored(self, record: Record) -> Anchor | None:
        if record.pointer == bytes(32):
            return None
        for _, url in self._remotes():
            try:
                got = open_remote(url).get(anchor_name(record.pointer))
            except (RemoteError, ChainError):
                continue
            if got is not None and hashlib.sha256(got.data).digest() == record.pointer:
                return open_anchor(got.data, SyncKeys.base(self.core.vault_key))
        return None


def _compare(
    core: Core, anchored: dict[str, tuple[int, str]], mine: dict[str, tuple[int, str]]
) -> tuple[str, str]:
    behind = ahead = 0
    for device, (seq, digest) in anchored.items():
        have = mine.get(device, (0, ""))[0]
        if have < seq:
            behind += seq - have
            continue
        entry = core.log.entry(device, seq)
        if entry is not None and entry.hash(core.header.vault_id).hex() != digest:
            return "contradicted", f"entry {seq} of feed {device} differs from the chain's"
    for device, (seq, _) in mine.items():
        ahead += max(0, seq - anchored.get(device, (0, ""))[0])
    if behind:
        return "behind", f"the chain records {behind} entries this device has not got: sync"
    return "ahead", f"{ahead} entries here are not anchored yet: memsync anchor"


def _private_key(text: str) -> bytes:
    raw = text.strip().removeprefix("0x")
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise UsageError("a sender key is 32 bytes in hex (64 hex digits)")
    return key
