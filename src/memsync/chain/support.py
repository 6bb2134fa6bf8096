"""What every part of the chain package needs: the extra's check and the committed build."""

from __future__ import annotations

import ast
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from memsync.errors import ChainError

__all__ = ["Build", "build", "need_chain_extra", "revert_data"]


def need_chain_extra() -> None:
    """Raise a `ChainError` naming the extra when web3 or the EVM is not installed."""
    for module in ("web3", "eth_account", "eth_tester", "eth"):
        if importlib.util.find_spec(module) is None:
            raise ChainError(
                "the chain commands need the chain extra: pip install 'memsync[chain]'"
            )


@dataclass(frozen=True)
class Build:
    """The registry as compiled and committed: what `chain deploy` deploys and what a
    configured contract's code must equal."""

    compiler: str
    settings: dict[str, Any]
    abi: list[dict[str, Any]]
    bytecode: str
    deployed: str


@lru_cache(maxsize=1)
def build() -> Build:
    doc = json.loads(resources.files("memsync.chain").joinpath("VaultRegistry.json").read_text())
    return Build(
        doc["compiler"], doc["settings"], doc["abi"], doc["bytecode"], doc["deployedBytecode"]
    )


def revert_data(failure: BaseException) -> bytes | None:
    """The revert data eth-tester's `TransactionFailed` carries: it holds the EVM's error
    as text, the data written as a Python bytes literal."""
    text = str(failure.args[0]) if failure.args else ""
    if isinstance(failure.args[0] if failure.args else None, bytes | bytearray):
        return bytes(failure.args[0])
    start = max(text.find("b'"), text.find('b"'))
    if start < 0:
        return None
    try:
        value = ast.literal_eval(text[start:])
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, bytes) else None
