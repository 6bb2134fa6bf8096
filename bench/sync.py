"""Sync figures: a new device receiving a whole vault, and one memory pushed and pulled.

    .venv/bin/python bench/sync.py --json bench/out/sync-run1.json
    .venv/bin/python bench/sync.py --memories 1000 --conversations 100   # a quick look

Builds a vault of N synthetic memories and M conversations (6 turns each) with the
default MiniLM embedder, pushes it to a folder remote, then restores it onto a new home
from the recovery phrase and the remote alone (`Vault.recover(from_url=…)`): time, bytes
read, and the share of time spent re-embedding (vectors are derived on each device, not
synced). Then one memory is added on the first device, pushed, and pulled on the second
(bytes both ways, time). Storage overhead is the remote's bytes over the plaintext of the
operations it holds. Figures are medians where repeated; the machine is noisy.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
from common import emit, log, run_header
from memsync.crypto.device import FAST_KDF
from memsync.ids import new_id
from memsync.index import embed
from memsync.log.oplog import encode_op
from memsync.model import Message, Source, SourceKind
from memsync.sync import service
from memsync.sync.urls import open_remote
from memsync.vault import Vault

PASSPHRASE = "bench sync passphrase 42"
TOPICS = ["the garden", "a trip to Porto", "the Rust rewrite", "marathon training", "tax forms"]


def conversations(n: int, seed: int) -> list[Source]:
    rng = random.Random(seed)
    lines = [text for _, _, text in corpus.texts(n * 6, seed=seed)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        at = start + timedelta(hours=i)
        messages = tuple(
            Message(
                "user" if t % 2 == 0 else "assistant",
                f"About {topic}: {lines[i * 6 + t]}",
                at + timedelta(minutes=t),
            )
            for t in range(6)
        )
        out.append(
            Source(
                id=new_id("s"),
                kind=SourceKind.CONVERSATION,
                title=f"About {topic} ({i})",
                origin="bench",
                created_at=at,
                captured_at=at,
                messages=messages,
                digest=f"bench-{seed}-{i}",
            )
        )
    return out


class Timed:
    """Wraps the embedder's `embed` to count the time spent in it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._orig = embed.MiniLMEmbedder.embed

    def __enter__(self) -> Timed:
        timer = self

        def timed(self_: embed.MiniLMEmbedder, texts: list[str]):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return timer._orig(self_, texts)
            finally:
                timer.seconds += time.perf_counter() - t0

        embed.MiniLMEmbedder.embed = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        embed.MiniLMEmbedder.embed = self._orig  # type: ignore[method-assign]


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--conversations", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5, help="incremental syncs measured")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memsync-bench-sync-") as tmp:
        root = Path(tmp)
        remote_dir = root / "remote"
        log(f"building {args.memories} memories and {args.conversations} conversations ...")
        made = Vault.create(root / "a", PASSPHRASE, kdf=FAST_KDF)
        a = made.vault
        t0 = time.perf_counter()
        a.import_records(
            corpus.memories(args.memories, seed=1), conversations(args.conversations, 2)
        )
        build_s = time.perf_counter() - t0
        plaintext = sum(len(encode_op(a.log.decrypt(e, a.core.log_key))) for e in a.log.entries())
        a.remotes.add("folder", str(remote_dir))
        t0 = time.perf_counter()
        first = a.sync()[0]
        push_s = time.perf_counter() - t0
        remote_bytes = tree_bytes(remote_dir)
        log(f"pushed {first.pushed} entries, {remote_bytes:,} bytes in {push_s:.1f} s")

        with Timed() as timer:
            t0 = time.perf_counter()
            store = open_remote(str(remote_dir))
            b = Vault(
                service.restore(
                    str(remote_dir),
                    root / "b",
                    made.recovery_phrase,
                    PASSPHRASE,
                    kdf=FAST_KDF,
                    embedder=None,
                    remote=store,
                )
            )
            bootstrap_s = time.perf_counter() - t0
        log(f"bootstrap {bootstrap_s:.1f} s, embedding {timer.seconds:.1f} s")
        assert b.info().memories == a.info().memories

        ups, downs, times = [], [], []
        for i in range(args.rounds):
            a.add(f"One more memory, number {i}, about the sync benchmark")
            t0 = time.perf_counter()
            up = a.sync()[0]
            down = b.sync()[0]
            times.append(time.perf_counter() - t0)
            assert down.pulled == 1, down
            ups.append(up.bytes_up + up.bytes_down)
            downs.append(down.bytes_up + down.bytes_down)
        a.sync()
        same = a.check().state_digest == b.check().state_digest
        result = {
            **run_header(),
            "memories": args.memories,
            "conversations": args.conversations,
            "log_entries": a.log.count(),
            "build_s": round(build_s, 1),
            "push_s": round(push_s, 1),
            "remote_bytes": remote_bytes,
            "plaintext_op_bytes": plaintext,
            "storage_overhead": round(remote_bytes / plaintext, 3),
            "bootstrap_s": round(bootstrap_s, 1),
            "bootstrap_bytes_down": tree_bytes(remote_dir),
            "bootstrap_embedding_s": round(timer.seconds, 1),
            "bootstrap_embedding_share": round(timer.seconds / bootstrap_s, 3),
            "incremental_s_median": round(statistics.median(times), 3),
            "incremental_push_bytes_median": int(statistics.median(ups)),
            "incremental_pull_bytes_median": int(statistics.median(downs)),
            "converged": same,
        }
        a.close()
        b.close()
    emit(result, args.json)


if __name__ == "__main__":
    main()
