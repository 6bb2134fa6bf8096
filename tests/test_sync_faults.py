"""A remote that misbehaves, and devices that converge anyway.

`FaultyRemote` wraps the in-memory twin and drops, duplicates, reorders, delays,
truncates or flips a bit of objects, serves a stale listing or an old version, or shows
one device different data than another. Every fault must be tolerated (after it stops,
a sync converges) or detected (`SyncRefused`, or a remote error), never silently
accepted: after every sync attempt each device's log checks, it holds nothing another
device did not write, and no write it acknowledged is lost.

The state machine test runs three devices with random writes, random partitions and
random sync orders; in the end every device has the same state digest.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conftest import PASSPHRASE, create_vault
from memsync.crypto.device import FAST_KDF
from memsync.errors import CryptoError, RemoteError, SyncRefused
from memsync.index.embed import HashEmbedder
from memsync.log.oplog import open_entry
from memsync.store.forgetting import concerns
from memsync.sync import objects, service
from memsync.sync.objects import SyncKeys
from memsync.sync.remote import Blob, MemoryRemote, Remote, tag_of
from memsync.vault import Vault

FAULTS = (
    "drop",
    "duplicate",
    "reorder",
    "delay",
    "truncate",
    "bitflip",
    "stale_listing",
    "old_version",
    "split_view",
)


class FaultyRemote(Remote):
    """One device's view of a shared in-memory remote, with one fault switched on."""

    def __init__(self, shared: MemoryRemote, seed: int, view: str) -> None:
        self.shared = shared
        self.url = "memory:"
        self.fault: str | None = None
        self.rng = random.Random(seed)
        self.view = view
        self.history: dict[str, list[bytes]] = {}
        self.frozen_listing: dict[str, list[str]] = {}
        self.hidden: set[str] = set()
        self.private: dict[str, bytes] = {}  # split view: what only this device sees

    def _maybe(self) -> bool:
        return self.rng.random() < 0.5

    def get(self, name: str) -> Blob | None:
        if self.fault == "split_view" and name in self.private:
            return Blob(self.private[name], tag_of(self.private[name]))
        blob = self.shared.get(name)
        if blob is None:
            return None
        if self.fault == "delay" and name in self.hidden:
            return None
        if self.fault == "truncate" and self._maybe():
            return Blob(blob.data[: len(blob.data) // 2], blob.tag)
        if self.fault == "bitflip" and self._maybe():
            data = bytearray(blob.data)
            data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
            return Blob(bytes(data), blob.tag)
        if self.fault == "old_version" and len(self.history.get(name, [])) > 1:
            old = self.history[name][-2]
            return Blob(old, tag_of(old))
        return blob

    def _record(self, name: str) -> None:
        blob = self.shared.get(name)
        if blob is not None:
            self.history.setdefault(name, []).append(blob.data)

    def create(self, name: str, data: bytes) -> bool:
        if self.fault == "drop" and self._maybe():
            return True  # says it stored it, and did not
        if self.fault == "delay":
            self.hidden.add(name)
        made = self.shared.create(name, data)
        if self.fault == "duplicate":
            self.shared.create(name, data)
        self._record(name)
        return made

    def replace(self, name: str, data: bytes, if_match: str | None) -> None:
        if self.fault == "drop" and self._maybe():
            return
        if self.fault == "split_view" and name.startswith("c/"):
            # This device's checkpoint goes to a place only it sees.
            self.private[name] = data
            return
        self._record(name)
        self.shared.replace(name, data, if_match)
        self._record(name)

    def list(self, prefix: str) -> list[str]:
        names = self.shared.list(prefix)
        if self.fault == "stale_listing":
            names = self.frozen_listing.setdefault(prefix, names)
        if self.fault == "reorder":
            self.rng.shuffle(names)
        return names

    def delete(self, name: str) -> None:
        self.shared.delete(name)

    def heal(self) -> None:
        self.fault = None
        self.hidden.clear()
        self.frozen_listing.clear()
        if self.private:
            self.private.clear()


def _restore(home: Path, phrase: str, remote: Remote) -> Vault:
    core = service.restore(
        "memory:",
        home,
        phrase,
        PASSPHRASE,
        kdf=FAST_KDF,
        embedder=HashEmbedder(),
        remote=remote,
    )
    return Vault(core)


def _sync(v: Vault, remote: Remote) -> str:
    """One sync; what came of it: ok, detected (refused or failed loudly)."""
    try:
        service.sync(v.core, "origin", remote=remote)
        return "ok"
    except SyncRefused:
        return "detected"
    except RemoteError:
        return "detected"


def _texts(v: Vault) -> set[str]:
    return {m.text for m in v.list(limit=None).items}


@pytest.fixture
def devices(fast_dir: Path) -> Iterator[tuple[Vault, Vault, MemoryRemote, str]]:
    made = create_vault(fast_dir / "a")
    a = made.vault
    shared = MemoryRemote()
    a.remotes.add("origin", "/memory-twin", probe=False)
    a.add("written before the faults")
    service.sync(a.core, "origin", remote=shared)
    b = _restore(fast_dir / "b", made.recovery_phrase, shared)
    try:
        yield a, b, shared, made.recovery_phrase
    finally:
        a.close()
        b.close()


def test_every_fault_is_tolerated_or_detected(
    devices: tuple[Vault, Vault, MemoryRemote, str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, shared, _ = devices
    outcomes: Counter[str] = Counter()
    for round_, fault in enumerate(FAULTS * 3):
        ra = FaultyRemote(shared, round_, "a")
        rb = FaultyRemote(shared, round_ + 1000, "b")
        ra.fault = rb.fault = fault
        written_a = a.add(f"a wrote this in round {round_}").text
        written_b = b.add(f"b wrote this in round {round_}").text
        results = [_sync(a, ra), _sync(b, rb), _sync(a, ra), _sync(b, rb)]
        for v in (a, b):
            assert v.check().ok, fault
        allowed = {m.text for m in a.list(limit=None).items} | _texts(b)
        assert _texts(a) <= allowed and _texts(b) <= allowed
        assert written_a in _texts(a) and written_b in _texts(b)  # nothing acknowledged lost
        outcomes[f"{fault}: {'detected' if 'detected' in results else 'tolerated'}"] += 1
        ra.heal()
        rb.heal()
        # Evidence is kept, but a remote that behaves again is synced with again.
        for _ in range(2):
            assert _sync(a, shared) == "ok" and _sync(b, shared) == "ok", fault
        assert a.check().state_digest == b.check().state_digest, fault
    with capsys.disabled():
        print("\nsync faults:", dict(sorted(outcomes.items())))
    assert sum(outcomes.values()) == len(FAULTS) * 3


class ThreeDevices(RuleBasedStateMachine):
    """Three devices of one vault, random writes, partitions and sync orders."""

    def __init__(self) -> None:
        super().__init__()
        self.vaults: list[Vault] = []

    @initialize()
    def make(self) -> None:
        import tempfile

        self.tmp = tempfile.TemporaryDirectory(prefix="memsync-3dev-")
        root = Path(self.tmp.name)
        made = create_vault(root / "a")
        self.remote = MemoryRemote()
        a = made.vault
        a.remotes.add("origin", "/memory-twin", probe=False)
        a.add("seed memory")
        service.sync(a.core, "origin", remote=self.remote)
        self.vaults = [
            a,
            _restore(root / "b", made.recovery_phrase, self.remote),
            _restore(root / "c", made.recovery_phrase, self.remote),
        ]
        self.cut: set[int] = set()
        self.n = 0

    @rule(who=st.integers(0, 2), text=st.sampled_from(["tea", "coffee", "Lisbon", "Rust"]))
    def add(self, who: int, text: str) -> None:
        self.n += 1
        self.vaults[who].add(f"{text} {self.n}")

    @rule(who=st.integers(0, 2), pick=st.integers(0, 100), text=st.text("abc xyz", max_size=8))
    def edit(self, who: int, pick: int, text: str) -> None:
        items = self.vaults[who].list(limit=None).items
        if items:
            self.n += 1
            self.vaults[who].edit(items[pick % len(items)].id, text=f"edited {text} {self.n}")

    @rule(who=st.integers(0, 2), pick=st.integers(0, 100))
    def forget(self, who: int, pick: int) -> None:
        items = self.vaults[who].list(limit=None).items
        if len(items) > 1:
            self.vaults[who].forget(items[pick % len(items)].id)

    @rule(who=st.integers(0, 2))
    def partition(self, who: int) -> None:
        self.cut ^= {who}

    @rule(who=st.integers(0, 2))
    def sync(self, who: int) -> None:
        if who not in self.cut:
            service.sync(self.vaults[who].core, "origin", remote=self.remote)

    @precondition(lambda self: bool(self.vaults))
    @invariant()
    def each_log_checks(self) -> None:
        for v in self.vaults:
            assert v.check().ok

    def _forgotten_is_unreadable(self) -> None:
        """No key anywhere (a device's database, a key object on the remote) opens an
        entry about a forgotten memory; every device shows the same memories."""
        a = self.vaults[0]
        gone = {str(r[0]) for r in a.core.conn.execute("SELECT id FROM forgotten")}
        keys = {bytes(r[0]) for v in self.vaults for r in v.core.conn.execute(
            "SELECT key FROM entry_keys")}  # fmt: skip
        sync_keys = SyncKeys.base(a.core.vault_key)
        for name in list(self.remote.objects):
            if name.startswith("s/"):
                with contextlib.suppress(SyncRefused):
                    segment_keys = objects.open_keys(
                        self.remote.objects.get(sync_keys.keys_name(name), b""), name, [sync_keys]
                    )
                    keys |= set(segment_keys.values())
        for v in self.vaults:
            for e in v.log.entries():
                for key in keys:
                    with contextlib.suppress(CryptoError):
                        memories, _ = concerns(open_entry(v.header.vault_id, e, key))
                        assert not memories & gone, f"entry {e.device_id}/{e.seq} still opens"
        texts = {frozenset(m.text for m in v.list(limit=None).items) for v in self.vaults}
        assert len(texts) == 1

    def teardown(self) -> None:
        if not self.vaults:
            return
        try:
            for _ in range(2):
                for v in self.vaults:
                    service.sync(v.core, "origin", remote=self.remote)
            digests = {v.check().state_digest for v in self.vaults}
            assert len(digests) == 1, "devices did not converge"
            self._forgotten_is_unreadable()
        finally:
            for v in self.vaults:
                v.close()
            self.tmp.cleanup()


ThreeDevices.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_three_devices_converge = ThreeDevices.TestCase
