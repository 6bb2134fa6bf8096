"""Write docs/openapi.json: the OpenAPI schema of the REST API that `memsync serve` serves.

Run it after changing a route or a request or response model:

    .venv/bin/python scripts/openapi.py          # rewrite docs/openapi.json
    .venv/bin/python scripts/openapi.py --check  # exit 1 if the file is out of date

The app needs a vault to be built, though its schema does not depend on the contents: a
throwaway one is made in a temporary directory, with the test-only fast key derivation
and the model-free hash embedder, and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from memsync.crypto.device import FAST_KDF
from memsync.index.embed import HashEmbedder
from memsync.server.http import create_app
from memsync.vault import Vault

OUT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
REGENERATE = ".venv/bin/python scripts/openapi.py"


def render() -> str:
    """The schema as the checked-in file holds it: indented, key order as FastAPI makes it."""
    with tempfile.TemporaryDirectory(prefix="memsync-openapi-") as tmp:
        made = Vault.create(
            Path(tmp) / "home",
            "a throwaway pass phrase 42",
            kdf=FAST_KDF,
            embedder=HashEmbedder(),
        )
        try:
            schema = create_app(made.vault).openapi()
        finally:
            made.vault.close()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the file is current")
    args = parser.parse_args(argv)
    text = render()
    current = OUT.read_text(encoding="utf-8") if OUT.exists() else None
    if args.check:
        if current != text:
            print(f"{OUT} is out of date; run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
