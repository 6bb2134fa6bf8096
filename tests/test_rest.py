"""The REST API (`memsync.server.rest`) over HTTP, against a real vault: each endpoint,
tokens in both header styles, scopes, the disclosure ledger, rate limits, error bodies
and the canary (nothing posted reaches the disk in plaintext)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from memsync import Category, Kind, Message, Vault, __version__
from memsync.scope import Scope, parse_categories
from memsync.server.http import create_app
from test_canary import scan

CHAT = [
    {"role": "user", "content": "I work as a nurse at the city hospital. I love sailing."},
    {"role": "assistant", "content": "Noted: nurse, and a sailor."},
]
MEMORY_FIELDS = {
    "id",
    "memory",
    "categories",
    "type",
    "tags",
    "created_at",
    "updated_at",
    "observed_at",
    "valid_from",
    "valid_until",
    "confidence",
    "status",
    "source",
}


class Api:
    """A client of one app: `api.get(...)` sends its token (as a bearer token, or as
    `X-API-Key` with `api_key=True`)."""

    def __init__(self, client: TestClient, token: str, api_key: bool = False) -> None:
        self.client = client
        self.headers = {"X-API-Key": token} if api_key else {"Authorization": f"Bearer {token}"}

    def __getattr__(self, method: str) -> Any:
        def call(path: str, **kwargs: Any) -> Any:
            return self.client.request(method, "/v1" + path, headers=self.headers, **kwargs)

        return call


@pytest.fixture
def client(vault: Vault) -> TestClient:
    # No lifespan: it only starts MCP's session manager, which the REST routes do not use.
    return TestClient(create_app(vault))


@pytest.fixture
def app_for(vault: Vault, client: TestClient) -> Any:
    """`app_for(name, scope, rate=0)`: register an app and return its client."""

    def make(name: str, scope: Scope = Scope(), rate: int = 0, api_key: bool = False) -> Api:
        _, token = vault.add_app(name, scope, rate_per_minute=rate)
        return Api(client, token, api_key)

    return make


def seed(vault: Vault) -> dict[str, str]:
    ids = {}
    for key, text, category, tags in (
        ("career", "Works as a nurse at the city hospital", Category.CAREER, ["work"]),
        ("health", "Is allergic to peanuts", Category.HEALTH, []),
        ("travel", "Is flying to Lisbon in March", Category.TRAVEL, ["trip"]),
    ):
        ids[key] = vault.add(text, category=category, tags=tags).id
    ids["hike"] = vault.add(
        "Went hiking near the hospital on Sunday", kind=Kind.EPISODIC, category=Category.INTERESTS
    ).id
    return ids


QUERY = "nurse hospital peanuts Lisbon hiking"


def test_health_needs_no_token_and_says_nothing_of_the_vault(client: TestClient) -> None:
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__}


def test_post_memories_stores_the_conversation_and_extracts(vault: Vault, app_for: Any) -> None:
    api = app_for("chat")
    body = {
        "messages": CHAT,
        "agent_id": "agent-1",
        "thread_id": "thread-7",
        "source": "chat",
        "metadata": {"timestamp": "2026-01-05T09:30:00+01:00", "channel": "web"},
    }
    r = api.post("/memories", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["success"] is True and out["added"] is True and out["out_of_scope"] == 0
    texts = {m["memory"] for m in out["memories"]}
    assert any("nurse" in t for t in texts) and any("sailing" in t for t in texts)
    assert out["memories_created"] == len(out["memories"])
    assert out["categories_detected"] == ["career", "interests"]
    memory = out["memories"][0]
    assert set(memory) == MEMORY_FIELDS
    assert memory["source"] == out["source_id"]
    assert memory["observed_at"] == "2026-01-05T08:30:00.000Z"
    assert memory["type"] == "semantic" and memory["status"] == "active"
    source = vault.get_source(out["source_id"])
    assert source.external_id == "thread-7" and source.origin == "chat"
    assert source.created_at == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    assert [m.role for m in source.messages] == ["user", "assistant"]

    again = api.post("/memories", json=body).json()
    assert again["added"] is False and again["memories_created"] == 0
    assert again["source_id"] == out["source_id"]


def test_search_returns_scored_memories_and_the_bio(vault: Vault, app_for: Any) -> None:
    ids = seed(vault)
    vault.set_bio("A nurse who sails.")
    api = app_for("reader")
    r = api.post("/memories/search", json={"query": QUERY, "limit": 3, "rerank": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["user_bio"] == "A nurse who sails."
    assert out["turns"] == []
    assert 1 <= len(out["memories"]) <= 3
    scores = [m["score"] for m in out["memories"]]
    assert scores == sorted(scores, reverse=True)
    assert set(out["memories"][0]) == {*MEMORY_FIELDS, "score"}

    def found(**body: Any) -> set[str]:
        r = api.post("/memories/search", json={"query": QUERY, "include_bio": False, **body})
        assert r.status_code == 200, r.text
        assert r.json()["user_bio"] is None
        return {m["id"] for m in r.json()["memories"]}

    assert found(categories=["travel"]) == {ids["travel"]}
    assert found(kinds=["episodic"]) == {ids["hike"]} == found(types=["episodic"])
    assert found(tags=["WORK"]) == {ids["career"]}
    assert found(since="2100-01-01T00:00:00Z") == set()


def test_search_puts_conversation_turns_apart(vault: Vault, app_for: Any) -> None:
    vault.ingest([Message("user", "My sister Ana lives in Porto and loves sailing")])
    plain, chats = app_for("plain"), app_for("chats", Scope(conversations=True))
    query = {"query": "Ana Porto sailing", "include_bio": False}
    assert plain.post("/memories/search", json=query).json()["turns"] == []
    out = chats.post("/memories/search", json=query).json()
    assert out["turns"] and all(set(m) == {*MEMORY_FIELDS, "score"} for m in out["memories"])
    turn = out["turns"][0]
    assert turn["role"] == "user" and turn["turn"] == 0 and "Porto" in turn["text"]
    assert (
        chats.post("/memories/search", json={**query, "include_turns": False}).json()["turns"] == []
    )


def test_list_pages_and_filters(vault: Vault, app_for: Any) -> None:
    ids = seed(vault)
    api = app_for("lister")
    first = api.get("/memories", params={"limit": 2}).json()
    assert first["total"] == 4 and first["limit"] == 2 and first["offset"] == 0
    second = api.get("/memories", params={"limit": 2, "offset": 2}).json()
    seen = [m["id"] for m in first["memories"] + second["memories"]]
    assert sorted(seen) == sorted(ids.values())
    career_or_travel = api.get("/memories", params={"category": ["career", "travel"]}).json()
    assert {m["id"] for m in career_or_travel["memories"]} == {ids["career"], ids["travel"]}
    assert [m["id"] for m in api.get("/memories?kind=episodic").json()["memories"]] == [ids["hike"]]
    assert [m["id"] for m in api.get("/memories?tag=trip").json()["memories"]] == [ids["travel"]]
    for bad in ("limit=0", "limit=101", "offset=-1", "category=hobbies", "kind=facts"):
        r = api.get("/memories?" + bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", bad


def test_get_patch_and_delete_one_memory(vault: Vault, app_for: Any) -> None:
    ids = seed(vault)
    api = app_for("editor")
    got = api.get(f"/memories/{ids['career']}").json()
    assert got["memory"] == "Works as a nurse at the city hospital"
    assert got["categories"] == ["career"] and got["tags"] == ["work"]

    r = api.patch(f"/memories/{ids['career']}", json={"memory": "Works as a head nurse"})
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["id"] != ids["career"] and edited["memory"] == "Works as a head nurse"
    assert api.get(f"/memories/{ids['career']}").json()["status"] == "superseded"

    change = {
        "categories": ["learning"],
        "type": "episodic",
        "tags": ["Night", "shift"],
        "valid_until": "2027-01-01T00:00:00",
    }
    again = api.patch(f"/memories/{edited['id']}", json=change).json()
    assert again["categories"] == ["learning"] and again["type"] == "episodic"
    assert again["tags"] == ["night", "shift"]
    assert again["valid_until"] == "2027-01-01T00:00:00.000Z"
    for nothing in ({}, {"type": "episodic", "tags": ["shift", "night"]}):
        r = api.patch(f"/memories/{again['id']}", json=nothing)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = api.patch(f"/memories/{ids['career']}", json={"memory": "Works"})  # superseded
    assert r.status_code == 422 and "active" in r.json()["error"]["message"]

    r = api.delete(f"/memories/{again['id']}")
    assert r.status_code == 204 and r.content == b""
    assert api.get(f"/memories/{again['id']}").status_code == 404
    assert api.delete(f"/memories/{again['id']}").json()["error"]["code"] == "not_found"


def test_profile_and_bio(vault: Vault, app_for: Any) -> None:
    seed(vault)
    vault.add("Loves sailing", category=Category.INTERESTS)
    api = app_for("me", Scope(write=parse_categories("identity")))
    profile = api.get("/profile").json()
    assert profile["bio"] and profile["built_at"].endswith("Z")
    sections = {s["category"]: s for s in profile["sections"]}
    assert {"career", "health", "interests"} <= set(sections)
    assert sections["career"]["memory_ids"] and sections["career"]["summary"]
    assert any(i["kind"] == "like" and "sailing" in i["text"] for i in profile["insights"])
    derived = api.get("/profile/bio").json()["bio"]
    assert derived == profile["bio"]

    assert api.patch("/profile/bio", json={"bio": "A nurse   who sails."}).json() == {
        "bio": "A nurse who sails."
    }
    assert api.get("/profile/bio").json() == {"bio": "A nurse who sails."}
    assert api.patch("/profile/bio", json={"bio": None}).json() == {"bio": derived}

    other = app_for("other", Scope(write=parse_categories("career")))
    r = other.patch("/profile/bio", json={"bio": "Someone else"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert api.patch("/profile/bio", json={"bio": "   "}).status_code == 422


def test_post_conversations(vault: Vault, app_for: Any) -> None:
    api = app_for("importer")
    body = {"messages": CHAT, "title": "Work chat", "created_at": "2026-02-01T10:00:00Z"}
    kept = api.post("/conversations", json={**body, "extract": False})
    assert kept.status_code == 201, kept.text
    out = kept.json()
    assert out["added"] and out["turns"] == 2 and out["memories_created"] == 0
    assert out["memories"] == [] and vault.list().total == 0
    source = vault.get_source(out["source_id"])
    assert source.title == "Work chat" and source.origin == "importer"

    chat = [*CHAT, {"role": "user", "content": "My sister Ana lives in Porto."}]
    made = api.post("/conversations", json={"messages": chat, "external_id": "c-1"}).json()
    assert made["added"] and made["turns"] == 3 and made["memories_created"] >= 2
    assert vault.get_source(made["source_id"]).external_id == "c-1"


def test_tokens_in_either_header_and_refusals(
    vault: Vault, app_for: Any, client: TestClient
) -> None:
    seed(vault)
    bearer = app_for("one")
    keyed = app_for("two", api_key=True)
    assert bearer.get("/memories").status_code == 200
    assert keyed.get("/memories").status_code == 200

    def refused(headers: dict[str, str]) -> str:
        r = client.get("/v1/memories", headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert set(r.json()) == {"error"} and r.json()["error"]["code"] == "unauthenticated"
        assert r.json()["error"]["type"] == "authentication_error"  # as OpenAI's clients read
        return str(r.json()["error"]["message"])

    assert "missing token" in refused({})
    assert "missing token" in refused({"Authorization": "Basic dXNlcjpwdw=="})
    unknown = refused({"Authorization": "Bearer msk_not-a-token"})
    assert refused({"X-API-Key": "msk_not-a-token"}) == unknown
    vault.revoke_app("one")
    assert refused(bearer.headers) == unknown  # revoked looks like unknown
    assert keyed.post("/memories/search", json={"query": "x"}).status_code == 200


def test_an_app_sees_only_its_scope(vault: Vault, app_for: Any) -> None:
    ids = seed(vault)
    api = app_for("career", Scope(read=parse_categories("career")))
    hits = api.post("/memories/search", json={"query": QUERY, "limit": 20}).json()
    assert [m["id"] for m in hits["memories"]] == [ids["career"]]
    assert [m["id"] for m in api.get("/memories").json()["memories"]] == [ids["career"]]
    assert api.get("/memories").json()["total"] == 1
    assert api.get(f"/memories/{ids['career']}").status_code == 200

    hidden = api.get(f"/memories/{ids['health']}")
    missing = api.get("/memories/m-0000000000")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"].replace(ids["health"], "X") == missing.json()["error"][
        "message"
    ].replace("m-0000000000", "X")
    assert api.patch(f"/memories/{ids['health']}", json={"memory": "x"}).status_code == 404
    assert api.delete(f"/memories/{ids['health']}").status_code == 404


def test_writes_outside_the_scope_are_403_and_write_nothing(vault: Vault, app_for: Any) -> None:
    ids = seed(vault)
    api = app_for("career", Scope(read=parse_categories("all"), write=parse_categories("career")))
    reader = app_for("reader", Scope(write=frozenset()))
    before = vault.log.count()
    attempts = [
        api.patch(f"/memories/{ids['travel']}", json={"memory": "Is flying to Porto"}),
        api.patch(f"/memories/{ids['career']}", json={"categories": ["health"]}),
        api.delete(f"/memories/{ids['travel']}"),
        reader.post("/memories", json={"messages": CHAT}),
        reader.post("/conversations", json={"messages": CHAT}),
    ]
    for r in attempts:
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    assert vault.log.count() == before
    assert vault.sources() == []
    ok = api.patch(f"/memories/{ids['career']}", json={"memory": "Works as a head nurse"})
    assert ok.status_code == 200

    out = api.post(
        "/memories",
        json={
            "messages": [{"role": "user", "content": "I work at Acme. I am allergic to shellfish."}]
        },
    ).json()
    assert {c for m in out["memories"] for c in m["categories"]} == {"career"}
    assert out["out_of_scope"] >= 1


def test_the_ledger_records_what_each_read_returned(vault: Vault, app_for: Any) -> None:
    ids = seed(vault)
    api = app_for("notes", Scope(read=parse_categories("career,travel")))
    search = api.post(
        "/memories/search", json={"query": "Where does the nurse work?", "include_bio": False}
    ).json()
    got = api.get(f"/memories/{ids['travel']}").json()
    page = api.get("/memories", params={"limit": 1}).json()
    ledger = vault.disclosures(app="notes")
    assert [d.action for d in ledger] == ["list", "get", "search"]
    assert ledger[2].query == "Where does the nurse work?"
    assert list(ledger[2].memory_ids) == [m["id"] for m in search["memories"]]
    assert list(ledger[1].memory_ids) == [got["id"]]
    assert list(ledger[0].memory_ids) == [m["id"] for m in page["memories"]]
    assert vault.disclosures(memory_id=ids["health"]) == []

    api.post("/memories/search", json={"query": "nurse"})  # with the bio
    bio = vault.disclosures(app="notes")[0]
    assert bio.action == "bio"  # what the bio was written from, and only that
    assert set(bio.memory_ids) <= {ids["career"], ids["travel"]}


def test_over_the_rate_limit_is_429_with_retry_after(app_for: Any) -> None:
    api = app_for("slow", rate=1)  # bursts of 10, then one a minute
    statuses = [api.get("/memories").status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    r = api.get("/memories")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/memories", {"messages": []}),
        ("post", "/memories", {"messages": [{"role": "document", "content": "x"}]}),
        ("post", "/memories", {"messages": [{"role": "user", "content": "x"}] * 1001}),
        ("post", "/memories", {"messages": CHAT, "metadata": {"timestamp": 1767600000}}),
        ("post", "/memories", {"messages": CHAT, "metadata": {"timestamp": "9999-12-31T23:00Z"}}),
        ("post", "/memories/search", {"query": ""}),
        ("post", "/memories/search", {"query": "x", "limit": "5"}),
        ("post", "/memories/search", {"query": "x", "limit": 101}),
        ("post", "/memories/search", {"query": "x", "include_bio": "yes"}),
        ("post", "/memories/search", {"query": "x", "categories": ["hobbies"]}),
        ("patch", "/memories/m-1", {"memory": "x" * 10_001}),
        ("patch", "/memories/m-1", {"memory": " \n "}),
        ("patch", "/memories/m-1", {"categories": ["career", "health"]}),
        ("patch", "/profile/bio", {}),
        ("post", "/conversations", {"messages": CHAT, "extract": 0}),
    ],
)
def test_bad_input_is_a_422_validation_error(
    app_for: Any, method: str, path: str, body: dict[str, Any]
) -> None:
    r = getattr(app_for("strict"), method)(path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["message"]


def test_malformed_requests_keep_the_error_shape(app_for: Any) -> None:
    api = app_for("sloppy")
    lone_surrogate = b'{"query": "x\\ud800"}'
    for r, status, code in (
        (api.post("/memories/search", content=b"{not json"), 422, "validation_error"),
        (api.post("/memories/search", content=lone_surrogate), 422, "validation_error"),
        (api.get("/nowhere"), 404, "not_found"),
        (api.put("/memories"), 405, "method_not_allowed"),
    ):
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Python's temp dir, moved where the canary scan can look (a spooled body would land
    there)."""
    path = tmp_path / "scratch"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path


def test_the_canary_never_reaches_the_disk(
    vault: Vault, home: Path, app_for: Any, scratch: Path
) -> None:
    marker = f"CANARY-{uuid.uuid4().hex[:12]}-plum"
    api = app_for("canary", Scope(conversations=True))
    said = [{"role": "user", "content": f"I work as a locksmith. I love {marker}."}]
    posted = api.post("/memories", json={"messages": said, "thread_id": f"t-{marker}"})
    assert posted.status_code == 201, posted.text
    assert any(marker in m["memory"] for m in posted.json()["memories"])
    conv = {"messages": [*said, {"role": "assistant", "content": marker}], "title": marker}
    assert api.post("/conversations", json=conv).status_code == 201
    hits = api.post("/memories/search", json={"query": f"locksmith {marker}"}).json()
    assert any(marker in t["text"] for t in hits["turns"])
    memory = next(m["id"] for m in posted.json()["memories"] if marker in m["memory"])
    edit = {"memory": f"Loves {marker}-2", "tags": [marker]}
    assert api.patch(f"/memories/{memory}", json=edit).status_code == 200
    assert api.patch("/profile/bio", json={"bio": f"A locksmith, {marker}"}).status_code == 200

    assert (home / "vault.db-wal").exists()  # still open: the WAL holds the latest pages
    assert scan(home, marker) == []
    assert scan(scratch, marker) == []
    vault.close()
    assert scan(home, marker) == []
