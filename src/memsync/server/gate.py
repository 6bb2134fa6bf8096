"""Who is asking: bearer tokens to apps, and each app's rate limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from memsync.disclose.access import AppSession
from memsync.errors import RateLimited, Unauthenticated
from memsync.scope import App
from memsync.vault import Vault

__all__ = ["Gate", "RateLimiter", "bearer_token"]

MISSING = "missing token: send 'Authorization: Bearer <token>' (see `memsync app add`)"


def bearer_token(authorization: str | None, api_key: str | None = None) -> str | None:
    """The token in an `Authorization: Bearer …` header, else in `X-API-Key` (the header
    the MemSync API uses), else None."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key and api_key.strip():
        return api_key.strip()
    return None


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per app: `rate_per_minute` refills evenly, bursts up to a quarter
    of a minute's worth (at least 10) pass at once. A rate of 0 means no limit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, app: App) -> None:
        """Count one request from `app`; `RateLimited` (with when to retry) if over."""
        rate = app.rate_per_minute
        if rate <= 0:
            return
        capacity = max(10.0, rate / 4)
        per_second = rate / 60
        now = self._clock()
        with self._lock:
            bucket = self._buckets.setdefault(app.name, _Bucket(capacity, now))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * per_second)
            bucket.at = now
            if bucket.tokens < 1:
                wait = (1 - bucket.tokens) / per_second
                raise RateLimited(
                    f"app {app.name!r} is over its limit of {rate} requests a minute", wait
                )
            bucket.tokens -= 1


class Gate:
    """Turns a request's credentials into the app's session, or refuses it."""

    def __init__(self, vault: Vault, limiter: RateLimiter | None = None) -> None:
        self.vault = vault
        self.limiter = limiter or RateLimiter()

    def session(self, authorization: str | None, api_key: str | None = None) -> AppSession:
        """The session of the app whose token came with the request.

        `Unauthenticated` for no token, an unknown one or a revoked app (one message for
        all three, so a caller learns nothing about which tokens exist); `RateLimited`
        when the app is over its limit.
        """
        token = bearer_token(authorization, api_key)
        if token is None:
            raise Unauthenticated(MISSING)
        app = self.vault.app_for_token(token)
        if app is None:
            raise Unauthenticated("unknown or revoked token")
        self.limiter.take(app)
        return self.vault.as_app(app)
