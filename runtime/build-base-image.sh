#!/usr/bin/env bash
# Build a minimal Debian bookworm base image locally, for machines that cannot reach a
# container registry (CI, air-gapped hosts). Usage: runtime/build-base-image.sh [TAG]
#
# debootstrap (minbase + python3, python3-venv, ca-certificates) from the Debian mirror in
# the machine's apt sources, then `docker import`. Skips everything when TAG exists.
set -euo pipefail
TAG=${1:-argus-base:bookworm}
if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG exists" >&2
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
MIRROR=${DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | head -n 1 | awk '{print $2}' || true)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d /tmp/argus-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "debootstrap bookworm from $MIRROR into $ROOT" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOT" "$MIRROR" >/tmp/argus-debootstrap.log 2>&1 \
  || { tail -n 20 /tmp/argus-debootstrap.log >&2; exit 1; }
tar -C "$ROOT" -c . | docker import - "$TAG" >/dev/null
echo "built $TAG" >&2
