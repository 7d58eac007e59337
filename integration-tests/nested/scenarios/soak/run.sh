#!/bin/sh
# soak, L1 half: one VMM process through CYCLES fadump cycles and then REBOOTS guest reboots
# (soak-settings). A cycle: the guest (production, or the previous cycle's capture kernel after
# it re-registered) records pattern pages, crashes (sysrq c, cpu1 busy), the capture kernel
# saves /proc/vmcore into the cycle's own region of the disk (vmcore-save OFFSET), releases the
# preserved memory, registers again and is production for the next cycle. After each cycle and
# each reboot L1 reads our VMM's /proc/PID/status (VmRSS, Threads), /proc/PID/smaps (how much
# of the RSS is guest RAM) and /proc/PID/fd, and prints
#   NESTED-SOAK <crash|reboot|start> n=N rss_kb=.. guest_rss_kb=.. host_rss_kb=.. guest_maps=..
#               guest_map_kb=.. fds=.. threads=.. uptime=..
# from the main flow while the guest waits at its prompt (a line printed while the guest is
# printing can land inside one of its lines).
# shellcheck disable=SC2016 # the command lines are expanded in the guest
# shellcheck source=../../lib/l1-vmm.sh # beside run.sh in the payload
. ./l1-vmm.sh
setting() { tr ' ' '\n' < "$P"/soak-settings | sed -n "s/^$1=//p"; }
cycles="$(setting cycles)"
reboots="$(setting reboots)"
stride=$(( $(setting stride_mib) * 1024 * 1024 ))

# measure KIND N: our VMM's RSS (all of it; the part in mappings of 256 MiB or more, which is
# guest RAM, the VMM having no other mapping that large; the rest), open fds and threads.
measure() {
    pid="$(pidof ppc-vmm)" || { echo "NESTED-SOAK-NOVMM $1 n=$2"; return 1; }
    rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/"$pid"/status)
    thr=$(sed -n 's/^Threads:[[:space:]]*\([0-9]*\)/\1/p' /proc/"$pid"/status)
    fds=$(ls /proc/"$pid"/fd | wc -l)
    split=$(awk '/^Size:/ { big = ($2 >= 262144); if (big) { n++; s += $2 } } /^Rss:/ { if (big) g += $2; else h += $2 } END { printf "guest_rss_kb=%d host_rss_kb=%d guest_maps=%d guest_map_kb=%d", g, h, n, s }' /proc/"$pid"/smaps)
    echo "NESTED-SOAK $1 n=$2 rss_kb=$rss $split fds=$fds threads=$thr uptime=$(up)"
    # VmRSS's parts (anonymous, file-backed: the binary's pages as code paths first run) and
    # the heap; not checked, for a reader who wants to know what moved.
    echo "NESTED-SOAK-RSS $1 n=$2 $(awk '/^(RssAnon|RssFile|RssShmem|VmData):/ { printf "%s%s=%s", (o++ ? " " : ""), $1, $2 }' /proc/"$pid"/status | tr -d :)"
}
# threads: the VMM's thread names (at the start and the end, to name any that came or went).
threads() {
    pid="$(pidof ppc-vmm)" || return 0
    echo "NESTED-SOAK-THREADS $1 $(cat /proc/"$pid"/task/*/comm | tr ' ' _ | sort | uniq -c | awk '{ printf "%s%s*%s", (NR > 1 ? "," : ""), $2, $1 }')"
    echo "NESTED-SOAK-FDS $1 $(ls -l /proc/"$pid"/fd | sed -n 's/.* -> //p' | sed 's/[0-9][0-9]*/N/g' | tr ' ' _ | sort | uniq -c | awk '{ printf "%s%s*%s", (NR > 1 ? "," : ""), $2, $1 }')"
}

# The page holding the crashed kernel's fadump crash-info header (Linux puts it right after
# the boot-memory copy: the REAL_MODE_REGION section with source 0, destination + length, read
# from the capture kernel's ibm,kernel-dump) and its /proc/kpageflags: RESERVED (bit 32) while
# the dump area is reserved. Linux 6.10+ releases the reservation from the page that holds the
# header (its end is not page aligned), so after release_mem the header page is free memory
# that re-registration writes the header into; these lines show what the page was at each step.
hdr_find='p=/proc/device-tree/rtas/ibm,kernel-dump; b() { od -An -t x1 -j "$1" -N "$2" "$p" | tr -d " \n"; }; if [ -e "$p" ]; then first=$((0x$(b 8 4))); n=$((0x$(b 4 2))); i=0; while [ $i -lt $n ]; do o=$((first + i * 40)); if [ $((0x$(b $((o + 4)) 2))) = 17 ] && [ $((0x$(b $((o + 8)) 8))) = 0 ]; then echo $((0x$(b $((o + 32)) 8) + 0x$(b $((o + 16)) 8))) > /tmp/soak-hdr; fi; i=$((i + 1)); done; fi'
hdr_show='h=$(cat /tmp/soak-hdr 2>/dev/null); if [ -n "$h" ]; then f=$(od -An -t x8 -j $((h / 4096 * 8)) -N 8 /proc/kpageflags | tr -d " "); echo GUEST-SOAK-HDRPAGE cycle=$1 when=$2 addr=$(printf 0x%x $h) flags=0x$f reserved=$(((0x$f >> 32) & 1)); fi'

vmm_start
boot=1
if ready 1; then
    measure start 0
    threads start
    c=1
    while [ "$c" -le "$cycles" ]; do
        guest_step 120 'echo GUEST-SOAK-CYCLE n='"$c"' registered=$(cat /sys/kernel/fadump/registered 2>/dev/null || echo absent); fadump-pattern 4 > /tmp/pat 2>&1 & i=0; while ! grep -q READY /tmp/pat && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; cat /tmp/pat; set -- '"$((c - 1))"' before-next-crash; '"$hdr_show"
        n=$(count GUEST-READY)
        # Crash -> capture /init on L1's clock, as the crash scenario measures it (this
        # cycle's crash line, then the next boot's /init).
        (
            t=0
            until [ "$(count 'sysrq: Trigger a crash')" -ge "$c" ]; do
                [ -f /tmp/vmm-rc ] || [ $t -ge 1200 ] && exit 0
                sleep 0.1; t=$((t + 1))
            done
            a=$(up)
            while [ "$(count GUEST-INIT-REACHED)" -lt $((boot + 1)) ] && [ ! -f /tmp/vmm-rc ]; do sleep 0.1; done
            awk -v a="$a" -v b="$(up)" 'BEGIN { printf "%.2f\n", b - a }' > /tmp/ctc.tmp
            mv /tmp/ctc.tmp /tmp/ctc-"$c"
        ) &
        # As the matrix's sysrq-2cpu: cpu1 busy in userspace, the crash one second later, the
        # whole sequence pinned to cpu0.
        send "taskset -c 0 sh -c 'taskset -c 1 sh -c \"while :; do :; done\" & sleep 1; echo GUEST-CRASHING kind=soak cycle=$c; echo c > /proc/sysrq-trigger'"
        boot=$((boot + 1))
        ready "$boot" "$n" || { echo "NESTED-SOAK-ABORT cycle=$c: no capture kernel"; break; }
        for _ in $(seq 50); do [ -f /tmp/ctc-"$c" ] && break; sleep 0.1; done
        echo "NESTED-SOAK-CTC cycle=$c seconds=$(cat /tmp/ctc-"$c" 2>/dev/null)"
        off=$(( (c - 1) * stride ))
        guest_step 60 "$hdr_find; set -- $c capture; $hdr_show"
        guest_step 3600 'sz=$(stat -c %s /proc/vmcore); if [ "$sz" -gt '"$stride"' ]; then echo GUEST-SOAK-TOO-BIG cycle='"$c"' bytes=$sz; else t0=$(cut -d" " -f1 /proc/uptime); vmcore-save /proc/vmcore /dev/vda '"$off"' 2>&1 | grep -v VMCORE-SAVE-LOAD | sed "s/^/GUEST-SAVE cycle='"$c"' /"; t1=$(cut -d" " -f1 /proc/uptime); echo GUEST-VMCORE-SAVED cycle='"$c"' bytes=$sz offset='"$off"' t0=$t0 t1=$t1; fi' ||
            { echo "NESTED-SOAK-ABORT cycle=$c: save did not finish"; break; }
        if [ "$(count "GUEST-VMCORE-SAVED cycle=$c bytes=[0-9]")" = 0 ]; then
            echo "NESTED-SOAK-ABORT cycle=$c: no vmcore saved"
            break
        fi
        guest_step 300 'echo 1 > /sys/kernel/fadump/release_mem; echo GUEST-RELEASED cycle='"$c"' rc=$?; set -- '"$c"' released; '"$hdr_show"'; echo 1 > /sys/kernel/fadump/registered; echo GUEST-REREGISTERED cycle='"$c"' registered=$(cat /sys/kernel/fadump/registered) vmcore=$(ls /proc/vmcore 2>/dev/null || echo gone)' ||
            { echo "NESTED-SOAK-ABORT cycle=$c: release did not finish"; break; }
        guest_step 60 'echo GUEST-PRODUCTION cycle='"$c"' nproc=$(nproc) uptime=$(cut -d" " -f1 /proc/uptime) mem=$(sed -n "s/^MemTotal: *//p" /proc/meminfo | tr -d " ")' ||
            { echo "NESTED-SOAK-ABORT cycle=$c: no prompt"; break; }
        measure crash "$c"
        c=$((c + 1))
    done
    # Reboots (production kernel, fadump registered at each boot by fadump=on).
    r=1
    while [ "$c" -gt "$cycles" ] && [ "$r" -le "$reboots" ]; do
        n=$(count GUEST-READY)
        send "echo GUEST-SOAK-REBOOT n=$r; reboot -f"
        boot=$((boot + 1))
        ready "$boot" "$n" || { echo "NESTED-SOAK-ABORT reboot=$r: no prompt"; break; }
        measure reboot "$r"
        r=$((r + 1))
    done
    guest_step 60 'echo GUEST-SOAK-END registered=$(cat /sys/kernel/fadump/registered 2>/dev/null || echo absent) boots=done'
    threads end
    send 'poweroff -f'
    # A guest that cannot power off (seen: a capture kernel whose busybox was overwritten,
    # "Exec format error") is stopped here after a minute instead of vmm_wait's 15.
    t=0
    while [ ! -f /tmp/vmm-rc ] && [ $t -lt 60 ]; do sleep 1; t=$((t + 1)); done
    if [ ! -f /tmp/vmm-rc ]; then
        echo "NESTED-SOAK-ABORT the guest did not power off: SIGTERM to our VMM"
        kill -TERM "$(pidof ppc-vmm)"
    fi
fi
vmm_wait
