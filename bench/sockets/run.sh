#!/usr/bin/env bash
# Restarts under load: a socket held by the supervisor next to a program that binds its
# own port (issue 23).
#
#   bench/sockets/run.sh [RESTARTS] [ROUNDS]    (default 50 restarts, 3 rounds per mode)
#
# Environment: CLIENTS (default 4 load threads), STARTUP_MS (the program's start-up work
# before it listens / says READY=1, default 20).
#
# Builds daemonic and the socket-http fixture (release), then runs bench/sockets/load.py
# ROUNDS times per mode, alternating the modes, each in a fresh state directory under a
# temp dir removed on exit. Every line of counts goes to stdout and to
# bench/sockets/results/<UTC timestamp>.txt. docs/benchmarks.md explains the results.
set -euo pipefail
cd "$(dirname "$0")/../.."
restarts=${1:-50}
rounds=${2:-3}
clients=${CLIENTS:-4}
startup=${STARTUP_MS:-20}
cargo build --release -q -p daemonic-cli --bin daemonic --example socket-http
bin=target/release/daemonic
fixture=target/release/examples/socket-http
tmp=$(mktemp -d)
trap 'for s in "$tmp"/*; do [ -d "$s" ] && DAEMONIC_STATE_DIR=$s "$bin" stop web >/dev/null 2>&1 || true; done; rm -rf "$tmp"' EXIT
mkdir -p bench/sockets/results
out=bench/sockets/results/$(date -u +%Y%m%dT%H%M%SZ).txt
{
    echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cpus; restarts=$restarts clients=$clients startup_ms=$startup"
    for r in $(seq 1 "$rounds"); do
        for mode in held own; do
            state=$tmp/$mode-$r
            mkdir -m 700 "$state"
            python3 bench/sockets/load.py --daemonic "$bin" --fixture "$fixture" --mode "$mode" \
                --state "$state" --restarts "$restarts" --clients "$clients" --startup-ms "$startup"
        done
    done
} | tee "$out"
