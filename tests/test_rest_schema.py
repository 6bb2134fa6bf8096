"""The REST API against its own OpenAPI schema: schemathesis generates requests, valid
and invalid, for every operation and checks each response (no server error, a status
and body the schema documents, invalid input refused, no answer without a token). And
the checked-in docs/openapi.json must be the schema the app serves."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import FAST_TMP, create_vault
from memsync import Category, Kind, Message, Vault
from memsync.scope import Scope
from memsync.server.http import create_app

ROOT = Path(__file__).resolve().parent.parent


def _served() -> tuple[Vault, str, tempfile.TemporaryDirectory[str]]:
    """A vault with something in it, and the token of an app that may read and write
    everything (private memories and conversations too) with no rate limit."""
    tmp = tempfile.TemporaryDirectory(dir=FAST_TMP, prefix="memsync-schema-")
    vault = create_vault(Path(tmp.name) / "home").vault
    vault.add("Works as a nurse at the city hospital", category=Category.CAREER, tags=["work"])
    vault.add("Went sailing on Sunday", kind=Kind.EPISODIC, category=Category.INTERESTS)
    vault.ingest([Message("user", "My sister Ana lives in Porto")])
    vault.set_bio("A nurse who sails.")
    everything = Scope(read=frozenset(Category), write=frozenset(Category), conversations=True)
    return vault, vault.add_app("fuzz", everything, rate_per_minute=0)[1], tmp


# Built at import: schemathesis parametrizes from a schema it has at collection time (its
# loader from a fixture, `schemathesis.pytest.from_fixture`, fails under pytest 9).
VAULT, TOKEN, TMP = _served()


@asynccontextmanager
async def _no_lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield


APP = create_app(VAULT)
# The lifespan only runs MCP's session manager, which the REST routes do not use and which
# runs once per app, while schemathesis starts the lifespan again after loading the schema.
APP.router.lifespan_context = _no_lifespan
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _close_the_vault() -> Iterator[None]:
    yield
    VAULT.close()
    TMP.cleanup()


def _at_a_real_memory(case: schemathesis.Case) -> bool:
    """Point a case with valid data at a memory that exists (a new one each time, as a
    case may edit or forget it), so the routes past the id lookup run on generated input."""
    ids = case.path_parameters
    if not ids or "memory_id" not in ids or case.meta is None:
        return False
    if not case.meta.generation.mode.is_positive:
        return False  # the id may be the invalid part
    ids["memory_id"] = VAULT.add("Drinks green tea in the morning", tags=["tea"]).id
    return True


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_keeps_to_its_schema(case: schemathesis.Case) -> None:
    # Valid data about a real memory can still be refused with a 422: an edit that
    # changes nothing (say, tags it already has).
    excluded = [positive_data_acceptance] if _at_a_real_memory(case) else []
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=excluded)


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("openapi_script", ROOT / "scripts/openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checked_in_schema_is_current() -> None:
    script = load_script()
    checked_in = (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert checked_in == script.render(), (
        f"docs/openapi.json is out of date: run `{script.REGENERATE}` and commit the result"
    )
