#!/usr/bin/env bash
# Supervisor benchmarks: daemonic next to daemon(1), runit, s6, daemontools and supervisord.
#
#   bench/supervisor/run.sh [ITERATIONS]     (kills per tool, default 20, at least 10; as root)
#
# Environment: SERVICES (comma list, default 100,1000), IDLE_SECS (10), LOG_MB (200),
# LOG_REPS (3), CRASHES (10000), CRASH_SECS (60), ONLY (comma list of
# latency,defaults,memory,crash,log; default all).
#
# The peers are installed first if missing (bench/peers.sh: Debian daemon, runit, s6,
# daemontools; supervisord from PyPI into bench/.venv).
#
# Builds daemonic (release), this benchmark (bench/supervisor/, its own cargo project:
# the harness bench-supervisor, the children stamp and spew), then runs everything
# in a temp dir. The summary (Markdown tables with ratios) goes to stdout, the raw samples
# to bench/supervisor/results/<UTC timestamp>.tsv. docs/benchmarks.md explains the results.
#
# What is measured (src/bin/bench-supervisor/, one module per measurement, has the details):
#
# - Restart latency after kill -9. Every tool supervises one `stamp` child at once;
#   `stamp` reads CLOCK_MONOTONIC as its first act and appends "PID NANOS" to a file.
#   Per iteration, in a rotated order, the harness SIGKILLs each tool's child (up for at
#   least 1.5 s, so runit's and s6's one-second restart throttles do not apply) and takes
#   the next child's stamp minus the kill time. Median and p90 of ITERATIONS kills, after
#   2 warm-ups. Fastest settings: daemonic --restart always --backoff 0ms; daemon(1)
#   --respawn --idiot --acceptable=0 (no run counts as failed, so no burst delay); runsv
#   and s6-supervise as they are; supervisord startsecs=0 autorestart=true.
#   The floor row is the harness spawning `stamp` itself. Then the same with each tool's
#   default settings (phase `defaults`; daemon(1) with --respawn, which it needs to
#   restart at all).
# - Memory: each tool with 1 and with each of SERVICES services (daemonic: `run -f` of a
#   config file of N services, one supervisor, and N `daemonic start`, one supervisor +
#   sentinel each; daemon(1): N daemon processes; daemontools: svscan + N supervise; runit: runsvdir + N runsv; s6: s6-svscan + N s6-supervise; supervisord: one
#   process with N programs). Private_Clean + Private_Dirty of /proc/PID/smaps_rollup, summed over
#   the tool's processes (children excluded), for the supervisors alone and with the
#   sentinel / scanner; and the pages unique to the group (pagemap + kpagecount, needs
#   root). Per extra service = (N=SERVICES − N=1) / (SERVICES − 1).
# - Idle wake-ups: in the same setups, after everything is up, the context switches
#   (voluntary + involuntary, all threads) of each of the tool's processes over IDLE_SECS.
# - Crash loop: a child that exits 1 at once, fastest settings; CPU time (schedstat) of the
#   tool's processes per restart over CRASHES restarts or CRASH_SECS seconds.
# - Log capture: `spew` writes LOG_MB MB of numbered 64-byte lines to stdout and exits;
#   MB/s from its start until the tool's log file holds all of it, next to
#   `spew | cat > file`. No tool rotates: daemonic run --log-file --log-max-size 0,
#   daemon(1) --stdout=FILE, runsv piping into svlogd with "s0", s6-supervise piping into
#   s6-log s268435455, supervisord stdout_logfile with stdout_logfile_maxbytes=0.
#   daemonic is skipped (with a note) if its `run` has no --log-file.
#
# Processes: the harness is a child subreaper; it stops every tool with the tool's own
# signal and SIGKILLs by pid whatever is left; on any exit this script's trap also kills,
# by pid, every process whose command line or working directory is in the temp dir.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
iterations="${1:-20}"
if [ "$iterations" -lt 10 ]; then
    echo "run.sh: ITERATIONS must be at least 10" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "run.sh: needs root (page frame numbers for the unique-memory figure)" >&2
    exit 1
fi

# Peers: installed when missing; each one still missing is skipped, with how to install it.
# shellcheck source=../peers.sh
source "$here/../peers.sh"
peers=()
missing() { echo "run.sh: $1 not found, skipped (install: $2)" >&2; }
if command -v daemon >/dev/null; then peers+=(daemon1); else missing "daemon(1)" "apt-get install daemon"; fi
if command -v runsvdir >/dev/null && command -v svlogd >/dev/null; then peers+=(runit); else missing runit "apt-get install runit"; fi
if command -v s6-svscan >/dev/null && command -v s6-log >/dev/null; then peers+=(s6); else missing s6 "apt-get install s6"; fi
if command -v svscan >/dev/null && command -v svc >/dev/null; then peers+=(daemontools); else missing daemontools "apt-get install daemontools"; fi
supervisord="$SUPERVISORD"
if [ -n "$supervisord" ]; then
    peers+=(supervisord)
else
    missing supervisord "python3 -m venv bench/.venv && bench/.venv/bin/pip install supervisor"
fi

# DAEMONIC_BIN: measure that binary instead of building target/release/daemonic (the
# static build of docs/benchmarks.md, an older commit's binary for a before/after).
if [ -z "${DAEMONIC_BIN:-}" ]; then
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" -p daemonic-cli
fi
cargo build --quiet --release --manifest-path "$here/Cargo.toml" --target-dir "$repo/bench/target"
daemonic="${DAEMONIC_BIN:-$repo/target/release/daemonic}"
bin="$repo/bench/target/release"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/daemonic-bench-supervisor.XXXXXX")"
cleanup() {
    local round pid left
    # Normally the harness has stopped everything; this catches a crash or Ctrl-C.
    for round in 1 2 3; do
        left=0
        for pid in $(ls /proc | grep -E '^[0-9]+$'); do
            [ "$pid" = "$$" ] && continue
            if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$tmp" ||
                [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$tmp"* ]]; then
                kill -KILL "$pid" 2>/dev/null && left=$((left + 1))
            fi
        done
        [ "$left" = 0 ] && break
        sleep 0.2
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$here/results"
raw="$here/results/$(date -u +%Y-%m-%dT%H%M%SZ).tsv"
versions="$(dpkg-query -W -f '${Package} ${Version}\n' daemon runit s6 daemontools 2>/dev/null | paste -sd, -)"
[ -n "$supervisord" ] && versions="$versions, supervisor $("$supervisord" --version)"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $(uname -sr); daemonic ${DAEMONIC_BIN:-$(git -C "$repo" rev-parse --short HEAD)}; $versions"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/bench-supervisor" --iterations "$iterations" --dir "$tmp" --bin "$bin" --daemonic "$daemonic" \
    --raw "$raw" --peers "$(IFS=,; echo "${peers[*]}")" ${supervisord:+--supervisord "$supervisord"} \
    --services "${SERVICES:-100,1000}" --crashes "${CRASHES:-10000}" --crash-secs "${CRASH_SECS:-60}" \
    --idle-secs "${IDLE_SECS:-10}" --log-mb "${LOG_MB:-200}" \
    --log-reps "${LOG_REPS:-3}" ${ONLY:+--only "$ONLY"}
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw samples: ${raw#"$repo"/}"
