#!/usr/bin/env bash
# Memory of the supervisor that `daemonic up` leaves running, with each service's default
# log file (what `up` users get; the supervisor benchmark's `run -f` row logs to the
# console instead). Usage:
#   bench/up/memory.sh [BIN] [N...]   (default: target/release/daemonic, 1 100 400)
# For each N: `up` of N `sleep 1000` services (100 ms grace), 4 s of quiet (the
# supervisor gives its start-up pages back after 1 s idle), then the supervisor's
# Private_Dirty and Private_Clean (smaps_rollup) and its heap's Private_Dirty, in KiB;
# then `down`. The last line: Private_Dirty per extra service between the first and the
# last N. The sentinel is not counted (it is the same for any N).
#
# State directories go to /dev/shm (tmpfs, as /run is on most machines), removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/daemonic}
shift || true
[ "$bin" != target/release/daemonic ] || cargo build -q --release -p daemonic-cli
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1 100 400)
dir=$(mktemp -d)
state=$(mktemp -d /dev/shm/daemonic-up-memory.XXXXXX)
cleanup() {
    for f in "$dir"/*.toml; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .toml)
        DAEMONIC_STATE_DIR="$state/$n" "$bin" down -f "$f" >/dev/null 2>&1 || true
    done
    rm -rf "$dir" "$state"
}
trap cleanup EXIT
kib() { awk -v k="$1:" '$1 == k {print $2}' "$2"; }
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $("$bin" --version 2>/dev/null | head -1); $(nproc) CPUs"
echo "n private_dirty private_clean heap_dirty"
first_n= first_pd= last_n= last_pd=
for n in "${sizes[@]}"; do
    f="$dir/$n.toml"
    awk -v n="$n" 'BEGIN {
        printf "[defaults]\ngrace = \"100ms\"\n\n"
        for (i = 0; i < n; i++) printf "[services.s%d]\ncommand = \"sleep 1000\"\n", i
    }' > "$f"
    export DAEMONIC_STATE_DIR="$state/$n"
    "$bin" up -f "$f" --timeout 300s >/dev/null
    sleep 4
    pid=$(cat "$DAEMONIC_STATE_DIR"/up/*.pid | head -1)
    pd=$(kib Private_Dirty "/proc/$pid/smaps_rollup")
    pc=$(kib Private_Clean "/proc/$pid/smaps_rollup")
    heap=$(awk '/\[heap\]/ {h = 1; next} h && $1 == "Private_Dirty:" {s += $2; h = 0} END {print s + 0}' "/proc/$pid/smaps")
    echo "$n $pd $pc $heap"
    "$bin" down -f "$f" >/dev/null
    [ -n "$first_n" ] || { first_n=$n; first_pd=$pd; }
    last_n=$n last_pd=$pd
done
if [ "$last_n" != "$first_n" ]; then
    awk -v a="$first_pd" -v b="$last_pd" -v m="$first_n" -v n="$last_n" \
        'BEGIN {printf "per extra service (N=%d - N=%d): %.1f KiB Private_Dirty\n", n, m, (b - a) / (n - m)}'
fi
