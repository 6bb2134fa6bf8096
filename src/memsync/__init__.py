"""memsync: a user-owned, encrypted memory layer for AI assistants.

The public surface is small: `Vault` and the domain types it takes and returns, plus the
exception tree rooted at `MemsyncError`.
"""

from memsync.errors import (
    CorruptVault,
    CryptoError,
    IntegrityError,
    InvalidInput,
    MemsyncError,
    NotFound,
    VaultLocked,
    VaultNotFound,
    WrongPassphrase,
)
from memsync.model import (
    Category,
    CheckReport,
    Kind,
    Memory,
    Message,
    Page,
    Provenance,
    SearchFilters,
    SearchHit,
    SearchMode,
    Source,
    Status,
    Turn,
)
from memsync.retrieve.context import Context, ContextItem
from memsync.retrieve.rank import Weights
from memsync.vault import IngestResult, NewVault, Vault

__version__ = "0.1.0"

__all__ = [
    "Category",
    "CheckReport",
    "Context",
    "ContextItem",
    "CorruptVault",
    "CryptoError",
    "IngestResult",
    "IntegrityError",
    "InvalidInput",
    "Kind",
    "Memory",
    "MemsyncError",
    "Message",
    "NewVault",
    "NotFound",
    "Page",
    "Provenance",
    "SearchFilters",
    "SearchHit",
    "SearchMode",
    "Source",
    "Status",
    "Turn",
    "Vault",
    "VaultLocked",
    "VaultNotFound",
    "Weights",
    "WrongPassphrase",
]
