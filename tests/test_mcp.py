"""The MCP server on a real vault: in-process with the SDK's client, over stdio as a
subprocess (`memsync mcp`), and over streamable HTTP from `memsync.server.http`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent, TextResourceContents

import live_server
from conftest import PASSPHRASE, create_vault, open_vault
from memsync import Category, Vault
from memsync.scope import Scope, parse_categories
from memsync.server.http import create_app
from memsync.server.mcp import server_for

T = TypeVar("T")
TOOLS = {
    "add_memory",
    "ingest_conversation",
    "search_memories",
    "get_memory",
    "list_memories",
    "update_memory",
    "delete_memory",
    "get_profile",
}
MEMSYNC = Path(sys.executable).parent / "memsync"


def seed(vault: Vault) -> dict[str, str]:
    ids = {}
    for key, text, category in (
        ("career", "Works as a nurse at the city hospital", Category.CAREER),
        ("health", "Is allergic to peanuts", Category.HEALTH),
        ("travel", "Is flying to Lisbon in March", Category.TRAVEL),
    ):
        ids[key] = vault.add(text, category=category).id
    return ids


def with_client(target: Any, body: Callable[[Client], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with Client(target, **options) as client:
            return await body(client)

    return anyio.run(main)


def serve(vault: Vault, app: str) -> MCPServer:
    return server_for(vault.as_app(app))


def text(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def error(result: CallToolResult) -> str:
    """The one-line message of a tool error."""
    assert result.is_error and result.structured_content is None
    message = text(result)
    assert "\n" not in message and "Traceback" not in message, message
    return message


def test_tools_resource_and_prompt_are_listed_with_hints_and_schemas(vault: Vault) -> None:
    vault.add_app("all")

    async def body(c: Client) -> None:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            hints = tool.annotations
            assert hints is not None and hints.open_world_hint is False, tool.name
            assert tool.description and tool.output_schema, tool.name
            assert tool.output_schema["type"] == "object"
        reading = {n for n, t in tools.items() if t.annotations and t.annotations.read_only_hint}
        assert reading == {"search_memories", "get_memory", "list_memories", "get_profile"}
        delete = tools["delete_memory"].annotations
        assert delete and delete.destructive_hint and delete.idempotent_hint
        add = tools["add_memory"].input_schema
        assert add["required"] == ["text"] and add["properties"]["text"]["description"]
        assert "health" in add["$defs"]["Category"]["enum"]
        assert set(tools["search_memories"].output_schema["properties"]) == {"query", "hits"}
        assert c.instructions and "search_memories" in c.instructions
        resources = (await c.list_resources()).resources
        assert [(str(r.uri), r.mime_type) for r in resources] == [
            ("memory://profile", "text/markdown")
        ]
        assert [p.name for p in (await c.list_prompts()).prompts] == ["use_memory"]

    with_client(serve(vault, "all"), body)


def test_every_tool_works_and_every_disclosure_is_recorded(vault: Vault) -> None:
    ids = seed(vault)
    vault.add_app("all")

    async def body(c: Client) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, args in (
            ("add", ("add_memory", {"text": "Leads a team of five nurses", "tags": ["work"]})),
            ("search", ("search_memories", {"query": "nurse team", "limit": 5})),
            ("get", ("get_memory", {"id": ids["travel"]})),
            ("list", ("list_memories", {"category": "career", "limit": 10})),
            ("profile", ("get_profile", {})),
            ("update", ("update_memory", {"id": ids["travel"], "text": "Flies to Lisbon"})),
            ("delete", ("delete_memory", {"id": ids["health"]})),
            (
                "ingest",
                (
                    "ingest_conversation",
                    {
                        "messages": [
                            {"role": "user", "content": "I am learning to play the cello."},
                            {"role": "assistant", "content": "Lovely instrument!"},
                        ],
                        "title": "Music",
                    },
                ),
            ),
        ):
            result = await c.call_tool(*args)
            assert not result.is_error, (name, text(result))
            out[name] = result.structured_content
        again = await c.call_tool("ingest_conversation", {"messages": [
            {"role": "user", "content": "I am learning to play the cello."},
            {"role": "assistant", "content": "Lovely instrument!"},
        ]})  # fmt: skip
        out["again"] = again.structured_content
        return out

    out = with_client(serve(vault, "all"), body)
    added = out["add"]
    assert added["category"] == "career" and added["tags"] == ["work"]  # category guessed
    assert added["kind"] == "semantic" and added["id"].startswith("m-")
    texts = [h["memory"]["text"] for h in out["search"]["hits"]]
    assert set(texts[:2]) == {
        "Leads a team of five nurses",
        "Works as a nurse at the city hospital",
    }
    assert out["get"]["text"] == "Is flying to Lisbon in March"
    assert out["list"]["total"] == 2 and {m["category"] for m in out["list"]["items"]} == {"career"}
    assert "nurse" in out["profile"]["bio"].lower()
    assert out["update"]["supersedes"] == ids["travel"] and out["update"]["id"] != ids["travel"]
    assert out["delete"] == {"id": ids["health"], "forgotten": True}
    assert vault.list().total == 4 and "peanuts" not in str(vault.list().items)
    ingested = out["ingest"]
    assert ingested["new_source"] and ingested["added"] >= 1
    assert any("cello" in m["text"] for m in ingested["memories"])
    assert not out["again"]["new_source"] and out["again"]["added"] == 0
    assert vault.get_source(ingested["source_id"]).origin == "all"
    ledger = vault.disclosures(app="all")
    assert {"add", "search", "get", "list", "profile", "edit", "ingest"} <= {
        d.action for d in ledger
    }
    search = next(d for d in ledger if d.action == "search")
    hits = tuple(h["memory"]["id"] for h in out["search"]["hits"])
    assert ids["health"] in hits  # the search also showed the memory deleted afterwards:
    # forgetting keeps that the search happened and what else it showed, not its query.
    assert search.query is None
    assert search.memory_ids == tuple(h for h in hits if h != ids["health"])
    get = next(d for d in ledger if d.action == "get")
    assert get.memory_ids == (ids["travel"],)


def test_an_app_sees_only_its_scope_and_out_of_scope_is_missing(vault: Vault) -> None:
    ids = seed(vault)
    vault.add_app("work", Scope(read=parse_categories("career"), write=parse_categories("career")))

    async def body(c: Client) -> list[Any]:
        return [
            await c.call_tool("search_memories", {"query": "nurse peanuts allergic Lisbon"}),
            await c.call_tool("get_memory", {"id": ids["health"]}),
            await c.call_tool("get_memory", {"id": "m-doesnotexist"}),
            await c.call_tool("list_memories", {}),
            await c.call_tool("delete_memory", {"id": ids["health"]}),
            await c.call_tool("add_memory", {"text": "Has asthma", "category": "health"}),
            await c.read_resource("memory://profile"),
        ]

    search, hidden, missing, listed, delete, add, profile = with_client(serve(vault, "work"), body)
    assert [h["memory"]["id"] for h in search.structured_content["hits"]] == [ids["career"]]
    assert error(hidden) == f"Error executing tool get_memory: no memory with id {ids['health']}"
    assert error(missing) == "Error executing tool get_memory: no memory with id m-doesnotexist"
    assert listed.structured_content["total"] == 1
    assert "no memory with id" in error(delete)
    assert error(add).endswith("app 'work' may not write semantic memories in health")
    assert vault.get(ids["health"]).text == "Is allergic to peanuts"  # nothing was deleted
    contents = profile.contents[0]
    assert isinstance(contents, TextResourceContents) and contents.mime_type == "text/markdown"
    assert contents.text.startswith("# Profile") and "## Career" in contents.text
    assert "peanuts" not in contents.text and "Lisbon" not in contents.text
    seen = {m for d in vault.disclosures(app="work") for m in d.memory_ids}
    assert seen == {ids["career"]}


def test_bad_input_and_refusals_are_one_line_tool_errors(vault: Vault) -> None:
    seed(vault)
    vault.add_app("gone")
    server = serve(vault, "gone")

    async def body(c: Client) -> list[CallToolResult]:
        results = [
            await c.call_tool("search_memories", {"query": "", "limit": 0}),
            await c.call_tool("search_memories", {}),
            await c.call_tool("add_memory", {"text": "x", "kind": "forever"}),
            await c.call_tool("update_memory", {"id": "m-whatever"}),
            await c.call_tool("list_memories", {"limit": 5000}),
        ]
        vault.revoke_app("gone")
        return [*results, await c.call_tool("get_profile", {})]

    empty, no_query, bad_kind, no_change, too_many, revoked = with_client(server, body)
    assert error(empty) == (
        "Error executing tool search_memories: invalid arguments: query: String should have "
        "at least 1 character; limit: Input should be greater than or equal to 1"
    )
    assert "query: Field required" in error(no_query)
    assert "kind: Input should be 'semantic' or 'episodic'" in error(bad_kind)
    assert error(no_change).endswith(
        "nothing to change: give text, category, kind, tags or valid_until"
    )
    assert "limit: Input should be less than or equal to 100" in error(too_many)
    assert error(revoked) == "Error executing tool get_profile: app 'gone' has been revoked"


def test_the_prompt_says_how_to_use_memory(vault: Vault) -> None:
    vault.add_app("all")

    async def body(c: Client) -> str:
        prompt = await c.get_prompt("use_memory")
        assert prompt.messages[0].role == "user"
        content = prompt.messages[0].content
        assert isinstance(content, TextContent)
        return content.text

    guide = with_client(serve(vault, "all"), body)
    for words in ("search_memories", "add_memory", "update_memory", "secrets", "passwords"):
        assert words in guide


# Over stdio, as an MCP client starts it.


@pytest.fixture
def closed_vault(fast_dir: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A vault with an app `work` (career only) and a revoked app `gone`, closed so that a
    subprocess can open it."""
    home = fast_dir / "stdio"
    vault = create_vault(home).vault
    ids = seed(vault)
    vault.add_app("work", Scope(read=parse_categories("career")))
    vault.add_app("gone")
    vault.revoke_app("gone")
    vault.close()
    yield home, ids


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSYNC_")}
    env.update(MEMSYNC_HOME=str(home), MEMSYNC_PASSPHRASE=PASSPHRASE, MEMSYNC_TEST_FAST_KDF="1")
    return env


def test_stdio_serves_the_app_and_stdout_carries_only_the_protocol(
    closed_vault: tuple[Path, dict[str, str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home, ids = closed_vault
    params = StdioServerParameters(
        command=str(MEMSYNC), args=["mcp", "--app", "work"], env=child_env(home)
    )
    stderr = tmp_path / "stderr.txt"

    async def body(c: Client) -> list[CallToolResult]:
        assert len((await c.list_tools()).tools) == len(TOOLS)
        return [
            await c.call_tool("search_memories", {"query": "nurse peanuts"}),
            await c.call_tool("get_memory", {"id": ids["health"]}),
        ]

    with stderr.open("w") as errlog, caplog.at_level(logging.WARNING, logger="mcp"):
        search, hidden = with_client(stdio_client(params, errlog=errlog), body)
    # A line on stdout that is not JSON-RPC is logged by the client as a parse failure.
    assert not [r for r in caplog.records if "parse" in r.getMessage().lower()]
    assert "serving MCP over stdio as app 'work'" in stderr.read_text()
    assert [h["memory"]["id"] for h in search.structured_content["hits"]] == [ids["career"]]
    assert "no memory with id" in error(hidden)
    with open_vault(home) as vault:
        assert [d.action for d in vault.disclosures(app="work")] == ["search"]


def test_stdio_refuses_a_revoked_app_with_one_line(
    closed_vault: tuple[Path, dict[str, str]],
) -> None:
    home, _ = closed_vault
    done = subprocess.run(
        [str(MEMSYNC), "mcp", "--app", "gone"],
        env=child_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 10 and done.stdout == ""
    assert done.stderr.strip() == (
        "memsync: error: app 'gone' has been revoked: register it again with `memsync app add gone`"
    )


# Over streamable HTTP, mounted at /mcp by `memsync serve`.


@pytest.fixture
def http_server(vault: Vault) -> Iterator[str]:
    """`create_app(vault)` on uvicorn on a free local port; yields the base URL."""
    running = live_server.start(create_app(vault))
    try:
        yield running.url
    finally:
        running.stop()


def test_http_serves_each_app_by_its_bearer_token(vault: Vault, http_server: str) -> None:
    ids = seed(vault)
    _, work = vault.add_app("work", Scope(read=parse_categories("career")))
    _, travel = vault.add_app("trips", Scope(read=parse_categories("travel")))

    def over_http(token: str, url: str, **options: Any) -> list[str]:
        async def main() -> list[str]:
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
                transport = streamable_http_client(url, http_client=http)
                async with Client(transport, **options) as c:
                    assert len((await c.list_tools()).tools) == len(TOOLS)
                    found = await c.call_tool("search_memories", {"query": "nurse Lisbon"})
                    return [h["memory"]["id"] for h in found.structured_content["hits"]]

        return anyio.run(main)

    assert over_http(work, f"{http_server}/mcp/") == [ids["career"]]
    # The handshake-era protocol, and the URL without its slash (a same-origin redirect).
    assert over_http(travel, f"{http_server}/mcp", mode="legacy") == [ids["travel"]]
    assert [d.query for d in vault.disclosures(app="work")] == ["nurse Lisbon"]
    assert [d.query for d in vault.disclosures(app="trips")] == ["nurse Lisbon"]


def test_http_refuses_requests_without_a_valid_token(vault: Vault, http_server: str) -> None:
    _, token = vault.add_app("gone")
    _, limited = vault.add_app("limited", rate_per_minute=1)
    vault.revoke_app("gone")
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    url = f"{http_server}/mcp/"
    for headers in ({}, {"Authorization": "Bearer msk_nope"}, {"Authorization": f"Bearer {token}"}):
        refused = httpx.post(url, json=ping, headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["code"] == "unauthenticated"
    # A burst of ten passes; then the rate limit answers 429 with when to retry.
    codes = [
        httpx.post(url, json=ping, headers={"X-API-Key": limited}).status_code for _ in range(11)
    ]
    assert codes[-1] == 429 and 401 not in codes
