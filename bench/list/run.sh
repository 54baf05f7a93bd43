#!/usr/bin/env bash
# How long `daemonic list` takes for N services of one config file, with and without
# cgroups (DAEMONIC_CONTAINMENT=subreaper: the trees are found in /proc), 3 runs each.
#
#   bench/list/run.sh [DAEMONIC] [N]      (default target/release/daemonic, 300)
#
# Everything lives in a temp dir; the services are `sleep 1000`, stopped with `down`
# (also on any exit, by the trap).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:-$repo/target/release/daemonic}"
n="${2:-300}"
dir="$(mktemp -d)"
export DAEMONIC_STATE_DIR="$dir/state"
cleanup() { "$bin" down -f "$dir/d.toml" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
for i in $(seq 0 $((n - 1))); do
    printf '[services.s%d]\ncommand = ["/bin/sleep", "1000"]\ngrace = "10ms"\n\n' "$i"
done > "$dir/d.toml"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $n services; $("$bin" --version)"
for mode in auto subreaper; do
    rm -rf "$DAEMONIC_STATE_DIR"; mkdir -m 700 "$DAEMONIC_STATE_DIR"
    DAEMONIC_CONTAINMENT=$mode "$bin" up -f "$dir/d.toml" >/dev/null
    for run in 1 2 3; do
        start=$(date +%s%N)
        "$bin" list >/dev/null
        echo "DAEMONIC_CONTAINMENT=$mode list run $run: $(( ($(date +%s%N) - start) / 1000000 )) ms"
    done
    "$bin" down -f "$dir/d.toml" >/dev/null
done
