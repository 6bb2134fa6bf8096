"""The search index's vectors: embedders (`embed`, `e5`, chosen by `embedders`) and the
stored and in-memory vectors of every indexed item (`vectors`)."""

from memsync.index.e5 import E5Embedder
from memsync.index.embed import Embedder, HashEmbedder, MiniLMEmbedder, default_embedder

__all__ = ["E5Embedder", "Embedder", "HashEmbedder", "MiniLMEmbedder", "default_embedder"]
