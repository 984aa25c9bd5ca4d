#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine, idempotently: a virtual environment in
# .venv with the project and its dev extras, and a project-local DAGSTER_HOME with dagster.yaml.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run alone: `bash scripts/setup.sh`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ARCHIVER_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

say() { echo "[setup] $*" >&2; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  say "no $PYTHON on PATH: install Python >= 3.10 first (apt-get install python3 python3-venv)"; exit 1
fi
"$PYTHON" - <<'PY' || { echo "[setup] Python >= 3.10 is required" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  if ! "$PYTHON" -m venv "$VENV" 2>/tmp/archiver-venv.err; then
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "python venv support missing: installing Debian's python3-venv"
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON" -m venv "$VENV"
    else
      cat /tmp/archiver-venv.err >&2
      say "cannot create a venv: install python3-venv (sudo apt-get install python3-venv) and retry"; exit 1
    fi
  fi
fi

# Reinstall only when the packaging changed (stamp = hash of setup.py).
STAMP="$VENV/.archiver-installed"
WANT="$(sha256sum "$ROOT/setup.py" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  say "installing run-record-archiver and its dependencies into $VENV (first time: ~1 minute)"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
  echo "$WANT" > "$STAMP"
else
  say "virtual environment up to date ($VENV)"
fi

export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp "$ROOT/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
