#!/bin/sh
# crash, L1 half: firmware-assisted dump end to end (see boot-our-vmm.sh --crash for the kinds).
# The kdump kinds are the same guest and crash as sysrq / hardlockup, captured by kdump instead.
# The capture kernel saves /proc/vmcore raw onto the VMM's virtio-blk disk, which is L1's
# output disk ($NESTED_OUT_DEV, the host's export.img): /out stays empty.
# shellcheck disable=SC2016 # the command lines are expanded in the guest
# shellcheck source=../../lib/l1-vmm.sh # beside run.sh in the payload
. ./l1-vmm.sh
kind="$(cat "$P"/vmm-crash 2>/dev/null || echo sysrq)"
capture=fadump
case "$kind" in
    kdump) capture=kdump how=sysrq ;;
    kdump-hardlockup) capture=kdump how=hardlockup ;;
    # Every vCPU spins with interrupts off (no sysrq can run) and L1 sends the NMI (SIGUSR1):
    # fadump captures (nmi-hung), or with no dump registered the guest panics and the VMM
    # writes a host-side core (host-dump).
    nmi-hung) how=spin-all ;;
    host-dump) capture=host how=spin-all ;;
    power-button) capture=none how=power-button ;;
    hotplug-*) how=sysrq ;;
    # The disk fails while the capture kernel saves the vmcore (see "Disk faults" below).
    disk-enospc|disk-eio) how=sysrq ;;
    *) how="$kind" ;;
esac
fault=""
case "$kind" in disk-*) fault="${kind#disk-}" ;; esac
# Disk faults around the save (disk-enospc, disk-eio): the VMM's --disk is not L1's export
# disk itself but a disk that fails during the capture kernel's first save and is healed
# before its second.
#   enospc: a sparse 2 GiB file on a tmpfs of FAULT_SMALL (256M; the vmcore is about 1.2 GiB):
#           the VMM's writes fail with ENOSPC once it is full; healed by remounting the tmpfs
#           with FAULT_BIG (1536M); the file's vmcore is copied onto the export disk at the end.
#   eio:    a device-mapper device (dmsetup from bookworm, setup-dmsetup.sh; dm_mod staged
#           from the L1 kernel package) linear over the export disk: its table is switched
#           to `error` once the save has written FAULT_ARM_MB (64) MiB, and back to `linear`
#           after the attempt; the vmcore lands on the export disk directly.
FAULT_SMALL="${FAULT_SMALL:-256M}" FAULT_BIG="${FAULT_BIG:-1536M}" FAULT_ARM_MB="${FAULT_ARM_MB:-64}"
dm() {
    DM_DISABLE_UDEV=1 "$P"/dmsetup/lib64/ld64.so.2 \
        --library-path "$P/dmsetup/lib/powerpc64le-linux-gnu:$P/dmsetup/usr/lib/powerpc64le-linux-gnu" \
        "$P"/dmsetup/sbin/dmsetup --noudevsync "$@"
}
# dm_switch TABLE: the fault device's table, replaced atomically (suspend, load, resume).
dm_switch() {
    dm suspend vmcore-fault && dm load vmcore-fault --table "$1" && dm resume vmcore-fault
}
fault_setup() {
    case "$fault" in
        enospc)
            mkdir -p /mnt/fault
            mount -t tmpfs -o size="$FAULT_SMALL" tmpfs /mnt/fault
            truncate -s 2G /mnt/fault/disk.img
            echo "NESTED-FAULT-SETUP enospc tmpfs=$FAULT_SMALL file=/mnt/fault/disk.img bytes=$(stat -c %s /mnt/fault/disk.img) free_kb=$(df -k /mnt/fault | awk 'NR == 2 { print $4 }')"
            ;;
        eio)
            while read -r m; do insmod "$P/modules/$m.ko" || echo "NESTED-FAULT insmod $m failed"; done < "$P"/modules/order
            fault_sectors="$(blockdev --getsz /dev/vda)"
            dm create vmcore-fault --table "0 $fault_sectors linear /dev/vda 0"
            echo "NESTED-FAULT-SETUP eio dmsetup=$(dm --version | sed -n 's/^Library version: *\([0-9.]*\).*/\1/p') table=\"$(dm table vmcore-fault)\" node=$([ -b /dev/mapper/vmcore-fault ] && echo block || echo missing)"
            ;;
    esac
}
# fault_clear: the disk works again.
fault_clear() {
    case "$fault" in
        enospc)
            mount -o remount,size="$FAULT_BIG" /mnt/fault
            echo "NESTED-FAULT-CLEARED enospc free_kb=$(df -k /mnt/fault | awk 'NR == 2 { print $4 }')"
            ;;
        eio)
            dm_switch "0 $fault_sectors linear /dev/vda 0"
            echo "NESTED-FAULT-CLEARED eio table=\"$(dm table vmcore-fault)\""
            ;;
    esac
}
# save_attempt N: one save of /proc/vmcore in the capture kernel, with dd's status and the
# kernel's I/O error lines so far; GUEST-VMCORE-SAVED only when it worked.
save_attempt() {
    echo 'sz=$(stat -c %s /proc/vmcore); t0=$(cut -d" " -f1 /proc/uptime); dd if=/proc/vmcore of=/dev/vda bs=1M conv=fsync 2>/tmp/dd.err; rc=$?; t1=$(cut -d" " -f1 /proc/uptime); tail -n 2 /tmp/dd.err | sed "s/^/GUEST-DD /"; echo GUEST-SAVE-ATTEMPT n='"$1"' rc=$rc bytes=$sz t0=$t0 t1=$t1 ioerr_lines=$(dmesg | grep -c "I/O error"); [ $rc = 0 ] && echo GUEST-VMCORE-SAVED bytes=$sz t0=$t0 t1=$t1'
}
# Memory DLPAR kinds (--memory size=1536M,hotplug_size=512M: window LMBs 6 and 7 at
# 0x60000000): the guest adds both itself (/sys/kernel/dlpar), the remove kinds give LMB 7
# back, the rereg kinds re-register fadump after each change as the distributions' udev rule
# does (kdumpctl reload, only without hotplug_ready = 1).
hp_rereg='if [ "$(cat /sys/kernel/fadump/hotplug_ready 2>/dev/null)" != 1 ]; then echo 1 > /sys/kernel/fadump/registered; echo GUEST-HP-REREG rc=$? registered=$(cat /sys/kernel/fadump/registered); fi'
# hp_api LABEL METHOD PATH [BODY]: one request to the VMM's API socket, its status and body
# on one line.
hp_api() {
    label="$1"; shift
    out="$("$P"/api-request /tmp/vmm-api.sock "$@" 2>&1)"
    echo "NESTED-HP-API $label status=$(echo "$out" | sed -n '1s/^HTTP\/1\.1 \([0-9]*\).*/\1/p') body=$(echo "$out" | tail -n 1)"
}
hp_state='echo GUEST-HP-STATE $1 m6=$(cat /sys/devices/system/memory/memory6/state 2>/dev/null || echo absent) m7=$(cat /sys/devices/system/memory/memory7/state 2>/dev/null || echo absent) ram=$(grep "System RAM" /proc/iomem | tr -d " " | tr "\\n" ,)'
# The operator API and the event monitor (our VMM, with ppc-remote in the payload): vm.fadump
# is asked before the crash and in the capture kernel, and the events are shown at the end.
# Every ppc-remote call is kept with its output and printed as NESTED-API lines (a CLI
# transcript) once the VMM has exited: printed at once, they cut into the guest's lines that
# `tail -f` was relaying (seen: a GUEST-FADUMP-REGISTERED line split by one).
api=""
if [ -x "$P"/ppc-remote ] && [ ! -x "$P"/qemu-sid/usr/bin/qemu-system-ppc64 ]; then
    api=/tmp/vmm-api.sock
    args="$args --api-socket path=$api --event-monitor path=/tmp/vmm-events.jsonl"
fi
# remote LABEL SUBCOMMAND...: one ppc-remote call, transcribed; for fadump and info, also
# NESTED-API-<SUBCOMMAND> LABEL state=... (the top-level "state" of the answer).
remote() {
    [ -n "$api" ] || return 0
    label="$1"; shift
    {
        echo "NESTED-API \$ ppc-remote --api-socket $api $*"
        "$P"/ppc-remote --api-socket "$api" --timeout 60 "$@" > /tmp/remote-out 2>&1
        rc=$?
        sed 's/^/NESTED-API /' /tmp/remote-out
        echo "NESTED-API (exit status $rc)"
        case "$1" in
            fadump|info)
                st="$(sed -n 's/^  "state": "\([a-z-]*\)".*/\1/p' /tmp/remote-out | head -n1)"
                echo "NESTED-API-$(echo "$1" | tr a-z A-Z) $label state=$st" ;;
            # The disk's count of requests its backing file failed (completed with IOERR).
            counters)
                echo "NESTED-API-DISK-ERRORS $label host_io_errors=$(sed -n 's/^ *"host_io_errors": \([0-9]*\).*/\1/p' /tmp/remote-out | head -n1)" ;;
        esac
    } >> /tmp/api-transcript
}
# show_api: the transcript and the event file, once the VMM has exited.
show_api() {
    [ -n "$api" ] || return 0
    cat /tmp/api-transcript 2>/dev/null
    [ -f /tmp/vmm-events.jsonl ] && sed 's/^/NESTED-EVENT /' /tmp/vmm-events.jsonl
    return 0
}
fault_setup
vmm_start
if ready 1; then
    case "$kind" in
        hotplug-*)
            guest_step 60 'echo GUEST-HP-BOOT drconf=$([ -d /proc/device-tree/ibm,dynamic-reconfiguration-memory ] && echo yes || echo no) block=$(cat /sys/devices/system/memory/block_size_bytes) hotplug_ready=$(cat /sys/kernel/fadump/hotplug_ready 2>/dev/null || echo absent) registered=$(cat /sys/kernel/fadump/registered 2>/dev/null)'
            if [ "$kind" = hotplug-host-add ]; then
                # The host adds 512 MiB with vm.resize (hot-plug events, check-exception);
                # past the window first (400, nothing changes).
                hp_api past PUT /api/v1/vm.resize '{"desired_ram":2415919104}'
                guest_step 60 'set -- past; '"$hp_state"
                hp_api add PUT /api/v1/vm.resize '{"desired_ram":2147483648}'
                guest_step 300 'i=0; while [ "$(cat /sys/devices/system/memory/memory7/state 2>/dev/null)" != online ] && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done; echo GUEST-HP-ADD rc=0 waited=$i; set -- added; '"$hp_state"
            else
                # Adding past the window (2 LMBs): refused by the guest, nothing changes.
                guest_step 120 'echo "memory add count 3" > /sys/kernel/dlpar; echo GUEST-HP-ADD-PAST rc=$?; set -- past; '"$hp_state"
                guest_step 300 'echo "memory add count 2" > /sys/kernel/dlpar; echo GUEST-HP-ADD rc=$?; set -- added; '"$hp_state"
            fi
            case "$kind" in *-rereg|*-stale) guest_step 120 "$hp_rereg" ;; esac
            case "$kind" in
                hotplug-remove*)
                    guest_step 300 'echo "memory remove index 0x80000007" > /sys/kernel/dlpar; echo GUEST-HP-REMOVE rc=$?; set -- removed; '"$hp_state"
                    case "$kind" in *-rereg) guest_step 120 "$hp_rereg" ;; esac
                    ;;
            esac
            ;;
    esac
    # Pattern pages with their physical addresses, recorded before the crash.
    guest_step 120 'echo GUEST-FADUMP-REGISTERED=$(cat /sys/kernel/fadump/registered 2>/dev/null || echo absent) GUEST-KEXEC-CRASH-LOADED=$(cat /sys/kernel/kexec_crash_loaded 2>/dev/null || echo absent); fadump-pattern 4 > /tmp/pat 2>&1 & i=0; while ! grep -q READY /tmp/pat && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; cat /tmp/pat'
    case "$kind" in
        hotplug-*)
            # More pattern pages (they land in the hot-added, movable LMBs first), and their
            # lines written to the last MiB of the disk too: the host reads them from there
            # rather than from a console that may drop lines.
            guest_step 120 'fadump-pattern 32 > /tmp/pat2 2>&1 & i=0; while ! grep -q READY /tmp/pat2 && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; cat /tmp/pat /tmp/pat2 > /tmp/patall; s=$(cat /sys/block/vda/size); dd if=/tmp/patall of=/dev/vda bs=512 seek=$((s - 2048)) conv=fsync 2>/dev/null; echo GUEST-PATTERN-SAVED lines=$(grep -c FADUMP-PATTERN /tmp/patall) bytes=$(wc -c < /tmp/patall) sector=$((s - 2048))'
            ;;
    esac
    remote before ping
    remote before info
    remote before fadump
    n=$(count GUEST-READY)
    case "$how" in
        bug) crash='echo BUG > /sys/kernel/debug/provoke-crash/DIRECT' ;;
        panic) crash='echo PANIC > /sys/kernel/debug/provoke-crash/DIRECT' ;;
        spin-all) crash='echo HARDLOCKUP > /sys/kernel/debug/provoke-crash/DIRECT' ;;
        *) crash='echo c > /proc/sysrq-trigger' ;;
    esac
    other=""
    if [ "$how" = spin-all ]; then
        # cpu1.. spin first (each pinned, interrupts off), then cpu0 itself.
        c=1
        while [ "$c" -lt "${cpus:-1}" ]; do
            other="${other}taskset -c $c sh -c \"echo HARDLOCKUP > /sys/kernel/debug/provoke-crash/DIRECT\" & "
            c=$((c + 1))
        done
        [ -n "$other" ] && other="${other}sleep 2; "
    elif [ "$how" = power-button ]; then
        :
    elif [ "${cpus:-1}" -gt 1 ]; then
        if [ "$how" = hardlockup ]; then
            # The other vCPU spins in the kernel with interrupts off (LKDTM HARDLOCKUP).
            other='taskset -c 1 sh -c "echo HARDLOCKUP > /sys/kernel/debug/provoke-crash/DIRECT" & sleep 2; '
        else
            # The other vCPU is busy in userspace. The crash follows one second later, in the
            # same command: a long busy L2 vCPU trips L0's TCG nested-HV (observed: cpu1 starved
            # ~16 s, then ran userspace with broken translation and oopsed in the SLB-miss
            # handler of a radix kernel), so the window is kept short.
            other='taskset -c 1 sh -c "while :; do :; done" & sleep 1; '
        fi
    fi
    if [ "$(count GUEST-INIT-REACHED)" != 1 ]; then
        # The guest rebooted by itself before the crash we meant to cause: say so plainly (the
        # checks then fail on the crash path instead of analysing the wrong dump).
        echo "NESTED-UNEXPECTED-REBOOT before the $kind crash; guest log follows"
        grep -E "BUG|Oops|NIP|LOCKUP|os-term" /tmp/vmm-out | head -20 | sed 's/^/NESTED-UNEXPECTED /'
    fi
    if [ "$how" = power-button ]; then
        # The guest's own shutdown path: Linux's EPOW handler runs orderly_poweroff(), i.e.
        # /sbin/poweroff, which says so on the console before powering off.
        guest_step 60 'mkdir -p /sbin; printf "#!/bin/sh\necho GUEST-ORDERLY-POWEROFF pid=\$\$ > /dev/console\nsync\nexec /bin/poweroff -f\n" > /sbin/poweroff; chmod 755 /sbin/poweroff; echo GUEST-POWEROFF-HOOK $(ls -l /sbin/poweroff)'
        echo "NESTED-POWER-BUTTON uptime=$(up)"
        if [ -n "$api" ]; then remote button power-button; else kill -USR2 "$(pidof ppc-vmm)"; fi
        vmm_wait
        rc=$?
        show_api
        exit $rc
    fi
    # The whole sequence runs pinned to cpu0, so nothing it forks (sleep) can be queued on cpu1
    # just before cpu1 locks up with interrupts off (seen: the crash never came).
    send "taskset -c 0 sh -c '$other echo GUEST-CRASHING kind=$kind; $crash'"
    if [ "$how" = spin-all ]; then
        # Every vCPU now spins with interrupts off; only an NMI reaches them.
        # Kept short: an L2 vCPU spinning with interrupts off starves L1 under L0's TCG
        # nested-HV (see the README's kdump-hardlockup notes).
        wait_for "Performing direct entry HARDLOCKUP" "${cpus:-1}" 60
        sleep 1
        echo "NESTED-NMI-SENT uptime=$(up) hardlockups=$(count 'Performing direct entry HARDLOCKUP')"
        # Through the API when our VMM serves one (vm.nmi), else the signal (the same NMI).
        if [ -n "$api" ]; then remote nmi nmi; else kill -USR1 "$(pidof ppc-vmm)"; fi
    fi
    # Crash -> capture kernel's /init, timed here in L1 (10 ms clock, 0.1 s polling): the same
    # measure for our VMM and for QEMU (--vmm qemu-sid). The timer writes a file, and the line
    # is printed once the capture kernel waits at its prompt: echoed at once, it landed in the
    # middle of the GUEST-INIT-REACHED line `tail -f` was relaying (seen: the check counting
    # the guest's boots then missed the capture kernel).
    if [ "$kind" != unregistered ] && [ "$capture" != host ]; then
        (
            # The guest kernel's own first line about the crash.
            until grep -qE "sysrq: Trigger a crash|Performing direct entry (BUG|PANIC)|SIGUSR1: NMI requested|api: vm.nmi requested" /tmp/vmm-out; do sleep 0.1; done
            a=$(up)
            # Host page faults of our VMM (all threads: KVM's faults for the guest count on
            # the vCPU threads) from the crash to the capture /init: fields 10 and 12.
            fa="$(cut -d' ' -f10,12 /proc/"$(pidof ppc-vmm)"/stat 2>/dev/null)"
            while [ "$(count GUEST-INIT-REACHED)" -lt 2 ] && [ ! -f /tmp/vmm-rc ]; do sleep 0.1; done
            b=$(up)
            fb="$(cut -d' ' -f10,12 /proc/"$(pidof ppc-vmm)"/stat 2>/dev/null)"
            [ -n "$fa" ] && [ -n "$fb" ] && echo "$fa $fb" | awk '{ printf "minflt=%d majflt=%d\n", $3 - $1, $4 - $2 }' > /tmp/crash-faults
            awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f\n", b - a }' > /tmp/crash-to-capture.tmp
            mv /tmp/crash-to-capture.tmp /tmp/crash-to-capture
        ) &
    fi
    if [ "$capture" = host ]; then
        # The VMM wrote the core onto the export disk before rebooting the guest.
        if ready 2 "$n"; then
            guest_step 60 'echo GUEST-AFTER-REBOOT vmcore=$(ls /proc/vmcore 2>/dev/null || echo none)'
            send 'poweroff -f'
        fi
    elif [ "$kind" = unregistered ]; then
        # No dump registered: the VMM reboots the guest plainly; power off there.
        if ready 2 "$n"; then
            guest_step 60 'echo GUEST-AFTER-REBOOT vmcore=$(ls /proc/vmcore 2>/dev/null || echo none)'
            send 'poweroff -f'
        fi
    elif ready 2 "$n"; then
        for _ in $(seq 50); do [ -f /tmp/crash-to-capture ] && break; sleep 0.1; done
        echo "NESTED-PHASE crash-to-capture-init seconds=$(cat /tmp/crash-to-capture 2>/dev/null)"
        [ -f /tmp/crash-faults ] && echo "NESTED-VMM-FAULTS crash-to-capture-init $(cat /tmp/crash-faults)"
        remote capture fadump
        remote capture info
        remote capture counters
        if [ "$kind" = second ]; then
            # A second crash in the capture kernel, before release: a dump is active, so no
            # second dump, a plain reboot, and the first dump is still there.
            n=$(count GUEST-READY)
            send 'echo GUEST-SECOND-CRASH; echo c > /proc/sysrq-trigger'
            ready 3 "$n"
        fi
        case "$kind" in
            hotplug-*)
                # What the capture kernel holds, and an add while the dump is active.
                guest_step 120 'set -- capture; '"$hp_state"
                guest_step 120 'echo "memory add count 1" > /sys/kernel/dlpar; echo GUEST-HP-CAPTURE-ADD rc=$?; set -- capture-add; '"$hp_state"
                # A resize while the dump is active: refused (409), nothing changes.
                [ "$kind" = hotplug-host-add ] && hp_api capture PUT /api/v1/vm.resize '{"desired_ram":1879048192}'
                ;;
        esac
        if [ -s "$P"/vmm-guest-cmd ]; then
            # --guest-cmd runs in the capture kernel here.
            guest_step 300 "$(cat "$P"/vmm-guest-cmd)" || echo "NESTED-GUEST-CMD-TIMEOUT"
        fi
        # Save the dump raw onto the VMM's virtio-blk disk (L1's export disk underneath).
        # --save sparse: every byte read, only non-zero blocks written (vmcore-save).
        if [ "$(cat "$P"/vmm-save 2>/dev/null || echo dd)" = sparse ]; then
            save='vmcore-save /proc/vmcore /dev/vda 2>&1 | sed "s/^/GUEST-SAVE /"'
        else
            save='dd if=/proc/vmcore of=/dev/vda bs=1M conv=fsync 2>&1 | tail -n1 | sed "s/^/GUEST-DD /"'
        fi
        if [ -n "$fault" ]; then
            # The first attempt meets the fault (eio: armed once the save has written
            # FAULT_ARM_MB MiB through the device-mapper device).
            n=$(count GUEST-READY)
            send "$(save_attempt 1)"
            if [ "$fault" = eio ]; then
                t=0
                until [ "$(awk '{ print $7 }' /sys/block/dm-0/stat)" -ge $((FAULT_ARM_MB * 2048)) ] || [ $t -ge 6000 ]; do sleep 0.1; t=$((t + 1)); done
                written=$(awk '{ print $7 }' /sys/block/dm-0/stat)
                dm_switch "0 $fault_sectors error"
                echo "NESTED-FAULT-ARMED eio written_sectors=$written uptime=$(up)"
                fault_armed_table="$(dm table vmcore-fault)"
            fi
            wait_for GUEST-READY $((n + 1)) 3600
            [ "$fault" = eio ] && echo "NESTED-FAULT-TABLE during=\"$fault_armed_table\""
            # The VMM is still there and answers; the dump is still in the guest's memory.
            vpid="$(pidof ppc-vmm)"
            echo "NESTED-FAULT-VMM-ALIVE pid=${vpid:-none} state=$(cut -d' ' -f3 /proc/"$vpid"/stat 2>/dev/null) threads=$(ls /proc/"$vpid"/task 2>/dev/null | wc -l) exited=$([ -f /tmp/vmm-rc ] && cat /tmp/vmm-rc || echo no)"
            remote fault fadump
            remote fault counters
            guest_step 60 'echo GUEST-VMCORE-AFTER-FAULT bytes=$(stat -c %s /proc/vmcore 2>/dev/null || echo gone) registered=$(cat /sys/kernel/fadump/registered)'
            fault_clear
            guest_step 3600 "$(save_attempt 2)"
        else
            guest_step 3600 'sz=$(stat -c %s /proc/vmcore); t0=$(cut -d" " -f1 /proc/uptime); '"$save"'; t1=$(cut -d" " -f1 /proc/uptime); echo GUEST-VMCORE-SAVED bytes=$sz t0=$t0 t1=$t1'
        fi
        if [ "$capture" = kdump ]; then
            # kdump's way back: the kdump kernel reboots (our VMM resets the machine and boots
            # the production kernel), whose /init loads the crash kernel again.
            n=$(count GUEST-READY)
            send 'echo GUEST-REBOOTING; reboot -f'
            if ready 3 "$n"; then
                guest_step 60 'echo GUEST-PRODUCTION nproc=$(nproc) uptime=$(cut -d" " -f1 /proc/uptime) kexec_crash_loaded=$(cat /sys/kernel/kexec_crash_loaded) vmcore=$(ls /proc/vmcore 2>/dev/null || echo none)'
            fi
            send 'poweroff -f'
        else
            # Release the preserved memory, register again, carry on without a reboot.
            guest_step 300 'echo 1 > /sys/kernel/fadump/release_mem && echo GUEST-RELEASED; echo 1 > /sys/kernel/fadump/registered; echo GUEST-REREGISTERED registered=$(cat /sys/kernel/fadump/registered) vmcore=$(ls /proc/vmcore 2>/dev/null || echo gone); grep MemTotal /proc/meminfo | sed "s/^/GUEST-MEM /"'
            guest_step 60 'echo GUEST-PRODUCTION nproc=$(nproc) uptime=$(cut -d" " -f1 /proc/uptime)'
            send 'poweroff -f'
        fi
    fi
fi
vmm_wait
rc=$?
show_api
if [ "$fault" = enospc ]; then
    # The saved vmcore, from the tmpfs file onto the export disk (the host cuts it out there).
    sz="$(sed -n 's/.*GUEST-VMCORE-SAVED bytes=\([0-9]*\) .*/\1/p' /tmp/vmm-out | head -n1)"
    if [ -n "$sz" ]; then
        dd if=/mnt/fault/disk.img of=/dev/vda bs=1M count=$(((sz + 1048575) / 1048576)) conv=fsync 2>/dev/null
        echo "NESTED-FAULT-EXPORTED bytes=$sz status=$?"
    fi
fi
exit $rc
