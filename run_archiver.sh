#!/usr/bin/env bash
# Launcher of run-record-archiver with the legacy run_archiver.sh semantics (stated below):
#
#   ./run_archiver.sh [-q] [--init-venv] [config.yaml] [flags]      (flags: --help)
#
# * sources archiver.env next to this script (or $ARCHIVER_ENV) with `set -a` when present
#   (EXPERIMENT_NAME, WORK_DIR, RUN_RECORDS_DIR, ARTDAQDB_URL, UCONDB_URL, UCONDB_USER,
#   UCONDB_PASSWORD, DAGSTER_HOME, ...);
# * -q: no output at all (the exit code still tells what happened: 0/1/2/130);
# * --init-venv: recreate the virtual environment (scripts/setup.sh) first; without it a missing
#   environment is created on first use;
# * inserts config.yaml when no non-flag argument is given (so give the config file first when a
#   flag takes a value: ./run_archiver.sh config.yaml --import-legacy-state /old/work_dir);
# * puts <root>/lib first in PATH, LD_LIBRARY_PATH and PYTHONPATH when it exists (conftoolp and
#   the bulkloader/bulkdownloader tools of artdaq_database), a UTF-8 locale, no core dumps;
# * execs the console script of the project's virtual environment, so signals (Ctrl-C, SIGTERM)
#   reach the archiver itself and its exit code is the launcher's.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ARCHIVER_VENV:-$ROOT/.venv}"

quiet=0
init_venv=0
args=()
for arg in "$@"; do
  case "$arg" in
    -q) quiet=1 ;;
    --init-venv) init_venv=1 ;;
    *) args+=("$arg") ;;
  esac
done

ENV_FILE="${ARCHIVER_ENV:-$ROOT/archiver.env}"
if [ -f "$ENV_FILE" ]; then
  set -a
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  set +a
fi

if [ "$quiet" = 1 ]; then
  exec >/dev/null 2>&1
fi

if [ "$init_venv" = 1 ]; then
  rm -rf "$VENV"
fi
if [ "$init_venv" = 1 ] || [ ! -x "$VENV/bin/run-record-archiver" ]; then
  ARCHIVER_VENV="$VENV" bash "$ROOT/scripts/setup.sh"
  if [ "$init_venv" = 1 ] && [ "${#args[@]}" = 0 ]; then
    exit 0
  fi
fi

have_config=0
for arg in "${args[@]+"${args[@]}"}"; do
  case "$arg" in
    -*|/\?|/h|/help) ;;
    *) have_config=1 ;;
  esac
done
if [ "$have_config" = 0 ]; then
  args=("config.yaml" "${args[@]+"${args[@]}"}")
fi

if [ -d "$ROOT/lib" ]; then
  export PATH="$ROOT/lib:$PATH"
  export LD_LIBRARY_PATH="$ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONPATH="$ROOT/lib${PYTHONPATH:+:$PYTHONPATH}"
fi

if locale -a 2>/dev/null | grep -qiE '^en_US\.utf-?8$'; then
  export LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8
else
  export LANG=C.UTF-8 LC_ALL=C.UTF-8
fi
ulimit -c 0

exec "$VENV/bin/run-record-archiver" "${args[@]}"
