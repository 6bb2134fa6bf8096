"""`memsync app`, `memsync disclosures`, `memsync show` (who has seen a memory) and
`memsync serve` as a real process: loopback by default, clean shutdown on signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli_support import PASS, add, cli_env, home, init, ok, ok_json, one_line_error, ring, run
from memsync import Vault

__all__ = ["cli_env", "home", "ring"]  # fixtures used by every test here


def test_app_add_prints_the_token_once_and_list_shows_the_scope() -> None:
    init()
    result = ok("app", "add", "cursor", "--read", "career,learning", "--write", "career")
    token = result.stdout.strip()
    assert token.startswith("msk_") and "\n" not in token
    assert "read=career,learning; write=career" in result.stderr
    listed = ok_json("app", "list")
    assert [a["name"] for a in listed] == ["cursor"]
    assert listed[0]["scope"]["read"] == ["career", "learning"]
    assert token not in ok("app", "list").stdout
    one_line_error(run("app", "add", "cursor"), 2, "exists")
    one_line_error(run("app", "add", "x", "--read", "hobbies"), 2, "unknown category")
    ok("app", "revoke", "cursor")
    assert ok_json("app", "list") == []
    assert ok_json("app", "list", "--all")[0]["revoked_at"]
    one_line_error(run("app", "revoke", "nobody"), 6, "no app named")


def test_private_is_not_part_of_all() -> None:
    init()
    ok("app", "add", "a", "--read", "all")
    ok("app", "add", "b", "--read", "all,private", "--kinds", "semantic", "--conversations")
    apps = {a["name"]: a["scope"] for a in ok_json("app", "list")}
    assert "private" not in apps["a"]["read"] and "private" in apps["b"]["read"]
    assert apps["b"]["kinds"] == ["semantic"] and apps["b"]["conversations"] is True


def test_disclosures_and_show_tell_who_has_seen_a_memory(home: Path) -> None:
    init()
    nurse = add("Works as a nurse", "--category", "career")
    add("Allergic to peanuts", "--category", "health")
    ok("app", "add", "cursor", "--read", "career")
    with Vault.open(home, PASS) as vault:
        vault.as_app("cursor").search("what is my job")
    log = ok_json("disclosures", "--app", "cursor")
    assert log[0]["action"] == "search" and log[0]["query"] == "what is my job"
    assert log[0]["items"] == [{"memory": nurse}]
    assert "what is my job" in ok("disclosures").stdout
    assert ok_json("disclosures", "--since", "2999-01-01") == []
    shown = ok_json("show", nurse)
    assert [d["app"] for d in shown["seen_by"]] == ["cursor"]
    assert "seen by 1 app(s): cursor" in ok("show", nurse).stdout
    peanuts = ok_json("list", "--category", "health")
    assert "no app has been given" in ok("show", peanuts["items"][0]["id"]).stdout


def _memsync(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    script = Path(sys.executable).with_name("memsync")
    return subprocess.Popen(
        [str(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "serving on " in line:
            return line.split("serving on ", 1)[1].split(": REST")[0]
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"server did not start: {proc.stderr.read()}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_one_vault_and_stops_cleanly_on_a_signal(
    home: Path, sig: signal.Signals
) -> None:
    init()
    token = ok("app", "add", "probe").stdout.strip()
    env = {**os.environ}
    proc = _memsync("serve", "--port", "0", env=env)
    try:
        url = _wait_for_url(proc)
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/v1/health", timeout=10).status_code == 200
        denied = httpx.get(f"{url}/v1/memories", timeout=10)
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "unauthenticated"
        listed = httpx.get(
            f"{url}/v1/memories", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert listed.status_code == 200
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    tail = proc.stderr.read()
    assert "Traceback" not in tail and "server stopped" in tail
    with Vault.open(home, PASS) as vault:
        assert vault.check().ok


def test_serve_refuses_a_remote_host_without_the_flag_and_a_busy_port() -> None:
    init()
    one_line_error(run("serve", "--host", "0.0.0.0"), 2, "--allow-remote")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        one_line_error(run("serve", "--port", port), 2, "cannot listen on 127.0.0.1:" + port)


def test_profile_bio_written_by_hand_and_back() -> None:
    init()
    add("Works as a nurse", "--category", "career")
    assert ok_json("profile", "--bio", "Nurse and sailor.")["bio"] == "Nurse and sailor."
    assert ok_json("profile")["bio"] == "Nurse and sailor."
    assert ok_json("profile", "--derived-bio")["bio"] != "Nurse and sailor."
    one_line_error(run("profile", "--bio", "   "), 2, "bio")
    one_line_error(run("profile", "--bio", "x", "--derived-bio"), 2, "not both")
