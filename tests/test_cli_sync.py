"""`memsync remote …`, `memsync sync` and `memsync recover --from`, as a user runs them:
two homes on one machine play two devices, a folder is the remote between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import add, cli_env, home, init, ok, ok_json, one_line_error, ring, run

__all__ = ["cli_env", "home", "ring"]


def test_two_devices_through_a_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = init("--device-name", "laptop")
    add("Prefers short answers without bullet points")
    remote = tmp_path / "stick" / "memsync"
    remote.parent.mkdir()
    out = ok("remote", "add", "usb", str(remote)).stdout
    assert "added remote usb" in out
    assert ok_json("remote", "list")[0]["name"] == "usb"
    assert "pushed" in ok("sync").stdout

    second = tmp_path / "second"
    monkeypatch.setenv("MEMSYNC_HOME", str(second))
    monkeypatch.setenv("MEMSYNC_RECOVERY_PHRASE", made["recovery_phrase"])
    monkeypatch.setenv("MEMSYNC_NEW_PASSPHRASE", "a strong pass phrase 42")
    out = ok("recover", "--from", str(remote)).stdout
    assert "1 memories" in out
    monkeypatch.delenv("MEMSYNC_RECOVERY_PHRASE")
    add("Flying to Lisbon on 12 March")
    ok("sync")

    monkeypatch.setenv("MEMSYNC_HOME", str(home))
    out = ok("sync", "usb").stdout
    assert "1 added" in out and "recovered" in out
    assert "Lisbon" in ok("search", "Lisbon").stdout
    reports = ok_json("sync")
    assert reports[0]["pulled"] == 0
    assert ok_json("check")["ok"]
    assert "no evidence" in ok("sync", "--evidence").stdout
    ok("remote", "remove", "usb")
    one_line_error(run("sync"), 2, "no remote")


def test_bad_remote_input_is_one_line(home: Path, tmp_path: Path) -> None:
    init()
    one_line_error(run("remote", "add", "x", "ftp://host/path"), 14, "unsupported remote")
    one_line_error(run("remote", "add", "x", str(tmp_path / "no" / "such")), 14, "does not exist")
    one_line_error(run("remote", "add", "bad name!", str(tmp_path)), 2, "remote name")
    one_line_error(run("remote", "remove", "ghost"), 6, "no remote named ghost")
    one_line_error(run("sync", "ghost"), 6, "no remote named ghost")
    one_line_error(
        run("remote", "add", "x", str(tmp_path), "--endpoint-url", "http://x"), 2, "s3://"
    )


def test_recover_from_an_empty_or_foreign_remote(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = init()
    empty = tmp_path / "empty"
    empty.mkdir()
    target = tmp_path / "target"
    monkeypatch.setenv("MEMSYNC_HOME", str(target))
    monkeypatch.setenv("MEMSYNC_RECOVERY_PHRASE", made["recovery_phrase"])
    monkeypatch.setenv("MEMSYNC_NEW_PASSPHRASE", "a strong pass phrase 42")
    one_line_error(run("recover", "--from", str(empty)), 14, "holds no vault")
    assert not (target / "vault.json").exists() and not (target / "vault.db").exists()
    monkeypatch.setenv("MEMSYNC_HOME", str(home))
    one_line_error(run("recover", "--from", str(empty)), 3, "already exists")
