#!/usr/bin/env bash
# The OSPool-like profile of the test pool (ospool-like.conf beside this script): apply,
# remove, or check it without touching the pool.
#
#     benchmarks/pool/ospool_like.sh check  [--negotiator-interval S] [--cpus N]
#     benchmarks/pool/ospool_like.sh apply  --negotiator-interval S [--cpus N] [--force]
#     benchmarks/pool/ospool_like.sh remove [--force]
#     benchmarks/pool/ospool_like.sh render [--negotiator-interval S] [--cpus N]
#
# check   renders the profile, puts it beside the pool's own config.d files in a temporary
#         copy of PREFIX/etc and reads it back with condor_config_val (no daemon is
#         contacted): the whole configuration must parse (-dump) and every setting resolve
#         to the value intended. Exit 1 otherwise. Safe while the pool is in use.
# apply   (root) check, then write PREFIX/etc/config.d/70-ospool-like.conf, condor_reconfig
#         (the negotiator's interval, the startd's claim policy) and restart the startd (its
#         CPUs, memory and disk are read only at start), then wait for the new slot.
#         Restarting the startd kills running jobs: refused while any job runs, unless
#         --force.
# remove  (root) delete that file, reconfigure and restart the startd: the default test
#         pool (the one CI uses) is back.
# render  print the profile as apply would write it.
#
# PREFIX is $HTCLEAN_TESTPOOL, default /opt/htclean-testpool. The interval is in seconds
# (the rehearsals use 20 and 60); the default --cpus is 64.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
TESTPOOL=${HTCLEAN_TESTPOOL:-/opt/htclean-testpool}
PROFILE=$here/ospool-like.conf
TARGET=$TESTPOOL/etc/config.d/70-ospool-like.conf

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

action=${1:-}; [ -n "$action" ] || usage; shift
interval=""; cpus=64; force=0
while [ $# -gt 0 ]; do
    case $1 in
        --negotiator-interval) interval=${2:?}; shift 2 ;;
        --cpus) cpus=${2:?}; shift 2 ;;
        --force) force=1; shift ;;
        *) usage ;;
    esac
done
int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "ospool_like: $1 must be a positive integer, got '$2'" >&2; exit 2; }; }
int --cpus "$cpus"
[ -z "$interval" ] || int --negotiator-interval "$interval"

render() {  # the profile with its two parameters set
    sed -e "s/^OSPOOL_LIKE_NEGOTIATOR_INTERVAL = .*/OSPOOL_LIKE_NEGOTIATOR_INTERVAL = ${interval:-60}/" \
        -e "s/^OSPOOL_LIKE_CPUS = .*/OSPOOL_LIKE_CPUS = $cpus/" "$PROFILE"
}

# shellcheck disable=SC1091
. "$TESTPOOL/env.sh"
pool_config=$CONDOR_CONFIG

check() (  # the rendered profile read back from a copy of the pool's configuration
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    mkdir "$tmp/config.d"
    dir=$(condor_config_val LOCAL_CONFIG_DIR)
    for f in "$dir"/*.conf; do
        [ -e "$f" ] && [ "$(basename "$f")" != "$(basename "$TARGET")" ] && cp "$f" "$tmp/config.d/"
    done
    render > "$tmp/config.d/$(basename "$TARGET")"
    sed "s#^LOCAL_CONFIG_DIR *=.*#LOCAL_CONFIG_DIR = $tmp/config.d#" "$pool_config" \
        > "$tmp/condor_config"
    export CONDOR_CONFIG=$tmp/condor_config
    if ! condor_config_val -dump > "$tmp/dump" 2> "$tmp/err" || [ -s "$tmp/err" ]; then
        echo "ospool_like: the configuration does not parse:" >&2; cat "$tmp/err" >&2
        exit 1
    fi
    want=(  # DAEMON:KEY=value, read as that daemon reads it
        "negotiator:NEGOTIATOR_INTERVAL=${interval:-60}"
        "negotiator:NEGOTIATOR_CYCLE_DELAY=${interval:-60}"
        "startd:CLAIM_WORKLIFE=0" "startd:CLAIM_PARTITIONABLE_LEFTOVERS=true"
        "schedd:CLAIM_PARTITIONABLE_LEFTOVERS=true" "startd:NUM_CPUS=$cpus"
        "startd:MEMORY=$((cpus * 2048))" "startd:DISK=$((cpus * 4194304))"
        "startd:NUM_SLOTS_TYPE_1=1" "startd:SLOT_TYPE_1=100%"
        "startd:SLOT_TYPE_1_PARTITIONABLE=true" "startd:GPU_DISCOVERY_EXTRA=-simulate:2,1,4,2"
    )
    bad=0
    for kv in "${want[@]}"; do
        daemon=${kv%%:*}; kv=${kv#*:}; key=${kv%%=*}; value=${kv#*=}
        got=$(condor_config_val -subsystem "$daemon" "$key" 2>/dev/null || echo "(undefined)")
        at=$(condor_config_val -subsystem "$daemon" -v "$key" 2>/dev/null |
             sed -n 's/^ *# at: //p' | head -1 | sed "s#$tmp/##")
        if [ "${got,,}" = "${value,,}" ]; then
            printf '  ok   %-10s %-30s = %-18s (%s)\n' "$daemon" "$key" "$got" "$at"
        else
            printf '  BAD  %-10s %-30s = %s, want %s (%s)\n' "$daemon" "$key" "$got" "$value" "$at"
            bad=1
        fi
    done
    exit $bad
)

running_jobs() { condor_q -allusers -constraint 'JobStatus == 2' -af ClusterId 2>/dev/null | wc -l; }

restart_startd() {  # reconfigure, restart the startd, wait for a slot of $1 CPUs
    condor_reconfig >/dev/null
    condor_restart -daemon startd >/dev/null
    local ok=0
    for _ in $(seq 60); do  # TotalCpus is a real (64.0): compare it as an integer
        if [ "$(condor_status -af 'int(TotalCpus)' 2>/dev/null | sort -u)" = "$1" ]; then
            ok=1; break
        fi
        sleep 1
    done
    echo "ospool_like: slot $(condor_status -af Name 'int(TotalCpus)' TotalMemory TotalDisk |
         head -1) (name, CPUs, MB, KiB); the negotiator's NEGOTIATOR_INTERVAL =" \
         "$(condor_config_val -subsystem negotiator NEGOTIATOR_INTERVAL)"
    [ "$ok" = 1 ] || { echo "ospool_like: no slot of $1 CPUs after 60 s" >&2; return 1; }
}

guard() {
    local n; n=$(running_jobs)
    if [ "$n" -gt 0 ] && [ "$force" = 0 ]; then
        echo "ospool_like: $n job(s) running; restarting the startd would kill them" \
             "(--force to do it anyway)" >&2
        exit 1
    fi
}

case $action in
    render) render ;;
    check)
        echo "ospool_like: checking the profile (interval ${interval:-60} s, $cpus CPUs)" \
             "against a copy of $pool_config"
        check ;;
    apply)
        [ -n "$interval" ] || { echo "ospool_like: apply needs --negotiator-interval" >&2; exit 2; }
        check >/dev/null || { echo "ospool_like: check failed; nothing applied" >&2; exit 1; }
        guard
        render > "$TARGET.tmp" && chmod 0644 "$TARGET.tmp" && mv "$TARGET.tmp" "$TARGET"
        echo "ospool_like: wrote $TARGET"
        restart_startd "$cpus" ;;
    remove)
        guard
        rm -f "$TARGET"
        echo "ospool_like: removed $TARGET"
        restart_startd "$(CONDOR_CONFIG=$pool_config condor_config_val DETECTED_CPUS)" ;;
    *) usage ;;
esac
