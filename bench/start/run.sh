#!/usr/bin/env bash
# Start latency (issue 2): `daemonic start` next to daemon(1) and start-stop-daemon.
#
#   bench/start/run.sh [ITERATIONS]      (default 30; as root or not)
#
# Builds daemonic (release) and this benchmark's harness and child, then runs
# bench-start (see src/bin/bench-start.rs for what each number measures). The summary
# goes to stdout, the raw samples to bench/start/results/<UTC timestamp>.tsv.
# A temp dir holds every pid file and state dir; on any exit the trap stops whatever is
# still running there, by pid file, with each tool's own stop command, and removes it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
iterations="${1:-30}"

for tool in daemon start-stop-daemon; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (apt-get install daemon dpkg)" >&2; exit 1; }
done

# DAEMONIC_BIN: measure that binary instead of building target/release/daemonic (the
# static build of docs/benchmarks.md, an older commit's binary for a before/after).
if [ -z "${DAEMONIC_BIN:-}" ]; then
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" -p daemonic-cli
fi
cargo build --quiet --release --manifest-path "$here/Cargo.toml" --target-dir "$repo/bench/target"
daemonic="${DAEMONIC_BIN:-$repo/target/release/daemonic}"
bin="$repo/bench/target/release"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/daemonic-bench-start.XXXXXX")"
cleanup() {
    local f
    for f in "$tmp"/state/*.pid; do
        [ -e "$f" ] && "$daemonic" --state-dir "$tmp/state" stop "$(basename "$f" .pid)" >/dev/null 2>&1
    done
    for f in "$tmp"/daemon/*.pid; do
        [ -e "$f" ] && daemon --name "$(basename "$f" .pid)" --pidfiles="$tmp/daemon" --stop >/dev/null 2>&1
    done
    for f in "$tmp"/ssd/*.pid; do
        [ -e "$f" ] && start-stop-daemon --stop --quiet --retry TERM/5/KILL/5 --pidfile "$f" >/dev/null 2>&1
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$here/results"
raw="$here/results/$(date -u +%Y-%m-%dT%H%M%SZ).tsv"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $(uname -sr); daemonic ${DAEMONIC_BIN:-$(git -C "$repo" rev-parse --short HEAD)};" \
    "$(dpkg-query -W -f '${Package} ${Version}\n' daemon dpkg 2>/dev/null | paste -sd, -); ulimit -n $(ulimit -n)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/bench-start" --iterations "$iterations" --daemonic "$daemonic" --child "$bin/notify-ready" \
    --dir "$tmp" --raw "$raw"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw samples: ${raw#"$repo"/}"
