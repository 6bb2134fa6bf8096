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
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlparse

from memsync.chain.contract import Registry, Sender
from memsync.errors import RemoteError
from memsync.sync.remote import Blob, Remote, check_name

__all__ = ["EvmRemote", "normalize_evm_url"]

SENDER_KEY_ENV = "MEMSYNC_CHAIN_SENDER_KEY"
_ON_CHAIN = ("s/", "a/")  # content-addressed: `s/<hash>` segments, `a/<hash>` anchors
PART = 48 * 1024  # the most one transaction carries (nodes take up to 128 KiB)
_MANIFEST = b"memsync/v1/parts\x00"


def normalize_evm_url(text: str, normalize_url: Callable[[str], str]) -> str:
    """`evm://ADDRESS?rpc=URL&keys=URL[&chain=ID][&stream=HEX][&from=BLOCK]`, checked and completed;
    `RemoteError` otherwise; `normalize_url` checks the keys remote's URL."""
    parsed = urlparse(text)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    for key in query:
        if key not in ("rpc", "keys", "chain", "stream", "from"):
            raise RemoteError(f"unknown evm option {key!r} (rpc, keys, chain, stream, from)")
    if not parsed.netloc.startswith("0x") or len(parsed.netloc) != 42:
        raise RemoteError("an evm:// URL names the registry: evm://0x…?rpc=URL&keys=URL")
    if not query.get("rpc", "").startswith(("http://", "https://")):
        raise RemoteError("an evm:// URL needs rpc=, the chain's http(s) JSON-RPC endpoint")
    if not query.get("keys"):
        raise RemoteError(
            "an evm:// URL needs keys=, a mutable remote (a folder or s3://…) for what the "
            "chain must never hold: the record keys"
        )
    for number in ("chain", "from"):
        if number in query and not query[number].isdigit():
            raise RemoteError(f"{number}= is a number (a chain id, a block)")
    if query["keys"].startswith("evm:"):
        raise RemoteError("keys= must be a mutable remote, not another evm:// one")
    query["keys"] = normalize_url(query["keys"])
    # The name the objects are published under links to nothing readable: a hash of where
    # the keys first lived, kept in the URL so that the keys can move later.
    derived = hashlib.sha256(b"memsync/v1/evm-stream\x00" + query["keys"].encode()).hexdigest()
    query.setdefault("stream", derived)
    if len(query["stream"]) != 64 or set(query["stream"]) - set("0123456789abcdef"):
        raise RemoteError("stream= is 64 lowercase hex digits")
    return f"evm://{parsed.netloc}?{urlencode(dict(sorted(query.items())))}"


def _valid(name: str, data: bytes) -> bool:
    return hashlib.sha256(data).hexdigest()[:40] == name[2:]


def _key(name: str) -> bytes:
    # Invertible, so that a listing can name what is on chain: the kind, then the hash.
    return (name[0].encode() + bytes.fromhex(name[2:])).ljust(32, b"\0")


def _part_key(digest: bytes) -> bytes:
    return b"p" + digest[:31]


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
    def from_url(cls, url: str, open_remote: Callable[[str], Remote]) -> EvmRemote:
        """The remote a canonical `evm://` URL names; `open_remote` opens its keys half."""
        parsed = urlparse(url)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        keys = open_remote(query["keys"])
        chain = int(query["chain"]) if "chain" in query else None
        w3 = Registry.web3(query["rpc"])
        where = query["rpc"].split("?")[0]
        registry = Registry.connect(w3, parsed.netloc, chain, where, int(query.get("from", 0)))
        sender_key = os.environ.get(SENDER_KEY_ENV, "").strip().removeprefix("0x")
        try:
            sender = Sender(bytes.fromhex(sender_key) if sender_key else None)
        except ValueError:
            raise RemoteError(f"${SENDER_KEY_ENV} is not a key in hex") from None
        if sender.key is not None and len(sender.key) != 32:
            raise RemoteError(f"${SENDER_KEY_ENV} is not a 32-byte key")
        return cls(registry, keys, bytes.fromhex(query["stream"]), sender)

    def _chain(self, name: str) -> bool:
        return check_name(name).startswith(_ON_CHAIN)

    def get(self, name: str) -> Blob | None:
        if not self._chain(name):
            return self.keys.get(name)
        for _, data in self.registry.published(self.stream, _key(name)):
            if _valid(name, data):
                return Blob(data, name)
            whole = self._assemble(data)
            if whole is not None and _valid(name, whole):
                return Blob(whole, name)
        return None

    def _assemble(self, manifest: bytes) -> bytes | None:
        """The object a manifest lists the parts of, each found by its own hash."""
        body = manifest[len(_MANIFEST) :]
        if not manifest.startswith(_MANIFEST) or len(body) % 32:
            return None
        parts = []
        for i in range(0, len(body), 32):
            digest = body[i : i + 32]
            found = [
                d
                for _, d in self.registry.published(self.stream, _part_key(digest))
                if hashlib.sha256(d).digest() == digest
            ]
            if not found:
                return None
            parts.append(found[0])
        return b"".join(parts)

    def create(self, name: str, data: bytes) -> bool:
        if not self._chain(name):
            return self.keys.create(name, data)
        if not _valid(name, data):
            raise RemoteError(f"{name} is not the hash of what would be stored under it")
        if self.get(name) is not None:
            return False
        if len(data) <= PART:
            self._publish(_key(name), data)
            return True
        # Nodes refuse transactions over 128 KiB: a large segment goes up in parts, then
        # a manifest of their hashes under its name.
        digests = []
        for i in range(0, len(data), PART):
            part = data[i : i + PART]
            digest = hashlib.sha256(part).digest()
            if not self.registry.published(self.stream, _part_key(digest)):
                self._publish(_part_key(digest), part)
            digests.append(digest)
        self._publish(_key(name), _MANIFEST + b"".join(digests))
        return True

    def _publish(self, key: bytes, data: bytes) -> None:
        receipt = self.registry.publish(self.stream, key, data, self.sender)
        self.published_bytes += len(data)
        self.gas += receipt.gas

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
        names = {_name(k) for k, _ in self.registry.published(self.stream) if k[:1] in b"sa"}
        return sorted(n for n in names if n.startswith(prefix))

    def delete(self, name: str) -> None:
        if self._chain(name):
            return  # nothing on chain can be deleted: it holds only ciphertext
        self.keys.delete(name)

    def prepare(self) -> None:
        self.keys.prepare()
