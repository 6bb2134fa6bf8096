"""Record ids: short, random and easy to type. At the bottom of the layers, so that every
step that makes records (capture, reconcile, edits, the ledger) can make them."""

from __future__ import annotations

import secrets

_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """A short random id such as `m-3k9x0a7q2f`: 50 bits, readable, easy to type."""
    return prefix + "-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


__all__ = ["new_id"]
