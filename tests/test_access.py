"""Apps, scopes and the disclosure ledger on a real vault (`memsync.disclose.access`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import open_vault
from memsync import Category, Kind, Message, NewVault, SearchFilters, Vault
from memsync.errors import AccessDenied, NotFound, Unauthenticated, UsageError
from memsync.scope import Scope, parse_categories, parse_kinds
from memsync.store.apps import hash_token


def _seed(vault: Vault) -> dict[str, str]:
    ids = {}
    for key, text, category in (
        ("career", "Works as a nurse at the city hospital", Category.CAREER),
        ("health", "Is allergic to peanuts", Category.HEALTH),
        ("private", "Keeps a diary about the divorce", Category.PRIVATE),
        ("travel", "Is flying to Lisbon in March", Category.TRAVEL),
    ):
        ids[key] = vault.add(text, category=category).id
    ids["plain"] = vault.add("Nurse shifts start at seven").id  # no category
    return ids


def test_tokens_are_shown_once_and_stored_hashed(vault: Vault) -> None:
    app, token = vault.add_app("cursor")
    assert token.startswith("msk_") and len(token) > 40
    assert vault.app_for_token(token) == app
    assert vault.app_for_token(token + "x") is None
    stored = [r[0] for r in vault.conn.execute("SELECT token_hash FROM apps")]
    assert stored == [hash_token(token)] and token not in stored[0]
    with pytest.raises(UsageError, match="exists"):
        vault.add_app("cursor")
    vault.revoke_app("cursor")
    assert vault.app_for_token(token) is None
    again, token2 = vault.add_app("cursor")  # a revoked name can be registered anew
    assert again.active and vault.app_for_token(token2) == again


def test_bad_names_and_scopes_are_refused(vault: Vault) -> None:
    for name in ("", "Has Space", "x" * 65, "semi;colon"):
        with pytest.raises(UsageError):
            vault.add_app(name)
    with pytest.raises(UsageError, match="unknown category"):
        parse_categories("career,hobbies")
    with pytest.raises(UsageError, match="unknown kind"):
        parse_kinds("facts")
    assert Category.PRIVATE not in parse_categories("all")
    assert Category.PRIVATE in parse_categories("all,private")
    assert parse_categories("none") == frozenset()


def test_search_sees_only_the_scope_and_private_needs_naming(vault: Vault) -> None:
    ids = _seed(vault)
    vault.add_app("everything", Scope(read=parse_categories("all")))
    vault.add_app("career", Scope(read=parse_categories("career")))
    vault.add_app("secret", Scope(read=parse_categories("all,private")))
    query = "nurse peanuts diary divorce Lisbon shifts"

    def seen(app: str) -> set[str]:
        hits = vault.as_app(app).search(query, k=20)
        assert all(h.memory is not None for h in hits)  # no conversations granted
        return {h.memory.id for h in hits if h.memory}

    assert seen("everything") == {ids[k] for k in ("career", "health", "travel", "plain")}
    assert seen("career") == {ids["career"]}
    assert ids["private"] in seen("secret")


def test_out_of_scope_is_invisible_not_forbidden(vault: Vault) -> None:
    ids = _seed(vault)
    vault.add_app("career", Scope(read=parse_categories("career")))
    session = vault.as_app("career")
    with pytest.raises(NotFound) as hidden:
        session.get(ids["health"])
    with pytest.raises(NotFound) as missing:
        session.get("m-0000000000")
    assert str(hidden.value).replace(ids["health"], "X") == str(missing.value).replace(
        "m-0000000000", "X"
    )
    with pytest.raises(NotFound):
        session.edit(ids["health"], text="Not allergic")
    with pytest.raises(NotFound):
        session.forget(ids["health"])
    assert [m.id for m in session.list().items] == [ids["career"]]
    assert session.list().total == 1


def test_kinds_limit_reads_and_writes(vault: Vault) -> None:
    vault.add("Went hiking on Sunday", kind=Kind.EPISODIC, category=Category.INTERESTS)
    fact = vault.add("Loves hiking", category=Category.INTERESTS)
    vault.add_app("facts", Scope(kinds=parse_kinds("semantic")))
    session = vault.as_app("facts")
    assert [m.id for m in session.list().items] == [fact.id]
    with pytest.raises(AccessDenied):
        session.add("Is running a marathon next week", kind=Kind.EPISODIC)


def test_writes_outside_the_scope_are_refused_and_write_nothing(vault: Vault) -> None:
    ids = _seed(vault)
    vault.add_app("career", Scope(read=parse_categories("all"), write=parse_categories("career")))
    session = vault.as_app("career")
    before = vault.log.count()
    with pytest.raises(AccessDenied):
        session.add("Has a dentist appointment", category=Category.HEALTH)
    with pytest.raises(AccessDenied):
        session.edit(ids["travel"], text="Is flying to Porto")
    with pytest.raises(AccessDenied):
        session.edit(ids["career"], category=Category.HEALTH)
    with pytest.raises(AccessDenied):
        session.forget(ids["travel"])
    assert vault.log.count() == before
    edited = session.edit(ids["career"], text="Works as a head nurse at the city hospital")
    assert edited.category is Category.CAREER
    guessed = session.add("Works night shifts at the hospital")
    assert guessed.category is Category.CAREER


def test_every_disclosure_is_recorded_with_app_time_and_query(vault: Vault) -> None:
    ids = _seed(vault)
    vault.add_app("notes", Scope(read=parse_categories("career,travel")))
    session = vault.as_app("notes")
    hits = session.search("Where does the nurse work?", k=3)
    session.get(ids["travel"])
    session.list(limit=1)
    block = session.context("Lisbon trip", budget_tokens=200)
    assert block.items
    ledger = vault.disclosures(app="notes")
    assert [d.action for d in ledger] == ["context", "list", "get", "search"]
    search = ledger[-1]
    assert search.query == "Where does the nurse work?"
    assert search.memory_ids == tuple(h.memory.id for h in hits if h.memory)
    assert ledger[0].memory_ids == tuple(i.memory.id for i in block.items if i.memory)
    who = vault.disclosures(memory_id=ids["travel"])
    assert {d.action for d in who} >= {"get", "context"} and all(d.app == "notes" for d in who)
    assert vault.disclosures(memory_id=ids["health"]) == []
    assert vault.check().ok  # the ledger is part of the log and rebuilds from it


def test_nothing_found_records_nothing(vault: Vault) -> None:
    vault.add_app("notes", Scope(read=parse_categories("finance")))
    assert vault.as_app("notes").search("anything at all") == []
    assert vault.disclosures() == []


def test_conversations_are_readable_only_when_granted(vault: Vault) -> None:
    vault.ingest([Message("user", "My sister Ana lives in Porto and loves sailing")])
    vault.add_app("plain", Scope())
    vault.add_app("chats", Scope(conversations=True))
    assert all(h.turn is None for h in vault.as_app("plain").search("Ana sailing Porto"))
    hits = vault.as_app("chats").search("Ana sailing Porto")
    turns = [h.turn for h in hits if h.turn is not None]
    assert turns
    recorded = vault.disclosures(app="chats")[0].items
    assert any(i.source_id == turns[0].source_id and i.turn == turns[0].index for i in recorded)


def test_ingest_keeps_to_the_write_scope(vault: Vault) -> None:
    vault.add_app("work", Scope(read=parse_categories("all"), write=parse_categories("career")))
    out = vault.as_app("work").ingest(
        [Message("user", "I work as a data engineer at Acme. I am allergic to shellfish.")]
    )
    assert out.result.added
    assert {m.category for m in out.memories} == {Category.CAREER}
    assert out.out_of_scope >= 1
    assert not any("shellfish" in m.text for m in vault.list().items)
    assert vault.get_source(out.result.source.id).origin == "work"


def test_revocation_takes_effect_at_once(vault: Vault) -> None:
    _seed(vault)
    vault.add_app("gone")
    session = vault.as_app("gone")
    session.search("nurse")
    vault.revoke_app("gone")
    with pytest.raises(Unauthenticated):
        session.search("nurse")
    assert vault.disclosures(app="gone")  # the ledger keeps what it was given


def test_profile_for_an_app_hides_what_it_may_not_read(vault: Vault) -> None:
    _seed(vault)
    vault.add("Loves sailing", category=Category.INTERESTS)
    vault.add_app("all", Scope())
    vault.add_app("career", Scope(read=parse_categories("career")))
    full = vault.as_app("all").profile()
    assert Category.PRIVATE not in {s.category for s in full.sections}
    assert Category.HEALTH in {s.category for s in full.sections}
    narrow = vault.as_app("career").profile()
    assert {s.category for s in narrow.sections} == {Category.CAREER}
    assert "sailing" not in narrow.bio.lower()


def test_bio_written_by_the_person_wins_and_needs_identity(vault: Vault) -> None:
    _seed(vault)
    vault.add_app("writer", Scope(write=parse_categories("identity")))
    vault.add_app("reader", Scope(write=parse_categories("career")))
    assert vault.as_app("writer").set_bio("A nurse who sails.").bio == "A nurse who sails."
    assert vault.profile().bio == "A nurse who sails."
    with pytest.raises(AccessDenied):
        vault.as_app("reader").set_bio("Someone else")
    vault.set_bio(None)
    assert vault.profile().bio != "A nurse who sails."
    assert vault.check().ok


def test_apps_survive_reopening_and_rebuild(made: NewVault, home: Path) -> None:
    vault = made.vault
    _, token = vault.add_app("cursor", Scope(read=parse_categories("career")))
    vault.close()
    again = open_vault(home)
    app = again.app_for_token(token)
    assert app is not None and app.scope.read == {Category.CAREER}
    assert app.created_at <= datetime.now(UTC)
    assert again.check().ok
    again.close()


def test_search_filters_narrow_within_the_scope(vault: Vault) -> None:
    ids = _seed(vault)
    vault.add_app("two", Scope(read=parse_categories("career,travel")))
    hits = vault.as_app("two").search(
        "nurse Lisbon peanuts", filters=SearchFilters(categories=(Category.TRAVEL,))
    )
    assert [h.memory.id for h in hits if h.memory] == [ids["travel"]]
    hits = vault.as_app("two").search(
        "nurse Lisbon peanuts", filters=SearchFilters(categories=(Category.HEALTH,))
    )
    assert hits == []


def test_the_bio_alone_discloses_only_what_it_was_written_from(vault: Vault) -> None:
    ids = _seed(vault)
    vault.add_app("all", Scope())
    session = vault.as_app("all")
    bio = session.bio()
    assert bio and "nurse" in bio.lower()
    recorded = vault.disclosures(app="all")[0]
    assert recorded.action == "bio"
    assert ids["career"] in recorded.memory_ids and ids["health"] not in recorded.memory_ids
    before = vault.profile()
    assert session.bio() == bio and vault.profile() is before  # kept, not rebuilt
    vault.add("Is a keen sailor", category=Category.IDENTITY)
    assert session.bio() == bio  # a little stale is fine for the bio alone
    assert vault.profile() is not before  # the whole profile is rebuilt after a change
