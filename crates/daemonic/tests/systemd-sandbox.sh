#!/bin/bash
# systemd-sandbox - boot a REAL systemd as PID 1 of fresh Linux namespaces, so
# that automated tests can install unit files, start services and observe real
# service-manager behaviour (Type=notify, watchdogs, socket activation,
# reload, restarts, journal ...) on a host whose own PID 1 is not systemd.
#
# Usage
#   systemd-sandbox start   DIR [FILE...]     boot a sandbox, state lives in DIR;
#                                             FILEs are installed before boot
#   systemd-sandbox exec    DIR CMD [ARG...]  run CMD inside the sandbox
#   systemd-sandbox install DIR FILE...       copy unit files (or foo.service.d
#                                             drop-in dirs) in + daemon-reload
#   systemd-sandbox status  DIR               "running <pid> <state>"; rc 3 if down
#   systemd-sandbox stop    DIR               power off, reap, clean up
#
# Environment knobs (all optional)
#   SYSTEMD_SANDBOX_TIMEOUT=30        seconds to wait for boot
#   SYSTEMD_SANDBOX_STOP_TIMEOUT=30   seconds to wait for a clean poweroff
#                                     before SIGKILLing the namespace
#   SYSTEMD_SANDBOX_LOG_LEVEL=info    systemd --log-level
#   SYSTEMD_SANDBOX_SYSTEMD=/lib/systemd/systemd
#
# How it works: see docs/systemd.md ("The end-to-end harness"); in short, a
#   detached launcher runs script(1) -> unshare(1) (new pid, mount, net, uts, ipc
#   namespaces) -> this script as "__init", PID 1 there, which sets up a private
#   view (/etc and /var copy-on-write, private /run /dev /proc, read-only /sys,
#   its own cgroup v2 subtree) and execs systemd in a new cgroup namespace.
#
# This is daemonic's copy of a recipe proven on the project's machines; the Rust
# tests drive it through tests/support/sandbox.rs.
#
# Files in DIR
#   pid          host PID of the sandbox's systemd (it is PID 1 inside)
#   pidns        its pid namespace, e.g. "pid:[4026532301]"; every command
#                checks it so a recycled PID is never signalled or entered
#   launcher.pid host PID of the supervising "__launch" process
#   cgroup       the sandbox's cgroup v2 path (below the cgroup2 mount)
#   log          console log (systemd + journal); log.prev from the last run
#   exit-status  exit status of unshare (after stop; 130 = clean poweroff)
#   etc/systemd/system/  private unit dir (masks, sandbox.target, your units)
#   overlay/{etc,var}/upper/  what the sandbox wrote to /etc and /var
#   .systemd-sandbox  marker; "start" only uses an empty DIR or one with it
#   All of it except log* is recreated by the next "start".
#
# Caveats
#   - Resource control (MemoryMax=, TasksMax=, CPUQuota=, IO*) is parsed but
#     not enforced when the host keeps those controllers on cgroup v1 (as on
#     a "hybrid" host): only controllers available in cgroup v2 can be used.
#   - /tmp, /home, /root, /usr, /opt, /srv are the host's: a unit that
#     writes there writes to the host (PrivateTmp= dirs in /tmp are removed
#     by systemd when the unit stops; after a forced kill they may remain).
#   - Units needing udev devices (BindsTo=dev-*.device), logind sessions,
#     gettys or networkd will not work (masked / no udev in a container).
#   - Core dumps are off (DefaultLimitCORE=0): core_pattern is global.
#
# Requirements: root, util-linux (unshare, nsenter, script), a mounted
# cgroup2 file system, overlayfs (optional), systemd >= 246.

set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

SYSTEMD=${SYSTEMD_SANDBOX_SYSTEMD:-/lib/systemd/systemd}
BOOT_TIMEOUT=${SYSTEMD_SANDBOX_TIMEOUT:-30}
STOP_TIMEOUT=${SYSTEMD_SANDBOX_STOP_TIMEOUT:-30}
LOG_LEVEL=${SYSTEMD_SANDBOX_LOG_LEVEL:-info}
SELF=$(readlink -f -- "$0")
PROG=${0##*/}

# Units pulled in by vendor *.wants/ dirs that we keep (everything else found
# there is masked).
KEEP_UNITS="systemd-journald.service systemd-journald.socket
 systemd-journald-dev-log.socket dbus.socket dbus.service dbus-broker.service
 dev-mqueue.mount"

# Units masked even if nothing in *.wants/ references them, because starting
# them in a sandbox that shares the host's kernel, /dev, /sys and root file
# system would change host state (or hang waiting for devices).
EXTRA_MASKS="
 systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
 systemd-udev-trigger.service systemd-udev-settle.service
 systemd-networkd.service systemd-networkd.socket systemd-network-generator.service
 systemd-networkd-wait-online.service systemd-resolved.service
 systemd-timesyncd.service systemd-time-wait-sync.service
 systemd-logind.service systemd-user-sessions.service
 systemd-hostnamed.service systemd-timedated.service systemd-localed.service
 systemd-sysctl.service systemd-modules-load.service systemd-binfmt.service
 proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount
 systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service
 systemd-tmpfiles-clean.service systemd-tmpfiles-clean.timer
 systemd-remount-fs.service systemd-fsck-root.service systemd-fsck@.service
 systemd-quotacheck.service quotaon.service systemd-growfs-root.service
 systemd-growfs@.service systemd-makefs@.service systemd-mkswap@.service
 systemd-random-seed.service systemd-update-utmp.service
 systemd-update-utmp-runlevel.service systemd-journal-flush.service
 systemd-journal-catalog-update.service systemd-update-done.service
 ldconfig.service systemd-sysusers.service systemd-firstboot.service
 systemd-machine-id-commit.service systemd-hwdb-update.service
 systemd-pstore.service systemd-repart.service systemd-boot-update.service
 systemd-boot-system-token.service systemd-pcrphase.service
 systemd-pcrphase-sysinit.service systemd-hibernate-resume@.service
 kmod-static-nodes.service systemd-backlight@.service systemd-rfkill.service
 systemd-rfkill.socket systemd-vconsole-setup.service console-setup.service
 keyboard-setup.service systemd-ask-password-console.path
 systemd-ask-password-wall.path systemd-journald-audit.socket
 systemd-initctl.socket dev-hugepages.mount
 sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount
 sys-fs-fuse-connections.mount tmp.mount getty@.service serial-getty@.service
 console-getty.service container-getty@.service getty-static.service
 apparmor.service networking.service ifupdown-pre.service
 systemd-coredump.socket systemd-oomd.service systemd-oomd.socket
 systemd-homed.service systemd-userdbd.service systemd-userdbd.socket
 systemd-machined.service systemd-importd.service systemd-portabled.service
 systemd-journal-upload.service systemd-journal-remote.service
"

die()  { echo "$PROG: $*" >&2; exit 1; }
warn() { echo "$PROG: warning: $*" >&2; }
now()  { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
ms()   { date +%s%3N; }      # milliseconds, for deadlines

usage() {
    sed -n '/^# Usage/,/^# Environment/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# Absolute path of the state directory; refuse paths that the sandbox itself
# mounts over (they would be invisible inside).
absdir() {   # absdir DIR [create]
    [ -n "${1:-}" ] || usage
    if [ "${2:-}" = create ]; then mkdir -p -- "$1" || die "cannot create $1"; fi
    local d
    d=$(cd -- "$1" 2>/dev/null && pwd -P) || die "no such state dir: $1"
    case "$d/" in
        /|/proc/*|/sys/*|/dev/*|/etc/systemd/*|/var/lib/systemd/*|/var/log/journal/*)
            die "refusing state dir $d (must not be /, or below /proc /sys /dev /etc/systemd /var/lib/systemd /var/log/journal)" ;;
    esac
    printf '%s\n' "$d"
}

# is_alive DIR -> sets PID and PIDNS; true only if DIR/pid still names the
# systemd we started (same pid namespace as recorded at boot).
is_alive() {
    PID='' PIDNS=''
    [ -s "$1/pid" ] && [ -s "$1/pidns" ] || return 1
    PID=$(cat "$1/pid") PIDNS=$(cat "$1/pidns")
    case "$PID" in ''|*[!0-9]*) return 1 ;; esac
    [ "$(readlink "/proc/$PID/ns/pid" 2>/dev/null)" = "$PIDNS" ]
}

require_alive() {
    is_alive "$1" || die "no sandbox running in $1 (use: $PROG start $1)"
}

# proc_running PID: process exists and is not a zombie.
proc_running() {
    local st
    st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# launcher_alive DIR: the supervising __launch process of DIR still runs
# (checked by command line, so a recycled PID is not mistaken for it).
launcher_alive() {
    local l
    [ -s "$1/launcher.pid" ] && l=$(cat "$1/launcher.pid") && proc_running "$l" &&
        tr '\0' ' ' < "/proc/$l/cmdline" 2>/dev/null | grep -qF -- "__launch $1 "
}

# Host PIDs of all processes inside pid namespace $1.
ns_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"
    done
}

# Mount points of all cgroup hierarchies (v1 controllers and v2).
cgroup_mounts() {
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break
           if ($(i + 1) == "cgroup" || $(i + 1) == "cgroup2") print $5 }' /proc/self/mountinfo
}

# Mount point of the cgroup v2 hierarchy (/sys/fs/cgroup or, on "hybrid"
# hosts, /sys/fs/cgroup/unified).
cgroup2_mount() {
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break
           if ($(i + 1) == "cgroup2") { print $5; exit } }' /proc/self/mountinfo
}

# Remove the sandbox's cgroup subtree (bottom-up; empty cgroups can be
# rmdir'ed). All hierarchies are checked, to be safe, not only cgroup v2.
cleanup_cgroups() {
    local cg m left=0
    [ -s "$1/cgroup" ] || return 0
    cg=$(cat "$1/cgroup")
    case "$cg" in */systemd-sandbox/*) ;; *) warn "odd cgroup path '$cg', not touching it"; return 1 ;; esac
    for m in $(cgroup_mounts); do
        [ -d "$m$cg" ] || continue
        find "$m$cg" -depth -type d -exec rmdir {} + 2>/dev/null
        if [ -d "$m$cg" ]; then
            warn "cgroup $m$cg still exists (processes left?)"; left=1
        fi
        rmdir "$m${cg%/*}" 2>/dev/null   # parent "systemd-sandbox", if now empty
    done
    [ $left = 0 ] && rm -f "$1/cgroup"
    return $left
}

# Write the private /etc/systemd (config drop-ins, masks, default target).
make_config() {
    local dir=$1 udir=$1/etc/systemd/system u f
    rm -rf -- "${dir:?}/etc" "${dir:?}/var" "${dir:?}/overlay"
    mkdir -p "$udir" "$dir/etc/systemd/system.conf.d" \
             "$dir/etc/systemd/journald.conf.d" "$dir/var/lib/systemd"

    cat > "$dir/etc/systemd/system.conf.d/50-sandbox.conf" <<'EOF'
# systemd-sandbox: manager settings for the sandbox's PID 1.
[Manager]
LogColor=no
ShowStatus=no
# core_pattern is global and the host's may be a relative "core", which would
# drop core files into / of the shared root fs (e.g. on WatchdogSec= SIGABRT).
# Units that want core dumps can set LimitCORE= themselves.
DefaultLimitCORE=0
EOF
    cat > "$dir/etc/systemd/journald.conf.d/50-sandbox.conf" <<EOF
# systemd-sandbox: journal lives in the private /run only; do not import the
# host's kernel log; copy every message to /dev/console (= DIR/log).
[Journal]
Storage=volatile
ReadKMsg=no
ForwardToSyslog=no
ForwardToWall=no
ForwardToConsole=yes
TTYPath=/dev/console
MaxLevelConsole=$LOG_LEVEL
EOF
    cat > "$udir/sandbox.target" <<'EOF'
[Unit]
Description=systemd-sandbox default target (basic system, no gettys, no network, no udev)
Requires=basic.target
After=basic.target
AllowIsolate=yes
EOF
    ln -s sandbox.target "$udir/default.target"

    # Mask everything the vendor targets pull in, except KEEP_UNITS and
    # targets/slices (masking those would break dependency chains).
    local keep
    # shellcheck disable=SC2086  # intentional word splitting of the list
    keep=" $(printf '%s ' $KEEP_UNITS)"
    {
        for f in /usr/lib/systemd/system/*.wants/* /usr/lib/systemd/system/*.requires/* \
                 /lib/systemd/system/*.wants/* /lib/systemd/system/*.requires/* \
                 /usr/local/lib/systemd/system/*.wants/* /usr/local/lib/systemd/system/*.requires/*; do
            [ -e "$f" ] || [ -L "$f" ] && echo "${f##*/}"
        done
        # shellcheck disable=SC2086  # intentional word splitting of the list
        printf '%s\n' $EXTRA_MASKS
    } | sort -u | while read -r u; do
        case "$u" in *.target|*.slice|'') continue ;; esac
        case "$keep" in *" $u "*) continue ;; esac
        ln -sfn /dev/null "$udir/$u"
    done
}

# overlay_mount DIR PATH: mount an overlayfs over PATH (lower = PATH itself,
# upper = DIR/overlay/PATH/upper). Skipped (returns 1) if PATH has submounts
# (they would be hidden), if DIR lies below PATH, or if the mount fails, e.g.
# because DIR is on a file system overlayfs cannot use as upper layer.
overlay_mount() {
    local dir=$1 p=$2 up=$1/overlay$2
    [ -d "$p" ] || return 1
    case "$dir/" in "$p"/*) echo "__init: $dir is below $p, not overlaying $p" >&2; return 1 ;; esac
    if awk -v p="$p/" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        echo "__init: $p has submounts, not overlaying it (writes there reach the host)" >&2
        return 1
    fi
    mkdir -p "$up/upper" "$up/work" &&
        mount -t overlay overlay -o "lowerdir=$p,upperdir=$up/upper,workdir=$up/work" "$p" && return 0
    echo "__init: overlay on $p failed (writes there reach the host)" >&2
    return 1
}

# ---------------------------------------------------------------------------
# __init DIR CGROUP: runs as PID 1 of the new pid namespace (inside the new
# mount/net/uts/ipc namespaces), prepares the view and exec()s systemd.
do_init() {
    local dir=$1 cg=$2 hostpid _rest v2 tty stage n tty_gid
    # Safety first: systemd-shutdown calls reboot(2) at the end. That is only
    # harmless if we really are PID 1 of a *new* pid namespace.
    [ "$$" = 1 ] || die "__init: not PID 1 of a new pid namespace, refusing"
    # /proc is still the host's procfs here, so /proc/self/stat tells our
    # host PID (read by the shell itself, no fork).
    read -r hostpid _rest < /proc/self/stat
    readlink /proc/self/ns/pid > "$dir/pidns.tmp" && mv "$dir/pidns.tmp" "$dir/pidns"
    echo "$hostpid" > "$dir/pid.tmp" && mv "$dir/pid.tmp" "$dir/pid"

    # Own cgroup v2 subtree, later made the root of a private cgroup
    # namespace: systemd then runs in pure unified mode, builds init.scope,
    # system.slice ... below it and cannot see or touch the host's cgroups.
    # (Without this it would use the host's root cgroup, and on a v1/"hybrid"
    # host it would even mount missing v1 controller hierarchies.)
    v2=$(cgroup2_mount)
    [ -n "$v2" ] || die "__init: no cgroup2 file system mounted on the host"
    # (retried: a concurrent "stop" may just rmdir the shared parent dir)
    for _rest in 1 2 3 4 5; do
        mkdir -p "$v2$cg" 2>/dev/null && echo 0 > "$v2$cg/cgroup.procs" 2>/dev/null && break
        sleep 0.1
    done
    grep -qx "0::$cg" /proc/self/cgroup || die "__init: cannot join cgroup $v2$cg"

    set -e
    # mount(8) keeps userspace mount options in /run/mount/utab; the host's
    # /run is not ours, so point libmount at DIR until /run is private.
    export LIBMOUNT_UTAB=$dir/.utab
    mount --make-rprivate /
    # Copy-on-write /etc and /var: whatever systemd or a test unit writes there
    # (StateDirectory=, ConfigurationDirectory=, DynamicUser state, PrivateTmp
    # dirs in /var/tmp, timer stamps, ...) lands in DIR/overlay/*/upper.
    ovl_var=no
    overlay_mount "$dir" /etc || true
    if overlay_mount "$dir" /var; then ovl_var=yes; fi
    # Private unit/config dir, bound on top of the (overlaid) /etc.
    mount --bind "$dir/etc/systemd" /etc/systemd
    if [ $ovl_var = no ] && [ -d /var/lib/systemd ]; then
        mount --bind "$dir/var/lib/systemd" /var/lib/systemd
    fi
    if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=2755,nosuid,nodev tmpfs /var/log/journal; fi
    mount -t tmpfs -o mode=0755,nosuid,nodev,size=20% tmpfs /run
    mkdir -m 1777 /run/lock
    unset LIBMOUNT_UTAB
    # Private /dev (as systemd-nspawn does): tmpfs with the basic nodes, so
    # nothing the sandbox does touches the host's devtmpfs (journald would
    # e.g. replace /dev/log, mount units would mkdir /dev/mqueue ...).
    # No block devices, no /dev/kmsg (the host's kernel log stays clean).
    stage=/run/.sandbox-dev
    mkdir "$stage"
    mount -t tmpfs -o mode=0755,nosuid,size=4m tmpfs "$stage"
    for n in null zero full random urandom tty; do cp -a "/dev/$n" "$stage/"; done
    ln -s /proc/self/fd "$stage/fd"
    ln -s /proc/self/fd/0 "$stage/stdin"
    ln -s /proc/self/fd/1 "$stage/stdout"
    ln -s /proc/self/fd/2 "$stage/stderr"
    ln -s pts/ptmx "$stage/ptmx"
    mkdir "$stage/pts" "$stage/shm"
    # The console: our stdin is the pty allocated by script(1) on the host's
    # devpts; systemd insists on a tty there. Without one (no script(1))
    # PID 1 logs go to the journal only.
    touch "$stage/console"
    if tty=$(tty 2>/dev/null); then mount --bind "$tty" "$stage/console"
    else mount --bind /dev/null "$stage/console"; fi
    mount --move "$stage" /dev
    rmdir "$stage"
    tty_gid=$(getent group tty | cut -d: -f3)
    mount -t devpts -o "newinstance,ptmxmode=0666,mode=0620,gid=${tty_gid:-5},nosuid,noexec" devpts /dev/pts
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
    # procfs of the new pid namespace (so ps/systemctl see sandbox PIDs only)
    mount --make-rprivate /proc
    mount -t proc -o nosuid,nodev,noexec proc /proc
    # Kernel tunables read-only: sysctls (except the private netns' net.*) and
    # sysrq are global. remount,bind changes only this mount, not the host's.
    mount --bind /proc/sys /proc/sys
    mount --bind /proc/sys/net /proc/sys/net
    mount -o remount,bind,ro,nosuid,nodev,noexec /proc/sys
    if [ -e /proc/sysrq-trigger ]; then
        mount --bind /proc/sysrq-trigger /proc/sysrq-trigger
        mount -o remount,bind,ro /proc/sysrq-trigger
    fi
    mount -o remount,bind,ro /sys
    # Our cgroup subtree as the whole (writable) cgroup2 tree of the sandbox.
    mount --bind "$v2$cg" /sys/fs/cgroup
    set +e

    echo "systemd-sandbox: exec $SYSTEMD as PID 1 (host pid $hostpid, cgroup $cg)"
    # Clean environment: do not leak NOTIFY_SOCKET, LISTEN_FDS, SYSTEMD_* etc.
    # unshare --cgroup: new cgroup namespace rooted at our cgroup (no fork,
    # we stay PID 1).
    exec unshare --cgroup -- env -i container=systemd-sandbox TERM=vt220 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "$SYSTEMD" --system --unit=sandbox.target --log-target=journal \
        --log-level="$LOG_LEVEL" --log-color=no --show-status=no --dump-core=no
}

# __launch DIR CGROUP: runs detached (setsid) on the host; supervises one
# sandbox and exits when its namespace's PID 1 is gone.
do_launch() {
    local dir=$1 cg=$2 cmd rc
    echo $$ > "$dir/launcher.pid"
    cmd="exec unshare --pid --fork --mount --propagation private --net --uts --ipc -- $(printf '%q ' "$SELF" __init "$dir" "$cg")"
    if command -v script >/dev/null 2>&1; then
        # script(1) gives us a pty to use as /dev/console; sed drops the CRs.
        SHELL=/bin/bash script -qfec "$cmd" /dev/null </dev/null 2>&1 | sed -u 's/\r*$//' >> "$dir/log"
        rc=${PIPESTATUS[0]}
    else
        /bin/bash -c "$cmd" </dev/null >> "$dir/log" 2>&1
        rc=$?
    fi
    echo "$rc" > "$dir/exit-status"
    rm -f "$dir/launcher.pid"
}

# ---------------------------------------------------------------------------
in_sandbox() {   # in_sandbox PID CMD... (keeps the caller's cwd if it exists)
    local pid=$1; shift
    nsenter --target "$pid" --mount --uts --ipc --net --pid --cgroup -- \
        /bin/sh -c 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"' sandbox-exec "$PWD" "$@"
}

boot_failed() {   # boot_failed DIR MESSAGE: show the log, clean up, exit 1
    echo "--- tail of $1/log" >&2; tail -n 30 "$1/log" >&2; echo "---" >&2
    do_stop "$1" >/dev/null 2>&1
    die "$2"
}

do_start() {
    local dir t0 cg state='' deadline f t
    [ "$(id -u)" = 0 ] || die "must run as root"
    [ -x "$SYSTEMD" ] || die "$SYSTEMD not found"
    for t in unshare nsenter mount setsid; do command -v $t >/dev/null || die "$t not found"; done
    dir=$(absdir "${1:-}" create) || exit 1; shift
    for f in "$@"; do [ -e "$f" ] || die "no such file: $f"; done
    is_alive "$dir" && die "a sandbox is already running in $dir (pid $PID)"
    # start wipes DIR/etc, DIR/var, DIR/overlay: only in a DIR that is empty
    # or was created by us.
    if [ ! -e "$dir/.systemd-sandbox" ] && [ -n "$(ls -A "$dir")" ]; then
        die "$dir is not empty and not a systemd-sandbox state dir, refusing"
    fi
    echo "systemd-sandbox state dir; see $SELF" > "$dir/.systemd-sandbox"
    # Leftovers of a crashed previous run in this DIR.
    if launcher_alive "$dir"; then
        die "previous launcher $(cat "$dir/launcher.pid") for $dir still alive; run: $PROG stop $dir"
    fi
    cleanup_cgroups "$dir" || die "stale cgroups of a previous run remain"
    rm -f "$dir/pid" "$dir/pidns" "$dir/launcher.pid" "$dir/exit-status"
    [ -f "$dir/log" ] && mv -f "$dir/log" "$dir/log.prev"
    : > "$dir/log"
    make_config "$dir"
    for f in "$@"; do cp -R --remove-destination -- "$f" "$dir/etc/systemd/system/" || die "cannot copy $f"; done

    # cgroup path: below our current cgroup v2 one.
    local cur
    [ -n "$(cgroup2_mount)" ] || die "no cgroup2 file system mounted (needed for the sandbox's cgroup)"
    cur=$(awk -F: '$1 == "0" { print $3; exit }' /proc/self/cgroup)
    cur=${cur%/}
    cg="$cur/systemd-sandbox/${dir##*/}.$$"
    cg=$(printf '%s' "$cg" | tr -c 'A-Za-z0-9_./@:-' '_')
    echo "$cg" > "$dir/cgroup"

    t0=$(now)
    setsid "$SELF" __launch "$dir" "$cg" </dev/null >/dev/null 2>&1 &
    deadline=$(( $(ms) + BOOT_TIMEOUT * 1000 ))
    while :; do
        if is_alive "$dir"; then
            state=$(in_sandbox "$PID" systemctl is-system-running 2>/dev/null)
            case "$state" in running|degraded) break ;; esac
        elif [ -s "$dir/exit-status" ]; then
            boot_failed "$dir" "systemd exited during boot (status $(cat "$dir/exit-status"))"
        fi
        [ "$(ms)" -lt "$deadline" ] ||
            boot_failed "$dir" "boot did not finish within ${BOOT_TIMEOUT}s (last state: ${state:-none})"
        sleep 0.05
    done
    echo "$PROG: $dir: systemd up as host pid $PID, state $state, in $(elapsed "$t0")s"
    if [ "$state" = degraded ]; then
        warn "system is degraded:"; in_sandbox "$PID" systemctl --no-legend --failed >&2
    fi
    return 0
}

do_exec() {
    local dir
    dir=$(absdir "${1:-}") || exit 1; shift
    [ $# -gt 0 ] || usage
    require_alive "$dir"
    in_sandbox "$PID" "$@"
}

do_install() {
    local dir f
    dir=$(absdir "${1:-}") || exit 1; shift
    [ $# -gt 0 ] || usage
    require_alive "$dir"
    for f in "$@"; do
        [ -e "$f" ] || die "no such file: $f"
        # --remove-destination: replace a mask symlink instead of writing
        # through it into /dev/null.
        cp -R --remove-destination -- "$f" "$dir/etc/systemd/system/" || die "cannot copy $f"
    done
    in_sandbox "$PID" systemctl daemon-reload
}

do_status() {
    local dir
    [ -n "${1:-}" ] || usage
    [ -d "$1" ] || { echo "stopped"; return 3; }
    dir=$(absdir "$1") || exit 1
    if is_alive "$dir"; then
        echo "running $PID $(in_sandbox "$PID" systemctl is-system-running 2>/dev/null)"
    else
        echo "stopped"; return 3
    fi
}

do_stop() {
    local dir t0 deadline lpid left p
    [ -n "${1:-}" ] || usage
    [ -d "$1" ] || { echo "$PROG: $1: nothing to stop"; return 0; }   # idempotent
    dir=$(absdir "$1") || exit 1
    t0=$(now)
    if is_alive "$dir"; then
        local pid=$PID ns=$PIDNS
        kill -s RTMIN+4 "$pid"          # systemd: SIGRTMIN+4 = poweroff.target
        deadline=$(( $(ms) + STOP_TIMEOUT * 1000 ))
        while is_alive "$dir" && [ "$(ms)" -lt "$deadline" ]; do sleep 0.05; done
        if is_alive "$dir"; then
            warn "no clean poweroff within ${STOP_TIMEOUT}s, killing the namespace"
            kill -s KILL "$pid"         # PID 1 of a pid ns dies -> kernel kills all
            deadline=$(( $(ms) + 10000 ))
            while is_alive "$dir" && [ "$(ms)" -lt "$deadline" ]; do sleep 0.05; done
        fi
        # Anything still in the namespace (should be impossible after PID 1
        # died, but check - PIDs verified by namespace, not by name).
        for p in $(ns_pids "$ns"); do
            warn "killing leftover pid $p"; kill -s KILL "$p" 2>/dev/null
        done
    fi
    # The launcher (script, unshare, sed) ends by itself once PID 1 is gone.
    if [ -s "$dir/launcher.pid" ]; then
        lpid=$(cat "$dir/launcher.pid")
        deadline=$(( $(ms) + 5000 ))
        while launcher_alive "$dir" && [ "$(ms)" -lt "$deadline" ]; do sleep 0.05; done
        if launcher_alive "$dir"; then
            warn "launcher $lpid did not exit, killing it and its children"
            for p in $(cat /proc/"$lpid"/task/*/children 2>/dev/null); do kill -s TERM "$p" 2>/dev/null; done
            kill -s TERM "$lpid" 2>/dev/null
        fi
        rm -f "$dir/launcher.pid"
    fi
    cleanup_cgroups "$dir"; left=$?
    rm -f "$dir/pid" "$dir/pidns"
    echo "$PROG: $dir: stopped in $(elapsed "$t0")s"
    return $left
}

# ---------------------------------------------------------------------------
cmd=${1:-}; [ $# -gt 0 ] && shift
case "$cmd" in
    start)    do_start "$@" ;;
    stop)     do_stop "$@" ;;
    exec)     do_exec "$@" ;;
    install)  do_install "$@" ;;
    status)   do_status "$@" ;;
    __init)   do_init "$@" ;;
    __launch) do_launch "$@" ;;
    *)        usage ;;
esac
