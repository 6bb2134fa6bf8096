"""The REST API under /v1 (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from memsync.server.gate import Gate


def router(gate: Gate) -> APIRouter:
    return APIRouter()
