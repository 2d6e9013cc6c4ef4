#!/usr/bin/env bash
# Let the test pool run htclean's container-universe jobs with docker (root):
#
#     containers/condor/apply.sh [IMAGE...]       (default htclean/htclean:0.1.0)
#
# - starts dockerd if it is not running (log /var/log/htclean-dockerd.log);
# - puts the condor user in the docker group and 60-docker.conf in the pool's config.d
#   ($HTCLEAN_TESTPOOL, default /opt/htclean-testpool), then condor_reconfig (no restart:
#   other runs may be using the pool) and waits until the slot advertises HasDocker;
# - marks each IMAGE as already pulled for the pool's submitting user. HTCondor's starter
#   runs `docker pull` for a docker:// image unless it finds the tag
#   htcondor.org/<User with @ as _at_>/<image> (which it adds after its own first pull);
#   with no registry reachable that pull fails and the job is held ("Cannot pull image"),
#   so a locally built image needs the tag. Rerun after every build: the tag names an image
#   id, and only its presence counts (the job runs the image's own name).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
TESTPOOL=${HTCLEAN_TESTPOOL:-/opt/htclean-testpool}
POOL_USER=${HTCLEAN_POOL_USER:-htcuser}
DOCKER=${DOCKER:-docker}
[ $# -gt 0 ] || set -- htclean/htclean:0.1.0

if ! "$DOCKER" info >/dev/null 2>&1; then
    echo "apply: starting dockerd (log /var/log/htclean-dockerd.log)"
    nohup dockerd > /var/log/htclean-dockerd.log 2>&1 &
    for _ in $(seq 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
fi
id -nG condor | grep -qw docker || usermod -aG docker condor
install -m 0644 "$here/60-docker.conf" "$TESTPOOL/etc/config.d/60-docker.conf"

# shellcheck disable=SC1091
. "$TESTPOOL/env.sh"
domain=$(condor_config_val UID_DOMAIN)
for image in "$@"; do
    "$DOCKER" tag "$image" "htcondor.org/${POOL_USER}_at_${domain}/$image"
    echo "apply: $image marked as pulled for $POOL_USER@$domain"
done
condor_reconfig >/dev/null
for _ in $(seq 30); do
    [ "$(condor_status -af HasDocker 2>/dev/null | sort -u)" = true ] && break
    sleep 1
done
echo "apply: HasDocker = $(condor_status -af HasDocker | sort -u | tr '\n' ' ')" \
     "($(condor_status -af DockerVersion | sort -u))"
