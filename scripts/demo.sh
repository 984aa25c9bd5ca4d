#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job end to end on the embedded defaults:
# sample run records, a local UconDB server, filesystemdb, a SQLite Dagster instance in
# .dagster_home. Idempotent: a second run reuses what exists and archives only new runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$VENV/bin/python" -m archiver_assets.demo "$@"
