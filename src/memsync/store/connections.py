"""The vault database as one process uses it: a connection per thread, and write
transactions that every process on the vault takes in turn.

Readers never wait: in WAL mode each connection reads the last committed state while a
writer works, so the threads of a server (and any other process on the vault) search in
parallel. Writers are serialised twice over: threads of this process queue on one lock,
and each write transaction starts with `BEGIN IMMEDIATE`, which takes SQLite's write lock
before anything is read. So whatever a transaction reads (the head of this device's feed
above all: its sequence number, hash and clock) cannot change before it commits, and two
processes can never fork the feed or overwrite each other's work. A writer waits for the
lock up to `wait` seconds, then gets `VaultBusy`; a write the disk refuses (full,
read-only, an I/O error) is rolled back whole and reported as `StorageError`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import apsw

from memsync.errors import MemsyncError, UsageError, VaultBusy
from memsync.store.db import storage_error

__all__ = ["DEFAULT_WAIT", "Database", "as_memsync_error", "storage_error", "wait_from_env"]

# Seconds a writer waits for another to finish. An import of a large export holds the
# lock for one source at a time, so a few seconds cover it; `MEMSYNC_WRITE_WAIT`
# changes it for this process.
DEFAULT_WAIT = 15.0
WAIT_ENV = "MEMSYNC_WRITE_WAIT"

Opener = Callable[[int], apsw.Connection]


def wait_from_env() -> float:
    """The write wait this process uses: `$MEMSYNC_WRITE_WAIT`, else `DEFAULT_WAIT`."""
    raw = os.environ.get(WAIT_ENV)
    if not raw:
        return DEFAULT_WAIT
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{WAIT_ENV} must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise UsageError(f"{WAIT_ENV} must not be negative")
    return value


def _busy(waited: float) -> VaultBusy:
    return VaultBusy(
        f"the vault is busy: another memsync process kept it for more than {waited:.0f} s; "
        "nothing was written, try again",
        retry_after=1.0,
    )


def as_memsync_error(exc: apsw.Error) -> MemsyncError | None:
    """What a database error that escaped a write (or a read that waited too long for a
    lock another process held) means to the person; None for damage or a bug."""
    if isinstance(exc, apsw.BusyError):
        return _busy(wait_from_env())
    return storage_error(exc)


class Database:
    """Connections to one vault database, one per thread, opened on first use.

    `opener(busy_timeout_ms)` opens and configures one connection. The connection that
    was opened to create or unlock the vault can be handed over as the first thread's.

    Example:
        >>> with database.write() as conn:
        ...     conn.execute("INSERT INTO meta(key, value) VALUES('k', 'v')")
    """

    def __init__(
        self,
        opener: Opener,
        *,
        first: apsw.Connection | None = None,
        wait: float | None = None,
    ) -> None:
        self._opener = opener
        self.wait = wait_from_env() if wait is None else wait
        self._local = threading.local()
        self._guard = threading.Lock()
        self._opened: list[apsw.Connection] = []
        self._closed = False
        # Orders this process's writers; RLock so a write may nest inside another.
        self.lock = threading.RLock()
        if first is not None:
            first.execute(f"PRAGMA busy_timeout={self._busy_ms()}")
            self._adopt(first)

    def _busy_ms(self) -> int:
        return int(self.wait * 1000)

    def _adopt(self, conn: apsw.Connection) -> apsw.Connection:
        with self._guard:
            if self._closed:
                conn.close()
                raise UsageError("the vault is closed")
            self._opened.append(conn)
        self._local.conn = conn
        return conn

    @property
    def conn(self) -> apsw.Connection:
        """This thread's connection (opened now if it has none)."""
        found: apsw.Connection | None = getattr(self._local, "conn", None)
        if found is not None:
            return found
        if self._closed:
            raise UsageError("the vault is closed")
        return self._adopt(self._opener(self._busy_ms()))

    @property
    def in_write(self) -> bool:
        """Whether this thread is inside a write transaction."""
        return bool(getattr(self._local, "depth", 0))

    @contextmanager
    def write(self) -> Iterator[apsw.Connection]:
        """A write transaction on this thread's connection, committed when the block ends
        and rolled back whole if it raises. Nested blocks are savepoints of the outer one.

        Raises `VaultBusy` when the lock stayed taken for `wait` seconds, and
        `StorageError` when the disk refused the write.
        """
        conn = self.conn
        depth: int = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                with conn:
                    yield conn
            finally:
                self._local.depth = depth
            return
        started = time.monotonic()
        if not self.lock.acquire(timeout=self.wait if self.wait > 0 else -1):
            raise _busy(self.wait)
        try:
            waited = time.monotonic() - started
            # The bound is for the whole wait: what this thread spent queueing behind
            # the others counts against what SQLite may wait for another process.
            if waited > 0.001:
                conn.execute(f"PRAGMA busy_timeout={int(max(0.0, self.wait - waited) * 1000)}")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except apsw.BusyError:
                raise _busy(self.wait) from None
            except apsw.Error as exc:
                raise storage_error(exc) or exc from None
            finally:
                if waited > 0.001:
                    conn.execute(f"PRAGMA busy_timeout={self._busy_ms()}")
            self._local.depth = 1
            self._local.undo = []
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback(conn)
                for undo in self._local.undo:
                    undo()
                if isinstance(exc, apsw.BusyError):
                    raise _busy(self.wait) from None
                if isinstance(exc, apsw.Error) and (mapped := storage_error(exc)):
                    raise mapped from None
                raise
            finally:
                self._local.depth = 0
        finally:
            self.lock.release()

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Call `undo` if this thread's write transaction is rolled back: for caches that
        took in what the transaction had written so far."""
        if self.in_write:
            self._local.undo.append(undo)

    @contextmanager
    def snapshot(self) -> Iterator[apsw.Connection]:
        """A read transaction: every query in the block sees the same committed state,
        whatever other connections commit meanwhile. Not inside a write."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            self._rollback(conn)  # nothing was written: ending it is all rollback does

    @staticmethod
    def _rollback(conn: apsw.Connection) -> None:
        # After some failures (a full disk during COMMIT) SQLite has already rolled back;
        # if the rollback itself fails, SQLite rolls back from the journal on next open.
        if not conn.get_autocommit():
            with suppress(apsw.Error):
                conn.execute("ROLLBACK")

    def close(self) -> None:
        """Close every connection this object opened, in whichever thread."""
        with self._guard:
            self._closed = True
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()
