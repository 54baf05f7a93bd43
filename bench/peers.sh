#!/usr/bin/env bash
# The peers the benchmarks compare daemonic with, installed idempotently (only what is
# missing), for the benchmarks only: CI's .ci/run does not need them.
#
#   source bench/peers.sh    (from a bench run.sh; as root for apt-get)
#
# Debian packages: daemon (libslack's daemon(1)), runit, s6, daemontools. supervisord from
# PyPI into a venv under bench/.venv (git-ignored); afterwards $SUPERVISORD names its
# executable (empty when it could not be installed). A peer that cannot be installed is
# reported and left out by the harness, which checks for each tool itself.
bench_peers_install() {
    local bench pkgs=()
    bench="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    command -v daemon >/dev/null || pkgs+=(daemon)
    { command -v runsvdir && command -v svlogd; } >/dev/null || pkgs+=(runit)
    { command -v s6-svscan && command -v s6-log; } >/dev/null || pkgs+=(s6)
    { command -v svscan && command -v supervise; } >/dev/null || pkgs+=(daemontools)
    if [ ${#pkgs[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "peers: installing ${pkgs[*]}" >&2
            apt-get update -qq >/dev/null 2>&1 || true
            # runit's and daemontools' packages only ship the programs; the runit-init and
            # daemontools-run packages (which would start a scanner at boot) are not pulled in.
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${pkgs[@]}" >/dev/null || echo "peers: could not install ${pkgs[*]}" >&2
        else
            echo "peers: missing ${pkgs[*]} (not root or no apt-get)" >&2
        fi
    fi
    SUPERVISORD=""
    if [ ! -x "$bench/.venv/bin/supervisord" ]; then
        echo "peers: installing supervisor (PyPI) into bench/.venv" >&2
        { python3 -m venv "$bench/.venv" && "$bench/.venv/bin/pip" install -q supervisor; } >&2 ||
            echo "peers: could not install supervisor into $bench/.venv" >&2
    fi
    [ -x "$bench/.venv/bin/supervisord" ] && SUPERVISORD="$bench/.venv/bin/supervisord"
    return 0
}
bench_peers_install
