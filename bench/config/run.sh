#!/usr/bin/env bash
# `daemonic check` on large config files: N services in one dependency chain, written in
# dependency order (forward) and backwards (the worst case of the first ordering, which
# took one pass over the file per service), plus a fan-in (every service depends on one).
# Usage: bench/config/run.sh [N...]   (default: 1000 10000). Prints one line per file:
# its shape, N, the median and max wall time of 5 runs, and the peak RSS.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release -p daemonic-cli
bin=target/release/daemonic
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000)
gen() { # shape n file
    awk -v shape="$1" -v n="$2" 'BEGIN {
        for (i = 0; i < n; i++) {
            printf "[services.s%d]\ncommand = \"sleep 1000\"\n", i
            if (shape == "forward" && i > 0) printf "depends-on = [\"s%d\"]\n", i - 1
            if (shape == "backward" && i < n - 1) printf "depends-on = [\"s%d\"]\n", i + 1
            if (shape == "fan-in" && i > 0) printf "depends-on = [\"s0\"]\n"
        }
    }' > "$3"
}
echo "shape n median_s max_s peak_rss_kib"
for n in "${sizes[@]}"; do
    for shape in forward backward fan-in; do
        f="$dir/$shape-$n.toml"
        gen "$shape" "$n" "$f"
        times=()
        rss=0
        for _ in 1 2 3 4 5; do
            out=$( { /usr/bin/time -f "%e %M" "$bin" check -f "$f" >/dev/null; } 2>&1 )
            times+=("${out% *}")
            r=${out#* }; [ "$r" -gt "$rss" ] && rss=$r
        done
        sorted=$(printf '%s\n' "${times[@]}" | sort -n)
        echo "$shape $n $(sed -n 3p <<<"$sorted") $(tail -1 <<<"$sorted") $rss"
    done
done
