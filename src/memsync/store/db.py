"""Opening the encrypted database and creating its schema.

The whole file is encrypted by SQLite3 Multiple Ciphers (ChaCha20-Poly1305 per page, the
WAL included), so a flipped byte anywhere in a page is caught when the page is read. Temp
tables and sorts stay in memory so SQLite never writes a plaintext temp file.

The page key is given raw (`PRAGMA key="x'…'"`): it is already 256 random bits derived
from the vault key, so the cipher's own passphrase KDF (PBKDF2, 64,007 rounds, 25 ms per
connection here) would add nothing but the cost of every new connection, and a server
opens one per thread. Vaults written before keyed through that KDF (`PRAGMA hexkey`);
they still open, and are re-keyed to the raw key the first time one is opened alone.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import apsw

from memsync.errors import CorruptVault, StorageError

SCHEMA_VERSION = 7

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices(
    device_id TEXT PRIMARY KEY,
    wrap_pub BLOB NOT NULL,
    sign_pub BLOB NOT NULL,
    name TEXT,
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS oplog(
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    prev_hash BLOB NOT NULL,
    hlc INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    heads TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    signature BLOB NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY(device_id, seq)
);
CREATE INDEX IF NOT EXISTS oplog_hlc ON oplog(hlc);
CREATE TABLE IF NOT EXISTS memories(
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    kind TEXT NOT NULL,
    category TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    observed_at INTEGER NOT NULL,
    valid_from INTEGER,
    valid_until INTEGER,
    confidence REAL NOT NULL,
    status TEXT NOT NULL,
    supersedes TEXT,
    superseded_by TEXT
);
CREATE INDEX IF NOT EXISTS memories_status ON memories(status, observed_at);
CREATE TABLE IF NOT EXISTS memory_tags(
    memory_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY(memory_id, tag)
);
CREATE INDEX IF NOT EXISTS memory_tags_tag ON memory_tags(tag);
CREATE TABLE IF NOT EXISTS provenance(
    memory_id TEXT NOT NULL,
    ord INTEGER NOT NULL,
    source_id TEXT,
    turn INTEGER,
    start INTEGER,
    "end" INTEGER,
    extractor TEXT NOT NULL,
    extractor_version TEXT NOT NULL,
    PRIMARY KEY(memory_id, ord)
);
CREATE INDEX IF NOT EXISTS provenance_source ON provenance(source_id);
CREATE TABLE IF NOT EXISTS sources(
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    title TEXT,
    origin TEXT,
    created_at INTEGER NOT NULL,
    captured_at INTEGER NOT NULL,
    digest TEXT NOT NULL,
    external_id TEXT
);
CREATE INDEX IF NOT EXISTS sources_digest ON sources(digest);
CREATE INDEX IF NOT EXISTS sources_external ON sources(external_id);
CREATE TABLE IF NOT EXISTS messages(
    rowid INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    ts INTEGER,
    name TEXT,
    start INTEGER,
    UNIQUE(source_id, idx)
);
-- The search index: one row per searchable item (a memory or a conversation turn), with
-- the columns search filters on, so keyword and vector search share one source of truth.
CREATE TABLE IF NOT EXISTS items(
    rowid INTEGER PRIMARY KEY,
    type INTEGER NOT NULL,
    ref INTEGER NOT NULL,
    text TEXT NOT NULL,
    status INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    category INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    valid_until INTEGER,
    vec BLOB,
    UNIQUE(type, ref)
);
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(
    text, content='items', content_rowid='rowid', tokenize='porter unicode61 remove_diacritics 2'
);
-- A deleted row's tokens leave the index's segments at once (not at the next merge):
-- forgetting must leave no trace of a text there.
INSERT INTO items_fts(items_fts, rank) VALUES('secure-delete', 1);
-- Apps allowed to talk to the vault; the token is kept only as its SHA-256.
CREATE TABLE IF NOT EXISTS apps(
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    rate_per_minute INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
-- The disclosure ledger: what was handed to which app, when and for what query.
CREATE TABLE IF NOT EXISTS disclosures(
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    app TEXT NOT NULL,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    query TEXT
);
CREATE INDEX IF NOT EXISTS disclosures_app ON disclosures(app, at);
CREATE INDEX IF NOT EXISTS disclosures_at ON disclosures(at);
CREATE TABLE IF NOT EXISTS disclosed(
    disclosure INTEGER NOT NULL,
    ord INTEGER NOT NULL,
    memory_id TEXT,
    source_id TEXT,
    turn INTEGER,
    PRIMARY KEY(disclosure, ord)
);
CREATE INDEX IF NOT EXISTS disclosed_memory ON disclosed(memory_id);
-- A bio the person wrote, shown instead of the derived one (one row at most).
CREATE TABLE IF NOT EXISTS bio(
    one INTEGER PRIMARY KEY CHECK(one = 1),
    text TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS items_ai AFTER INSERT ON items BEGIN
    INSERT INTO items_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS items_ad AFTER DELETE ON items BEGIN
    INSERT INTO items_fts(items_fts, rowid, text) VALUES('delete', old.rowid, old.text);
END;
CREATE TRIGGER IF NOT EXISTS items_au AFTER UPDATE OF text ON items BEGIN
    INSERT INTO items_fts(items_fts, rowid, text) VALUES('delete', old.rowid, old.text);
    INSERT INTO items_fts(rowid, text) VALUES (new.rowid, new.text);
END;
-- Which index items changed, in commit order, whichever connection or process changed
-- them: every process keeps its in-memory vectors in step by reading what is new here.
-- Derived, like the vectors: not part of the state's digest, pruned as it grows.
CREATE TABLE IF NOT EXISTS item_changes(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS items_changed_ai AFTER INSERT ON items BEGIN
    INSERT INTO item_changes(item) VALUES (new.rowid);
END;
CREATE TRIGGER IF NOT EXISTS items_changed_ad AFTER DELETE ON items BEGIN
    INSERT INTO item_changes(item) VALUES (old.rowid);
END;
CREATE TRIGGER IF NOT EXISTS items_changed_au AFTER UPDATE ON items BEGIN
    INSERT INTO item_changes(item) VALUES (new.rowid);
END;
-- Counters other processes' caches compare: `memories` moves with every operation that
-- may change a memory or the bio (the profile is rebuilt when it moves).
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters(name, value) VALUES ('memories', 0);
-- Devices let in by another device after pairing (the `enrol_device` operation).
CREATE TABLE IF NOT EXISTS enrolments(
    device_id TEXT PRIMARY KEY,
    wrap_pub TEXT NOT NULL,
    sign_pub TEXT NOT NULL,
    by_device TEXT NOT NULL,
    at INTEGER NOT NULL
);
-- Revoked devices: entries of theirs after `seq` count for nothing, and every epoch from
-- `epoch` on has a key they were never given (`epochs`, wrapped to who remained).
CREATE TABLE IF NOT EXISTS revocations(
    device_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    by_device TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS epochs(
    epoch INTEGER PRIMARY KEY,
    stanzas TEXT NOT NULL,
    at INTEGER NOT NULL
);
-- Each log entry's own random key (its record key): the entry's operation is sealed
-- under it, so a record can later be shredded by forgetting one key. Entries written
-- before schema 5 have none and open with the epoch's log key.
CREATE TABLE IF NOT EXISTS entry_keys(
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    key BLOB NOT NULL,
    PRIMARY KEY(device_id, seq)
);
-- Epoch keys this device has unwrapped (its own cache, not state: each device has its
-- own copy of each, wrapped to it in `epochs` or in its enrolment).
CREATE TABLE IF NOT EXISTS epoch_keys(
    epoch INTEGER PRIMARY KEY,
    key BLOB NOT NULL
);
-- Sync: this device's remotes and what it has verified of each (not synced, not in the
-- state's digest: like settings, they belong to the device).
CREATE TABLE IF NOT EXISTS remotes(
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_pushed(
    remote TEXT NOT NULL,
    seq INTEGER NOT NULL,
    segment TEXT NOT NULL,
    first INTEGER NOT NULL,
    PRIMARY KEY(remote, seq)
);
CREATE TABLE IF NOT EXISTS sync_seen(
    remote TEXT NOT NULL,
    device_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY(remote, device_id)
);
CREATE TABLE IF NOT EXISTS sync_evidence(
    rowid INTEGER PRIMARY KEY,
    remote TEXT NOT NULL,
    at INTEGER NOT NULL,
    what TEXT NOT NULL,
    detail TEXT NOT NULL
);
-- Recovery phrases after the first (state, from the log): each `rotate_recovery` names
-- the new recovery keys, starts an epoch (in `epochs`) whose key the old phrase never
-- gets, wraps the older epoch keys to the new phrase, and names the devices it trusts.
CREATE TABLE IF NOT EXISTS rotations(
    epoch INTEGER PRIMARY KEY,
    sign_pub TEXT NOT NULL,
    wrap_pub TEXT NOT NULL,
    devices TEXT NOT NULL,
    rewrapped TEXT NOT NULL,
    by_device TEXT NOT NULL,
    at INTEGER NOT NULL
);
-- Forgetting (state, from the log): the versions and sources a forget names, and the
-- entries whose record keys forgetting destroys (a forget or shred operation names them,
-- so an entry that arrives without its key is known to be shredded, not withheld).
CREATE TABLE IF NOT EXISTS forgotten(
    id TEXT PRIMARY KEY,
    what TEXT NOT NULL,
    at INTEGER NOT NULL,
    digest TEXT
);
CREATE TABLE IF NOT EXISTS shred_names(
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY(device_id, seq)
);
-- Entries whose record key this device has destroyed (its own record, not state), and
-- the key objects on each remote still to be rewritten without them.
CREATE TABLE IF NOT EXISTS shredded(
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY(device_id, seq)
);
CREATE TABLE IF NOT EXISTS shred_pending(
    remote TEXT NOT NULL,
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY(remote, device_id, seq)
);
-- Which segment on a remote holds which entries of a feed (for rewriting key objects).
CREATE TABLE IF NOT EXISTS sync_segments(
    remote TEXT NOT NULL,
    device_id TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    segment TEXT NOT NULL,
    PRIMARY KEY(remote, device_id, first)
);
-- The chain this device anchors to and checks syncs against (settings of the device;
-- the keys are here because the whole database is encrypted).
CREATE TABLE IF NOT EXISTS chain(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rpc TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    contract TEXT,
    rpc_key TEXT,
    sender_key BLOB,
    owner_key BLOB,
    anchor_every INTEGER DEFAULT 0, -- seconds between anchors after syncs; NULL: never
    from_block INTEGER NOT NULL DEFAULT 0,
    anchored_at INTEGER -- when this device last anchored (ms)
);
-- The newest on-chain checkpoint this device has verified: a node that serves an older
-- one is contradicting what was seen.
CREATE TABLE IF NOT EXISTS chain_seen(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    contract TEXT NOT NULL,
    counter INTEGER NOT NULL,
    root BLOB NOT NULL,
    anchored BLOB, -- the sealed anchored state, to put back on a remote that lacks it
    heads TEXT -- the anchored heads (JSON), once verified
);
"""

# From an older schema version to the current one; then SCHEMA adds any new tables.
_MIGRATIONS = {
    "1": """
    ALTER TABLE sources ADD COLUMN external_id TEXT;
    ALTER TABLE messages ADD COLUMN start INTEGER;
    CREATE INDEX IF NOT EXISTS sources_external ON sources(external_id);
    """,
    "2": "",
    "3": "",
    "4": "",
    "5": "",
    "6": "",
}


_STORAGE = (apsw.FullError, apsw.ReadOnlyError, apsw.IOError, apsw.CantOpenError)
# How long a connection waits for a lock another connection holds before giving up.
BUSY_TIMEOUT_MS = 5000


def _configure(conn: apsw.Connection, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    # Up to 64 MiB of decrypted pages (SQLite's default is 2 MB): each page read from disk
    # is decrypted again, and ranking a search reads the provenance of ~100 candidates;
    # at 100k memories this took the search p50 from 17 to 13 ms. The pages are no more
    # exposed than the vectors and records already held in memory.
    conn.execute("PRAGMA cache_size=-65536")


def _keyed(path: Path, flags: int, pragma: str) -> apsw.Connection:
    """A connection to `path` keyed by `pragma`, its first page read (and so
    authenticated); apsw.Error (NotADBError for a wrong key) if it cannot be read."""
    conn = apsw.Connection(str(path), flags=flags)
    try:
        conn.execute(pragma)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn


def _raw_key(key: bytes) -> str:
    return f"PRAGMA key=\"x'{key.hex()}'\""


def _rekey_legacy(conn: apsw.Connection, key: bytes) -> bool:
    """Move a vault keyed through the cipher's passphrase KDF to the raw key.

    SQLite3 Multiple Ciphers re-keys only outside WAL mode, and leaving WAL mode needs the
    database to itself: with another connection open this does nothing (False) and the
    vault keeps working on the old key until it is next opened alone.
    """
    try:
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchall()
        if mode != [("delete",)]:
            return False
        conn.execute(f"PRAGMA rekey=\"x'{key.hex()}'\"")
        return True
    except apsw.Error:
        return False
    finally:
        with contextlib.suppress(apsw.Error):
            conn.execute("PRAGMA journal_mode=WAL").fetchall()


def open_encrypted(
    path: Path, key: bytes, *, create: bool, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> apsw.Connection:
    """Open (or create) the database at `path`, encrypted with the 32-byte `key`.

    Raises `CorruptVault` when the file cannot be read with this key: damaged, truncated,
    encrypted for another vault, or not a database at all.
    """
    if not create and not path.exists():
        raise CorruptVault(f"vault database missing: {path}")
    flags = apsw.SQLITE_OPEN_READWRITE | (apsw.SQLITE_OPEN_CREATE if create else 0)
    try:
        try:
            conn = _keyed(path, flags, _raw_key(key))
        except apsw.NotADBError:
            if create:
                raise
            conn = _keyed(path, flags, f"PRAGMA hexkey='{key.hex()}'")
            if _rekey_legacy(conn, key):
                conn.close()
                conn = _keyed(path, flags, _raw_key(key))
        if create:
            conn.execute("PRAGMA journal_mode=WAL")
        _configure(conn, busy_timeout_ms)
        if create:
            with conn:
                conn.execute(SCHEMA)
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        else:
            version = read_meta(conn, "schema_version")
            if version in _MIGRATIONS:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    # Another process may have migrated it while this one waited.
                    version = read_meta(conn, "schema_version")
                    if version in _MIGRATIONS:
                        conn.execute(_MIGRATIONS[version] + SCHEMA)
                        write_meta(conn, "schema_version", str(SCHEMA_VERSION))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                version = str(SCHEMA_VERSION)
            if version != str(SCHEMA_VERSION):
                raise CorruptVault(f"unsupported vault schema version: {version!r}")
    except apsw.Error as exc:
        if isinstance(exc, _STORAGE):
            # The file may be fine: its folder is read-only, the disk full, or it failed.
            raise StorageError(
                f"cannot open the vault database for writing ({exc}): check that its "
                "folder is writable and the disk has room; nothing was changed"
            ) from None
        raise CorruptVault(
            f"cannot read the vault database ({type(exc).__name__}): damaged or not this vault's"
        ) from None
    return conn


def storage_error(exc: apsw.Error) -> StorageError | None:
    """What a failed write means to the person, or None for an error of another kind."""
    if isinstance(exc, apsw.FullError):
        return StorageError("the disk is full: nothing was written; free some space and retry")
    if isinstance(exc, apsw.ReadOnlyError):
        return StorageError("the vault's folder or files are read-only: nothing was written")
    if isinstance(exc, apsw.IOError | apsw.CantOpenError):
        return StorageError(f"the vault could not be written ({exc}): nothing was written")
    return None


def open_memory() -> apsw.Connection:
    """A fresh in-memory database with the schema, used to rebuild state from the log."""
    conn = apsw.Connection(":memory:")
    _configure(conn)
    with conn:
        conn.execute(SCHEMA)
    return conn


def read_meta(conn: apsw.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def write_meta(conn: apsw.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))
