#!/usr/bin/env bash
# Install memsync with its test tools into .venv, lint, type-check and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
# The pinned Solidity compiler (JavaScript, from the npm registry) that a test rebuilds
# the vault registry with, to check the committed bytecode byte for byte.
npm ci --prefix scripts/solc --no-audit --no-fund --loglevel=error
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected no test: that is a failure, not a pass.
if [ "$status" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$status"
