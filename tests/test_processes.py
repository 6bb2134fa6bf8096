"""Several real processes on one vault at once, as a person's set-up runs them: `memsync
serve` answering REST requests, two `memsync mcp` servers over stdio (two desktop
clients), and the CLI adding memories, all for a bounded time. Afterwards every write
that was acknowledged is in the vault, no request failed with a 500, `check` passes, and
this device's feed has no sequence number twice and no gap. Then a token revoked by the
CLI stops working in the running server and the running MCP server at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

import live_server
from conftest import PASSPHRASE, create_vault, open_vault

MEMSYNC = Path(sys.executable).parent / "memsync"
SECONDS = 12.0


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSYNC_")}
    env.update(MEMSYNC_HOME=str(home), MEMSYNC_PASSPHRASE=PASSPHRASE, MEMSYNC_TEST_FAST_KDF="1")
    return env


@dataclass
class Seen:
    """What each writer was told was stored, and every failure it saw."""

    cli_texts: list[str] = field(default_factory=list)
    rest_sources: list[str] = field(default_factory=list)
    mcp_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    searches: int = 0


@pytest.fixture
def shared(fast_dir: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    home = fast_dir / "shared"
    vault = create_vault(home).vault
    tokens = {name: vault.add_app(name, rate_per_minute=0)[1] for name in ("rest", "a", "b")}
    vault.add("Prefers tea to coffee")
    vault.close()
    yield home, tokens


@pytest.fixture
def server(shared: tuple[Path, dict[str, str]]) -> Iterator[str]:
    home, _ = shared
    proc, url = live_server.start_process(MEMSYNC, child_env(home))
    log: list[str] = []
    drain = threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    drain.start()
    try:
        yield url
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
        drain.join(timeout=5)
        assert not [line for line in log if "Traceback" in line], "".join(log)


def _cli_writer(home: Path, until: float, seen: Seen) -> None:
    n = 0
    while time.monotonic() < until:
        n += 1
        text = f"Collects stamps from country number {n}"
        done = subprocess.run(
            [str(MEMSYNC), "add", text, "--category", "interests"],
            env=child_env(home),
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            seen.cli_texts.append(text)
        elif "busy" not in done.stderr or "Traceback" in done.stderr:
            seen.failures.append(f"cli: {done.returncode} {done.stderr.strip()}")


async def _rest_client(url: str, token: str, n: int, until: float, seen: Seen) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        i = 0
        while time.monotonic() < until:
            i += 1
            if i % 2:
                body: dict[str, Any] = {
                    "messages": [{"role": "user", "content": f"I work as a baker at Shop{n}x{i}."}]
                }
                answer = await http.post("/v1/memories", json=body)
                if answer.is_success:
                    seen.rest_sources.append(answer.json()["source_id"])
            else:
                answer = await http.post("/v1/memories/search", json={"query": "what work"})
                seen.searches += answer.is_success
            seen.statuses.append(answer.status_code)
            if not answer.is_success and answer.status_code != 503:
                seen.failures.append(f"rest: {answer.status_code} {answer.text[:200]}")


async def _mcp_client(home: Path, app: str, until: float, seen: Seen) -> None:
    params = StdioServerParameters(
        command=str(MEMSYNC), args=["mcp", "--app", app], env=child_env(home)
    )
    with open(os.devnull, "w") as quiet:
        async with Client(stdio_client(params, errlog=quiet)) as client:
            i = 0
            while time.monotonic() < until:
                i += 1
                result = await client.call_tool(
                    "add_memory", {"text": f"Read book {i} of app {app}", "category": "interests"}
                )
                if result.is_error:
                    seen.failures.append(f"mcp {app}: {result.content}")
                else:
                    assert result.structured_content is not None
                    seen.mcp_ids.append(result.structured_content["id"])
                found = await client.call_tool("search_memories", {"query": "books read"})
                if found.is_error:
                    seen.failures.append(f"mcp {app} search: {found.content}")


def test_many_processes_write_and_read_one_vault_at_once(
    shared: tuple[Path, dict[str, str]], server: str
) -> None:
    home, tokens = shared
    seen = Seen()
    until = time.monotonic() + SECONDS
    cli = threading.Thread(target=_cli_writer, args=(home, until, seen))
    cli.start()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(_rest_client, server, tokens["rest"], n, until, seen)
            tg.start_soon(_mcp_client, home, "a", until, seen)
            tg.start_soon(_mcp_client, home, "b", until, seen)

    anyio.run(main)
    cli.join()

    assert seen.failures == []
    assert 500 not in seen.statuses
    # Every kind of writer got writes in, alongside the others.
    assert seen.cli_texts and seen.rest_sources and len(seen.mcp_ids) > 2 and seen.searches
    with open_vault(home) as vault:
        texts = {m.text for m in vault.list(limit=None).items}
        assert set(seen.cli_texts) <= texts
        for memory_id in seen.mcp_ids:
            assert vault.get(memory_id).text.startswith("Read book")
        for source_id in seen.rest_sources:
            assert vault.get_source(source_id).messages[0].content.startswith("I work as")
        report = vault.check()
        assert report.ok, report.problems
        feeds = vault.conn.execute(
            "SELECT device_id, count(*), count(DISTINCT seq), min(seq), max(seq) "
            "FROM oplog GROUP BY device_id"
        ).fetchall()
    for _device, entries, distinct, first, last in feeds:
        assert entries == distinct == last and first == 1


def test_a_revocation_by_the_cli_reaches_running_servers_at_once(
    shared: tuple[Path, dict[str, str]], server: str
) -> None:
    home, tokens = shared
    headers = {"Authorization": f"Bearer {tokens['a']}"}
    assert httpx.post(f"{server}/v1/memories/search", json={"query": "tea"}, headers=headers)
    params = StdioServerParameters(
        command=str(MEMSYNC), args=["mcp", "--app", "a"], env=child_env(home)
    )

    async def main() -> tuple[bool, bool]:
        with open(os.devnull, "w") as quiet:
            async with Client(stdio_client(params, errlog=quiet)) as client:
                before = await client.call_tool("search_memories", {"query": "tea"})
                revoked = subprocess.run(
                    [str(MEMSYNC), "app", "revoke", "a"], env=child_env(home), capture_output=True
                )
                assert revoked.returncode == 0, revoked.stderr
                after = await client.call_tool("search_memories", {"query": "tea"})
                return bool(before.is_error), bool(after.is_error)

    before, after = anyio.run(main)
    assert (before, after) == (False, True)
    answer = httpx.post(f"{server}/v1/memories/search", json={"query": "tea"}, headers=headers)
    assert answer.status_code == 401


def test_a_writer_kept_waiting_past_the_bound_gets_a_clear_answer(
    shared: tuple[Path, dict[str, str]],
) -> None:
    """While another process holds the write lock: the CLI says so in one line and exits
    12, REST answers 503 vault_busy with Retry-After, MCP gives a tool error; nothing is
    written, and everything works again once the lock is let go."""
    home, tokens = shared
    env = {**child_env(home), "MEMSYNC_WRITE_WAIT": "0.5"}
    proc, url = live_server.start_process(MEMSYNC, env)
    headers = {"Authorization": f"Bearer {tokens['rest']}"}
    params = StdioServerParameters(command=str(MEMSYNC), args=["mcp", "--app", "a"], env=env)
    try:
        with open_vault(home) as holder:
            before = holder.log.count()
            with holder.core.db.write():
                cli = subprocess.run(
                    [str(MEMSYNC), "add", "Owns a red bicycle"],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                rest = httpx.post(
                    f"{url}/v1/memories",
                    json={"messages": [{"role": "user", "content": "I own a red bicycle."}]},
                    headers=headers,
                    timeout=30,
                )

                async def mcp() -> Any:
                    with open(os.devnull, "w") as quiet:
                        async with Client(stdio_client(params, errlog=quiet)) as client:
                            return await client.call_tool("add_memory", {"text": "Owns a kayak"})

                tool = anyio.run(mcp)
            assert cli.returncode == 12
            assert cli.stderr.count("\n") == 1 and "busy" in cli.stderr
            assert "Traceback" not in cli.stderr
            assert rest.status_code == 503
            assert rest.json()["error"]["code"] == "vault_busy"
            assert int(rest.headers["Retry-After"]) >= 1
            assert tool.is_error and "busy" in str(tool.content)
            assert holder.log.count() == before
        again = httpx.post(
            f"{url}/v1/memories",
            json={"messages": [{"role": "user", "content": "I own a red bicycle."}]},
            headers=headers,
            timeout=30,
        )
        assert again.status_code == 201
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0


def test_each_open_vault_sees_what_another_one_wrote(fast_dir: Path) -> None:
    """Two `Vault` objects on one home stand for two processes (each has its own
    connections and caches): search, the vector cache, the profile and the app registry
    of one follow the other's writes on their next call."""
    home = fast_dir / "two"
    create_vault(home).vault.close()
    with open_vault(home) as one, open_vault(home) as two:
        assert two.search("bicycle") == []
        assert two.profile().memory_count == 0
        _, token = one.add_app("notes")
        memory = one.add("Owns a red bicycle")
        assert [h.memory.id for h in two.search("red bicycle") if h.memory] == [memory.id]
        assert two.profile().memory_count == 1
        assert two.app_for_token(token) is not None
        one.forget(memory.id)
        one.revoke_app("notes")
        assert two.search("red bicycle") == []
        assert two.profile().memory_count == 0
        assert two.app_for_token(token) is None
        edited = two.add("Prefers tea")
        assert [h.memory.id for h in one.search("tea") if h.memory] == [edited.id]
