"""The registry contract as Python: read a vault's record and history, and send the
owner's signed changes. Every failure becomes one `ChainError` with a plain message.

    reg = Registry.connect("http://127.0.0.1:8545", contract="0x…", chain_id=1337)
    reg.record(commitment)          # Record | None
    reg.checkpoint(commitment, epoch, counter, root, pointer, owner_key, sender)

A change is signed by the vault's owner key (EIP-712: the domain binds the chain id and
the contract's address, a nonce stops replays) and sent by a `Sender`: a funded key of
its own, the owner key itself, or, on a development node, its first unlocked account.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from memsync.chain.support import build, need_chain_extra, revert_data
from memsync.errors import ChainError, ChainUnreachable

__all__ = ["ChainEvent", "Receipt", "Record", "Registry", "Sender", "address_of"]

DOMAIN_NAME = "memsync vault registry"
_B32 = "bytes32"
_TYPES: dict[str, list[tuple[str, str]]] = {
    "Register": [("vault", _B32), ("owner", "address")],
    "Checkpoint": [
        ("vault", _B32),
        ("epoch", "uint32"),
        ("counter", "uint64"),
        ("root", _B32),
        ("pointer", _B32),
        ("nonce", "uint64"),
    ],
    "Transfer": [("vault", _B32), ("newOwner", "address"), ("nonce", "uint64")],
}
_REVERTS = {
    "AlreadyRegistered": "this vault is registered on this chain already",
    "NotRegistered": "this vault is not registered on this chain (memsync chain register)",
    "NotOwner": "the registry refused the signature: the key that signed does not own the "
    "vault on chain",
    "CounterNotIncreasing": "the chain already holds checkpoint {0}: a checkpoint's counter "
    "must be higher",
    "ZeroOwner": "an owner address is needed",
}
WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Record:
    """A vault's record on chain (all zero but the owner before its first checkpoint)."""

    owner: str
    epoch: int
    nonce: int
    counter: int
    root: bytes
    pointer: bytes


@dataclass(frozen=True)
class ChainEvent:
    """One change in a vault's on-chain history (`memsync chain history`)."""

    block: int
    tx: str
    what: str  # "registered", "checkpoint" or "transfer"
    owner: str | None = None  # the new owner, for "registered" and "transfer"
    epoch: int | None = None
    counter: int | None = None
    root: bytes | None = None
    pointer: bytes | None = None


@dataclass(frozen=True)
class Receipt:
    """A transaction the chain included."""

    tx: str
    block: int
    gas: int


@dataclass(frozen=True)
class Sender:
    """Who pays for a transaction: a private key, or None for the node's own first
    account (development nodes only)."""

    key: bytes | None = None


def address_of(key: bytes) -> str:
    """The checksummed address of a secp256k1 private key."""
    need_chain_extra()
    from eth_account import Account

    return str(Account.from_key(key).address)


@contextlib.contextmanager
def rpc_errors(where: str) -> Iterator[None]:
    """Turn what web3, the HTTP client or the in-process EVM raise into `ChainError`."""
    from requests.exceptions import ConnectionError as ReqConnectionError
    from requests.exceptions import RequestException, Timeout
    from web3.exceptions import (
        ContractCustomError,
        ContractLogicError,
        TimeExhausted,
        Web3Exception,
        Web3RPCError,
    )

    try:
        yield
    except ChainError:
        raise
    except (ReqConnectionError, Timeout, TimeExhausted, ConnectionError, TimeoutError) as exc:
        raise ChainUnreachable(
            f"the chain's RPC endpoint {where} did not answer ({_reason(exc)})"
        ) from None
    except (ContractCustomError, ContractLogicError) as exc:
        raise ChainError(_revert_message(exc.data, str(exc))) from None
    except Web3RPCError as exc:
        raise ChainError(f"the chain refused the request: {exc.message or exc}") from None
    except (RequestException, Web3Exception) as exc:
        raise ChainError(f"the chain's RPC endpoint ({where}) failed: {exc}") from None
    except Exception as exc:
        from eth_tester.exceptions import TransactionFailed

        if isinstance(exc, TransactionFailed):
            raise ChainError(_revert_message(revert_data(exc), str(exc))) from None
        raise


def _reason(exc: BaseException) -> str:
    text = str(exc)
    at = text.rfind("[Errno")
    return text[at:].split("]", 1)[-1].strip(" '\")") if at >= 0 else type(exc).__name__


def _revert_message(data: object, fallback: str) -> str:
    """The registry's own words for a revert, decoded from its error data."""
    from eth_abi.abi import decode
    from eth_utils.crypto import keccak

    raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else data
    if isinstance(raw, bytes) and len(raw) >= 4:
        for item in build().abi:
            if item["type"] != "error":
                continue
            types = [i["type"] for i in item["inputs"]]
            sig = f"{item['name']}({','.join(types)})"
            if keccak(text=sig)[:4] == raw[:4]:
                args = decode(types, raw[4:]) if types else ()
                return "the chain reverted: " + _REVERTS[item["name"]].format(*args)
    return f"the chain reverted the transaction ({fallback})"


class Registry:
    """memsync's registry at `address` on the chain `w3` talks to."""

    def __init__(
        self, w3: Any, address: str, chain_id: int, where: str = "in-process", from_block: int = 0
    ) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self.where = where
        # Logs are read from here on: many RPC providers refuse a scan from block 0.
        self.from_block = from_block
        self.contract = w3.eth.contract(address=address, abi=build().abi)
        self.address = str(self.contract.address)

    @staticmethod
    def web3(rpc: str, rpc_key: str | None = None, timeout: float = 20.0) -> Any:
        """A web3 client for the JSON-RPC endpoint `rpc` (`rpc_key` as a bearer token)."""
        need_chain_extra()
        from web3 import Web3

        headers = {"Authorization": f"Bearer {rpc_key}"} if rpc_key else {}
        kwargs = {"timeout": timeout, "headers": headers}
        return Web3(
            Web3.HTTPProvider(rpc, request_kwargs=kwargs, exception_retry_configuration=None)
        )

    @classmethod
    def connect(
        cls, w3: Any, contract: str, chain_id: int | None, where: str, from_block: int = 0
    ) -> Registry:
        """The registry at `contract`, after checking the chain id and that the code there
        is memsync's registry, byte for byte."""
        from web3 import Web3

        with rpc_errors(where):
            actual = int(w3.eth.chain_id)
            if chain_id is not None and actual != chain_id:
                raise ChainError(f"{where} is chain {actual}, not chain {chain_id} as configured")
            if not Web3.is_address(contract):
                raise ChainError(f"{contract!r} is not a contract address")
            address = Web3.to_checksum_address(contract)
            code = bytes(w3.eth.get_code(address))
        if code != bytes.fromhex(build().deployed[2:]):
            raise ChainError(
                f"the contract at {address} is not memsync's vault registry "
                "(its code differs from the one built from VaultRegistry.sol)"
            )
        return cls(w3, address, actual, where, from_block)

    @classmethod
    def deploy(
        cls, w3: Any, sender: Sender, where: str, chain_id: int | None = None
    ) -> tuple[Registry, Receipt]:
        """Deploy a new registry (a private chain, a test) and return it."""
        with rpc_errors(where):
            actual = int(w3.eth.chain_id)
            if chain_id is not None and actual != chain_id:
                raise ChainError(f"{where} is chain {actual}, not chain {chain_id} as configured")
            chain_id = actual
            factory = w3.eth.contract(abi=build().abi, bytecode=build().bytecode)
            receipt = _send(w3, factory.constructor(), sender, chain_id)
            address = w3.eth.get_transaction_receipt(receipt.tx)["contractAddress"]
        return cls(w3, str(address), chain_id, where, receipt.block), receipt

    # Reading.

    def record(self, vault: bytes) -> Record | None:
        with rpc_errors(self.where):
            owner, epoch, nonce, counter, root, pointer = self.contract.functions.get(vault).call()
        if int(owner, 16) == 0:
            return None
        return Record(str(owner), int(epoch), int(nonce), int(counter), bytes(root), bytes(pointer))

    def history(self, vault: bytes) -> list[ChainEvent]:
        """Every change of `vault`, oldest first, read from the registry's logs."""
        ev = self.contract.events
        found: list[tuple[int, int, ChainEvent]] = []
        with rpc_errors(self.where):
            for log in ev.Registered().get_logs(
                from_block=self.from_block, argument_filters={"vault": vault}
            ):
                a = log["args"]
                found.append(_at(log, ChainEvent(0, "", "registered", owner=str(a["owner"]))))
            for log in ev.Checkpointed().get_logs(
                from_block=self.from_block, argument_filters={"vault": vault}
            ):
                a = log["args"]
                cp = ChainEvent(
                    0, "", "checkpoint", epoch=int(a["epoch"]), counter=int(a["counter"]),
                    root=bytes(a["root"]), pointer=bytes(a["pointer"]),
                )  # fmt: skip
                found.append(_at(log, cp))
            transfers = ev.OwnershipTransferred().get_logs(
                from_block=self.from_block, argument_filters={"vault": vault}
            )
            for log in transfers:
                found.append(_at(log, ChainEvent(0, "", "transfer", owner=str(log["args"]["to"]))))
        return [e for _, _, e in sorted(found, key=lambda f: (f[0], f[1]))]

    # Changing: signed by the owner key, sent by `sender`.

    def _sign(
        self, kind: str, message: dict[str, Any], owner_key: bytes
    ) -> tuple[int, bytes, bytes]:
        from eth_account import Account
        from eth_account.messages import encode_typed_data

        domain = {
            "name": DOMAIN_NAME,
            "version": "1",
            "chainId": self.chain_id,
            "verifyingContract": self.address,
        }
        types = {kind: [{"name": n, "type": t} for n, t in _TYPES[kind]]}
        signed = Account.sign_message(encode_typed_data(domain, types, message), owner_key)
        return int(signed.v), int(signed.r).to_bytes(32, "big"), int(signed.s).to_bytes(32, "big")

    def register(self, vault: bytes, owner_key: bytes, sender: Sender) -> Receipt:
        owner = address_of(owner_key)
        v, r, s = self._sign("Register", {"vault": vault, "owner": owner}, owner_key)
        with rpc_errors(self.where):
            fn = self.contract.functions.register(vault, owner, v, r, s)
            return _send(self.w3, fn, sender, self.chain_id)

    def checkpoint(
        self,
        vault: bytes,
        epoch: int,
        counter: int,
        root: bytes,
        pointer: bytes,
        owner_key: bytes,
        sender: Sender,
        nonce: int,
    ) -> Receipt:
        message = {
            "vault": vault, "epoch": epoch, "counter": counter, "root": root,
            "pointer": pointer, "nonce": nonce,
        }  # fmt: skip
        v, r, s = self._sign("Checkpoint", message, owner_key)
        with rpc_errors(self.where):
            fn = self.contract.functions.checkpoint(vault, epoch, counter, root, pointer, v, r, s)
            return _send(self.w3, fn, sender, self.chain_id)

    def transfer(
        self, vault: bytes, new_owner: str, owner_key: bytes, sender: Sender, nonce: int
    ) -> Receipt:
        from web3 import Web3

        if not Web3.is_address(new_owner):
            raise ChainError(f"{new_owner!r} is not an address")
        to = Web3.to_checksum_address(new_owner)
        message = {"vault": vault, "newOwner": to, "nonce": nonce}
        v, r, s = self._sign("Transfer", message, owner_key)
        with rpc_errors(self.where):
            fn = self.contract.functions.transferOwnership(vault, to, v, r, s)
            return _send(self.w3, fn, sender, self.chain_id)

    def publish(self, stream: bytes, key: bytes, data: bytes, sender: Sender) -> Receipt:
        with rpc_errors(self.where):
            fn = self.contract.functions.publish(stream, key, data)
            return _send(self.w3, fn, sender, self.chain_id)

    def published(self, stream: bytes, key: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """(key, data) of everything published under `stream` (and `key`), oldest first."""
        filters: dict[str, Any] = {"vault": stream}
        if key is not None:
            filters["key"] = key
        with rpc_errors(self.where):
            logs = self.contract.events.Published().get_logs(
                from_block=self.from_block, argument_filters=filters
            )
        return [(bytes(x["args"]["key"]), bytes(x["args"]["data"])) for x in logs]


def _at(log: Any, event: ChainEvent) -> tuple[int, int, ChainEvent]:
    block, index = int(log["blockNumber"]), int(log["logIndex"])
    tx = "0x" + bytes(log["transactionHash"]).hex()
    return block, index, ChainEvent(block, tx, *_fields(event))


def _fields(e: ChainEvent) -> tuple[Any, ...]:
    return (e.what, e.owner, e.epoch, e.counter, e.root, e.pointer)


def _send(w3: Any, fn: Any, sender: Sender, chain_id: int) -> Receipt:
    """Send `fn` (a contract call or a constructor), after a dry run so that a revert is
    reported with the registry's reason and nothing is paid for it."""
    from eth_account import Account

    if sender.key is not None:
        frm = str(Account.from_key(sender.key).address)
    else:
        accounts = w3.eth.accounts
        if not accounts:
            raise ChainError(
                "no account pays for this transaction: give a funded key with `memsync "
                "chain config --sender-key` (for an evm:// remote: $MEMSYNC_CHAIN_SENDER_KEY)"
            )
        frm = str(accounts[0])
    if hasattr(fn, "call"):
        fn.call({"from": frm})
    if sender.key is not None:
        tx = fn.build_transaction(
            {
                "from": frm,
                "nonce": w3.eth.get_transaction_count(frm, "pending"),
                "chainId": chain_id,
            }
        )
        raw = Account.sign_transaction(tx, sender.key).raw_transaction
        tx_hash = w3.eth.send_raw_transaction(raw)
    else:
        tx_hash = fn.transact({"from": frm})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT_SECONDS, poll_latency=0.05)
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    if int(receipt["status"]) != 1:
        raise ChainError(f"the chain reverted transaction {tx}")
    return Receipt(tx, int(receipt["blockNumber"]), int(receipt["gasUsed"]))
