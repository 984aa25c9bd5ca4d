#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest "$@"
