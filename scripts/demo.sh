#!/usr/bin/env bash
# Install memsync into .venv and run the offline demo (no network, no API key).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/memsync demo "$@"
