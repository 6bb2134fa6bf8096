"""Record ids: short, random and easy to type. Here so that `vault` and the modules it
delegates to (`capture`, `ingest_flow`) can all make them without importing each other."""

from __future__ import annotations

import secrets

_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """A short random id such as `m-3k9x0a7q2f`: 50 bits, readable, easy to type."""
    return prefix + "-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


__all__ = ["new_id"]
