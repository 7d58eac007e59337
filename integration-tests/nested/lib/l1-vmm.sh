#!/bin/sh
# Sourced by every scenario's run.sh (scenarios/*/run.sh) in L1, in /payload, after lib/l1-init.sh
# has loaded kvm-hv: starts the L2 VMM (our ppc-vmm, or QEMU 11.1 when the payload holds
# qemu-sid/) on the guest with its console on a FIFO, and gives the scenario the verbs to drive
# the guest (guest.action=commands: one command line typed at a time) and to finish.
#
# Payload files (boot-our-vmm.sh puts them there): ppc-vmm, guest/vmlinux,
# guest/initrd.cpio.gz, vmm-args, vmm-cmdline, vmm-guest-cmd, vmm-crash, optionally qemu/ and
# peer-args (the QEMU 7.2 peer) and qemu-sid/.
# Lines for the host: `NESTED-PHASE <name>` for the points in time run_l1.py records
# (l2-vmm-start, guest-ready-N, l2-vmm-exit status=N, peer-start, peer-exit status=N, ...),
# `NESTED-<WORD> ...` for what L1 measured; the guest's own lines say `GUEST-...`.
P=/payload
up() { cut -d' ' -f1 /proc/uptime; }

args="$(cat "$P"/vmm-args)"
# The guest's vCPUs and memory, as the host gave them to our VMM (QEMU gets the same).
cpus="$(sed -n 's/.*--cpus \([0-9]*\).*/\1/p' "$P"/vmm-args)"
memory="$(sed -n 's/.*--memory \([0-9]*[KMG]*\).*/\1/p' "$P"/vmm-args)"
cmdline="$(cat "$P"/vmm-cmdline)"
export cpus memory

# vmm_start: start the VMM in the background; its output goes to /tmp/vmm-out (relayed to the
# console), its status to /tmp/vmm-rc, its console input comes from fd 3.
vmm_start() {
    mkfifo /tmp/vmm-in
    # Created here, before the VMM's subshell opens it: `tail -f` below started first on a
    # missing file once and relayed nothing (seen: a whole run's guest output lost).
    : > /tmp/vmm-out
    if [ -x "$P"/qemu-sid/usr/bin/qemu-system-ppc64 ]; then
        # The same guest and drive script under QEMU 11.1 (sid, has pseries fadump) as the
        # VMM: same kernel, initramfs, vCPUs, memory and command line; the vmcore disk is the
        # same export disk. No -no-reboot: QEMU resets the machine itself after a fadump crash.
        Q="$P"/qemu-sid
        set -- "$Q/lib64/ld64.so.2" --library-path "$Q/lib/powerpc64le-linux-gnu:$Q/usr/lib/powerpc64le-linux-gnu" \
            "$Q/usr/bin/qemu-system-ppc64" -L "$Q/usr/share/qemu" \
            -M pseries,accel=kvm,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off,cap-hpt-max-page-size=4k \
            -smp "$cpus" -m "$memory" -nodefaults -nographic -serial stdio \
            -kernel "$P"/guest/vmlinux -initrd "$P"/guest/initrd.cpio.gz -append "$cmdline"
        [ -b /dev/vda ] && set -- "$@" -drive file=/dev/vda,format=raw,if=none,id=d0,cache=none -device virtio-blk-pci,drive=d0
        # VMM_PREFAULT=on (our --memory prefault=on): QEMU's equivalent, so the two compare
        # like for like.
        case "$args" in *prefault=on*) set -- "$@" -mem-prealloc ;; esac
        (
            "$@" < /tmp/vmm-in > /tmp/vmm-out 2>&1
            echo $? > /tmp/vmm-rc
        ) &
        args="QEMU 11.1: $*"
    else
        (
            # shellcheck disable=SC2086 # vmm-args is a list of words
            "$P"/ppc-vmm $args --cmdline "$cmdline" < /tmp/vmm-in > /tmp/vmm-out 2>&1
            echo $? > /tmp/vmm-rc
        ) &
    fi
    exec 3> /tmp/vmm-in
    echo "NESTED-PHASE l2-vmm-start uptime=$(up) args: $args --cmdline '$cmdline'"
    tail -f /tmp/vmm-out &
    tailpid=$!
}

# count PATTERN: lines of guest/VMM output matching PATTERN so far
count() { grep -c "$1" /tmp/vmm-out 2>/dev/null || true; }
# wait_for PATTERN N SECONDS: until PATTERN appears N times (or the VMM exits / time runs out)
wait_for() {
    t=0
    while [ "$(count "$1")" -lt "$2" ]; do
        [ -f /tmp/vmm-rc ] && return 1
        [ "$t" -ge "$3" ] && return 1
        sleep 1; t=$((t + 1))
        # Every 20 s of waiting: what the VMM's threads are doing (state, wait channel, CPU).
        if [ $((t % ${L1_DIAG_EVERY:-20})) = 0 ]; then
            pid="$(pidof ppc-vmm)" || continue
            for d in /proc/"$pid"/task/*; do
                echo "NESTED-VMM-THREAD t=$t $(cat "$d"/comm) state=$(cut -d' ' -f3 "$d"/stat) wchan=$(cat "$d"/wchan 2>/dev/null) utime/stime=$(cut -d' ' -f14,15 "$d"/stat)"
            done
        fi
    done
    return 0
}
# send CMD: type one command line into the guest's console (guest.action=commands)
send() { echo "$1" >&3; }
# guest_step SECONDS COMMAND: run COMMAND in the guest's shell and wait until it asks for the
# next one (its GUEST-READY prompt count goes up by one).
guest_step() {
    n=$(count GUEST-READY)
    send "$2"
    wait_for GUEST-READY $((n + 1)) "$1"
}
# ready N: the guest's Nth boot reached its prompt (within 900 s); says so to the host
ready() {
    if wait_for GUEST-INIT-REACHED "$1" 900 && wait_for GUEST-READY "$((${2:-0} + 1))" 900; then
        echo "NESTED-PHASE guest-ready-$1 uptime=$(up)"
        return 0
    fi
    return 1
}

# vmm_wait: until the VMM exits (900 s at most); prints its status; returns 0 if it was 0
vmm_wait() {
    t=0
    while [ ! -f /tmp/vmm-rc ] && [ $t -lt 900 ]; do sleep 1; t=$((t + 1)); done
    sleep 1
    kill "$tailpid" 2>/dev/null
    vmm_rc="$(cat /tmp/vmm-rc 2>/dev/null || echo timeout)"
    echo "NESTED-PHASE l2-vmm-exit status=$vmm_rc uptime=$(up)"
    [ "$vmm_rc" = 0 ]
}

# peer ACTION [QEMU ARGS...]: the peer, QEMU 7.2 as the VMM on the same L1 KVM, same guest
# kernel and initramfs, same vCPUs and memory, guest.action=ACTION; only if the payload holds
# qemu/ (boot-our-vmm.sh without --no-peer).
peer() {
    [ -x "$P"/qemu/usr/bin/qemu-system-ppc64 ] || return 0
    Q="$P"/qemu
    peer_action="$1"; shift
    # shellcheck disable=SC2046 # peer-args is a list of words
    set -- "$Q/lib64/ld64.so.2" --library-path "$Q/lib/powerpc64le-linux-gnu:$Q/usr/lib/powerpc64le-linux-gnu" \
        "$Q/usr/bin/qemu-system-ppc64" -L "$Q/usr/share/qemu" \
        -M pseries,accel=kvm,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off,cap-hpt-max-page-size=4k \
        $(cat "$P"/peer-args) -nodefaults -nographic -serial stdio -no-reboot \
        -kernel "$P"/guest/vmlinux -initrd "$P"/guest/initrd.cpio.gz -append "console=hvc0 guest.action=$peer_action" "$@"
    echo "NESTED-PHASE peer-start uptime=$(up)"
    timeout -s KILL 900 "$@" < /dev/null 2>&1
    echo "NESTED-PHASE peer-exit status=$? uptime=$(up)"
}
