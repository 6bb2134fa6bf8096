"""The vault on chain, against a real EVM: py-evm through eth-tester, both in process
(web3's tester provider) and behind a JSON-RPC node on loopback (`memsync chain dev`'s).

The contract: only the owner acts, counters only grow, signatures count once, on one
chain and one contract; gas per checkpoint. The client: config, register, anchor,
status and history, each bad input one clear error with nothing recorded. The witness:
a remote rolled back behind the chain's checkpoint is refused with it as the evidence.
The `evm://` remote, and a canary scan of every byte the chain holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from conftest import create_vault, restore_vault
from memsync.chain.contract import Registry, Sender, address_of
from memsync.chain.node import DevNode, start_dev_node
from memsync.errors import BadRecoveryPhrase, ChainError, ChainUnreachable, SyncRefused
from memsync.sync.anchor import commitment
from memsync.vault import NewVault, Vault

ROOT = Path(__file__).resolve().parents[1]
FUNDED = [(i).to_bytes(32, "big") for i in range(2, 6)]  # eth-tester's funded accounts


@pytest.fixture(scope="module")
def node() -> Iterator[DevNode]:
    n = start_dev_node(port=0)
    yield n
    n.stop()


@pytest.fixture
def registry(node: DevNode) -> Registry:
    reg, _ = Registry.deploy(Registry.web3(node.url), Sender(), node.url)
    return reg


@pytest.fixture
def in_process() -> Registry:
    from eth_tester import EthereumTester
    from web3 import EthereumTesterProvider, Web3

    w3 = Web3(EthereumTesterProvider(EthereumTester()))
    reg, _ = Registry.deploy(w3, Sender(), "in-process")
    return reg


# The contract.


def test_the_committed_build_is_what_the_pinned_compiler_makes_of_the_source() -> None:
    solc = ROOT / "scripts" / "solc"
    assert (solc / "node_modules" / "solc").is_dir(), "run: npm ci --prefix scripts/solc"
    out = subprocess.run(
        ["node", str(solc / "compile.js"), str(ROOT / "src/memsync/chain/VaultRegistry.sol")],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    fresh = json.loads(out)
    committed = json.loads((ROOT / "src/memsync/chain/VaultRegistry.json").read_text())
    assert fresh == committed
    assert fresh["compiler"].startswith("solc 0.8.30+commit.73712a01")


@pytest.mark.parametrize("where", ["in_process", "registry"])
def test_only_the_owner_acts_and_counters_only_grow(where: str, request: Any) -> None:
    reg: Registry = request.getfixturevalue(where)
    vault, owner, other = os.urandom(32), os.urandom(32), os.urandom(32)
    payer = Sender(FUNDED[0])
    with pytest.raises(ChainError, match="not registered"):
        reg.checkpoint(vault, 0, 1, os.urandom(32), bytes(32), owner, payer, 0)
    reg.register(vault, owner, payer)
    with pytest.raises(ChainError, match="registered on this chain already"):
        reg.register(vault, other, payer)
    gas = [reg.checkpoint(vault, 0, n, os.urandom(32), os.urandom(32), owner, payer, n - 1).gas
           for n in (1, 2, 3)]  # fmt: skip
    assert max(gas) <= 60_000, gas
    for counter in (3, 2):  # equal, lower
        with pytest.raises(ChainError, match="already holds checkpoint 3"):
            reg.checkpoint(vault, 0, counter, os.urandom(32), bytes(32), owner, payer, 3)
    with pytest.raises(ChainError, match="does not own"):  # another key
        reg.checkpoint(vault, 0, 4, os.urandom(32), bytes(32), other, payer, 3)
    with pytest.raises(ChainError, match="does not own"):  # a used nonce: a replay
        reg.checkpoint(vault, 0, 4, os.urandom(32), bytes(32), owner, payer, 2)
    with pytest.raises(ChainError, match="does not own"):
        reg.transfer(vault, address_of(other), other, payer, 3)
    rec = reg.record(vault)
    assert rec is not None and (rec.counter, rec.nonce, rec.owner) == (3, 3, address_of(owner))
    # ERC-721 views: the commitment is the token id.
    c = reg.contract.functions
    assert c.ownerOf(int.from_bytes(vault, "big")).call() == address_of(owner)
    assert c.balanceOf(address_of(owner)).call() == 1
    reg.transfer(vault, address_of(other), owner, payer, 3)
    assert c.ownerOf(int.from_bytes(vault, "big")).call() == address_of(other)
    assert c.balanceOf(address_of(owner)).call() == 0
    with pytest.raises(ChainError, match="does not own"):  # the old owner no longer can
        reg.checkpoint(vault, 0, 4, os.urandom(32), bytes(32), owner, payer, 4)
    reg.checkpoint(vault, 1, 4, os.urandom(32), bytes(32), other, payer, 4)
    assert [e.what for e in reg.history(vault)] == ["registered", *["checkpoint"] * 3,
                                                   "transfer", "checkpoint"]  # fmt: skip


def test_a_signature_counts_on_one_chain_and_one_contract_only(in_process: Registry) -> None:
    from eth_tester import EthereumTester
    from web3 import EthereumTesterProvider, Web3

    vault, owner, payer = os.urandom(32), os.urandom(32), Sender(FUNDED[0])
    in_process.register(vault, owner, payer)
    other, _ = Registry.deploy(in_process.w3, payer, "in-process")
    other.register(vault, owner, payer)
    root = os.urandom(32)
    # Signed for the other contract, sent to this one.
    v, r, s = other._sign(
        "Checkpoint",
        {"vault": vault, "epoch": 0, "counter": 1, "root": root, "pointer": bytes(32), "nonce": 0},
        owner,
    )
    fn = in_process.contract.functions.checkpoint(vault, 0, 1, root, bytes(32), v, r, s)
    with pytest.raises(Exception, match="revert"):
        fn.call({"from": in_process.w3.eth.accounts[0]})
    # Signed for another chain id.
    cross = Registry(in_process.w3, in_process.address, in_process.chain_id + 1)
    with pytest.raises(ChainError, match="does not own"):
        cross.checkpoint(vault, 0, 1, root, bytes(32), owner, payer, 0)
    # A high-s twin of a good signature is refused too.
    v, r, s = in_process._sign(
        "Checkpoint",
        {"vault": vault, "epoch": 0, "counter": 1, "root": root, "pointer": bytes(32), "nonce": 0},
        owner,
    )
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    twin = (n - int.from_bytes(s, "big")).to_bytes(32, "big")
    fn = in_process.contract.functions.checkpoint(vault, 0, 1, root, bytes(32), 55 - v, r, twin)
    with pytest.raises(Exception, match="revert"):
        fn.call({"from": in_process.w3.eth.accounts[0]})
    w3 = Web3(EthereumTesterProvider(EthereumTester()))
    with pytest.raises(ChainError, match="not memsync's vault registry"):
        Registry.connect(w3, in_process.address, None, "another chain")


# The client.


@pytest.fixture
def anchored(fast_dir: Path, node: DevNode, registry: Registry) -> Iterator[tuple[NewVault, str]]:
    made = create_vault(fast_dir / "a", device_name="laptop")
    a = made.vault
    a.add("Prefers short answers without bullet points")
    url = str(fast_dir / "remote")
    a.remotes.add("usb", url)
    a.chain.configure(node.url, contract=registry.address)
    a.chain.register(made.recovery_phrase)
    assert a.sync()[0].chain == ("anchored as chain checkpoint 1",)
    try:
        yield made, url
    finally:
        a.close()


def _device_b(fast_dir: Path, made: NewVault, url: str, node: DevNode, contract: str) -> Vault:
    b = restore_vault(fast_dir / "b", made.recovery_phrase, url)
    b.chain.configure(node.url, contract=contract)
    return b


def test_anchor_status_and_history(anchored: tuple[NewVault, str], registry: Registry) -> None:
    made, _ = anchored
    a = made.vault
    assert a.chain.status().state == "up to date"
    assert a.chain.anchor() is None  # nothing new
    a.add("Works on the memsync project")
    assert a.chain.status().state == "ahead"
    done = a.chain.anchor()
    assert done is not None and done.counter == 2 and done.stored_on == ("usb",)
    assert done.receipt.gas <= 60_000
    assert a.chain.status().state == "up to date"
    assert [e.counter for e in a.chain.history() if e.what == "checkpoint"] == [1, 2]
    rec = registry.record(commitment(a.core))
    assert rec is not None and rec.owner == a.chain.settings().owner  # type: ignore[union-attr]


def test_the_rollback_is_refused_with_the_on_chain_checkpoint_as_evidence(
    fast_dir: Path, anchored: tuple[NewVault, str], node: DevNode, registry: Registry
) -> None:
    made, url = anchored
    a = made.vault
    b = _device_b(fast_dir, made, url, node, registry.address)
    b.sync()
    snapshot = fast_dir / "snapshot"
    shutil.copytree(url, snapshot)
    a.add("Moved to Lisbon in March")
    assert "anchored as chain checkpoint" in a.sync()[0].chain[0]
    tx = a.chain.history()[-1].tx
    # The storage is put back to the older snapshot; b has never seen the newer state.
    shutil.rmtree(url)
    shutil.copytree(snapshot, url)
    before = b.check().state_digest
    with pytest.raises(SyncRefused, match="chain records at checkpoint 2"):
        b.sync()
    assert b.check().state_digest == before
    evidence = [e for e in b.remotes.evidence() if "chain" in json.loads(e.detail)]
    chain = json.loads(evidence[-1].detail)["chain"]
    assert (chain["counter"], chain["tx"], chain["contract"]) == (2, tx, registry.address)
    # The storage keeps the anchored state but rolls the feeds back: refused on the heads.
    newer = fast_dir / "newer"
    a.sync()  # a pushes its feed again; then the feeds alone are rolled back
    shutil.copytree(url, newer)
    shutil.rmtree(url)
    shutil.copytree(snapshot, url)
    for p in (newer / "a").iterdir():
        shutil.copy(p, Path(url) / "a" / p.name)
    with pytest.raises(SyncRefused, match="records entry"):
        b.sync()
    # Back to the real state: b catches up, and says the chain is up to date.
    shutil.rmtree(url)
    shutil.copytree(newer, url)
    b.sync()
    assert b.chain.status().state in ("up to date", "ahead")
    b.close()


def test_bad_inputs_are_one_clear_error_and_record_nothing(
    anchored: tuple[NewVault, str], node: DevNode, registry: Registry
) -> None:
    made, _ = anchored
    a = made.vault
    before = a.chain.settings()
    with pytest.raises(ChainUnreachable, match="did not answer"):
        a.chain.configure("http://127.0.0.1:9", contract=registry.address)
    with pytest.raises(ChainError, match="not chain 5"):
        a.chain.configure(node.url, contract=registry.address, chain_id=5)
    with pytest.raises(ChainError, match="not memsync's vault registry"):
        a.chain.configure(node.url, contract=address_of(FUNDED[0]))
    with pytest.raises(ChainError, match="not a contract address"):
        a.chain.configure(node.url, contract="0x12")
    assert a.chain.settings() == before
    other = create_vault(a.paths.home.parent / "other").recovery_phrase
    with pytest.raises(BadRecoveryPhrase, match="not this vault's"):
        a.chain.register(other)
    seen = a.chain.seen_counter()
    a.add("one more")
    # A node that stops answering: the sync goes on unchecked and says so; anchor fails.
    stopped = start_dev_node(port=0)
    reg, _ = Registry.deploy(Registry.web3(stopped.url), Sender(), stopped.url)
    a.chain.configure(stopped.url, contract=reg.address)
    a.chain.register(made.recovery_phrase)
    stopped.stop()
    report = a.sync()[0]
    assert any("not checked against the chain" in w for w in report.waiting)
    assert any("not anchored" in n for n in report.chain)
    with pytest.raises(ChainUnreachable):
        a.chain.anchor()
    assert a.chain.seen_counter() == 0 and seen == 1


def test_cli_against_a_node_started_as_memsync_chain_dev(fast_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from memsync.cli import cli

    proc = subprocess.Popen(
        [sys.executable, "-m", "memsync", "chain", "dev", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        rpc = lines[0].split()[-1]
        contract = lines[1].split()[-1]
        made = create_vault(fast_dir / "h")
        made.vault.close()
        env = {
            "MEMSYNC_HOME": str(fast_dir / "h"),
            "MEMSYNC_PASSPHRASE": "a strong pass phrase 42",
            "MEMSYNC_RECOVERY_PHRASE": made.recovery_phrase,
        }
        run = CliRunner().invoke
        ok = run(cli, ["chain", "config", "--rpc", rpc, "--contract", contract], env=env)
        assert ok.exit_code == 0, ok.output
        assert run(cli, ["chain", "register"], env=env).exit_code == 0
        assert "anchored checkpoint 1" in run(cli, ["anchor"], env=env).output
        status = run(cli, ["chain", "status", "--json"], env=env)
        assert json.loads(status.output)["state"] == "up to date"
        history = json.loads(run(cli, ["chain", "history", "--json"], env=env).output)
        assert [e["what"] for e in history] == ["registered", "checkpoint"]
        bad = run(cli, ["chain", "config", "--rpc", rpc, "--chain-id", "5"], env=env)
        assert bad.exit_code == 16 and "not chain 5" in bad.output
        assert "Traceback" not in bad.output
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    gone = CliRunner().invoke(cli, ["anchor"], env=env)
    assert gone.exit_code == 16 and "did not answer" in gone.output


# The chain as a remote, and what the chain may learn.


def test_an_evm_remote_and_nothing_readable_on_chain(fast_dir: Path, node: DevNode) -> None:
    from memsync.sync.evm import EvmRemote
    from memsync.sync.urls import open_remote

    canary = "zebracanary7731"
    registry, _ = Registry.deploy(Registry.web3(node.url), Sender(), node.url)
    made = create_vault(fast_dir / "a", device_name=f"laptop {canary}")
    a = made.vault
    for i in range(5):
        a.add(f"Memory {i}: {canary} likes the quiet carriage on trains")
    a.add_app(f"editor-{canary}")
    from memsync.model import Message

    a.ingest([Message("user", f"I keep {canary} notes")], title=f"Chat about {canary}")
    url = f"evm://{registry.address}?rpc={quote(node.url)}&keys={quote(str(fast_dir / 'keys'))}"
    a.remotes.add("onchain", url)
    a.chain.configure(node.url, contract=registry.address)
    a.chain.register(made.recovery_phrase)
    a.sync("onchain")
    b = restore_vault(fast_dir / "b", made.recovery_phrase, a.remotes.list()[0].url)
    before = len(b.list(limit=None).items)
    assert before == len(a.list(limit=None).items) >= 5
    b.add(f"From the second device, {canary}")
    b.sync()
    a.sync()
    assert len(a.list(limit=None).items) == before + 1
    assert a.chain.status().state == "up to date"
    # Every byte py-evm holds: blocks, transactions, receipts, logs, state and storage.
    store = node.tester.backend.chain.chaindb.db.wrapped_db.kv_store
    blob = b"".join(bytes(k) + bytes(v) for k, v in store.items())
    vault_id = a.header.vault_id
    for marker in (canary, vault_id, vault_id.replace("-", ""), a.device.device_id):
        assert marker.encode() not in blob
        assert marker.encode().hex().encode() not in blob
    # Only immutable ciphertext went on chain (segments, anchored states, their parts);
    # no key that opens anything did: forgetting can still destroy a record key.
    remote = open_remote(a.remotes.list()[0].url)
    assert isinstance(remote, EvmRemote)
    kinds = {k[:1] for k, _ in registry.published(remote.stream)}
    assert kinds and kinds <= {b"s", b"a", b"p"}
    secrets = [bytes(r[0]) for r in a.core.conn.execute("SELECT key FROM entry_keys")]
    secrets += [a.core.vault_key, a.core.log_key]
    assert len(secrets) > 5
    for secret in secrets:
        assert secret not in blob
    b.close()
    a.close()


def test_the_owner_may_act_without_a_signature(in_process: Registry) -> None:
    from memsync.chain.contract import _send, rpc_errors

    vault, owner = os.urandom(32), FUNDED[1]  # a funded key: it pays for itself
    in_process.register(vault, owner, Sender(owner))
    zero = bytes(32)
    fn = in_process.contract.functions.checkpoint(vault, 2, 1, os.urandom(32), zero, 0, zero, zero)
    _send(in_process.w3, fn, Sender(owner), in_process.chain_id)
    rec = in_process.record(vault)
    assert rec is not None and (rec.epoch, rec.counter) == (2, 1)
    fn = in_process.contract.functions.checkpoint(vault, 2, 2, os.urandom(32), zero, 0, zero, zero)
    with pytest.raises(ChainError, match="does not own"), rpc_errors("in-process"):
        _send(in_process.w3, fn, Sender(FUNDED[2]), in_process.chain_id)  # needs a signature


def test_a_new_remote_of_an_anchored_vault_is_not_mistaken_for_a_rollback(
    fast_dir: Path, anchored: tuple[NewVault, str], node: DevNode, registry: Registry
) -> None:
    made, _ = anchored
    a = made.vault
    a.add("Written before the second remote existed")
    a.sync()
    second = str(fast_dir / "second")
    a.remotes.add("second", second)
    report = a.sync("second")[0]
    assert report.pushed > 0
    # A device restored from the new remote checks it against the chain and accepts it.
    c = _device_b(fast_dir, made, second, node, registry.address)
    c.sync()
    assert c.chain.status().state in ("up to date", "ahead")
    c.close()


def test_large_segments_go_on_chain_in_parts_and_junk_is_ignored(
    fast_dir: Path, node: DevNode
) -> None:
    from memsync.sync.evm import PART, EvmRemote
    from memsync.sync.urls import open_remote

    registry, _ = Registry.deploy(Registry.web3(node.url), Sender(), node.url)
    made = create_vault(fast_dir / "a")
    a = made.vault
    for i in range(90):
        a.add(f"Note {i}: the long project keeps many small facts, this is fact {i}")
    keys = quote(str(fast_dir / "keys"))
    a.remotes.add("onchain", f"evm://{registry.address}?rpc={quote(node.url)}&keys={keys}")
    url = a.remotes.list()[0].url
    a.sync()
    remote = open_remote(url)
    assert isinstance(remote, EvmRemote)
    (name,) = remote.list("s/")
    whole = remote.get(name)
    assert whole is not None and len(whole.data) > PART  # stored in parts, read back whole
    # Anyone may publish under the vault's stream: a wrong copy under the same name, and a
    # manifest of parts that do not exist. Readers skip both.
    from memsync.sync.evm import _MANIFEST, _key

    registry.publish(remote.stream, _key(name), b"junk" * 100, Sender(FUNDED[0]))
    registry.publish(remote.stream, _key(name), _MANIFEST + os.urandom(64), Sender(FUNDED[0]))
    b = restore_vault(fast_dir / "b", made.recovery_phrase, url)
    assert len(b.list(limit=None).items) == 90
    b.close()
    a.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("evm://0x12?rpc=http://x&keys=/tmp/k", "names the registry"),
        (f"evm://0x{'ab' * 20}?keys=/tmp/k", "needs rpc="),
        (f"evm://0x{'ab' * 20}?rpc=http://x", "needs keys="),
        (f"evm://0x{'ab' * 20}?rpc=http://x&keys=/tmp/k&colour=red", "unknown evm option"),
        (f"evm://0x{'ab' * 20}?rpc=http://x&keys=evm://0x", "must be a mutable remote"),
    ],
)
def test_bad_evm_urls_are_one_clear_error(url: str, message: str) -> None:
    from memsync.errors import RemoteError
    from memsync.sync.urls import normalize_url

    with pytest.raises(RemoteError, match=message):
        normalize_url(url)


def test_a_chain_that_goes_back_on_a_verified_checkpoint_is_contradicted(
    fast_dir: Path,
) -> None:
    # Two fresh nodes: the first deployment of each sits at the same address (same
    # deployer, same nonce), so the second can pose as the first with an older record,
    # as a lying RPC endpoint would.
    honest, liar = start_dev_node(port=0), start_dev_node(port=0)
    try:
        reg, _ = Registry.deploy(Registry.web3(honest.url), Sender(), honest.url)
        fake, _ = Registry.deploy(Registry.web3(liar.url), Sender(), liar.url)
        assert fake.address == reg.address
        made = create_vault(fast_dir / "a")
        a = made.vault
        a.remotes.add("usb", str(fast_dir / "remote"))
        a.chain.configure(honest.url, contract=reg.address)
        a.chain.register(made.recovery_phrase)
        a.sync()
        a.add("a second checkpoint")
        a.sync()
        assert a.chain.seen_counter() == 2
        key = bytes.fromhex(a.core.conn.execute("SELECT hex(owner_key) FROM chain").fetchone()[0])
        vault = commitment(a.core)
        fake.register(vault, key, Sender())
        fake.checkpoint(vault, 0, 1, os.urandom(32), bytes(32), key, Sender(), 0)
        a.chain.configure(liar.url, contract=fake.address)
        status = a.chain.status()
        assert status.state == "contradicted" and "verified checkpoint 2" in status.detail
        before = a.check().state_digest
        with pytest.raises(SyncRefused, match=r"\(chain\).*older than checkpoint 2"):
            a.sync()
        assert a.check().state_digest == before
        a.close()
    finally:
        honest.stop()
        liar.stop()


def test_ownership_moves_to_a_new_key(anchored: tuple[NewVault, str], registry: Registry) -> None:
    made, _ = anchored
    a = made.vault
    new_owner = address_of(FUNDED[3])
    receipt = a.chain.transfer(new_owner)
    assert receipt.gas > 0
    assert [e.what for e in a.chain.history()][-1] == "transfer"
    rec = registry.record(commitment(a.core))
    assert rec is not None and rec.owner == new_owner
    a.add("after the hand-over")
    with pytest.raises(ChainError, match="does not hold the vault's owner key"):
        a.chain.anchor()
    with pytest.raises(ChainError, match="registered to"):  # the phrase's key is not it now
        a.chain.register(made.recovery_phrase)
    # The new owner anchors with its own key; the old device still checks its syncs.
    reg = registry
    reg.checkpoint(commitment(a.core), 0, rec.counter + 1, os.urandom(32), bytes(32),
                   FUNDED[3], Sender(), rec.nonce)  # fmt: skip
    assert a.chain.status().state == "behind"  # a root it cannot see: the new owner's


def test_a_node_that_accepts_but_never_answers_times_out(tmp_path: Path) -> None:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        with pytest.raises(ChainUnreachable, match="did not answer"):
            Registry.connect(Registry.web3(url, timeout=0.5), "0x" + "ab" * 20, None, url)
    finally:
        server.close()


def test_configuring_again_keeps_what_is_not_given(
    anchored: tuple[NewVault, str], node: DevNode, registry: Registry
) -> None:
    made, _ = anchored
    a = made.vault
    a.chain.configure(node.url, sender_key=FUNDED[2].hex(), rpc_key="secret-token")
    again = a.chain.configure(node.url, anchor_every=None)
    assert again.contract == registry.address and again.sender == address_of(FUNDED[2])
    assert again.has_rpc_key and again.anchor_every is None and again.owner is not None
    assert a.chain.seen_counter() == 1  # same chain, same registry: what was verified stays
    # The RPC's key never follows the settings to another endpoint.
    other = node.url.replace("127.0.0.1", "localhost")
    assert not a.chain.configure(other).has_rpc_key
    a.add("sent by the configured key")
    done = a.chain.anchor()
    assert done is not None
    tx = a.chain.registry().w3.eth.get_transaction(done.receipt.tx)
    assert tx["from"] == address_of(FUNDED[2])


def test_a_root_that_does_not_match_the_anchored_state_is_evidence(
    fast_dir: Path, anchored: tuple[NewVault, str], node: DevNode, registry: Registry
) -> None:
    from memsync.sync.objects import SyncKeys, hex_heads
    from memsync.sync.remote import FolderRemote
    from memsync.sync.witness import Anchor, seal_anchor

    made, url = anchored
    a = made.vault
    b = _device_b(fast_dir, made, url, node, registry.address)
    # The owner key signs a root that is not the one of the state its pointer names.
    heads = hex_heads(a.core.log.heads())
    rec = registry.record(commitment(a.core))
    assert rec is not None
    name, blob, pointer = seal_anchor(
        SyncKeys.base(a.core.vault_key), Anchor(a.header.vault_id, rec.counter + 1, 0, heads)
    )
    FolderRemote(Path(url)).create(name, blob)
    key = bytes.fromhex(a.core.conn.execute("SELECT hex(owner_key) FROM chain").fetchone()[0])
    registry.checkpoint(commitment(a.core), 0, rec.counter + 1, os.urandom(32), pointer, key,
                        Sender(), rec.nonce)  # fmt: skip
    with pytest.raises(SyncRefused, match=r"\(altered\).*does not match the root"):
        b.sync()
    assert a.chain.status().state == "contradicted"
    b.close()


def test_automatic_anchors_can_be_spaced_out(
    anchored: tuple[NewVault, str], node: DevNode, registry: Registry
) -> None:
    from conftest import FixedClock

    made, _ = anchored
    a = made.vault
    a.chain.configure(node.url, anchor_every=3600)
    a.add("one")
    assert a.sync()[0].chain == ()  # anchored a moment ago (by the fixture's sync)
    assert a.chain.status().state == "ahead"
    clock = FixedClock(a.clock() + timedelta(hours=2))
    a.clock = clock
    assert a.sync()[0].chain == ("anchored as chain checkpoint 2",)
    a.add("two")
    assert a.sync()[0].chain == ()
    assert a.chain.anchor() is not None  # by hand, whenever


def test_a_restore_from_an_old_copy_is_refused_by_the_chain(
    fast_dir: Path, anchored: tuple[NewVault, str], node: DevNode, registry: Registry
) -> None:
    from conftest import PASSPHRASE
    from memsync.crypto.device import FAST_KDF
    from memsync.index.embed import HashEmbedder
    from memsync.sync.anchor import ChainTarget

    made, url = anchored
    a = made.vault
    snapshot = fast_dir / "snapshot"
    shutil.copytree(url, snapshot)
    a.add("written after the snapshot")
    a.sync()  # anchored as checkpoint 2
    target = ChainTarget(node.url, registry.address)
    home = fast_dir / "new-machine"
    kw: dict[str, Any] = {"kdf": FAST_KDF, "embedder": HashEmbedder(), "chain": target}
    with pytest.raises(SyncRefused, match="chain records at checkpoint 2"):
        Vault.recover(home, made.recovery_phrase, PASSPHRASE, from_url=str(snapshot), **kw)
    assert not home.exists() or not any(home.iterdir())  # nothing was left behind
    restored = Vault.recover(home, made.recovery_phrase, PASSPHRASE, from_url=url, **kw)
    assert "written after the snapshot" in {m.text for m in restored.list(limit=None).items}
    assert restored.check().ok and restored.chain.settings() is not None
    restored.close()


def test_replacing_the_phrase_moves_the_vault_on_chain_to_the_new_owner(
    anchored: tuple[NewVault, str], registry: Registry
) -> None:
    from memsync.crypto import phrase

    made, _ = anchored
    a = made.vault
    rotated = a.remotes.rotate_recovery()
    new_owner = address_of(phrase.evm_owner_key(rotated.recovery_phrase))
    assert rotated.chain == f"the chain's record now belongs to {new_owner}"
    rec = registry.record(commitment(a.core))
    assert rec is not None and rec.owner == new_owner
    assert a.chain.settings().owner == new_owner  # type: ignore[union-attr]
    a.add("after the new phrase")
    assert a.chain.anchor() is not None  # signed by the new phrase's key
    with pytest.raises(BadRecoveryPhrase):
        a.chain.register(made.recovery_phrase)  # the old phrase is no longer this vault's
    assert a.chain.register(rotated.recovery_phrase) is None  # the new one owns it already
