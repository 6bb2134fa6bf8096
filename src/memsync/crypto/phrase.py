"""BIP39 recovery phrase and the keys derived from it."""

from __future__ import annotations

import os
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from mnemonic import Mnemonic

from memsync.crypto.aead import hkdf
from memsync.errors import BadRecoveryPhrase

PHRASE_WORDS = 24
# Order of the secp256k1 group.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@lru_cache(maxsize=1)
def _bip39() -> Mnemonic:
    # Loaded lazily: constructing it reads the wordlist file.
    return Mnemonic("english")


def new_recovery_phrase() -> str:
    """Return a fresh 24-word BIP39 phrase (256 bits of entropy)."""
    return str(_bip39().to_mnemonic(os.urandom(32)))


def normalize_phrase(phrase: str) -> str:
    """Lowercase and collapse whitespace; raise BadRecoveryPhrase if it is not a valid phrase."""
    words = phrase.lower().split()
    if len(words) != PHRASE_WORDS:
        raise BadRecoveryPhrase(
            f"recovery phrase must have {PHRASE_WORDS} words, this one has {len(words)}"
        )
    m = _bip39()
    known = set(m.wordlist)
    for pos, word in enumerate(words, start=1):
        # The position, not the word, is named: the message may end up in logs.
        if word not in known:
            raise BadRecoveryPhrase(f"word {pos} of the recovery phrase is not a BIP39 word")
    normalized = " ".join(words)
    if not m.check(normalized):
        raise BadRecoveryPhrase("recovery phrase checksum does not match (a word is wrong)")
    return normalized


def _seed(phrase: str) -> bytes:
    seed: bytes = Mnemonic.to_seed(normalize_phrase(phrase), passphrase="")
    return seed


def recovery_identity(phrase: str) -> X25519PrivateKey:
    """The X25519 recovery identity derived from the phrase."""
    return X25519PrivateKey.from_private_bytes(hkdf(_seed(phrase), b"memsync/v1/recovery-x25519"))


def recovery_signing_key(phrase: str) -> Ed25519PrivateKey:
    """The Ed25519 key that endorses devices enrolled with the recovery phrase."""
    return Ed25519PrivateKey.from_private_bytes(hkdf(_seed(phrase), b"memsync/v1/recovery-ed25519"))


def evm_owner_key(phrase: str) -> bytes:
    """The vault's 32-byte secp256k1 owner private key derived from the phrase."""
    k = int.from_bytes(hkdf(_seed(phrase), b"memsync/v1/evm-owner"), "big")
    # Map into [1, n-1]; the bias from reducing 256 random bits mod ~2**256 is negligible.
    return (k % (SECP256K1_N - 1) + 1).to_bytes(32, "big")
