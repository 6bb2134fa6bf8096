"""AES-256-GCM sealing, associated-data encoding, size-hiding padding and HKDF."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from memsync.errors import CryptoError, UsageError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MIN_PADDED = 256
_LEN_PREFIX = 4


def seal(key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """Encrypt `plaintext` under `key` with AES-256-GCM; return nonce || ciphertext || tag."""
    if len(key) != KEY_BYTES:
        raise CryptoError(f"encryption key must be {KEY_BYTES} bytes")
    # Random 96-bit nonces are safe here: each key seals far fewer than 2**32 messages
    # before the epoch rotates it.
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, ad)


def open_sealed(key: bytes, blob: bytes, ad: bytes) -> bytes:
    """Decrypt a blob made by `seal`; raise CryptoError if it is short, tampered or foreign."""
    if len(key) != KEY_BYTES:
        raise CryptoError(f"encryption key must be {KEY_BYTES} bytes")
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise CryptoError("encrypted data is too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], ad)
    except InvalidTag:
        raise CryptoError("decryption failed: data was tampered with or is foreign") from None


def encode_ad(*fields: bytes) -> bytes:
    """Join fields with 4-byte big-endian length prefixes, so no two field lists collide."""
    out = bytearray()
    for field in fields:
        out += len(field).to_bytes(_LEN_PREFIX, "big")
        out += field
    return bytes(out)


def _u64(name: str, value: int) -> bytes:
    if not 0 <= value < 2**64:
        raise UsageError(f"{name} must be between 0 and 2**64-1, got {value}")
    return value.to_bytes(8, "big")


def record_ad(vault_id: str, record_id: str, version: int, epoch: int) -> bytes:
    """Associated data binding a record ciphertext to its vault, id, version and key epoch."""
    return encode_ad(
        b"memsync/v1/record",
        vault_id.encode(),
        record_id.encode(),
        _u64("version", version),
        _u64("epoch", epoch),
    )


def padme_length(length: int) -> int:
    """Padmé padded length (Nikitin et al., PURBs): leaks O(log log n) bits, overhead <12%."""
    length = max(length, MIN_PADDED)
    exp = length.bit_length() - 1  # floor(log2 length)
    mantissa_bits = exp.bit_length()  # floor(log2 exp) + 1
    mask = (1 << (exp - mantissa_bits)) - 1
    return (length + mask) & ~mask


def pad(data: bytes) -> bytes:
    """Length-prefix `data` and zero-pad it to a Padmé bucket of at least 256 bytes."""
    if len(data) >= 2 ** (8 * _LEN_PREFIX):
        raise UsageError("data too large to pad")
    body = len(data).to_bytes(_LEN_PREFIX, "big") + data
    return body + bytes(padme_length(len(body)) - len(body))


def unpad(data: bytes) -> bytes:
    """Reverse `pad`; raise CryptoError if the length prefix, size or padding is inconsistent."""
    if len(data) < _LEN_PREFIX:
        raise CryptoError("padded data is too short")
    n = int.from_bytes(data[:_LEN_PREFIX], "big")
    end = _LEN_PREFIX + n
    # Any deviation from what `pad` would produce means the plaintext is not ours.
    if end > len(data) or len(data) != padme_length(end):
        raise CryptoError("padded data has an inconsistent length")
    if any(data[end:]):
        raise CryptoError("padded data has non-zero padding")
    return data[_LEN_PREFIX:end]


def hkdf(ikm: bytes, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    """HKDF-SHA256 of `ikm` with the domain label `info`."""
    return HKDF(algorithm=SHA256(), length=length, salt=salt, info=info).derive(ikm)
