#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh, the UI test's chromium + playwright-core unless
# ARCHIVER_SKIP_UI_DEPS=1, the Docker test's docker.io + debootstrap unless
# ARCHIVER_SKIP_DOCKER_DEPS=1) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
if [ "${ARCHIVER_SKIP_UI_DEPS:-0}" != 1 ]; then
  bash "$ROOT/scripts/install-ui-test-deps.sh" \
    || echo "[test] UI test dependencies could not be installed; tests/ui will skip" >&2
fi
if [ "${ARCHIVER_SKIP_DOCKER_DEPS:-0}" != 1 ]; then
  bash "$ROOT/scripts/install-docker-test-deps.sh" \
    || echo "[test] Docker test dependencies could not be installed; the docker test will skip" >&2
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest "$@"
