#!/usr/bin/env bash
# daemonic's main job on a demo: a daemon that detaches and returns only when it is ready,
# refuses a second instance, reports its own startup error in your terminal, stops cleanly;
# then the same for an arbitrary program through the `daemonic` CLI; then several services
# from one config file, in dependency order.
set -euo pipefail
cd "$(dirname "$0")"
# The first build takes a minute or two: cargo shows its progress on stderr.
echo "building daemonic (release) …" >&2
cargo build --release -p daemonic-cli
cargo build --release -p daemonic --example echod
bin=target/release
dir=$(mktemp -d)
export DAEMONIC_STATE_DIR="$dir/state"
cleanup() {
    [ -s "$dir/echod.pid" ] && kill "$(cat "$dir/echod.pid")" 2>/dev/null || true
    "$bin/daemonic" stop demo-sleep >/dev/null 2>&1 || true
    "$bin/daemonic" stop demo-crash >/dev/null 2>&1 || true
    [ -f "$dir/daemonic.toml" ] && "$bin/daemonic" down -f "$dir/daemonic.toml" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
port=$(( 20000 + RANDOM % 20000 ))
# Commands in bold on a terminal; plain text when piped or with NO_COLOR.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
else
    say() { printf '\n$ %s\n' "$*"; }
fi

say "echod -d --port $port --pid-file $dir/echod.pid      # a Rust daemon using the daemonic library"
"$bin/examples/echod" -d --port "$port" --pid-file "$dir/echod.pid"
echo "returned $? — only once the daemon had bound its port; pid $(cat "$dir/echod.pid")"

say "echo hello | (connect to 127.0.0.1:$port)   # no retry loop needed"
exec 3<>"/dev/tcp/127.0.0.1/$port"; echo hello >&3; read -r reply <&3; exec 3<&-
echo "reply: $reply"

say "echod -d --port $port --pid-file $dir/echod.pid      # a second instance"
"$bin/examples/echod" -d --port "$port" --pid-file "$dir/echod.pid" || echo "exit status $?"

say "echod -d --port $port --pid-file $dir/other.pid     # port taken: the daemon's own error, here"
"$bin/examples/echod" -d --port "$port" --pid-file "$dir/other.pid" || echo "exit status $?"

say "kill -TERM \$(cat $dir/echod.pid)                     # clean shutdown removes the pid file"
pid=$(cat "$dir/echod.pid"); kill -TERM "$pid"
while [ -e "$dir/echod.pid" ]; do sleep 0.05; done
echo "pid file gone"

say "daemonic start --name demo-sleep -- sleep 300       # any program, detached and supervised"
"$bin/daemonic" start --name demo-sleep -- sleep 300
say "daemonic status demo-sleep"
"$bin/daemonic" status demo-sleep
say "daemonic stop demo-sleep"
"$bin/daemonic" stop demo-sleep && "$bin/daemonic" status demo-sleep || true

say "daemonic start --name demo-fail --backoff 100ms -- sh -c 'exit 3'   # dies while starting: 4 attempts, then its error"
"$bin/daemonic" start --name demo-fail --backoff 100ms -- sh -c 'exit 3' || echo "exit status $?"

say "daemonic start --name demo-crash --restart on-failure --backoff 200ms --start-limit 3/1m --grace 100ms -- sh -c 'echo serving; sleep 0.3; exit 1'"
"$bin/daemonic" start --name demo-crash --restart on-failure --backoff 200ms --start-limit 3/1m \
    --grace 100ms -- sh -c 'echo serving; sleep 0.3; exit 1'
"$bin/daemonic" status demo-crash
for _ in $(seq 50); do "$bin/daemonic" status demo-crash >/dev/null || break; sleep 0.1; done
say "daemonic logs demo-crash        # its output and the supervisor's notes, from the rotating log"
"$bin/daemonic" logs demo-crash
say "daemonic status demo-crash"
"$bin/daemonic" status demo-crash || true

web=$(( port + 1 ))
cat > "$dir/daemonic.toml" <<EOF
[defaults]
restart = "on-failure"

[services.api]
command = "python3 -m http.server $web --bind 127.0.0.1"
ready = "http://127.0.0.1:$web/"

[services.worker]
command = "sleep 300"
depends-on = ["api"]      # started once api answers HTTP
EOF
say "cat daemonic.toml"
cat "$dir/daemonic.toml"
say "daemonic check -f daemonic.toml"
"$bin/daemonic" check -f "$dir/daemonic.toml"
say "daemonic up -f daemonic.toml                      # in dependency order; returns once all are ready"
"$bin/daemonic" up -f "$dir/daemonic.toml"
say "daemonic list"
"$bin/daemonic" list
sed -i 's/sleep 300/sleep 600/' "$dir/daemonic.toml"
say "(edit: worker sleeps 600) daemonic up -f daemonic.toml   # only what changed restarts"
"$bin/daemonic" up -f "$dir/daemonic.toml"
say "daemonic down -f daemonic.toml                    # dependents first"
"$bin/daemonic" down -f "$dir/daemonic.toml"
