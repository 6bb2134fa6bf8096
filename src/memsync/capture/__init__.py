"""Turning files into sources: conversations, documents and memories from other tools.

`read_any(path)` picks the importer by content (`detect_format`) and returns an
`ImportBatch`; each importer module (`chatgpt`, `claude`, `mem0`, `documents`,
`messages`) can also be used on its own.
"""

from memsync.capture.detect import detect_format, read_any
from memsync.capture.types import (
    Chunk,
    Format,
    ImportBatch,
    ImportedConversation,
    ImportedDocument,
    ImportedMemory,
)

__all__ = [
    "Chunk",
    "Format",
    "ImportBatch",
    "ImportedConversation",
    "ImportedDocument",
    "ImportedMemory",
    "detect_format",
    "read_any",
]
