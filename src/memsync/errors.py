"""The one exception tree. Every error memsync raises on purpose is a `MemsyncError`.

User errors (a wrong passphrase, an unknown id, a malformed file) carry a message that
the CLI prints as one line, with the `exit_code` it exits with.

    MemsyncError
    ├── UsageError (WeakPassphrase, AmbiguousId)
    ├── VaultNotFound, VaultExists, VaultLocked, WrongPassphrase, BadRecoveryPhrase
    ├── CryptoError
    ├── CorruptVault (IntegrityError)
    ├── NotFound, InvalidInput (UnknownFormat)
    ├── EmbedderError, LLMError
    ├── Unauthenticated, AccessDenied, RateLimited
    ├── VaultBusy, StorageError
    ├── RemoteError (RemoteUnreachable), SyncRefused
    └── ChainError (ChainUnreachable)
"""

from __future__ import annotations


class MemsyncError(Exception):
    """Base of every error memsync raises on purpose."""

    exit_code = 1


class UsageError(MemsyncError):
    """The caller asked for something that cannot be done as asked."""

    exit_code = 2


class VaultNotFound(MemsyncError):
    """No vault at the expected place."""

    exit_code = 3


class VaultExists(MemsyncError):
    """`init` was asked to create a vault where one already is."""

    exit_code = 3


class VaultLocked(MemsyncError):
    """No passphrase or remembered key was available to unlock the vault."""

    exit_code = 4


class WrongPassphrase(MemsyncError):
    """The passphrase does not open this device's key file."""

    exit_code = 4


class WeakPassphrase(UsageError):
    """A new passphrase was refused; the message says why."""


class BadRecoveryPhrase(MemsyncError):
    """The recovery phrase is malformed or does not open this vault."""

    exit_code = 4


class CryptoError(MemsyncError):
    """Authenticated decryption or a signature failed: data was tampered with or foreign."""

    exit_code = 5


class CorruptVault(MemsyncError):
    """A vault file is damaged, truncated or belongs to something else."""

    exit_code = 5


class IntegrityError(CorruptVault):
    """The operation log failed verification (signature, hash chain, order or rebuild)."""


class NotFound(MemsyncError):
    """No memory, source or record with that id."""

    exit_code = 6


class AmbiguousId(UsageError):
    """An id prefix matches more than one record."""


class InvalidInput(MemsyncError):
    """An input file or value is malformed; the message names the file and the place."""

    exit_code = 7


class UnknownFormat(InvalidInput):
    """A file is not in any format memsync can import."""


class EmbedderError(MemsyncError):
    """The embedding model is missing, altered or failed to run."""

    exit_code = 8


class LLMError(MemsyncError):
    """A configured language-model endpoint failed: unreachable, refused, timed out, or
    answered with output that stayed malformed after one retry."""

    exit_code = 9


class Unauthenticated(MemsyncError):
    """A request came without a token, with an unknown one, or from a revoked app."""

    exit_code = 10


class AccessDenied(MemsyncError):
    """The app's scope does not allow this write. (Reads out of scope are not errors:
    what an app may not read is invisible to it.)"""

    exit_code = 10


class RateLimited(MemsyncError):
    """An app made more requests than its limit allows; `retry_after` is in seconds."""

    exit_code = 11

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VaultBusy(MemsyncError):
    """Another process (or thread) kept the vault's write lock past the wait bound; nothing
    was written. `retry_after` is in seconds."""

    exit_code = 12

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(MemsyncError):
    """The vault's files could not be written (disk full, read-only, an I/O error); the
    change was rolled back, so the vault holds what it held before."""

    exit_code = 13


class RemoteError(MemsyncError):
    """A remote could not be used as asked: a malformed URL, missing credentials or
    library, a remote that holds another vault, or an object it refused to store."""

    exit_code = 14


class RemoteUnreachable(RemoteError):
    """The remote did not answer (network, permissions, a missing folder); nothing was
    changed locally. Syncing again later resumes."""


class SyncRefused(MemsyncError):
    """What the remote serves cannot be accepted: it rolls back, forks, skips or alters
    what this device has verified, or comes from a device the vault does not trust. The
    local state is unchanged; `memsync sync --evidence` shows what was kept as proof."""

    exit_code = 15


class ChainError(MemsyncError):
    """The chain could not be used as asked: no chain configured, the chain extra not
    installed, a wrong chain id, a contract that is not memsync's registry, a vault not
    registered there, or a transaction the chain reverted. Nothing was recorded locally."""

    exit_code = 16


class ChainUnreachable(ChainError):
    """The chain's RPC endpoint did not answer (a bad URL, a node that stopped); nothing was
    changed locally."""
