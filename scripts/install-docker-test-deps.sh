#!/usr/bin/env bash
# Installs what the Docker scale-out test (tests/deploy/test_docker_scale_out.py, marker `docker`)
# needs, idempotently, from Debian's packages: docker.io (dockerd, containerd, runc and the docker
# CLI) and debootstrap (builds the image's base file system). Needs root (or sudo) for apt-get;
# scripts/test.sh calls it unless ARCHIVER_SKIP_DOCKER_DEPS=1. The test starts its own dockerd on
# a private socket: nothing here starts or enables a service.
set -euo pipefail

say() { echo "[docker-deps] $*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

missing=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq >/dev/null
  # policy-rc.d (where the machine has one) keeps the package from starting the system's dockerd.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
say "$(/usr/sbin/dockerd --version 2>/dev/null || echo 'dockerd: not found')"
