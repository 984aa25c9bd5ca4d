#!/usr/bin/env bash
# Builds the run worker image of the Docker scale-out (deploy/scale-out/docker.run_launcher.yaml)
# without any registry access from inside the build:
#   1. base image (unless --base names one): Debian bookworm made with
#      `debootstrap --variant=minbase --include=python3,python3-venv` and loaded with
#      `docker import`; its file system is kept as a tarball in the cache directory;
#   2. wheels, built ON THIS HOST by the project's venv: the project and every dependency, pinned to
#      the versions installed in that venv (`pip freeze` as constraints), so the run workers run
#      exactly what the daemon runs; the dependency wheels are cached per set of versions;
#   3. `docker build --network none` with deploy/docker/Dockerfile: installs from those wheels only.
# The same recipe works at a site with its own registry: build, then `docker tag` and `docker push`,
# and set ARCHIVER_RUN_IMAGE to the pushed name (see docs/deployment.md, "Scale-out").
#
# Usage: deploy/docker/build-image.sh [--tag IMAGE] [--base IMAGE] [--cache DIR] [--python PATH]
#   --tag     image to build (default run-record-archiver:local)
#   --base    use this base image (local or in your registry) instead of the debootstrap one; it
#             needs python3 + python3-venv of the same minor version as --python
#   --cache   where the base tarball and the wheels are kept (default <repository>/build/docker-image)
#   --python  the host Python whose pip builds the wheels and whose versions are pinned
#             (default <repository>/.venv/bin/python, as made by scripts/setup.sh)
# Environment: DOCKER (the docker CLI, default `docker`; DOCKER_HOST picks the engine),
# DEBIAN_MIRROR (default http://deb.debian.org/debian). Needs root for debootstrap (step 1 only).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TAG="run-record-archiver:local"
BASE=""
CACHE="$ROOT/build/docker-image"
PYTHON="$ROOT/.venv/bin/python"
DOCKER="${DOCKER:-docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
DEFAULT_BASE="run-record-archiver-base:$SUITE"

say() { echo "[image] $*" >&2; }
# pip, without its warnings about configured index locations that do not exist
pip_() { "$PYTHON" -m pip "$@" --quiet --disable-pip-version-check 2>&1 \
           | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2
         return "${PIPESTATUS[0]}"; }
die() { say "ERROR: $*"; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG="$2"; shift 2 ;;
    --base) BASE="$2"; shift 2 ;;
    --cache) CACHE="$2"; shift 2 ;;
    --python) PYTHON="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[ -x "$PYTHON" ] || die "no Python at $PYTHON: run scripts/setup.sh first, or pass --python"
"$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || die "cannot reach a Docker engine with '$DOCKER' (DOCKER_HOST=${DOCKER_HOST:-unset})"
mkdir -p "$CACHE"
START=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/archiver-image.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ---- 1. the base image ---------------------------------------------------------------------------
step=$SECONDS
if [ -n "$BASE" ]; then
  base_how="given ($BASE)"
elif "$DOCKER" image inspect "$DEFAULT_BASE" >/dev/null 2>&1; then
  BASE="$DEFAULT_BASE"; base_how="reused"
else
  BASE="$DEFAULT_BASE"
  tarball="$CACHE/rootfs-$SUITE-minbase.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] \
      || die "debootstrap is not installed (apt-get install debootstrap), or pass --base IMAGE"
    [ "$(id -u)" = 0 ] || die "debootstrap needs root, or pass --base IMAGE"
    say "debootstrap $SUITE (minbase + python3, python3-venv) from $MIRROR"
    rootfs="$WORK/rootfs"
    PATH="/usr/sbin:/sbin:$PATH" debootstrap --variant=minbase --include=python3,python3-venv \
      "$SUITE" "$rootfs" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
      || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    # The downloaded packages and package lists are not needed in a run worker (~95 MB).
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
    base_how="debootstrapped"
  else
    base_how="imported from $tarball"
  fi
  "$DOCKER" import --change 'CMD ["/bin/bash"]' "$tarball" "$BASE" >/dev/null
fi
base_s=$((SECONDS - step))
say "base image $BASE: $base_how (${base_s} s)"

host_py="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
image_py="$("$DOCKER" run --rm --network none "$BASE" python3 -c \
  'import sys; print("%d.%d" % sys.version_info[:2])')" \
  || die "the base image $BASE cannot run python3"
[ "$host_py" = "$image_py" ] || die "the base image has Python $image_py, the wheels are built" \
  "by Python $host_py ($PYTHON): use a base image with Python $host_py"

# ---- 2. the wheels ---------------------------------------------------------------------------
step=$SECONDS
CTX="$WORK/context"
mkdir -p "$CTX/project" "$WORK/src"
# A clean copy of the project (no build/ left over from an earlier build in the checkout).
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - setup.py archiver_resources \
  archiver_assets | tar -C "$WORK/src" -xf -
"$PYTHON" -m pip freeze --exclude-editable > "$WORK/constraints.txt"
key="$( (cat "$WORK/constraints.txt" "$ROOT/setup.py"; echo "py$host_py") | sha256sum | cut -c1-16)"
wheels="$CACHE/wheels-$key"
if [ ! -d "$wheels" ]; then
  say "building the dependency wheels (pinned to the versions in $PYTHON's environment)"
  pip_ wheel -c "$WORK/constraints.txt" --wheel-dir "$wheels.part" "$WORK/src[docker]"
  rm -f "$wheels.part"/run_record_archiver-*.whl
  find "$CACHE" -maxdepth 1 -name 'wheels-*' ! -name "wheels-$key*" -exec rm -rf {} +
  mv "$wheels.part" "$wheels"
  wheels_how="built"
else
  wheels_how="cached"
fi
pip_ wheel --no-deps --no-build-isolation --wheel-dir "$CTX/project" "$WORK/src"
cp -al "$wheels" "$CTX/wheels" 2>/dev/null || cp -a "$wheels" "$CTX/wheels"
cp "$ROOT/deploy/docker/Dockerfile" "$CTX/Dockerfile"
wheels_s=$((SECONDS - step))
say "wheels: $(ls "$CTX/wheels" | wc -l) dependencies $wheels_how, project $(ls "$CTX/project") (${wheels_s} s)"

# ---- 3. docker build, offline ------------------------------------------------------------------
step=$SECONDS
"$DOCKER" build --network none --build-arg "BASE=$BASE" --tag "$TAG" "$CTX" \
  > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; die "docker build failed"; }
build_s=$((SECONDS - step))
say "built $TAG in $((SECONDS - START)) s (base ${base_s} s, wheels ${wheels_s} s, docker build ${build_s} s)"
