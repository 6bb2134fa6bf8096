"""Damaged, foreign and tampered vault files fail loudly, and failing writes nothing."""

from __future__ import annotations

import gc
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import FAST_TMP, PASSPHRASE, create_vault, open_vault, tree_digest
from memsync.crypto.device import FAST_KDF
from memsync.errors import (
    BadRecoveryPhrase,
    CorruptVault,
    CryptoError,
    MemsyncError,
    VaultNotFound,
    WeakPassphrase,
    WrongPassphrase,
)
from memsync.model import Category, Message
from memsync.vault import Vault

PAGE = 4096


def populate(vault: Vault) -> None:
    for i in range(40):
        vault.add(
            f"memory {i}: likes walking by the river",
            category=Category.INTERESTS,
            tags=[f"t{i % 3}"],
        )
    vault.ingest([Message("user", f"turn {i} about boats") for i in range(10)])
    m = vault.add("to be edited")
    vault.forget(vault.edit(m.id, text="edited once").id)


@pytest.fixture(scope="module")
def template_home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        home = Path(tmp) / "home"
        made = create_vault(home)
        populate(made.vault)
        made.vault.close()
        yield home


@pytest.fixture
def closed_home(template_home: Path, home: Path) -> Path:
    """A populated vault, closed (so everything is checkpointed into vault.db)."""
    shutil.copytree(template_home, home)
    return home


def assert_one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text


def refused_without_writing(
    home: Path,
    exc_type: type[BaseException] | tuple[type[BaseException], ...],
    passphrase: str = PASSPHRASE,
) -> BaseException:
    before = tree_digest(home)
    with pytest.raises(exc_type) as info:
        open_vault(home, passphrase)
    gc.collect()  # a connection left behind by a failed open would show up as -wal/-shm
    assert tree_digest(home) == before
    assert_one_line(info.value)
    return info.value


# Wrong secrets.


def test_wrong_passphrase_leaves_every_file_unchanged(closed_home: Path) -> None:
    for wrong in ("a strong pass phrase 43", "", PASSPHRASE.upper(), PASSPHRASE + " "):
        refused_without_writing(closed_home, WrongPassphrase, wrong)
    open_vault(closed_home).close()


def test_wrong_passphrase_while_the_vault_is_open_elsewhere(home: Path) -> None:
    made = create_vault(home)
    populate(made.vault)
    try:
        assert (home / "vault.db-wal").exists()
        refused_without_writing(home, WrongPassphrase, "a strong pass phrase 43")
    finally:
        made.vault.close()


def test_failed_recoveries_leave_every_file_unchanged(closed_home: Path, fast_dir: Path) -> None:
    foreign = create_vault(fast_dir / "foreign")
    foreign.vault.close()
    before = tree_digest(closed_home)
    for phrase, new_pass, error in (
        (foreign.recovery_phrase, "fresh strong pass phrase", BadRecoveryPhrase),
        ("abandon " * 23 + "art", "fresh strong pass phrase", BadRecoveryPhrase),
        ("not a phrase at all", "fresh strong pass phrase", BadRecoveryPhrase),
        (foreign.recovery_phrase, "password123", WeakPassphrase),
    ):
        with pytest.raises(error) as info:
            Vault.recover(closed_home, phrase, new_pass, kdf=FAST_KDF)
        assert_one_line(info.value)
        assert tree_digest(closed_home) == before


# A damaged or foreign database.


def test_a_flipped_byte_anywhere_in_the_database_is_never_accepted(closed_home: Path) -> None:
    db = closed_home / "vault.db"
    pristine = db.read_bytes()
    assert len(pristine) >= 8 * PAGE
    offsets = [page * PAGE + PAGE // 2 for page in range(len(pristine) // PAGE)]
    offsets += [PAGE + 1, 2 * PAGE - 1, 3 * PAGE - 20, len(pristine) - 1, len(pristine) // 2]
    outcomes = {"open": 0, "check": 0}
    for offset in offsets:
        damaged = bytearray(pristine)
        damaged[offset] ^= 0x10
        db.write_bytes(bytes(damaged))
        try:
            vault = open_vault(closed_home)
        except CorruptVault as exc:
            assert_one_line(exc)
            outcomes["open"] += 1
            continue
        try:
            report = vault.check()
        finally:
            vault.close()
        assert not report.ok, f"a flipped byte at offset {offset} went unnoticed"
        assert report.problems
        outcomes["check"] += 1
    db.write_bytes(pristine)
    with open_vault(closed_home) as vault:
        assert vault.check().ok
    assert outcomes["open"] and outcomes["check"]  # both ways of noticing are exercised


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\0" * 8192,
        b"this is not a database at all\n" * 300,
        b"SQLite format 3\0" + b"\x10\x00\x01\x01" + b"\0" * 4076,
    ],
    ids=["empty", "zeros", "text", "plain-sqlite-header"],
)
def test_a_garbage_database_is_refused_with_a_readable_message(
    closed_home: Path, content: bytes
) -> None:
    (closed_home / "vault.db").write_bytes(content)
    exc = refused_without_writing(closed_home, CorruptVault)
    assert "database" in str(exc)


def test_a_truncated_database_is_never_accepted(closed_home: Path) -> None:
    db = closed_home / "vault.db"
    pristine = db.read_bytes()
    for size in (100, PAGE, 3 * PAGE, len(pristine) // 2, len(pristine) - PAGE):
        db.write_bytes(pristine[:size])
        try:
            vault = open_vault(closed_home)
        except CorruptVault:
            continue
        try:
            assert not vault.check().ok, f"truncated to {size} bytes went unnoticed"
        finally:
            vault.close()


def test_a_plain_sqlite_database_is_refused(closed_home: Path) -> None:
    import apsw

    db = closed_home / "vault.db"
    db.unlink()
    conn = apsw.Connection(str(db))
    conn.execute(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta "
        "VALUES('schema_version', '1')"
    )
    conn.close()
    refused_without_writing(closed_home, CorruptVault)


def test_a_missing_file_is_named(closed_home: Path) -> None:
    for name, error in (
        ("vault.db", CorruptVault),
        ("device.key", CorruptVault),
        ("vault.json", VaultNotFound),
    ):
        saved = (closed_home / name).read_bytes()
        (closed_home / name).unlink()
        exc = refused_without_writing(closed_home, error)
        assert name.split(".")[0] in str(exc).replace("_", ".")
        (closed_home / name).write_bytes(saved)
    open_vault(closed_home).close()


def test_swapping_databases_between_two_vaults_is_refused(fast_dir: Path) -> None:
    a, b = fast_dir / "a", fast_dir / "b"
    for home in (a, b):
        made = create_vault(home)
        populate(made.vault)
        made.vault.close()
    db_a, db_b = (a / "vault.db").read_bytes(), (b / "vault.db").read_bytes()
    (a / "vault.db").write_bytes(db_b)
    (b / "vault.db").write_bytes(db_a)
    for home in (a, b):
        refused_without_writing(home, CorruptVault)
    (a / "vault.db").write_bytes(db_a)
    (b / "vault.db").write_bytes(db_b)
    for home in (a, b):
        with open_vault(home) as v:
            assert v.check().ok


# The header (vault.json).


def test_a_foreign_header_is_refused(fast_dir: Path) -> None:
    a, b = fast_dir / "a", fast_dir / "b"
    for home in (a, b):
        create_vault(home).vault.close()
    shutil.copy(b / "vault.json", a / "vault.json")
    exc = refused_without_writing(a, (CryptoError, CorruptVault))
    assert "recipient" in str(exc) or "vault" in str(exc)


def header_variants(header: dict) -> dict[str, bytes]:  # type: ignore[type-arg]
    def dump(doc: object) -> bytes:
        return json.dumps(doc).encode()

    variants = {
        "not json": b"{ this is not json",
        "empty": b"",
        "binary": bytes(range(256)),
        "list": dump([header]),
        "wrong format": dump({**header, "format": "something-else"}),
        "future version": dump({**header, "version": 99}),
        "no recipients": dump({**header, "recipients": []}),
        "bad epoch": dump({**header, "epoch": "zero"}),
        "other vault id": dump({**header, "vault_id": "v-0000000000000000"}),
        "other epoch": dump({**header, "epoch": 1}),
        "stanza missing field": dump(
            {
                **header,
                "recipients": [
                    {k: v for k, v in s.items() if k != "body"} for s in header["recipients"]
                ],
            }
        ),
        "stanza bad base64": dump(
            {**header, "recipients": [{**s, "body": "***"} for s in header["recipients"]]}
        ),
        "stanza short ephemeral": dump(
            {**header, "recipients": [{**s, "ephemeral": "AAAA"} for s in header["recipients"]]}
        ),
        "only the recovery stanza": dump(
            {**header, "recipients": [s for s in header["recipients"] if s["kind"] == "recovery"]}
        ),
    }
    body = header["recipients"][0]["body"]
    flipped = body[:5] + ("A" if body[5] != "A" else "B") + body[6:]
    variants["stanza body flipped"] = dump(
        {
            **header,
            "recipients": [{**header["recipients"][0], "body": flipped}, *header["recipients"][1:]],
        }
    )
    return variants


def test_a_damaged_header_is_refused(closed_home: Path) -> None:
    path = closed_home / "vault.json"
    original = path.read_bytes()
    for name, content in header_variants(json.loads(original)).items():
        path.write_bytes(content)
        try:
            refused_without_writing(closed_home, (CorruptVault, CryptoError))
        except AssertionError as exc:  # pragma: no cover - a clearer failure message
            raise AssertionError(f"header variant {name!r}: {exc}") from None
    path.write_bytes(original)
    open_vault(closed_home).close()


# The device key file.


def test_a_damaged_device_key_is_refused(closed_home: Path) -> None:
    path = closed_home / "device.key"
    original = path.read_bytes()
    doc = json.loads(original)

    def dump(d: object) -> bytes:
        return json.dumps(d).encode()

    structural = {
        "garbage": bytes(range(256)) * 4,
        "truncated": original[: len(original) // 2],
        "empty": b"",
        "not an object": dump([doc]),
        "wrong format": dump({**doc, "format": "x"}),
        "bad kdf": dump({**doc, "kdf": {**doc["kdf"], "alg": "md5"}}),
        "absurd kdf cost": dump({**doc, "kdf": {**doc["kdf"], "m": 2**40}}),
        "bad salt": dump({**doc, "kdf": {**doc["kdf"], "salt": "!!"}}),
        "short ciphertext": dump({**doc, "ciphertext": doc["ciphertext"][:-8]}),
        "no nonce": dump({k: v for k, v in doc.items() if k != "nonce"}),
        "bad device id": dump({**doc, "device_id": "../../etc"}),
    }
    for name, content in structural.items():
        path.write_bytes(content)
        try:
            refused_without_writing(closed_home, CorruptVault)
        except AssertionError as exc:  # pragma: no cover
            raise AssertionError(f"device key variant {name!r}: {exc}") from None
    # Damage inside the sealed part cannot be told from a wrong passphrase (AEAD): either
    # way the file is refused.
    ct = doc["ciphertext"]
    sealed = {
        "ciphertext": dump({**doc, "ciphertext": ("B" if ct[0] == "A" else "A") + ct[1:]}),
        "salt": dump({**doc, "kdf": {**doc["kdf"], "salt": doc["kdf"]["salt"][::-1]}}),
        "public key": dump({**doc, "sign_public": doc["wrap_public"]}),
    }
    for name, content in sealed.items():
        path.write_bytes(content)
        try:
            refused_without_writing(closed_home, (CorruptVault, WrongPassphrase))
        except AssertionError as exc:  # pragma: no cover
            raise AssertionError(f"device key variant {name!r}: {exc}") from None
    path.write_bytes(original)
    open_vault(closed_home).close()


def test_a_device_key_from_another_vault_is_refused(fast_dir: Path) -> None:
    a, b = fast_dir / "a", fast_dir / "b"
    for home in (a, b):
        create_vault(home).vault.close()  # same passphrase for both
    shutil.copy(b / "device.key", a / "device.key")
    exc = refused_without_writing(a, MemsyncError)
    assert isinstance(exc, CryptoError | CorruptVault)
