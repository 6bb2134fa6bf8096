"""Per-device X25519/Ed25519 keys, their passphrase-sealed key file, and signatures."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, ClassVar

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from memsync.crypto import aead
from memsync.errors import CorruptVault, CryptoError, UsageError, WeakPassphrase, WrongPassphrase

FORMAT = "memsync-device-key"
VERSION = 1
SALT_BYTES = 16
SECRET_BYTES = 64
_MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB: beyond this a file is hostile or damaged
_MAX_TIME_COST = 64
_MAX_PARALLELISM = 64


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters for sealing a device key file."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 2

    # Cheap parameters for tests only: they offer no real resistance to guessing.
    FAST_KDF: ClassVar[KdfParams]

    def is_sane(self) -> bool:
        """Whether the costs are within bounds Argon2 accepts and a device can afford."""
        ints = (self.time_cost, self.memory_kib, self.parallelism)
        return (
            all(type(v) is int for v in ints)
            and 1 <= self.time_cost <= _MAX_TIME_COST
            and 1 <= self.parallelism <= _MAX_PARALLELISM
            and 8 * self.parallelism <= self.memory_kib <= _MAX_MEMORY_KIB
        )


FAST_KDF = KdfParams(1, 8192, 1)
"""Argon2id parameters for tests only; never use them for a real key file."""
KdfParams.FAST_KDF = FAST_KDF


@dataclass(frozen=True, eq=False)
class DeviceKeys:
    """A device's identity. Compare with `secret_bytes()`; key objects lack value equality."""

    device_id: str
    wrap_key: X25519PrivateKey = field(repr=False)
    sign_key: Ed25519PrivateKey = field(repr=False)

    @property
    def wrap_public(self) -> X25519PublicKey:
        """Public half of the wrapping key."""
        return self.wrap_key.public_key()

    @property
    def sign_public(self) -> Ed25519PublicKey:
        """Public half of the signing key."""
        return self.sign_key.public_key()

    def secret_bytes(self) -> bytes:
        """64 raw bytes: X25519 private || Ed25519 private."""
        return self.wrap_key.private_bytes_raw() + self.sign_key.private_bytes_raw()

    @classmethod
    def from_secret_bytes(cls, device_id: str, raw: bytes) -> DeviceKeys:
        """Rebuild keys from `secret_bytes()` output."""
        if len(raw) != SECRET_BYTES:
            raise CryptoError(f"device secret must be {SECRET_BYTES} bytes")
        return cls(
            device_id=device_id,
            wrap_key=X25519PrivateKey.from_private_bytes(raw[:32]),
            sign_key=Ed25519PrivateKey.from_private_bytes(raw[32:]),
        )


def generate_device() -> DeviceKeys:
    """Fresh random device keys with an id like "d-abcdefghijkl"."""
    suffix = base64.b32encode(os.urandom(10)).decode().lower()[:12]
    return DeviceKeys(
        device_id="d-" + suffix,
        wrap_key=X25519PrivateKey.generate(),
        sign_key=Ed25519PrivateKey.generate(),
    )


def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _derive(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    # NFC so the same passphrase typed on different platforms yields the same bytes.
    secret = unicodedata.normalize("NFC", passphrase).encode()
    t, m, p = params.time_cost, params.memory_kib, params.parallelism
    return bytes(hash_secret_raw(secret, salt, t, m, p, aead.KEY_BYTES, Type.ID))


def _file_ad(device_id: str, kdf: dict[str, Any], wrap_pub: bytes, sign_pub: bytes) -> bytes:
    # The public keys are bound too, so they cannot be swapped in the readable part of the file.
    return aead.encode_ad(
        FORMAT.encode(),
        str(VERSION).encode(),
        device_id.encode(),
        json.dumps(kdf, sort_keys=True, separators=(",", ":")).encode(),
        wrap_pub,
        sign_pub,
    )


def seal_device(keys: DeviceKeys, passphrase: str, params: KdfParams = KdfParams()) -> bytes:
    """Serialize `keys` as a JSON key file sealed with Argon2id(passphrase) and AES-256-GCM."""
    if not params.is_sane():
        raise UsageError("KDF parameters are out of range")
    salt = os.urandom(SALT_BYTES)
    kdf = {
        "alg": "argon2id",
        "t": params.time_cost,
        "m": params.memory_kib,
        "p": params.parallelism,
        "salt": _b64e(salt),
    }
    wrap_pub = keys.wrap_public.public_bytes_raw()
    sign_pub = keys.sign_public.public_bytes_raw()
    ad = _file_ad(keys.device_id, kdf, wrap_pub, sign_pub)
    sealed = aead.seal(_derive(passphrase, salt, params), keys.secret_bytes(), ad)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "device_id": keys.device_id,
        "kdf": kdf,
        "wrap_public": _b64e(wrap_pub),
        "sign_public": _b64e(sign_pub),
        "nonce": _b64e(sealed[: aead.NONCE_BYTES]),
        "ciphertext": _b64e(sealed[aead.NONCE_BYTES :]),
    }
    return json.dumps(doc, indent=2).encode()


@dataclass(frozen=True)
class _KeyFile:
    device_id: str
    kdf: dict[str, Any]
    params: KdfParams
    salt: bytes
    wrap_public: bytes
    sign_public: bytes
    nonce: bytes
    ciphertext: bytes


def _damaged(why: str) -> CorruptVault:
    return CorruptVault(f"device key file is damaged: {why}")


def _parse(blob: bytes) -> _KeyFile:
    try:
        doc = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _damaged("not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _damaged("not a memsync device key file")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise _damaged(f"unsupported version {version!r}")
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or set(kdf) != {"alg", "t", "m", "p", "salt"}:
        raise _damaged("missing or malformed kdf")
    if kdf["alg"] != "argon2id":
        raise _damaged(f"unknown kdf {kdf['alg']!r}")
    params = KdfParams(kdf["t"], kdf["m"], kdf["p"])
    if not params.is_sane():
        raise _damaged("KDF parameters are out of range")
    device_id = doc.get("device_id")
    if not isinstance(device_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", device_id):
        raise _damaged("malformed device_id")

    def b64(value: object, name: str, size: int | None = None) -> bytes:
        if not isinstance(value, str):
            raise _damaged(f"missing {name}")
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise _damaged(f"malformed {name}") from None
        if size is not None and len(raw) != size:
            raise _damaged(f"{name} has the wrong length")
        return raw

    return _KeyFile(
        device_id=device_id,
        kdf=kdf,
        params=params,
        salt=b64(kdf["salt"], "salt", SALT_BYTES),
        wrap_public=b64(doc.get("wrap_public"), "wrap_public", 32),
        sign_public=b64(doc.get("sign_public"), "sign_public", 32),
        nonce=b64(doc.get("nonce"), "nonce", aead.NONCE_BYTES),
        ciphertext=b64(doc.get("ciphertext"), "ciphertext", SECRET_BYTES + aead.TAG_BYTES),
    )


def open_device(blob: bytes, passphrase: str) -> DeviceKeys:
    """Open a key file from `seal_device`; WrongPassphrase if it won't open, CorruptVault if bad."""
    kf = _parse(blob)
    key = _derive(passphrase, kf.salt, kf.params)
    ad = _file_ad(kf.device_id, kf.kdf, kf.wrap_public, kf.sign_public)
    try:
        secret = aead.open_sealed(key, kf.nonce + kf.ciphertext, ad)
    except CryptoError:
        raise WrongPassphrase("wrong passphrase") from None
    return DeviceKeys.from_secret_bytes(kf.device_id, secret)


def device_public_info(blob: bytes) -> tuple[str, bytes, bytes]:
    """(device_id, X25519 public raw, Ed25519 public raw) of a key file, without the passphrase."""
    kf = _parse(blob)
    return kf.device_id, kf.wrap_public, kf.sign_public


_COMMON = frozenset(
    {
        "password", "password1", "password12", "password123", "password1234", "passw0rd",
        "123456789", "1234567890", "12345678910", "0987654321", "qwerty123", "qwertyuiop",
        "qwerty12345", "1q2w3e4r5t", "1qaz2wsx3edc", "asdfghjkl", "zxcvbnm123", "iloveyou",
        "iloveyou123", "letmein123", "welcome123", "admin12345", "administrator", "abc123456",
        "abcd123456", "princess123", "sunshine123", "football123", "baseball123", "monkey123",
        "dragon1234", "superman123", "batman12345", "trustno1234", "starwars123", "whatever123",
        "changeme123", "secret1234", "mypassword", "mypassword1", "passphrase", "mypassphrase",
        "correcthorsebatterystaple", "thequickbrownfoxjumpsoverthelazydog", "letmeinplease",
        "opensesame", "helloworld", "helloworld123", "michael123", "charlie123", "memsync123",
        "memsyncpassword",
    }
)  # fmt: skip
_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiopasdfghjklzxcvbnm")
_WORDS = re.compile(r"[^\W\d_]{3,}(?:[\s-]+[^\W\d_]{3,}){3,}")


def _is_sequence_or_repeat(s: str) -> bool:
    # A string that occurs inside itself doubled (minus ends) is a repeated unit.
    if len(s) >= 2 and s in (s + s)[1:-1]:
        return True
    return any(s in seq * 3 or s in seq[::-1] * 3 for seq in _SEQUENCES)


def check_passphrase_strength(passphrase: str) -> None:
    """Raise WeakPassphrase with a readable reason if `passphrase` is too easy to guess."""
    text = passphrase.strip()
    squashed = re.sub(r"[\s\-_.]+", "", text.lower())
    if len(text) < 10 and not _WORDS.fullmatch(text):
        raise WeakPassphrase("passphrase is too short: use at least 10 characters or 4 words")
    if squashed in _COMMON:
        raise WeakPassphrase("passphrase is one of the most common passwords")
    if text.isdigit():
        raise WeakPassphrase("passphrase is only digits: add letters or words")
    if len(set(text)) < 5:
        raise WeakPassphrase("passphrase uses fewer than 5 different characters")
    if _is_sequence_or_repeat(squashed):
        raise WeakPassphrase("passphrase is a simple sequence or repetition")


def sign(keys: DeviceKeys, data: bytes) -> bytes:
    """Ed25519 signature of `data` by the device."""
    return keys.sign_key.sign(data)


def verify(public_raw: bytes, signature: bytes, data: bytes) -> bool:
    """True iff `signature` is a valid Ed25519 signature of `data`; never raises."""
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
