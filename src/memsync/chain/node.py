"""A local EVM node on loopback for trying the chain without a network or funds
(`memsync chain dev`), and for the tests that talk to a node over JSON-RPC.

The EVM is py-evm through eth-tester, the one web3.py tests itself with. eth-tester
speaks Python values; this module puts them into the JSON-RPC wire form (hex quantities,
camelCase fields, revert data in the error), so any client, not only web3.py, can use it.
Its accounts are funded and unlocked, as on every development chain. The chain lives in
memory: it is gone when the node stops.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from memsync.chain.support import need_chain_extra, revert_data
from memsync.errors import ChainError

__all__ = ["DevNode", "start_dev_node"]

# eth-tester's accounts are derived from the private keys 1, 2, 3…: well known, test only.
DEV_SENDER_KEY = "0x" + (1).to_bytes(32, "big").hex()


def _wire(value: Any) -> Any:
    """A Python value as JSON-RPC carries it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    return value


class _Backend:
    """eth-tester behind a lock: py-evm is not thread-safe."""

    def __init__(self) -> None:
        need_chain_extra()
        from eth_tester import EthereumTester
        from web3 import EthereumTesterProvider
        from web3.providers.eth_tester import middleware

        self.tester = EthereumTester()
        self.provider = EthereumTesterProvider(self.tester)
        self.requests: dict[Any, Callable[..., Any]] = dict(middleware.request_formatters)
        self.results: dict[Any, Callable[..., Any]] = dict(middleware.result_formatters or {})
        self.lock = threading.Lock()

    def call(self, method: str, params: list[Any]) -> dict[str, Any]:
        from eth_tester.exceptions import TransactionFailed

        if method in ("eth_call", "eth_estimateGas") and params and "from" not in params[0]:
            # eth-tester needs a sender even for a read: its first (funded) account.
            params = [{**params[0], "from": self.tester.get_accounts()[0]}, *params[1:]]
        if method in self.requests:
            params = list(self.requests[method](params))
        try:
            with self.lock:
                answer = self.provider.make_request(method, params)  # type: ignore[arg-type]
        except TransactionFailed as exc:
            err: dict[str, Any] = {"code": 3, "message": "execution reverted"}
            data = revert_data(exc)
            if data is not None:
                err["data"] = "0x" + data.hex()
            return {"error": err}
        except Exception as exc:  # eth-tester's own errors: bad params, unknown tx, …
            return {"error": {"code": -32000, "message": f"{type(exc).__name__}: {exc}"}}
        if "error" in answer:
            return {"error": dict(answer["error"])}
        result = answer.get("result")
        if method in self.results and result is not None:
            result = self.results[method](result)
        return {"result": _wire(result)}


@dataclass
class DevNode:
    """A running node: its URL and the server thread."""

    url: str
    chain_id: int
    server: ThreadingHTTPServer
    thread: threading.Thread
    tester: Any  # the EthereumTester: its database is every byte the chain holds

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _handler(backend: _Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            except (ValueError, json.JSONDecodeError):
                self._send(400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700}})
                return
            batch = body if isinstance(body, list) else [body]
            out = []
            for req in batch:
                if not isinstance(req, dict) or not isinstance(req.get("method"), str):
                    out.append({"jsonrpc": "2.0", "id": None, "error": {"code": -32600}})
                    continue
                got = backend.call(req["method"], list(req.get("params") or []))
                out.append({"jsonrpc": "2.0", "id": req.get("id"), **got})
            self._send(200, out if isinstance(body, list) else out[0])

        def _send(self, status: int, doc: object) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests carry ciphertext only, but a node's log is noise

    return Handler


def start_dev_node(host: str = "127.0.0.1", port: int = 8545) -> DevNode:
    """Start a node on `host:port` (0 picks a free port) in a background thread.

    >>> node = start_dev_node(port=0)  # doctest: +SKIP
    """
    backend = _Backend()
    try:
        server = ThreadingHTTPServer((host, port), _handler(backend))
    except OSError as exc:
        raise ChainError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="memsync-evm", daemon=True)
    thread.start()
    chain_id = int(backend.call("eth_chainId", [])["result"], 16)
    url = f"http://{host}:{server.server_address[1]}"
    return DevNode(url, chain_id, server, thread, backend.tester)
