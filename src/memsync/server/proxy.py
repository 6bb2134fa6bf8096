"""The OpenAI-compatible memory proxy (being written)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter

from memsync.server.gate import Gate


@dataclass(frozen=True)
class ProxyOptions:
    """Where the proxy forwards chat requests and what it adds to them."""

    upstream: str | None = None
    api_key: str | None = None
    capture: bool = False
    budget_tokens: int = 1000
    timeout: float = 120.0


def router(gate: Gate, options: ProxyOptions) -> APIRouter:
    return APIRouter()
