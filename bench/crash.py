"""Crash safety: SIGKILL a process that is writing to the vault, at a random moment, many
times over, and after every kill prove that nothing acknowledged was lost.

Each round starts one writer on the same vault and kills it after a random delay:
- `adds`: a process adding memories one at a time through `Vault.add`, printing each id
  once the call has returned (the acknowledgement, as a CLI's exit code 0 is);
- `cli`: `memsync add` run again and again, acknowledged by exit code 0;
- `ingest`: `memsync ingest` of a large ChatGPT export (one source per transaction),
  acknowledged only by its exit code 0; after a kill the next ingest carries on;
- `server`: `memsync serve` under concurrent `POST /v1/memories`, acknowledged by a 2xx.
After every kill the vault must open, and every acknowledged write must be in it; every
`--check-every` rounds (and after the last) `check` must pass: signatures, hash chains
and a rebuild of the state from the log equal to the live state.

The vault uses the model-free hash embedder: what is measured is the storage, not the
model. Run: `.venv/bin/python bench/crash.py` (see --help); figures in bench/README.md.
The test suite runs a short version (tests/test_crash.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import log, run_header, serve_process
from memsync import Vault
from memsync.crypto.device import FAST_KDF
from memsync.errors import NotFound
from memsync.index.embed import HashEmbedder

PASSPHRASE = "crash test vault passphrase, not a secret"
MODES = ("adds", "cli", "ingest", "server")
MEMSYNC = Path(sys.executable).with_name("memsync")
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "chatgpt"


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSYNC_")}
    env.update(MEMSYNC_HOME=str(home), MEMSYNC_PASSPHRASE=PASSPHRASE, MEMSYNC_TEST_FAST_KDF="1")
    return env


def make_export(path: Path, conversations: int, tag: str = "crash") -> None:
    """A ChatGPT export of `conversations` conversations, made from the test fixture's
    three with new ids and numbered texts (so every one is a new source)."""
    base = json.loads((FIXTURE / "conversations.json").read_text())
    out = []
    for n in range(conversations):
        conv = json.loads(json.dumps(base[n % len(base)]))
        conv["id"] = conv["conversation_id"] = f"{tag.replace(' ', '-')}-{n}"
        for node in conv["mapping"].values():
            message = node.get("message")
            if message and message["content"].get("parts"):
                parts = message["content"]["parts"]
                parts[0] = f"{parts[0]} ({tag}, note {n})"
        out.append(conv)
    path.write_text(json.dumps(out))


@dataclass
class Acked:
    memory_ids: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    ingests_done: int = 0

    def copy(self) -> Acked:
        return Acked(set(self.memory_ids), set(self.texts), set(self.sources), self.ingests_done)

    def since(self, earlier: Acked) -> Acked:
        """What was acknowledged after `earlier` was copied."""
        return Acked(
            self.memory_ids - earlier.memory_ids,
            self.texts - earlier.texts,
            self.sources - earlier.sources,
        )


def _child_adds(home: Path) -> None:
    """The `adds` writer: runs until killed."""
    with Vault.open(home, PASSPHRASE) as vault:
        n = 0
        while True:
            n += 1
            memory = vault.add(f"Crash test fact {os.getpid()}-{n}")
            print(f"ack {memory.id}", flush=True)
            # At the pace of a busy person's tools, not of a bulk import: the log of a
            # thousand rounds stays small enough to check often.
            time.sleep(0.004)


def _round_adds(home: Path, delay: float, acked: Acked) -> None:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child-adds", str(home)],
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join()
    acked.memory_ids |= {line.split()[1] for line in lines if line.startswith("ack ")}


def _round_cli(home: Path, delay: float, acked: Acked) -> None:
    until = time.monotonic() + delay
    n = 0
    while True:
        n += 1
        text = f"Crash test CLI fact {time.time_ns()}-{n}"
        proc = subprocess.Popen(
            [str(MEMSYNC), "add", text],
            env=env_for(home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        left = until - time.monotonic()
        try:
            code = proc.wait(timeout=max(0.0, left))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        if code == 0:
            acked.texts.add(text)


def _round_ingest(home: Path, delay: float, acked: Acked, export: Path, n: int) -> None:
    # Every other round a new export, so there are sources to store (a stored one is
    # recognised and skipped); the others carry on with one large export, which must
    # hold every conversation once at the end.
    fresh = n % 2 == 1
    if fresh:
        export = export.with_name(f"export-{n}.json")
        make_export(export, 100, tag=f"round {n}")
    proc = subprocess.Popen(
        [str(MEMSYNC), "ingest", str(export)],
        env=env_for(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if proc.wait(timeout=delay) == 0:
            acked.ingests_done += 1
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    if fresh:
        export.unlink()


def _round_server(home: Path, delay: float, acked: Acked, token: str) -> None:
    proc, url = serve_process(env_for(home))
    stop = threading.Event()

    def client(n: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            i = 0
            while not stop.is_set():
                i += 1
                text = f"I repair clocks at Workshop{time.time_ns()}x{n}x{i}."
                try:
                    answer = http.post(
                        "/v1/memories", json={"messages": [{"role": "user", "content": text}]}
                    )
                except httpx.HTTPError:
                    return  # the server is gone: nothing was acknowledged
                if answer.is_success:
                    acked.sources.add(answer.json()["source_id"])

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for c in clients:
        c.start()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    for c in clients:
        c.join()


def verify(home: Path, acked: Acked, *, full: bool) -> list[str]:
    """Problems found: the vault does not open, an acknowledged write is missing, or
    (with `full`) `check` fails."""
    try:
        vault = Vault.open(home, PASSPHRASE, embedder=HashEmbedder())
    except Exception as exc:  # what is being counted: any way the vault fails to open
        return [f"open: {type(exc).__name__}: {exc}"]
    problems: list[str] = []
    with vault:
        for memory_id in acked.memory_ids:
            try:
                vault.get(memory_id)
            except NotFound:
                problems.append(f"lost memory {memory_id}")
        if acked.texts:
            marks = ",".join("?" * len(acked.texts))
            found = {
                str(r[0])
                for r in vault.conn.execute(
                    f"SELECT text FROM memories WHERE text IN ({marks})", sorted(acked.texts)
                )
            }
            problems += [f"lost CLI memory {t!r}" for t in acked.texts - found]
        for source_id in acked.sources:
            try:
                vault.get_source(source_id)
            except NotFound:
                problems.append(f"lost source {source_id}")
        if full:
            report = vault.check()
            problems += [f"check: {p.where}: {p.what}" for p in report.problems]
    return problems


def run(
    home: Path,
    *,
    kills: int,
    seed: int,
    max_delay: float,
    check_every: int,
    conversations: int,
    modes: tuple[str, ...] = MODES,
) -> dict[str, object]:
    rng = random.Random(seed)
    made = Vault.create(home, PASSPHRASE, kdf=FAST_KDF, embedder=HashEmbedder())
    with made.vault as vault:
        _, token = vault.add_app("crash", rate_per_minute=0)
    export = home.parent / "export.json"
    make_export(export, conversations)
    acked = Acked()
    verified = Acked()
    per_mode: Counter[str] = Counter()
    problems: list[str] = []
    started = time.monotonic()
    for n in range(1, kills + 1):
        mode = rng.choice(modes)
        delay = rng.uniform(0.05, max_delay)
        per_mode[mode] += 1
        if mode == "adds":
            _round_adds(home, delay, acked)
        elif mode == "cli":
            _round_cli(home, delay, acked)
        elif mode == "ingest":
            _round_ingest(home, delay, acked, export, n)
        else:
            _round_server(home, delay, acked, token)
        full = n % check_every == 0 or n == kills
        # Every round checks what it was told was stored; a full round checks it all.
        found = verify(home, acked if full else acked.since(verified), full=full)
        verified = acked.copy()
        if found:
            problems += [f"round {n} ({mode}, killed after {delay:.2f} s): {p}" for p in found]
            break
        if n % 25 == 0:
            log(f"{n}/{kills} kills, {time.monotonic() - started:.0f} s, no problem")
    # The interrupted imports resume: running it to the end adds every conversation once.
    final = subprocess.run(
        [str(MEMSYNC), "ingest", str(export)], env=env_for(home), capture_output=True, text=True
    )
    with Vault.open(home, PASSPHRASE, embedder=HashEmbedder()) as vault:
        titled = vault.conn.execute(
            "SELECT count(*), count(DISTINCT digest) FROM sources WHERE external_id LIKE 'crash-%'"
        ).fetchone()
        entries = vault.log.count()
    if final.returncode != 0:
        problems.append(f"final ingest failed: {final.stderr.strip()}")
    if titled[0] != conversations or titled[1] != conversations:
        problems.append(f"export sources: {titled[0]} stored, {titled[1]} distinct")
    return {
        "kills": sum(per_mode.values()),
        "per_mode": dict(per_mode),
        "acknowledged": {
            "memories": len(acked.memory_ids) + len(acked.texts),
            "server_writes": len(acked.sources),
            "complete_ingests": acked.ingests_done,
        },
        "log_entries": entries,
        "seconds": round(time.monotonic() - started, 1),
        "problems": problems,
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child-adds":
        _child_adds(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=1.5, help="seconds before a kill")
    parser.add_argument("--check-every", type=int, default=50, help="rounds between checks")
    parser.add_argument("--conversations", type=int, default=300, help="in the export")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memsync-crash-") as tmp:
        result = run(
            Path(tmp) / "vault",
            kills=args.kills,
            seed=args.seed,
            max_delay=args.max_delay,
            check_every=args.check_every,
            conversations=args.conversations,
        )
    out = {**run_header(), **result}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    sys.exit(1 if result["problems"] else 0)


if __name__ == "__main__":
    main()
