"""Gas and bytes on chain: per checkpoint, and per memory through an `evm://` remote.

Runs against `memsync chain dev`'s EVM (py-evm, Prague rules) in process; gas is the
EVM's own count, so the figures do not depend on this machine's speed.

    .venv/bin/python bench/chain.py [--memories 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from memsync.chain.contract import Registry, Sender
from memsync.chain.node import start_dev_node
from memsync.crypto.device import FAST_KDF
from memsync.index.embed import HashEmbedder
from memsync.sync import service
from memsync.sync.evm import EvmRemote
from memsync.sync.urls import open_remote
from memsync.vault import Vault


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memories", type=int, default=200)
    args = ap.parse_args()
    node = start_dev_node(port=0)
    reg, deployed = Registry.deploy(Registry.web3(node.url), Sender(), node.url)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        made = Vault.create(home / "v", "a strong pass phrase 42", kdf=FAST_KDF,
                            embedder=HashEmbedder())  # fmt: skip
        v = made.vault
        v.chain.configure(node.url, contract=reg.address, anchor_every=None)
        v.remotes.add("usb", str(home / "usb"))  # where anchors put the state they name
        register = v.chain.register(made.recovery_phrase)
        gas = []
        for i in range(21):
            v.add(f"Checkpoint filler memory {i}")
            done = v.chain.anchor()
            assert done is not None
            gas.append(done.receipt.gas)
        print(f"deploy: {deployed.gas:,} gas; register: {register.gas if register else 0:,} gas")
        median = statistics.median(gas[1:])
        print(f"checkpoint: first {gas[0]:,} gas, median of the next 20 {median:,.0f}")
        url = f"evm://{reg.address}?rpc={quote(node.url)}&keys={quote(str(home / 'keys'))}"
        v.remotes.add("onchain", url)
        texts = [f"Memory {i}: the project's plan, step {i}, due in week {i % 52}"
                 for i in range(args.memories)]  # fmt: skip
        for t in texts:
            v.add(t)
        remote = open_remote(v.remotes.get("onchain").url)
        assert isinstance(remote, EvmRemote)  # one instance, so that it counts gas and bytes
        service.sync(v.core, "onchain", remote=remote)
        n = args.memories + 21
        print(
            f"first sync of {n} memories: {remote.published_bytes:,} bytes, {remote.gas:,} gas: "
            f"{remote.published_bytes / n:,.0f} bytes and {remote.gas / n:,.0f} gas per memory"
        )
        one_gas, one_bytes = [], []
        for i in range(10):
            before_gas, before_bytes = remote.gas, remote.published_bytes
            v.add(f"One more memory, number {i}, about the week's review")
            service.sync(v.core, "onchain", remote=remote)
            one_gas.append(remote.gas - before_gas)
            one_bytes.append(remote.published_bytes - before_bytes)
        print(
            f"one memory per sync (median of 10): {statistics.median(one_bytes):,.0f} bytes, "
            f"{statistics.median(one_gas):,.0f} gas"
        )
        v.close()
    node.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
