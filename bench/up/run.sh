#!/usr/bin/env bash
# `daemonic up` of many services, to all ready: N `sleep` services, independent (flat) or
# all depending on the first (fan-in), each ready by a 100 ms grace. Usage:
#   bench/up/run.sh [BIN] [N...]   (default: target/release/daemonic, 1000)
# Prints one line per run: shape, N, the seconds from starting `up` until every service's
# status file (<state-dir>/NAME.status) says `ready`, and the seconds from `down` until
# every status file says `stopped`.
#
# Readiness is read from the status files, not from `up`'s own progress, so the figure
# is the supervisor's whatever `up` prints.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/daemonic}
shift || true
[ "$bin" != target/release/daemonic ] || cargo build -q --release -p daemonic-cli
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1000)
dir=$(mktemp -d)
export DAEMONIC_STATE_DIR="$dir/state"
# On any exit: `down` what is still up (the supervisors end with it), then the files.
cleanup() {
    for f in "$dir"/*.toml; do
        [ -e "$f" ] && "$bin" down -f "$f" >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
ready_count() {
    grep -l '^state=ready$' "$DAEMONIC_STATE_DIR"/*.status 2>/dev/null | wc -l
}
echo "shape n up_s down_s"
for n in "${sizes[@]}"; do
    for shape in flat fan-in; do
        f="$dir/$shape-$n.toml"
        awk -v shape="$shape" -v n="$n" 'BEGIN {
            printf "[defaults]\ngrace = \"100ms\"\n\n"
            for (i = 0; i < n; i++) {
                printf "[services.s%d]\ncommand = \"sleep 1000\"\n", i
                if (shape == "fan-in" && i > 0) printf "depends-on = [\"s0\"]\n"
            }
        }' > "$f"
        t0=$(date +%s.%N)
        "$bin" up -f "$f" --timeout 600s >/dev/null 2>&1 || true
        until [ "$(ready_count)" -ge "$n" ]; do sleep 0.05; done
        t1=$(date +%s.%N)
        "$bin" down -f "$f" >/dev/null 2>&1 || true
        # Until every service's status file says `stopped` (`down` may have given up
        # following, as `up` does; the files stay, so that `status` can tell a stopped
        # service from one never started).
        until [ "$(grep -l '^state=stopped$' "$DAEMONIC_STATE_DIR"/*.status 2>/dev/null | wc -l)" -ge "$n" ]; do
            sleep 0.05
        done
        rm -f "$DAEMONIC_STATE_DIR"/*.status "$DAEMONIC_STATE_DIR"/*.log
        t2=$(date +%s.%N)
        echo "$shape $n $(echo "$t1 - $t0" | bc) $(echo "$t2 - $t1" | bc)"
    done
done
