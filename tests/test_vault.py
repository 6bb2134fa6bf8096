"""The Vault API end to end, on a real encrypted vault."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import OTHER_PASSPHRASE, PASSPHRASE, FixedClock, create_vault, open_vault
from memsync.crypto.device import FAST_KDF
from memsync.errors import (
    AmbiguousId,
    BadRecoveryPhrase,
    NotFound,
    UsageError,
    VaultExists,
    VaultNotFound,
    WeakPassphrase,
    WrongPassphrase,
)
from memsync.index.embed import HashEmbedder
from memsync.model import (
    Category,
    Kind,
    Message,
    Provenance,
    SearchFilters,
    SearchHit,
    SearchMode,
    Status,
)
from memsync.store import state
from memsync.vault import NewVault, Vault

# Opening, closing, passphrases and recovery.


def test_create_close_open_keeps_everything(home: Path) -> None:
    made = create_vault(home, device_name="laptop")
    v = made.vault
    m = v.add("Prefers short answers", category=Category.PRODUCTIVITY, tags=["Style", "style "])
    src = v.ingest([Message("user", "I live in Porto"), Message("assistant", "Noted")]).source
    info = v.info()
    before = state.digest(v.conn)
    v.close()

    assert sorted(p.name for p in home.iterdir()) == ["device.key", "vault.db", "vault.json"]
    with open_vault(home) as again:
        assert state.digest(again.conn) == before
        got = again.get(m.id)
        assert (got.text, got.category, got.tags, got.status) == (
            "Prefers short answers",
            Category.PRODUCTIVITY,
            ("style",),
            Status.ACTIVE,
        )
        assert again.get_source(src.id).messages == src.messages
        assert again.info() == info
        assert [h.memory.id for h in again.search("short answers") if h.memory][:1] == [m.id]
        assert again.check().ok


def test_create_refuses_an_existing_vault_and_weak_passphrases(home: Path, tmp_path: Path) -> None:
    create_vault(home).vault.close()
    with pytest.raises(VaultExists):
        create_vault(home)
    with pytest.raises(WeakPassphrase):
        Vault.create(tmp_path / "weak", "password123", kdf=FAST_KDF, embedder=HashEmbedder())
    assert not (tmp_path / "weak").exists()


def test_open_without_a_vault_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(VaultNotFound):
        open_vault(tmp_path / "nothing-here")


def test_wrong_passphrase_is_refused(made: NewVault, home: Path) -> None:
    made.vault.close()
    with pytest.raises(WrongPassphrase):
        open_vault(home, "not the right pass phrase")
    with pytest.raises(UsageError):
        Vault.open(home)  # neither passphrase nor device secret
    open_vault(home).close()


def test_recover_enrols_a_new_device_and_retires_the_old_passphrase(
    home: Path, tmp_path: Path
) -> None:
    made = create_vault(home)
    old_device = made.vault.device.device_id
    m = made.vault.add("Has a cat named Miso")
    made.vault.close()

    with Vault.recover(
        home,
        "  " + made.recovery_phrase.upper() + " ",
        OTHER_PASSPHRASE,
        kdf=FAST_KDF,
        embedder=HashEmbedder(),
    ) as v:
        assert v.device.device_id != old_device
        assert v.get(m.id).text == "Has a cat named Miso"
        report = v.check()
        assert report.ok, report.problems
        assert report.devices == 2

    with pytest.raises(WrongPassphrase):
        open_vault(home, PASSPHRASE)
    with open_vault(home, OTHER_PASSPHRASE) as v:
        assert v.get(m.id).text == "Has a cat named Miso"
        assert v.info().log_entries == 3  # genesis device, the memory, the new device


def test_recover_refuses_a_foreign_or_malformed_phrase(home: Path, fast_dir: Path) -> None:
    made = create_vault(home)
    made.vault.close()
    other = create_vault(fast_dir / "other")
    other.vault.close()
    before = {p.name: p.read_bytes() for p in home.iterdir()}

    with pytest.raises(BadRecoveryPhrase):
        Vault.recover(home, other.recovery_phrase, OTHER_PASSPHRASE, kdf=FAST_KDF)
    words = made.recovery_phrase.split()
    for bad in (
        " ".join(words[:-1]),  # 23 words
        " ".join([*words[:-1], "notaword"]),
        " ".join([*words[:-1], "zoo" if words[-1] != "zoo" else "abandon"]),  # checksum
    ):
        with pytest.raises(BadRecoveryPhrase):
            Vault.recover(home, bad, OTHER_PASSPHRASE, kdf=FAST_KDF)
    assert {p.name: p.read_bytes() for p in home.iterdir()} == before
    open_vault(home).close()  # the old passphrase still works after failed recoveries


def test_check_is_ok_with_several_devices_and_survives_reopen(home: Path) -> None:
    made = create_vault(home)
    v = made.vault
    v.add("First device memory")
    v.close()
    passphrases = ["recovered pass phrase one", "recovered pass phrase two"]
    for i, pp in enumerate(passphrases):
        with Vault.recover(
            home, made.recovery_phrase, pp, kdf=FAST_KDF, embedder=HashEmbedder()
        ) as r:
            r.add(f"Memory from recovered device {i}")
            m = r.add(f"Edited later {i}")
            r.edit(m.id, text=f"Edited now {i}")
            r.ingest([Message("user", f"conversation number {i}")])
            report = r.check()
            assert report.ok, report.problems
            assert report.devices == i + 2
            digest = report.state_digest
    with open_vault(home, passphrases[-1]) as v:
        report = v.check()
        assert report.ok, report.problems
        assert (report.devices, report.state_digest) == (3, digest)
        assert len(v.list().items) == 5


# Memories: add, get, list.


def test_add_validates_its_input(vault: Vault) -> None:
    for bad in (
        lambda: vault.add("   "),
        lambda: vault.add("x", confidence=1.5),
        lambda: vault.add(
            "x",
            valid_from=vault.clock(),
            valid_until=vault.clock() - timedelta(days=1),
        ),
    ):
        with pytest.raises(UsageError):
            bad()
    assert vault.list().total == 0


def test_add_and_get_round_trip_every_field(vault: Vault, t0: datetime) -> None:
    vault.clock = FixedClock(t0)
    prov = Provenance(
        source_id="s-abc", turn=2, start=3, end=9, extractor="rules", extractor_version="2"
    )
    m = vault.add(
        "  Moving to Lisbon in March  ",
        kind=Kind.EPISODIC,
        category=Category.TRAVEL,
        tags=["Move", "lisbon", "move", " "],
        valid_from=t0,
        valid_until=t0 + timedelta(days=30),
        observed_at=t0 - timedelta(days=1),
        confidence=0.75,
        provenance=[prov],
    )
    assert m == vault.get(m.id)
    assert m.text == "Moving to Lisbon in March"
    assert (m.kind, m.category, m.tags) == (Kind.EPISODIC, Category.TRAVEL, ("lisbon", "move"))
    assert (m.created_at, m.updated_at, m.observed_at) == (t0, t0, t0 - timedelta(days=1))
    assert (m.valid_from, m.valid_until, m.confidence) == (t0, t0 + timedelta(days=30), 0.75)
    assert (m.status, m.supersedes, m.superseded_by, m.provenance) == (
        Status.ACTIVE,
        None,
        None,
        (prov,),
    )
    assert vault.add("No provenance given").provenance == (Provenance(),)


def test_list_filters(vault: Vault, t0: datetime) -> None:
    vault.clock = FixedClock(t0)
    day = timedelta(days=1)
    job = vault.add(
        "Works as a nurse", category=Category.CAREER, tags=["work"], observed_at=t0 - 10 * day
    )
    trip = vault.add(
        "Flying to Oslo",
        kind=Kind.EPISODIC,
        category=Category.TRAVEL,
        tags=["trip", "work"],
        valid_until=t0 + 5 * day,
        observed_at=t0 - 5 * day,
    )
    past = vault.add(
        "Visited Rome",
        kind=Kind.EPISODIC,
        category=Category.TRAVEL,
        tags=["trip"],
        valid_until=t0 - day,
        observed_at=t0 - 20 * day,
    )
    hobby = vault.add("Plays the cello", category=Category.INTERESTS, observed_at=t0 - 2 * day)
    old = vault.add("Likes tea", observed_at=t0 - 3 * day)
    new = vault.edit(old.id, text="Likes green tea")
    gone = vault.add("Secret to forget", observed_at=t0 - day)
    vault.forget(gone.id)

    def ids(**kw: object) -> list[str]:
        return [m.id for m in vault.list(SearchFilters(**kw)).items]  # type: ignore[arg-type]

    # Default: active, not expired, newest observation first.
    assert ids() == [hobby.id, new.id, trip.id, job.id]
    assert ids(kinds=(Kind.EPISODIC,)) == [trip.id]
    assert ids(kinds=(Kind.EPISODIC,), include_expired=True) == [trip.id, past.id]
    assert ids(categories=(Category.TRAVEL, Category.CAREER)) == [trip.id, job.id]
    assert ids(tags=("work",)) == [trip.id, job.id]
    assert ids(tags=("trip",), include_expired=True) == [trip.id, past.id]
    assert ids(tags=("nope",)) == []
    assert ids(since=t0 - 6 * day) == [hobby.id, new.id, trip.id]
    assert ids(until=t0 - 5 * day) == [job.id]  # until is exclusive
    assert ids(since=t0 - 10 * day, until=t0 - 4 * day) == [trip.id, job.id]
    assert ids(statuses=(Status.SUPERSEDED,)) == [old.id]
    assert ids(statuses=(Status.FORGOTTEN,)) == [gone.id]
    assert set(ids(statuses=(), include_expired=True)) == {
        job.id,
        trip.id,
        past.id,
        hobby.id,
        old.id,
        new.id,
        gone.id,
    }
    # Expiry is judged against the vault's clock.
    vault.clock = FixedClock(t0 + 6 * day)
    assert trip.id not in ids()
    assert ids(kinds=(Kind.EPISODIC,), include_expired=True) == [trip.id, past.id]


def test_list_pages(vault: Vault, t0: datetime) -> None:
    made = [vault.add(f"memory {i}", observed_at=t0 + timedelta(minutes=i)) for i in range(7)]
    newest_first = [m.id for m in reversed(made)]
    seen: list[str] = []
    offset = 0
    while True:
        page = vault.list(limit=3, offset=offset)
        assert (page.total, page.offset, page.limit) == (7, offset, 3)
        if not page.items:
            break
        seen += [m.id for m in page.items]
        offset += 3
    assert seen == newest_first
    assert [len(vault.list(limit=3, offset=o).items) for o in (0, 3, 6, 9)] == [3, 3, 1, 0]


# Ids.


def test_id_prefixes_resolve_uniquely_or_fail_clearly(vault: Vault) -> None:
    a = vault.add("alpha")
    b = vault.add("beta")
    src = vault.ingest([Message("user", "gamma")]).source
    # Find a prefix of a that b does not share.
    n = next(n for n in range(3, len(a.id) + 1) if not b.id.startswith(a.id[:n]))
    assert vault.resolve(a.id[:n]) == a.id
    assert vault.get(a.id[:n]).id == a.id
    assert vault.get(f"  {a.id} ").id == a.id
    assert vault.resolve(src.id[:-2]) == src.id
    assert vault.get_source(src.id[:-2]).id == src.id
    with pytest.raises(AmbiguousId, match="more than one"):
        vault.resolve("m-")
    with pytest.raises(AmbiguousId):
        vault.get("m")
    for missing in ("m-zzzzzzzzzzzz", "", "   ", "%", "_", "m-%"):
        with pytest.raises(NotFound):
            vault.get(missing)
    with pytest.raises(NotFound):
        vault.edit("m-nothing-like-this", text="x")
    with pytest.raises(NotFound):
        vault.forget("m-nothing-like-this")


def test_like_wildcards_in_a_prefix_are_literal(vault: Vault) -> None:
    vault.add("one")
    vault.add("two")
    # "_" and "%" would match anything if they reached LIKE unescaped.
    with pytest.raises(NotFound):
        vault.resolve("m_")
    with pytest.raises(NotFound):
        vault.resolve("%")


# Edit and forget.


def test_edit_supersedes_and_keeps_history(vault: Vault, t0: datetime) -> None:
    vault.clock = FixedClock(t0)
    v1 = vault.add("Lives in Porto", category=Category.IDENTITY, tags=["home"])
    vault.clock = FixedClock(t0 + timedelta(days=1))
    v2 = vault.edit(v1.id, text="Lives in Lisbon")
    vault.clock = FixedClock(t0 + timedelta(days=2))
    v3 = vault.edit(v2.id, category=Category.TRAVEL, tags=["Home", "moved"])

    old1, old2 = vault.get(v1.id), vault.get(v2.id)
    assert (old1.status, old1.supersedes, old1.superseded_by) == (Status.SUPERSEDED, None, v2.id)
    assert (old2.status, old2.supersedes, old2.superseded_by) == (
        Status.SUPERSEDED,
        v1.id,
        v3.id,
    )
    assert (v3.status, v3.supersedes, v3.superseded_by) == (Status.ACTIVE, v2.id, None)
    assert old1.text == "Lives in Porto"  # history is kept, never overwritten
    assert (v3.text, v3.category, v3.tags) == (
        "Lives in Lisbon",
        Category.TRAVEL,
        ("home", "moved"),
    )
    assert v2.created_at == t0 + timedelta(days=1)
    assert old1.updated_at == t0 + timedelta(days=1)
    for member in (v1, v2, v3):
        assert [m.id for m in vault.history(member.id)] == [v1.id, v2.id, v3.id]
    assert [m.id for m in vault.list().items] == [v3.id]
    hits = vault.search("Lives Lisbon Porto")
    assert [h.memory.id for h in hits if h.memory] == [v3.id]
    assert vault.check().ok


def test_edit_is_refused_for_inactive_or_unchanged_memories(vault: Vault) -> None:
    m = vault.add("Drinks coffee")
    with pytest.raises(UsageError, match="nothing to change"):
        vault.edit(m.id, text="Drinks coffee")
    newer = vault.edit(m.id, text="Drinks tea")
    with pytest.raises(UsageError, match="superseded"):
        vault.edit(m.id, text="Drinks water")
    vault.forget(newer.id)
    with pytest.raises(UsageError, match="forgotten"):
        vault.edit(newer.id, text="Drinks juice")
    assert vault.list().total == 0
    # device, add, edit, and one forget that reaches both versions: refusals wrote nothing
    assert len(vault.log.entries()) == 4


def test_forget_leaves_a_tombstone(vault: Vault) -> None:
    keep = vault.add("Keeps bees on the roof")
    m = vault.add("Owes money to a cousin", category=Category.FINANCE, tags=["debt"])
    assert any(h.memory and h.memory.id == m.id for h in vault.search("owes money cousin"))
    vault.forget(m.id)

    shown = vault.get(m.id)
    assert (shown.status, shown.text, shown.tags) == (Status.FORGOTTEN, "", ())
    row = vault.conn.execute("SELECT text FROM memories WHERE id=?", (m.id,)).fetchone()
    assert row == ("",)
    texts = [r[0] for r in vault.conn.execute("SELECT text FROM items")]
    assert not any("cousin" in t for t in texts)
    assert vault.conn.execute(
        "SELECT count(*) FROM items_fts WHERE items_fts MATCH 'cousin'"
    ).fetchone() == (0,)
    assert vault.conn.execute(
        "SELECT count(*) FROM memory_tags WHERE memory_id=?", (m.id,)
    ).fetchone() == (0,)
    assert [x.id for x in vault.list().items] == [keep.id]
    assert [x.id for x in vault.list(SearchFilters(statuses=(Status.FORGOTTEN,))).items] == [m.id]
    every = SearchFilters(statuses=(), include_expired=True)
    for filters in (SearchFilters(), every):
        assert not any(
            h.memory and h.memory.id == m.id
            for h in vault.search("owes money cousin debt", filters=filters)
        )
    with pytest.raises(UsageError, match="already forgotten"):
        vault.forget(m.id)
    assert vault.check().ok


# Conversations.


def test_ingest_stores_the_source_and_indexes_every_non_system_turn(
    vault: Vault, t0: datetime
) -> None:
    msgs = [
        Message("system", "You are a helpful assistant zebracorn"),
        Message("user", "My daughter plays the bassoon", timestamp=t0, name="ana"),
        Message("assistant", "A bassoon is a fine instrument", timestamp=t0 + timedelta(minutes=1)),
        Message("user", "She practises on Tuesdays", timestamp=t0 + timedelta(minutes=2)),
        Message("tool", "weather lookup returned drizzle", timestamp=t0 + timedelta(minutes=3)),
    ]
    result = vault.ingest(msgs, title="Music chat", origin="chatgpt")
    assert result.added
    src = result.source
    assert src.messages == tuple(msgs)
    assert (src.title, src.origin, src.created_at) == ("Music chat", "chatgpt", t0)
    assert vault.get_source(src.id) == src
    assert vault.sources() == [src]

    # Every turn is in the keyword index (replies and tool output only there).
    for index, query in ((1, "daughter"), (2, "instrument"), (3, "Tuesdays"), (4, "drizzle")):
        turns = [h.turn for h in vault.search(query, mode=SearchMode.KEYWORD) if h.turn]
        assert turns, query
        assert (turns[0].source_id, turns[0].index, turns[0].text) == (
            src.id,
            index,
            msgs[index].content,
        )
        assert turns[0].source_title == "Music chat"
    assert not any(h.turn and h.turn.index == 0 for h in vault.search("zebracorn helpful"))
    assert vault.info().sources == 1


def test_ingesting_the_same_messages_twice_adds_nothing(vault: Vault) -> None:
    msgs = [Message("user", "I am allergic to cats"), Message("assistant", "Noted")]
    first = vault.ingest(msgs)
    entries = len(vault.log.entries())
    digest = state.digest(vault.conn)
    second = vault.ingest(list(msgs), title="another title")
    assert (first.added, second.added) == (True, False)
    assert second.source.id == first.source.id
    assert len(vault.log.entries()) == entries
    assert state.digest(vault.conn) == digest
    # A different conversation is a different source.
    assert vault.ingest([*msgs, Message("user", "and dogs")]).added
    with pytest.raises(UsageError):
        vault.ingest([])


def test_memory_provenance_points_at_a_turn(vault: Vault) -> None:
    src = vault.ingest([Message("user", "hi"), Message("user", "I run marathons")]).source
    m = vault.add("Runs marathons", provenance=[Provenance(source_id=src.id, turn=1)])
    assert vault.get(m.id).provenance == (Provenance(source_id=src.id, turn=1),)
    assert vault.check().ok


# Time.


def test_search_now_parameter_decides_what_is_expired(vault: Vault, t0: datetime) -> None:
    vault.clock = FixedClock(t0)
    trip = vault.add(
        "Conference in Montreal", kind=Kind.EPISODIC, valid_until=t0 + timedelta(days=3)
    )

    def found(**kw: object) -> bool:
        return any(h.memory and h.memory.id == trip.id for h in vault.search("Montreal", **kw))  # type: ignore[arg-type]

    assert found()
    assert found(now=t0 + timedelta(days=2))
    assert not found(now=t0 + timedelta(days=3))
    assert not found(now=t0 + timedelta(days=4))
    assert found(now=t0 + timedelta(days=4), filters=SearchFilters(include_expired=True))
    vault.clock = FixedClock(t0 + timedelta(days=4))
    assert not found()
    assert found(now=t0)


def test_search_rejects_a_bad_k(vault: Vault) -> None:
    with pytest.raises(UsageError):
        vault.search("x", k=0)


def test_tag_filters_match_the_way_tags_are_stored(vault: Vault) -> None:
    """Tags are stored trimmed and lower-cased; a filter written as the user typed the
    tag (as any adapter may pass it) must find them."""
    m = vault.add("Quarterly review on Monday", tags=["Work Stuff", " Q3 "])
    for tag in ("Work Stuff", "work stuff", " WORK STUFF ", "Q3", "q3"):
        filters = SearchFilters(tags=(tag,))
        assert [x.id for x in vault.list(filters).items] == [m.id], tag
        assert memory_ids_of(vault.search("quarterly review", filters=filters)) == [m.id], tag


def memory_ids_of(hits: list[SearchHit]) -> list[str]:
    return [h.memory.id for h in hits if h.memory is not None]


def test_edit_validates_like_add(vault: Vault, t0: datetime) -> None:
    vault.clock = FixedClock(t0)
    m = vault.add("Trip to Kyoto", kind=Kind.EPISODIC, valid_from=t0)
    entries = vault.log.count()
    with pytest.raises(UsageError):
        vault.edit(m.id, text="   ")
    with pytest.raises(UsageError):
        vault.edit(m.id, valid_until=t0 - timedelta(days=1))  # before valid-from
    assert vault.log.count() == entries
    assert vault.get(m.id).status is Status.ACTIVE
