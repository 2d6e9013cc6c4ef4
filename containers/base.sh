#!/usr/bin/env bash
# The base image of containers/Dockerfile, made locally: no container registry is needed.
#
#     containers/base.sh [TAG]        (root; default TAG htclean/debian-base:bookworm)
#
# debootstrap (variant minbase) of Debian 12 from the Debian archive ($DEBIAN_MIRROR, default
# http://deb.debian.org/debian), pruned as Debian's own "slim" images are (no apt lists or
# downloaded packages, no man pages, docs or translations; dpkg told to keep it that way for
# whatever is installed later; the copyright files stay), then imported with `docker import`.
# Skipped when TAG exists already (HTCLEAN_REBUILD_BASE=1 to make it again). About 1 minute.
set -euo pipefail

TAG=${1:-htclean/debian-base:bookworm}
DOCKER=${DOCKER:-docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

if [ "${HTCLEAN_REBUILD_BASE:-0}" != 1 ] && "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
    echo "base: $TAG exists (HTCLEAN_REBUILD_BASE=1 to make it again)"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "base: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "base: apt-get install debootstrap" >&2; exit 1; }

work=$(mktemp -d /var/tmp/htclean-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
echo "base: debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" > "$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }

# The security and point-release updates, as a released Debian image has them.
cat > "$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
# What Debian's docker images set: no recommends, no cached .debs, no docs for later installs.
cat > "$root/etc/apt/apt.conf.d/90htclean-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Binary::apt::APT::Keep-Downloaded-Packages "false";
Acquire::Languages "none";
EOF
cat > "$root/etc/dpkg/dpkg.cfg.d/90htclean-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,info,lintian}/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/*

echo "base: importing $TAG"
tar --numeric-owner -C "$root" -c . |
    "$DOCKER" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
"$DOCKER" image ls "$TAG"
