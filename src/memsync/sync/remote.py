"""Remotes: dumb blob stores a vault syncs through, and the in-memory twin tests use.

A remote holds opaque objects under short names ("s/3f…", "c/9a…"). It is trusted with
nothing: every object is encrypted and authenticated before it gets there, and every
object read back is checked. The protocol is the few methods every store offers — get,
create if absent, list, delete — and a conditional replace (`if_match`), which S3 and
folders honour and which keeps two devices from overwriting each other's write unseen.

`memsync.sync.urls.open_remote(url)` turns what `memsync remote add NAME URL` stored
into a remote: a folder or S3-compatible storage (`memsync.sync.s3`, which needs boto3).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from memsync.errors import RemoteError, RemoteUnreachable

__all__ = ["Blob", "Conflict", "FolderRemote", "MemoryRemote", "Remote"]

_NAME = re.compile(r"[a-z]/[0-9a-f]{16,64}")


class Conflict(RemoteError):
    """A conditional replace found the object changed since it was read."""


@dataclass(frozen=True)
class Blob:
    """An object as read: its bytes and the tag a conditional replace names."""

    data: bytes
    tag: str


def check_name(name: str) -> str:
    """Object names are a kind letter and a hex hash: nothing else reaches the store."""
    if not _NAME.fullmatch(name):
        raise RemoteError(f"not an object name: {name!r}")
    return name


class Remote:
    """A blob store. Subclasses implement the five methods; names pass `check_name`."""

    url: str = ""

    def get(self, name: str) -> Blob | None:
        """The object `name`, or None if there is none (or none visible yet)."""
        raise NotImplementedError

    def create(self, name: str, data: bytes) -> bool:
        """Store `data` as `name` unless it exists; False if it did (nothing written)."""
        raise NotImplementedError

    def replace(self, name: str, data: bytes, if_match: str | None) -> None:
        """Store `data` as `name`. With `if_match`, only if the object still has that tag
        (`Conflict` if not); with None, only if there is no object yet."""
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """Names starting with `prefix` (a kind letter and "/"). May lag behind writes."""
        raise NotImplementedError

    def delete(self, name: str) -> None:
        """Remove `name`; no error if it is not there."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Make the remote ready to hold objects when it is added (a folder is created
        inside an existing one); by default nothing."""


def tag_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class MemoryRemote(Remote):
    """A remote in a dict, for tests and for wrapping in fault injectors."""

    def __init__(self) -> None:
        self.url = "memory:"
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Blob | None:
        data = self.objects.get(check_name(name))
        return None if data is None else Blob(data, tag_of(data))

    def create(self, name: str, data: bytes) -> bool:
        with self._lock:
            if check_name(name) in self.objects:
                return False
            self.objects[name] = bytes(data)
            return True

    def replace(self, name: str, data: bytes, if_match: str | None) -> None:
        with self._lock:
            current = self.objects.get(check_name(name))
            found = None if current is None else tag_of(current)
            if found != if_match:
                raise Conflict(f"object {name} changed while it was being replaced")
            self.objects[name] = bytes(data)

    def list(self, prefix: str) -> list[str]:
        return sorted(n for n in self.objects if n.startswith(prefix))

    def delete(self, name: str) -> None:
        with self._lock:
            self.objects.pop(check_name(name), None)


class FolderRemote(Remote):
    """A directory: local, on a USB stick, or kept in step by Syncthing, Dropbox or iCloud
    Drive. Objects are files written aside and renamed into place, so a reader (or the
    program that copies the folder elsewhere) never sees half of one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def prepare(self) -> None:
        if not self.root.parent.is_dir():
            raise RemoteUnreachable(f"folder {self.root.parent} does not exist")
        try:
            self.root.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise self._io(exc) from None

    def _io(self, exc: OSError) -> RemoteUnreachable:
        return RemoteUnreachable(f"folder remote {self.root}: {exc.strerror or exc}")

    def get(self, name: str) -> Blob | None:
        try:
            data = self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._io(exc) from None
        return Blob(data, tag_of(data))

    def _write_aside(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def create(self, name: str, data: bytes) -> bool:
        path = self._path(name)
        try:
            tmp = self._write_aside(path, data)
            try:
                os.link(tmp, path)  # fails if the name exists: create-if-absent, atomically
            except FileExistsError:
                return False
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            raise self._io(exc) from None
        return True

    def replace(self, name: str, data: bytes, if_match: str | None) -> None:
        path = self._path(name)
        # A folder offers no compare-and-swap across machines; within one machine the
        # lock file serialises processes, and the check catches what arrived meanwhile.
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with _locked(self.root / ".lock"), self._lock:
                current = self.get(name)
                found = None if current is None else current.tag
                if found != if_match:
                    raise Conflict(f"object {name} changed while it was being replaced")
                tmp = self._write_aside(path, data)
                os.replace(tmp, path)
        except OSError as exc:
            raise self._io(exc) from None

    def list(self, prefix: str) -> list[str]:
        kind = prefix.split("/", 1)[0]
        folder = self.root / kind
        try:
            names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            if not self.root.is_dir():
                raise RemoteUnreachable(f"folder remote {self.root} does not exist") from None
            return []
        except OSError as exc:
            raise self._io(exc) from None
        return sorted(f"{kind}/{n}" for n in names if f"{kind}/{n}".startswith(prefix))

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise self._io(exc) from None


@contextlib.contextmanager
def _locked(path: Path):  # type: ignore[no-untyped-def]
    import fcntl

    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
