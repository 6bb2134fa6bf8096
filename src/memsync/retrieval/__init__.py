"""Retrieval: embedding texts and finding memories by meaning."""

from memsync.retrieval.embed import Embedder, HashEmbedder, MiniLMEmbedder, default_embedder

__all__ = ["Embedder", "HashEmbedder", "MiniLMEmbedder", "default_embedder"]
