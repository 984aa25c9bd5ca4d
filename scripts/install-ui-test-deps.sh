#!/usr/bin/env bash
# Installs what the UI test (tests/ui, marker `ui`) needs, idempotently: Debian's chromium and,
# in tests/ui/node_modules, the npm package playwright-core (the driver only: no browser is
# downloaded; the test launches /usr/bin/chromium). Needs root (or sudo) for apt-get; CI calls it
# before scripts/test.sh. Safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UI_DIR="$ROOT/tests/ui"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.1}"

say() { echo "[ui-deps] $*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

apt_install() {
  say "installing Debian packages: $*"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
say "$(chromium --version 2>/dev/null || echo 'chromium: not found')"

if [ ! -f "$UI_DIR/node_modules/playwright-core/package.json" ] || \
   ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$UI_DIR/node_modules/playwright-core/package.json"; then
  say "installing playwright-core@$PLAYWRIGHT_VERSION into $UI_DIR/node_modules (no browser download)"
  (cd "$UI_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-save --no-audit --no-fund \
      --loglevel=error "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null)
fi
say "playwright-core $(node -p "require('$UI_DIR/node_modules/playwright-core/package.json').version")"
