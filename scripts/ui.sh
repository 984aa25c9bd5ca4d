#!/usr/bin/env bash
# Opens the Dagster UI on the demo instance: starts the local UconDB server (demo database) in the
# background and `dagster dev` (webserver + daemon) on http://127.0.0.1:3000. Ctrl-C stops both.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
[ -f demo/config.yaml ] || { echo "run scripts/demo.sh first" >&2; exit 1; }
export ARCHIVER_CONFIG="$ROOT/demo/config.yaml"
export UCONDB_PASSWORD="${UCONDB_PASSWORD:-demo-only-password}"
PORT="$(sed -n 's#.*server_url: "http://127.0.0.1:\([0-9]*\)/app".*#\1#p' demo/config.yaml)"
"$VENV/bin/python" -m archiver_resources.ucondb.server --db "sqlite:///$ROOT/demo/ucondb.sqlite" \
  --host 127.0.0.1 --port "${PORT:-8088}" --prefix /app --user archiver \
  --password-env UCONDB_PASSWORD --create-folder demo_runs >>demo/ucondb-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
"$VENV/bin/dagster" dev -w workspace.yaml -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}"
