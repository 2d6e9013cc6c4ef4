#!/usr/bin/env bash
# Build the image every htclean job runs in, from this checkout, with no container registry:
#
#     containers/build.sh [TAG]          (default TAG htclean/htclean:0.1.0)
#
# 1. starts dockerd if it is installed but not running (root only; log /var/log/htclean-dockerd.log);
# 2. makes the base image locally if it is missing (containers/base.sh: debootstrap of Debian 12);
# 3. builds containers/Dockerfile with BuildKit, with pip configured as on this machine: the
#    index of PIP_INDEX_URL or pip's global.index-url (pypi.org otherwise), and the CA bundle
#    of PIP_CERT or pip's global.cert handed in as a build secret (a TLS-intercepting proxy's
#    CA then works, and never lands in a layer). Local file:// indexes are not visible inside
#    the build and are left out.
# Wheels stay in BuildKit's cache between builds, and unchanged layers are reused: a rebuild
# after a source change only reinstalls htclean itself (8 s; a 2.2 MB layer).
# Environment: DOCKER (the client; default: one with BuildKit), HTCLEAN_BASE (base image tag).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-htclean/htclean:0.1.0}
BASE=${HTCLEAN_BASE:-htclean/debian-base:bookworm}
t0=$(date +%s)

# A client that builds with BuildKit (RUN --mount): buildx, or a pre-23 client's own builder.
if [ -z "${DOCKER:-}" ]; then
    for c in docker /usr/bin/docker; do
        command -v "$c" >/dev/null || continue
        if "$c" buildx version >/dev/null 2>&1; then DOCKER=$c; break; fi
        major=$("$c" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)
        if [ -n "$major" ] && [ "$major" -lt 23 ]; then
            DOCKER=$c; export DOCKER_BUILDKIT=1; break
        fi
    done
fi
[ -n "${DOCKER:-}" ] || { echo "build: no docker client with BuildKit (install docker-buildx" \
    "or docker.io); set DOCKER" >&2; exit 1; }
export DOCKER

if ! "$DOCKER" info >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null; then
        echo "build: starting dockerd (log /var/log/htclean-dockerd.log)"
        nohup dockerd > /var/log/htclean-dockerd.log 2>&1 &
        for _ in $(seq 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
    fi
    "$DOCKER" info >/dev/null 2>&1 || { echo "build: no docker daemon reachable" >&2; exit 1; }
fi

containers/base.sh "$BASE"

pipconf() { python3 -m pip config get "global.$1" 2>/dev/null || true; }
index=${PIP_INDEX_URL:-$(pipconf index-url)}
cert=${PIP_CERT:-$(pipconf cert)}
args=(--build-arg "BASE=$BASE" --build-arg "IMAGE=$TAG")
case "$index" in http://*|https://*) args+=(--build-arg "PIP_INDEX_URL=$index") ;; esac
if [ -n "$cert" ] && [ -s "$cert" ]; then
    args+=(--secret "id=pip-cert,src=$cert")
fi

echo "build: $TAG from $BASE (index ${index:-https://pypi.org/simple}${cert:+, CA $cert})"
"$DOCKER" build -f containers/Dockerfile -t "$TAG" "${args[@]}" .
size=$("$DOCKER" image inspect -f '{{.Size}}' "$TAG")
echo "build: $TAG, $((size / 1000000)) MB, built in $(( $(date +%s) - t0 )) s"
