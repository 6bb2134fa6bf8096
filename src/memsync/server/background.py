"""`memsync serve` syncing in the background: soon after this device writes, and every
`sync.interval` seconds, with every remote; idle while the vault has none.

A sync that fails (a remote that is down, or one refused as a rollback or fork) is
retried at the next interval and shown in `/v1/health`; it never stops the server.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from memsync.errors import MemsyncError
from memsync.vault import Vault

__all__ = ["BackgroundSync", "SyncState"]

# After a write, wait this long for more before syncing: a burst becomes one sync.
SETTLE_SECONDS = 2.0
_POLL_SECONDS = 1.0
# How often the retention policy is applied while the server runs.
RETENTION_SECONDS = 600.0


@dataclass(frozen=True)
class SyncState:
    """What `/v1/health` says about background sync."""

    enabled: bool
    remotes: int
    last_sync: float | None = None  # unix seconds of the last sync that succeeded
    last_error: str | None = None  # the kind of error of the last attempt, if it failed


class BackgroundSync:
    """A thread that syncs `vault` with its remotes while the server runs."""

    def __init__(self, vault: Vault, interval: float) -> None:
        self.vault = vault
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = SyncState(enabled=interval > 0, remotes=len(vault.remotes.list()))
        self._lock = threading.Lock()

    @property
    def state(self) -> SyncState:
        with self._lock:
            return self._state

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="memsync-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _own_head(self) -> int:
        own = self.vault.device.device_id
        return self.vault.log.heads().get(own, (0, b""))[0]

    def _run(self) -> None:
        synced_head = -1
        last_attempt = 0.0
        changed_at: float | None = None
        retained_at = 0.0
        while not self._stop.wait(_POLL_SECONDS):
            if time.monotonic() - retained_at >= RETENTION_SECONDS:
                retained_at = time.monotonic()
                with contextlib.suppress(MemsyncError):
                    self.vault.forgetting.apply_retention()  # `retention.episodic`
            try:
                remotes = len(self.vault.remotes.list())
                head = self._own_head()
            except MemsyncError:
                continue
            with self._lock:
                self._state = SyncState(
                    True, remotes, self._state.last_sync, self._state.last_error
                )
            if not remotes:
                continue
            now = time.monotonic()
            if head != synced_head and changed_at is None:
                changed_at = now
            due = now - last_attempt >= self.interval
            settled = changed_at is not None and now - changed_at >= SETTLE_SECONDS
            if not (due or settled):
                continue
            last_attempt, changed_at = now, None
            try:
                self.vault.sync()
                synced_head = self._own_head()
                with self._lock:
                    self._state = SyncState(True, remotes, time.time(), None)
            except MemsyncError as exc:
                synced_head = head  # retried at the next interval, not every second
                with self._lock:
                    self._state = SyncState(
                        True, remotes, self._state.last_sync, type(exc).__name__
                    )
