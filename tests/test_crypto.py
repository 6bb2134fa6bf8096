"""Tests for memsync.crypto."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from memsync import errors
from memsync.crypto import (
    FAST_KDF,
    KEY_BYTES,
    KdfParams,
    Stanza,
    check_passphrase_strength,
    device_public_info,
    evm_owner_key,
    find_and_unwrap,
    fingerprint,
    generate_device,
    new_recovery_phrase,
    normalize_phrase,
    open_device,
    open_sealed,
    pad,
    record_ad,
    recovery_identity,
    seal,
    seal_device,
    sign,
    unpad,
    unwrap_key,
    verify,
    wrap_key,
)
from memsync.crypto.aead import padme_length
from memsync.crypto.phrase import SECP256K1_N

# The BIP39 test vector for all-zero entropy (24 words).
ZERO_PHRASE = " ".join(["abandon"] * 23 + ["art"])
KEY = bytes(range(KEY_BYTES))
AD = record_ad("v-1", "r-1", 1, 0)


def raw_pub(identity: X25519PrivateKey) -> bytes:
    return identity.public_key().public_bytes_raw()


# --- AEAD ---------------------------------------------------------------------------------


def test_seal_roundtrip_and_random_nonce() -> None:
    a, b = seal(KEY, b"hello", AD), seal(KEY, b"hello", AD)
    assert a != b
    assert open_sealed(KEY, a, AD) == b"hello"


@pytest.mark.parametrize(
    "other",
    [
        record_ad("v-1", "r-2", 1, 0),
        record_ad("v-1", "r-1", 2, 0),
        record_ad("v-1", "r-1", 1, 1),
        record_ad("v-2", "r-1", 1, 0),
        b"",
    ],
)
def test_wrong_ad_fails(other: bytes) -> None:
    with pytest.raises(errors.CryptoError):
        open_sealed(KEY, seal(KEY, b"secret", AD), other)


def test_record_ad_is_unambiguous() -> None:
    assert record_ad("ab", "c", 1, 0) != record_ad("a", "bc", 1, 0)
    with pytest.raises(errors.UsageError):
        record_ad("v", "r", -1, 0)


def test_open_rejects_short_blob_and_wrong_key() -> None:
    with pytest.raises(errors.CryptoError):
        open_sealed(KEY, b"\x00" * 27, AD)
    with pytest.raises(errors.CryptoError):
        open_sealed(bytes(32), seal(KEY, b"x", AD), AD)


@settings(max_examples=50)
@given(st.binary(max_size=2000), st.binary(max_size=64))
def test_seal_open_property(plaintext: bytes, ad: bytes) -> None:
    assert open_sealed(KEY, seal(KEY, plaintext, ad), ad) == plaintext


@settings(max_examples=100)
@given(st.binary(max_size=200), st.data())
def test_any_flipped_byte_fails(plaintext: bytes, data: st.DataObject) -> None:
    blob = bytearray(seal(KEY, plaintext, AD))
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(errors.CryptoError):
        open_sealed(KEY, bytes(blob), AD)


# --- padding ------------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.binary(max_size=5000))
def test_pad_roundtrip_property(data: bytes) -> None:
    padded = pad(data)
    assert len(padded) >= 256
    assert len(padded) == padme_length(len(data) + 4)
    assert unpad(padded) == data


@pytest.mark.parametrize(
    ("size", "padded"),
    [(0, 256), (252, 256), (253, 272), (996, 1024), (9996, 10240), (99996, 100352)],
)
def test_padme_buckets(size: int, padded: int) -> None:
    assert len(pad(b"x" * size)) == padded


def test_padme_overhead_is_bounded() -> None:
    for n in range(256, 200_000, 997):
        p = padme_length(n)
        assert n <= p < n * 1.12
        # Padmé keeps at most floor(log2 E)+1 significant bits, so there are few buckets.
        e = n.bit_length() - 1
        assert p % (1 << (e - e.bit_length())) == 0


def test_unpad_rejects_inconsistent() -> None:
    good = pad(b"abc")
    with pytest.raises(errors.CryptoError):
        unpad(good[:-1])
    with pytest.raises(errors.CryptoError):
        unpad((1000).to_bytes(4, "big") + good[4:])
    with pytest.raises(errors.CryptoError):
        unpad(good[:-1] + b"\x01")
    with pytest.raises(errors.CryptoError):
        unpad(b"\x00")


# --- recovery phrase ----------------------------------------------------------------------


def test_new_phrase_is_valid_and_random() -> None:
    a, b = new_recovery_phrase(), new_recovery_phrase()
    assert len(a.split()) == 24
    assert normalize_phrase(a) == a
    assert a != b


def test_normalize_collapses_case_and_space() -> None:
    messy = "  " + "\n".join(w.upper() for w in ZERO_PHRASE.split()) + "\t"
    assert normalize_phrase(messy) == ZERO_PHRASE


def test_phrase_derivations_are_deterministic() -> None:
    other = new_recovery_phrase()
    assert raw_pub(recovery_identity(ZERO_PHRASE)) == raw_pub(
        recovery_identity(ZERO_PHRASE.upper())
    )
    assert evm_owner_key(ZERO_PHRASE) == evm_owner_key(ZERO_PHRASE)
    assert raw_pub(recovery_identity(ZERO_PHRASE)) != raw_pub(recovery_identity(other))
    assert evm_owner_key(ZERO_PHRASE) != evm_owner_key(other)
    k = evm_owner_key(ZERO_PHRASE)
    assert len(k) == 32 and 1 <= int.from_bytes(k, "big") < SECP256K1_N
    # Independent labels: the EVM key is not the X25519 recovery key.
    assert k != recovery_identity(ZERO_PHRASE).private_bytes_raw()


@pytest.mark.parametrize(
    ("phrase", "needle"),
    [
        (" ".join(["abandon"] * 22 + ["art"]), "23"),
        (" ".join(["abandon"] * 5 + ["notaword"] + ["abandon"] * 17 + ["art"]), "word 6"),
        (" ".join(["abandon"] * 24), "checksum"),
    ],
)
def test_bad_phrases(phrase: str, needle: str) -> None:
    with pytest.raises(errors.BadRecoveryPhrase, match=needle) as exc:
        recovery_identity(phrase)
    assert "notaword" not in str(exc.value)


# --- wrapping -----------------------------------------------------------------------------


def test_wrap_to_device_and_recovery() -> None:
    file_key = bytes(range(32, 64))
    device = generate_device()
    rec = recovery_identity(ZERO_PHRASE)
    ad = b"vault-key:v-1:epoch-0"
    stanzas = [
        wrap_key(file_key, device.wrap_public, kind="device", ad=ad),
        wrap_key(file_key, rec.public_key(), kind="recovery", ad=ad),
    ]
    assert stanzas[0].recipient == fingerprint(device.wrap_public)
    assert len(stanzas[0].recipient) == 16
    assert find_and_unwrap(stanzas, device.wrap_key, ad) == file_key
    assert find_and_unwrap(stanzas, rec, ad) == file_key
    assert unwrap_key(stanzas[1], rec, ad) == file_key
    with pytest.raises(errors.CryptoError):
        find_and_unwrap(stanzas, X25519PrivateKey.generate(), ad)
    with pytest.raises(errors.CryptoError):
        unwrap_key(stanzas[0], X25519PrivateKey.generate(), ad)
    with pytest.raises(errors.CryptoError):
        find_and_unwrap(stanzas, rec, b"vault-key:v-1:epoch-1")


def test_stanza_json_roundtrip_and_validation() -> None:
    s = wrap_key(bytes(32), generate_device().wrap_public, kind="device", ad=b"")
    d = s.to_json()
    assert Stanza.from_json(json.loads(json.dumps(d))) == s
    bad: list[object] = [
        None,
        [],
        {**d, "kind": "other"},
        {**d, "ephemeral": d["ephemeral"][:-2]},
        {**d, "body": "!!!"},
        {**d, "recipient": 5},
        {k: v for k, v in d.items() if k != "body"},
    ]
    for item in bad:
        with pytest.raises(errors.CorruptVault):
            Stanza.from_json(item)
    with pytest.raises(errors.UsageError):
        wrap_key(bytes(32), generate_device().wrap_public, kind="other", ad=b"")


# --- device keys --------------------------------------------------------------------------


def test_device_seal_open_roundtrip() -> None:
    keys = generate_device()
    assert keys.device_id.startswith("d-") and len(keys.device_id) == 14
    blob = seal_device(keys, "correct horse battery staple!", FAST_KDF)
    opened = open_device(blob, "correct horse battery staple!")
    assert opened.device_id == keys.device_id
    assert opened.secret_bytes() == keys.secret_bytes()
    info = device_public_info(blob)
    assert info == (
        keys.device_id,
        keys.wrap_public.public_bytes_raw(),
        keys.sign_public.public_bytes_raw(),
    )
    assert KdfParams.FAST_KDF == FAST_KDF
    assert keys.secret_bytes() not in blob


def test_secret_bytes_roundtrip() -> None:
    keys = generate_device()
    raw = keys.secret_bytes()
    assert len(raw) == 64
    assert type(keys).from_secret_bytes(keys.device_id, raw).secret_bytes() == raw


def test_wrong_passphrase() -> None:
    blob = seal_device(generate_device(), "right passphrase here", FAST_KDF)
    with pytest.raises(errors.WrongPassphrase, match="wrong passphrase"):
        open_device(blob, "wrong passphrase here")


def _edit(blob: bytes, **changes: object) -> bytes:
    doc = json.loads(blob)
    for key, value in changes.items():
        if key.startswith("kdf_"):
            doc["kdf"][key[4:]] = value
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def test_damaged_key_file() -> None:
    blob = seal_device(generate_device(), "right passphrase here", FAST_KDF)
    damaged = [
        blob[:-10],
        b"\xff\xfe",
        b"[]",
        _edit(blob, version=2),
        _edit(blob, version=True),
        _edit(blob, format="something-else"),
        _edit(blob, kdf_m=8 * 1024 * 1024),
        _edit(blob, kdf_t="3"),
        _edit(blob, kdf_alg="scrypt"),
        _edit(blob, nonce="not base64!"),
        _edit(blob, ciphertext="AAAA"),
        _edit(blob, device_id=None),
    ]
    for item in damaged:
        with pytest.raises(errors.CorruptVault, match="device key file is damaged"):
            open_device(item, "right passphrase here")
    with pytest.raises(errors.CorruptVault):
        device_public_info(_edit(blob, wrap_public="AAAA"))


def test_tampered_public_key_does_not_open() -> None:
    blob = seal_device(generate_device(), "right passphrase here", FAST_KDF)
    other = generate_device().wrap_public.public_bytes_raw()
    with pytest.raises(errors.WrongPassphrase):
        open_device(
            _edit(blob, wrap_public=base64.b64encode(other).decode()), "right passphrase here"
        )


def test_sign_verify() -> None:
    keys = generate_device()
    pub = keys.sign_public.public_bytes_raw()
    sig = sign(keys, b"op")
    assert verify(pub, sig, b"op")
    assert not verify(pub, sig, b"op2")
    assert not verify(pub, sig[:-1], b"op")
    assert not verify(b"short", sig, b"op")
    assert not verify(generate_device().sign_public.public_bytes_raw(), sig, b"op")


# --- passphrase strength ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weak", "reason"),
    [
        ("short1!", "too short"),
        ("Password123", "common"),
        ("qwertyuiop", "common"),
        ("correct horse battery staple", "common"),
        ("31415926535897", "digits"),
        ("abababababab", "fewer than 5"),
        ("aaaaaaaaaaaa", "fewer than 5"),
        ("abcdefghij", "sequence"),
        ("lmnopqrstuvw", "sequence"),
        ("hunter2hunter2", "repetition"),
    ],
)
def test_weak_passphrases(weak: str, reason: str) -> None:
    with pytest.raises(errors.WeakPassphrase, match=reason):
        check_passphrase_strength(weak)


@pytest.mark.parametrize(
    "good",
    [
        "tulip-orbit-canyon-mellow",
        "my cat eats red hot peppers",
        "Gr8!vault#Key",
        "zebra oak sky fig",
    ],
)
def test_good_passphrases(good: str) -> None:
    check_passphrase_strength(good)


def test_a_vault_keyed_the_old_way_opens_and_moves_to_the_raw_key(tmp_path: Path) -> None:
    """Vaults of schema 3 keyed the database through the cipher's passphrase KDF
    (`PRAGMA hexkey`); they open, keep their contents, and are re-keyed to the raw key."""
    import apsw

    from conftest import create_vault, open_vault
    from memsync.core import db_key
    from memsync.crypto.wrap import find_and_unwrap
    from memsync.store.files import header_ad

    home = tmp_path / "old"
    with create_vault(home).vault as vault:
        memory = vault.add("Prefers tea to coffee")
        header = vault.header
        vault_key = find_and_unwrap(
            header.stanzas, vault.device.wrap_key, header_ad(header.vault_id, header.epoch)
        )
    key = db_key(vault_key).hex()
    path = str(home / "vault.db")

    def readable_with_raw_key() -> bool:
        probe = apsw.Connection(path)
        try:
            probe.execute(f"PRAGMA key=\"x'{key}'\"")
            probe.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return True
        except apsw.NotADBError:
            return False
        finally:
            probe.close()

    # Re-key the file as the old releases wrote it.
    old = apsw.Connection(path)
    old.execute(f"PRAGMA key=\"x'{key}'\"")
    old.execute("PRAGMA journal_mode=DELETE")
    old.execute(f"PRAGMA hexrekey='{key}'")
    old.execute("PRAGMA journal_mode=WAL")
    old.close()
    assert not readable_with_raw_key()
    with open_vault(home) as vault:
        assert vault.get(memory.id).text == "Prefers tea to coffee"
        assert vault.check().ok
    assert readable_with_raw_key()
