"""A remote on an EVM chain: the immutable objects (segments and anchored states) go into
the chain as event data of the registry's `publish`; everything overwritable (record
keys, checkpoints, the root, pairing) lives on a paired mutable remote, because nothing
on chain can ever be deleted and forgetting must be able to destroy a record key.

    memsync remote add onchain 'evm://0x5FbD…?rpc=http%3A//127.0.0.1%3A8545&keys=/media/usb/k'

Objects are named by their own hash, so a reader takes the first published copy that
hashes to the name asked for: anyone may publish under any name, and junk is ignored.
The publishing account comes from `$MEMSYNC_CHAIN_SENDER_KEY`, or, on a development
node, its first unlocked account.
"""

from __future__ import annotations

import hashlib
import os
from urllib.parse import parse_qs, urlencode, urlparse

from memsync.chain.contract import Registry, Sender
from memsync.errors import RemoteError
from memsync.sync.remote import Blob, Remote, check_name

__all__ = ["EvmRemote", "normalize_evm_url"]

SENDER_KEY_ENV = "MEMSYNC_CHAIN_SENDER_KEY"
_ON_CHAIN = ("s/", "a/")  # content-addressed: `s/<hash>` segments, `a/<hash>` anchors


def normalize_evm_url(text: str) -> str:
    """`evm://ADDRESS?rpc=URL&keys=URL[&chain=ID]`, checked; `RemoteError` otherwise."""
    from memsync.sync.urls import normalize_url

    parsed = urlparse(text)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    for key in query:
        if key not in ("rpc", "keys", "chain"):
            raise RemoteError(f"unknown evm option {key!r} (rpc, keys, chain)")
    if not parsed.netloc.startswith("0x") or len(parsed.netloc) != 42:
        raise RemoteError("an evm:// URL names the registry: evm://0x…?rpc=URL&keys=URL")
    if not query.get("rpc", "").startswith(("http://", "https://")):
        raise RemoteError("an evm:// URL needs rpc=, the chain's http(s) JSON-RPC endpoint")
    if not query.get("keys"):
        raise RemoteError(
            "an evm:// URL needs keys=, a mutable remote (a folder or s3://…) for what the "
            "chain must never hold: the record keys"
        )
    if "chain" in query and not query["chain"].isdigit():
        raise RemoteError("chain= is a chain id (a number)")
    if query["keys"].startswith("evm:"):
        raise RemoteError("keys= must be a mutable remote, not another evm:// one")
    query["keys"] = normalize_url(query["keys"])
    return f"evm://{parsed.netloc}?{urlencode(dict(sorted(query.items())))}"


def _valid(name: str, data: bytes) -> bool:
    return hashlib.sha256(data).hexdigest()[:40] == name[2:]


def _key(name: str) -> bytes:
    # Invertible, so that a listing can name what is on chain: the kind, then the hash.
    return (name[0].encode() + bytes.fromhex(name[2:])).ljust(32, b"\0")


def _name(key: bytes) -> str:
    return f"{chr(key[0])}/{key[1:21].hex()}"


class EvmRemote(Remote):
    """Immutable objects on chain, the rest on `keys` (another remote)."""

    def __init__(self, registry: Registry, keys: Remote, stream: bytes, sender: Sender) -> None:
        self.registry = registry
        self.keys = keys
        self.stream = stream
        self.sender = sender
        self.published_bytes = 0
        self.gas = 0

    @classmethod
    def from_url(cls, url: str) -> EvmRemote:
        from memsync.sync.urls import open_remote

        parsed = urlparse(normalize_evm_url(url))
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        keys = open_remote(query["keys"])
        chain = int(query["chain"]) if "chain" in query else None
        w3 = Registry.web3(query["rpc"])
        registry = Registry.connect(w3, parsed.netloc, chain, query["rpc"].split("?")[0])
        sender_key = os.environ.get(SENDER_KEY_ENV)
        sender = Sender(bytes.fromhex(sender_key.removeprefix("0x")) if sender_key else None)
        # The stream name links to nothing: a hash of where the keys live.
        stream = hashlib.sha256(b"memsync/v1/evm-stream\x00" + query["keys"].encode()).digest()
        return cls(registry, keys, stream, sender)

    def _chain(self, name: str) -> bool:
        return check_name(name).startswith(_ON_CHAIN)

    def get(self, name: str) -> Blob | None:
        if not self._chain(name):
            return self.keys.get(name)
        for _, data in self.registry.published(self.stream, _key(name)):
            if _valid(name, data):
                return Blob(data, name)
        return None

    def create(self, name: str, data: bytes) -> bool:
        if not self._chain(name):
            return self.keys.create(name, data)
        if not _valid(name, data):
            raise RemoteError(f"{name} is not the hash of what would be stored under it")
        if self.get(name) is not None:
            return False
        receipt = self.registry.publish(self.stream, _key(name), data, self.sender)
        self.published_bytes += len(data)
        self.gas += receipt.gas
        return True

    def replace(self, name: str, data: bytes, if_match: str | None) -> None:
        if self._chain(name):
            # A wrong copy can sit beside the right one; it is simply never read.
            if not self.create(name, data) and self.get(name) is None:
                raise RemoteError(f"{name} cannot be replaced on chain")
            return
        self.keys.replace(name, data, if_match)

    def list(self, prefix: str) -> list[str]:
        if not prefix.startswith(_ON_CHAIN):
            return self.keys.list(prefix)
        names = {_name(k) for k, _ in self.registry.published(self.stream)}
        return sorted(n for n in names if n.startswith(prefix))

    def delete(self, name: str) -> None:
        if self._chain(name):
            return  # nothing on chain can be deleted: it holds only ciphertext
        self.keys.delete(name)

    def prepare(self) -> None:
        self.keys.prepare()
