"""Retrieval: embedding texts and finding memories by meaning."""

from memsync.retrieval.e5 import E5Embedder
from memsync.retrieval.embed import Embedder, HashEmbedder, MiniLMEmbedder, default_embedder

__all__ = ["E5Embedder", "Embedder", "HashEmbedder", "MiniLMEmbedder", "default_embedder"]
