"""Cryptography for memsync: AEAD, padding, recovery phrase, key wrapping and device keys."""

from memsync.crypto.aead import KEY_BYTES, hkdf, open_sealed, pad, record_ad, seal, unpad
from memsync.crypto.device import (
    FAST_KDF,
    DeviceKeys,
    KdfParams,
    check_passphrase_strength,
    device_public_info,
    generate_device,
    open_device,
    seal_device,
    sign,
    verify,
)
from memsync.crypto.phrase import (
    evm_owner_key,
    new_recovery_phrase,
    normalize_phrase,
    recovery_identity,
)
from memsync.crypto.wrap import Stanza, find_and_unwrap, fingerprint, unwrap_key, wrap_key

__all__ = [
    "FAST_KDF", "KEY_BYTES", "DeviceKeys", "KdfParams", "Stanza", "check_passphrase_strength",
    "device_public_info", "evm_owner_key", "find_and_unwrap", "fingerprint", "generate_device",
    "hkdf", "new_recovery_phrase", "normalize_phrase", "open_device", "open_sealed", "pad",
    "record_ad", "recovery_identity", "seal", "seal_device", "sign", "unpad", "unwrap_key",
    "verify", "wrap_key",
]  # fmt: skip
