"""CLI tests for creating and unlocking the vault, and for the errors of opening one:
init, unlock, lock, recover, passwd, wrong passphrase, missing or damaged vault."""

from __future__ import annotations

import json
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from keyring.errors import KeyringLocked

from cli_support import (
    NEW_PASS,
    PASS,
    MemoryKeyring,
    add,
    cli_env,
    home,
    init,
    ok,
    ok_json,
    one_line_error,
    ring,
    run,
    tree_bytes,
)
from memsync.cli import unlock
from memsync.crypto.device import FAST_KDF, KdfParams
from memsync.crypto.phrase import new_recovery_phrase
from memsync.vault import Vault

__all__ = ["cli_env", "home", "ring"]  # fixtures used by every test here


@pytest.fixture
def interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if typing at a terminal, with no passphrase in the environment."""
    monkeypatch.setattr(unlock, "is_interactive", lambda: True)
    monkeypatch.delenv("MEMSYNC_PASSPHRASE")


def test_init_json_creates_the_vault(home: Path) -> None:
    made = init("--device-name", "laptop")
    assert made["vault_id"].startswith("v-") and made["path"] == str(home)
    assert len(made["recovery_phrase"].split()) == 24
    assert {p.name for p in home.iterdir()} >= {"vault.json", "device.key", "vault.db"}
    assert ok_json("info")["vault_id"] == made["vault_id"]


def test_init_shows_the_recovery_phrase_once_with_a_warning() -> None:
    out = ok("init", "--embedder", "hash").stdout
    assert "recovery phrase" in out and " 1. " in out and "24. " in out
    assert "ONLY way back" in out and "shown" in out and "only this once" in out
    assert "recovery phrase" not in ok("info").stdout


def test_init_twice_is_refused(home: Path) -> None:
    init()
    before = tree_bytes(home)
    one_line_error(run("init", "--embedder", "hash"), 3, "already exists")
    assert tree_bytes(home) == before


@pytest.mark.parametrize(
    ("weak", "reason"),
    [
        ("short", "too short"),
        ("password123", "common"),
        ("aaaaaaaaaaaa", "fewer than 5"),
        ("12345678901234", "only digits"),
        ("abcdefghijklm", "sequence"),
    ],
)
def test_init_refuses_a_weak_passphrase_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, home: Path, weak: str, reason: str
) -> None:
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", weak)
    one_line_error(run("init", "--embedder", "hash"), 2, reason)
    assert not home.exists() or not any(home.iterdir())


@pytest.mark.usefixtures("interactive")
def test_init_prompts_twice_and_asks_again_after_a_weak_one() -> None:
    typed = (
        "short\nshort\nmy own strong phrase 9\nmismatch typed here\n"
        "my own strong phrase 9\nmy own strong phrase 9\n"
    )
    result = run("init", "--embedder", "hash", "--json", input=typed)
    assert result.exit_code == 0, result.stderr
    assert "too short" in result.stderr and "; try another one" in result.stderr
    assert "Passphrase (again):" in result.stderr
    assert "do not match" in result.stderr.lower()
    assert len(json.loads(result.stdout)["recovery_phrase"].split()) == 24
    assert ok("unlock", input="my own strong phrase 9\n").exit_code == 0


def test_init_without_a_terminal_or_passphrase_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MEMSYNC_PASSPHRASE")
    one_line_error(run("init"), 4, "MEMSYNC_PASSPHRASE")


def test_wrong_passphrase_exits_4_and_changes_no_byte(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    init()
    add("something")
    before = tree_bytes(home)
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", "not the right pass phrase")
    for args in (["list"], ["add", "x"], ["rm", "--yes", "m-"], ["check"], ["unlock"]):
        one_line_error(run(*args), 4, "wrong passphrase")
    assert tree_bytes(home) == before


def test_no_vault_exits_3(home: Path) -> None:
    for args in (["list"], ["add", "x"], ["search", "x"], ["info"], ["lock"], ["unlock"]):
        one_line_error(run(*args), 3, "no vault", str(home))
    assert not home.exists()


def test_a_garbage_database_is_one_line_and_left_alone(home: Path) -> None:
    init()
    (home / "vault.db").write_bytes(b"this is not a database at all" * 300)
    for suffix in ("-wal", "-shm"):
        (home / f"vault.db{suffix}").unlink(missing_ok=True)
    before = tree_bytes(home)
    for args in (["list"], ["check"], ["info"], ["add", "x"]):
        one_line_error(run(*args), 5, "database")
    assert tree_bytes(home) == before


def test_a_damaged_header_or_key_file_is_one_line(home: Path) -> None:
    init()
    (home / "vault.json").write_text("{not json")
    one_line_error(run("list"), 5, "vault.json")
    (home / "vault.json").unlink()
    one_line_error(run("list"), 3, "no vault")


def test_locked_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    init()
    monkeypatch.delenv("MEMSYNC_PASSPHRASE")
    line = one_line_error(run("list"), 4)
    assert line == (
        "memsync: error: vault is locked: set MEMSYNC_PASSPHRASE or run `memsync unlock --remember`"
    )


def test_prompt_allows_retries_then_fails() -> None:
    init()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(unlock, "is_interactive", lambda: True)
        mp.delenv("MEMSYNC_PASSPHRASE")
        result = ok("list", input=f"wrong one here\n{PASS}\n")
        assert "wrong passphrase; try again" in result.stderr
        result = run("list", input="wrong one\nwrong two\nwrong three\n")
        assert result.exit_code == 4
        assert result.stderr.strip().splitlines()[-1] == "memsync: error: wrong passphrase"
        result = run("list", input="")  # end of input at the prompt
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines()[-1] == "memsync: error: aborted"


def test_unlock_remember_then_lock(monkeypatch: pytest.MonkeyPatch, ring: MemoryKeyring) -> None:
    made = init()
    assert "passphrase ok" in ok("unlock").stdout
    assert ring.passwords == {}
    assert "remembered" in ok("unlock", "--remember").stdout
    device_id = ok_json("info")["device_id"]
    assert list(ring.passwords) == [("memsync", f"{made['vault_id']}/{device_id}")]
    monkeypatch.delenv("MEMSYNC_PASSPHRASE")
    mid = add("opens without a passphrase")
    assert ok_json("show", mid)["memory"]["text"] == "opens without a passphrase"
    assert "locked" in ok("lock").stdout
    assert ring.passwords == {}
    one_line_error(run("list"), 4, "vault is locked")
    assert "nothing to do" in ok("lock").stdout


def test_unlock_remember_needs_the_passphrase(
    monkeypatch: pytest.MonkeyPatch, ring: MemoryKeyring
) -> None:
    init()
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", "not the right pass phrase")
    one_line_error(run("unlock", "--remember"), 4, "wrong passphrase")
    assert ring.passwords == {}


def test_unlock_remember_without_an_os_keyring_fails_clearly(home: Path) -> None:
    init()
    keyring.set_keyring(fail.Keyring())  # the `ring` fixture restores the previous one
    before = tree_bytes(home)
    one_line_error(run("unlock", "--remember"), 2, "no OS keyring is available")
    assert tree_bytes(home) == before
    assert "nothing to do" in ok("lock").stdout


def test_recover_with_the_phrase_sets_a_new_passphrase(
    monkeypatch: pytest.MonkeyPatch, ring: MemoryKeyring
) -> None:
    made = init()
    mid = add("survives recovery")
    ok("unlock", "--remember")
    monkeypatch.setenv("MEMSYNC_RECOVERY_PHRASE", made["recovery_phrase"].upper())
    monkeypatch.setenv("MEMSYNC_NEW_PASSPHRASE", NEW_PASS)
    assert "recovered vault" in ok("recover").stdout
    assert ring.passwords == {}  # the old device's remembered key went with it
    one_line_error(run("list"), 4, "wrong passphrase")
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", NEW_PASS)
    assert ok_json("show", mid)["memory"]["text"] == "survives recovery"
    assert ok_json("check")["ok"] is True


@pytest.mark.parametrize(
    ("phrase", "reason"),
    [("one two three", "24 words"), (None, "does not open this vault")],
)
def test_recover_with_a_bad_phrase_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, home: Path, phrase: str | None, reason: str
) -> None:
    init()
    before = tree_bytes(home)
    monkeypatch.setenv("MEMSYNC_RECOVERY_PHRASE", phrase or new_recovery_phrase())
    monkeypatch.setenv("MEMSYNC_NEW_PASSPHRASE", NEW_PASS)
    one_line_error(run("recover"), 4, reason)
    assert tree_bytes(home) == before


def test_recover_refuses_a_weak_new_passphrase(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    made = init()
    before = tree_bytes(home)
    monkeypatch.setenv("MEMSYNC_RECOVERY_PHRASE", made["recovery_phrase"])
    monkeypatch.setenv("MEMSYNC_NEW_PASSPHRASE", "short")
    one_line_error(run("recover"), 2, "too short")
    monkeypatch.delenv("MEMSYNC_NEW_PASSPHRASE")
    one_line_error(run("recover"), 4, "MEMSYNC_NEW_PASSPHRASE")
    assert tree_bytes(home) == before


@pytest.mark.usefixtures("interactive")
def test_recover_prompts_for_the_phrase_and_new_passphrase() -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMSYNC_PASSPHRASE", PASS)
        made = init()
    typed = f"{made['recovery_phrase']}\n{NEW_PASS}\n{NEW_PASS}\n"
    assert "recovered vault" in ok("recover", input=typed).stdout
    assert ok("unlock", input=f"{NEW_PASS}\n").exit_code == 0


def test_passwd(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    init()
    monkeypatch.setenv("MEMSYNC_NEW_PASSPHRASE", NEW_PASS)
    assert "passphrase changed" in ok("passwd").stdout
    one_line_error(run("list"), 4, "wrong passphrase")
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", NEW_PASS)
    ok("list")
    monkeypatch.setenv("MEMSYNC_NEW_PASSPHRASE", "short")
    before = tree_bytes(home)
    one_line_error(run("passwd"), 2, "too short")
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", PASS)
    one_line_error(run("passwd"), 4, "wrong passphrase")
    assert tree_bytes(home) == before


def test_interrupt_exits_130_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    init()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Vault, "list", interrupted)
    result = run("list")
    assert result.exit_code == 130
    assert result.stderr.strip() == "memsync: interrupted"


def test_a_keyring_that_refuses_is_one_line(ring: MemoryKeyring) -> None:
    init()

    def refuse(service: str, username: str, password: str) -> None:
        raise KeyringLocked("the keychain is locked")

    ring.set_password = refuse  # type: ignore[method-assign]
    one_line_error(run("unlock", "--remember"), 2, "did not store", "locked")


def test_the_fast_kdf_is_a_test_only_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert unlock.kdf_params() is FAST_KDF
    assert "test-only KDF costs" in ok("init", "--embedder", "hash").stderr
    monkeypatch.delenv("MEMSYNC_TEST_FAST_KDF")
    assert unlock.kdf_params() == KdfParams()
