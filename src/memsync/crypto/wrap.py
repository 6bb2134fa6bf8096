"""Age-style wrapping of a symmetric key to X25519 recipients, one stanza per recipient."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from memsync.crypto import aead
from memsync.errors import CorruptVault, CryptoError, UsageError

STANZA_KINDS = frozenset({"device", "recovery"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_FP = re.compile(r"[0-9a-f]{16}")


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    # The stdlib decoder silently skips foreign characters; reject them instead.
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes_raw()


@dataclass(frozen=True)
class Stanza:
    """One recipient's copy of a wrapped key."""

    kind: str  # "device" | "recovery"
    recipient: str  # fingerprint of the recipient's X25519 public key
    ephemeral: bytes  # 32-byte X25519 public key
    body: bytes  # the key sealed under the ECDH-derived wrap key

    def to_json(self) -> dict[str, str]:
        """JSON-ready form with base64url (unpadded) byte fields."""
        return {
            "kind": self.kind,
            "recipient": self.recipient,
            "ephemeral": _b64e(self.ephemeral),
            "body": _b64e(self.body),
        }

    @classmethod
    def from_json(cls, d: object) -> Stanza:
        """Parse `to_json` output; raise CorruptVault if anything is malformed."""
        if (
            not isinstance(d, dict)
            or set(d) != {"kind", "recipient", "ephemeral", "body"}
            or not all(isinstance(v, str) for v in d.values())
            or d["kind"] not in STANZA_KINDS
            or not _FP.fullmatch(d["recipient"])
        ):
            raise CorruptVault("key stanza is malformed")
        try:
            ephemeral, body = _b64d(d["ephemeral"]), _b64d(d["body"])
        except ValueError:
            raise CorruptVault("key stanza has malformed base64") from None
        if len(ephemeral) != 32:
            raise CorruptVault("key stanza has a malformed ephemeral key")
        return cls(kind=d["kind"], recipient=d["recipient"], ephemeral=ephemeral, body=body)


def fingerprint(public: X25519PublicKey) -> str:
    """Short stable id of an X25519 public key (16 hex chars)."""
    return hashlib.sha256(b"memsync/v1/fp" + _raw(public)).hexdigest()[:16]


def _wrap_secret(shared: bytes, ephemeral_pub: bytes, recipient_pub: bytes) -> bytes:
    # Salting with both public keys ties the wrap key to this exact exchange, as age does.
    return aead.hkdf(shared, b"memsync/v1/wrap", salt=ephemeral_pub + recipient_pub)


def wrap_key(file_key: bytes, recipient: X25519PublicKey, *, kind: str, ad: bytes) -> Stanza:
    """Wrap `file_key` to `recipient` with a fresh ephemeral X25519 key."""
    if kind not in STANZA_KINDS:
        raise UsageError(f"unknown stanza kind {kind!r}")
    eph = X25519PrivateKey.generate()
    eph_pub = _raw(eph.public_key())
    wk = _wrap_secret(eph.exchange(recipient), eph_pub, _raw(recipient))
    return Stanza(
        kind=kind,
        recipient=fingerprint(recipient),
        ephemeral=eph_pub,
        body=aead.seal(wk, file_key, ad),
    )


def unwrap_key(stanza: Stanza, identity: X25519PrivateKey, ad: bytes) -> bytes:
    """Recover the key from `stanza` with `identity`; raise CryptoError if it does not open."""
    try:
        ephemeral = X25519PublicKey.from_public_bytes(stanza.ephemeral)
        # Raises ValueError for low-order points (all-zero shared secret).
        shared = identity.exchange(ephemeral)
    except ValueError:
        raise CryptoError("key stanza has an invalid ephemeral key") from None
    wk = _wrap_secret(shared, stanza.ephemeral, _raw(identity.public_key()))
    return aead.open_sealed(wk, stanza.body, ad)


def find_and_unwrap(stanzas: Sequence[Stanza], identity: X25519PrivateKey, ad: bytes) -> bytes:
    """Unwrap the stanza addressed to `identity`; raise CryptoError if there is none."""
    fp = fingerprint(identity.public_key())
    mine = [s for s in stanzas if s.recipient == fp]
    if not mine:
        raise CryptoError("this key is not a recipient of the vault key")
    last: CryptoError | None = None
    for stanza in mine:
        try:
            return unwrap_key(stanza, identity, ad)
        except CryptoError as exc:
            last = exc
    assert last is not None
    raise last
