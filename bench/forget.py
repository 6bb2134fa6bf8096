"""What forgetting costs: one memory, and one large source, on a vault of 10,000 memories
that syncs with a second device through a folder remote.

    .venv/bin/python bench/forget.py --json bench/out/forget-run1.json
    .venv/bin/python bench/forget.py --memories 1000      # a quick look

Times are medians of several forgets (the machine is noisy); bytes are what the sync
after the forget rewrites on the remote (the key objects that lose keys, and the
forget operation itself) and what the other device's sync moves. The embedder is the
model-free hash one: forgetting embeds nothing, and building 10,000 real vectors would
only make the set-up slow.
"""

from __future__ import annotations

import argparse
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
from memsync.index.embed import HashEmbedder
from memsync.model import Message, Provenance, Source, SourceKind
from memsync.vault import Vault

PASSPHRASE = "bench forget passphrase 42"


def large_source(turns: int) -> tuple[Source, list[str]]:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    messages = tuple(
        Message(
            "user" if t % 2 == 0 else "assistant",
            f"Turn {t} of the long planning chat about the house move and its budget",
            at + timedelta(minutes=t),
        )
        for t in range(turns)
    )
    source = Source(
        new_id("s"), SourceKind.CONVERSATION, "The long chat", "bench", at, at, messages,
        digest=f"bench-forget-{turns}",
    )  # fmt: skip
    return source, [f"Fact {t} drawn from the long chat" for t in range(0, turns, 10)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turns", type=int, default=400, help="turns of the large source")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memsync-bench-forget-") as tmp:
        root = Path(tmp)
        made = Vault.create(root / "a", PASSPHRASE, kdf=FAST_KDF, embedder=HashEmbedder())
        a = made.vault
        log(f"building {args.memories} memories ...")
        a.import_records(corpus.memories(args.memories, seed=3), [])
        source, facts = large_source(args.turns)
        a.import_records([], [source])
        for fact in facts:
            a.add(fact, provenance=(Provenance(source_id=source.id),))
        a.remotes.add("folder", str(root / "remote"))
        a.sync()
        b = Vault.recover(
            root / "b", made.recovery_phrase, PASSPHRASE, kdf=FAST_KDF,
            embedder=HashEmbedder(), from_url=str(root / "remote"),
        )  # fmt: skip
        # Memories of the corpus (not the facts drawn from the large source).
        picks = [m.id for m in a.list(limit=args.rounds, offset=len(facts) + 10).items]
        one_s, one_sync_s, one_up, other_s, other_bytes = [], [], [], [], []
        for memory_id in picks:
            t0 = time.perf_counter()
            a.forget(memory_id)
            one_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            up = a.sync()[0]
            one_sync_s.append(time.perf_counter() - t0)
            one_up.append(up.bytes_up)
            t0 = time.perf_counter()
            down = b.sync()[0]
            other_s.append(time.perf_counter() - t0)
            other_bytes.append(down.bytes_up + down.bytes_down)
        t0 = time.perf_counter()
        drawn, shredded = a.forget_source(source.id)
        source_s = time.perf_counter() - t0
        up = a.sync()[0]
        t0 = time.perf_counter()
        b.sync()
        source_other_s = time.perf_counter() - t0
        same = a.check().state_digest == b.check().state_digest
        result = {
            **run_header(),
            "memories": args.memories,
            "log_entries": a.log.count(),
            "forget_one_s_median": round(statistics.median(one_s), 3),
            "sync_after_s_median": round(statistics.median(one_sync_s), 3),
            "bytes_rewritten_median": int(statistics.median(one_up)),
            "other_device_sync_s_median": round(statistics.median(other_s), 3),
            "other_device_bytes_median": int(statistics.median(other_bytes)),
            "source_turns": args.turns,
            "source_memories": drawn,
            "source_entries_shredded": shredded,
            "forget_source_s": round(source_s, 3),
            "source_bytes_rewritten": up.bytes_up,
            "source_other_device_sync_s": round(source_other_s, 3),
            "converged": same,
        }
        a.close()
        b.close()
    emit(result, args.json)


if __name__ == "__main__":
    main()
