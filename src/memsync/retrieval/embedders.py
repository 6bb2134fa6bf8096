"""Which embedder a vault uses: chosen at `init`, remembered in the vault by name."""

from __future__ import annotations

import re

from memsync.errors import EmbedderError
from memsync.retrieval.embed import Embedder, HashEmbedder, MiniLMEmbedder, default_embedder

_HASH = re.compile(r"hash-(\d+)@1")
CHOICES = ("minilm", "hash")


def embedder_for(name: str | None) -> Embedder:
    """The embedder for a stored name (`minilm-l6-v2-int8@1`, `hash-384@1`) or a short
    choice (`minilm`, `hash`); `None` gives the default (MiniLM, offline)."""
    if name is None or name in ("minilm", MiniLMEmbedder.name):
        return default_embedder()
    if name == "hash":
        return HashEmbedder()
    match = _HASH.fullmatch(name)
    if match:
        return HashEmbedder(int(match.group(1)))
    raise EmbedderError(f"unknown embedder {name!r} (known: {', '.join(CHOICES)})")
