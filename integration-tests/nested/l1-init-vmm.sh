#!/bin/busybox sh
# /init of the L1 (nested KVM-HV host) used by boot-our-vmm.sh: load kvm-hv, run ppc-vmm on
# the L2 guest, drive the guest through its console (reboot once, then power off), report.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
up() { cut -d' ' -f1 /proc/uptime; }
echo "L1-INIT-REACHED uptime=$(up)"
insmod /modules/kvm.ko && insmod /modules/kvm-hv.ko || echo "L1-KVM-LOAD-FAILED"
# The export disk L0 attaches (the runner copies results out of it after L1 powers off).
if [ -f /modules/virtio_blk.ko ]; then
    insmod /modules/virtio_blk.ko || echo "L1-VIRTIO-BLK-LOAD-FAILED"
    for _ in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
    echo "L1-EXPORT-DISK $(cat /sys/block/vda/size 2>/dev/null || echo missing) sectors"
fi
ls -l /dev/kvm
echo "L1-KVM-LOADED uptime=$(up)"

args="$(cat /vmm-args)"
# The guest's vCPUs and memory, as the runner gave them to our VMM (QEMU gets the same).
cpus="$(sed -n 's/.*--cpus \([0-9]*\).*/\1/p' /vmm-args)"
memory="$(sed -n 's/.*--memory \([0-9]*[KMG]*\).*/\1/p' /vmm-args)"
mode="$(cat /vmm-mode 2>/dev/null)"
if [ "$mode" = disk ]; then
    # Backing files for the guest's disks: a zeroed writable one, and a read-only one with a
    # marker whose checksum must not change.
    dd if=/dev/zero of=/tmp/disk0.img bs=1M count=16 2>/dev/null
    dd if=/dev/zero of=/tmp/disk1.img bs=1M count=4 2>/dev/null
    # Third disk: scratch space for the direct-I/O throughput rounds (overwritten).
    dd if=/dev/zero of=/tmp/bench.img bs=1M count=64 2>/dev/null
    echo RO-DISK-MARKER | dd of=/tmp/disk1.img conv=notrunc 2>/dev/null
    echo "L1-DISKS-CREATED ro-sum-before=$(sha256sum < /tmp/disk1.img | cut -d' ' -f1) uptime=$(up)"
fi
cmdline="$(cat /vmm-cmdline)"
mkfifo /tmp/vmm-in
if [ -x /qemu-sid/usr/bin/qemu-system-ppc64 ]; then
    # The same guest and drive script under QEMU 11.1 (sid, has pseries fadump) as the VMM:
    # same kernel, initramfs, vCPUs, memory and command line; the vmcore disk is the same
    # export disk. No -no-reboot: QEMU resets the machine itself after a fadump crash.
    Q=/qemu-sid
    set -- "$Q/lib64/ld64.so.2" --library-path "$Q/lib/powerpc64le-linux-gnu:$Q/usr/lib/powerpc64le-linux-gnu" \
        "$Q/usr/bin/qemu-system-ppc64" -L "$Q/usr/share/qemu" \
        -M pseries,accel=kvm,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off,cap-hpt-max-page-size=4k \
        -smp "$cpus" -m "$memory" -nodefaults -nographic -serial stdio \
        -kernel /guest/vmlinux -initrd /guest/initrd.cpio.gz -append "$cmdline"
    [ -b /dev/vda ] && set -- "$@" -drive file=/dev/vda,format=raw,if=none,id=d0,cache=none -device virtio-blk-pci,drive=d0
    (
        "$@" < /tmp/vmm-in > /tmp/vmm-out 2>&1
        echo $? > /tmp/vmm-rc
    ) &
    args="QEMU 11.1: $*"
else
    (
        # shellcheck disable=SC2086
        /ppc-vmm $args --cmdline "$cmdline" < /tmp/vmm-in > /tmp/vmm-out 2>&1
        echo $? > /tmp/vmm-rc
    ) &
fi
exec 3> /tmp/vmm-in
echo "L1-VMM-START uptime=$(up) args: $args --cmdline '$cmdline'"
tail -f /tmp/vmm-out &
tailpid=$!

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
            for d in /proc/$pid/task/*; do
                echo "L1-VMM-THREAD t=$t $(cat $d/comm) state=$(cut -d' ' -f3 $d/stat) wchan=$(cat $d/wchan 2>/dev/null) utime/stime=$(cut -d' ' -f14,15 $d/stat)"
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
if [ "$mode" = drive ]; then
    if wait_for GUEST-READY 1 900; then
        echo "L1-GUEST-READY-1 uptime=$(up)"
        if [ -s /vmm-guest-cmd ]; then
            # An extra command from --guest-cmd, run first; done when the guest asks for the
            # next one.
            guest_step 900 "$(cat /vmm-guest-cmd); echo GUEST-CMD-DONE"
        fi
        # CPU hot-unplug/plug: RTAS stop-self, then query-cpu-stopped-state + start-cpu.
        n=$(count GUEST-READY)
        send 'echo 0 > /sys/devices/system/cpu/cpu1/online && echo GUEST-CPU1-OFFLINE nproc=$(nproc) && echo 1 > /sys/devices/system/cpu/cpu1/online && echo GUEST-CPU1-ONLINE nproc=$(nproc); echo GUEST-NPROC=$(nproc); reboot -f'
        # The rebooted guest announces itself again; only then power it off.
        if wait_for GUEST-INIT-REACHED 2 900 && wait_for GUEST-READY $((n + 1)) 900; then
            echo "L1-GUEST-READY-2 uptime=$(up)"
            send 'poweroff -f'
        fi
    fi
fi
if [ "$mode" = disk ]; then
    # virtio-blk: the guest finds /dev/vda, writes a known pattern, syncs and reads it back
    # past the page cache; the read-only /dev/vdb refuses a write; after a reboot through our
    # VMM the data reads back identical; after power-off the backing file holds it.
    if wait_for GUEST-READY 1 900; then
        echo "L1-GUEST-READY-1 uptime=$(up)"
        guest_step 300 'dmesg | grep -iE "pci|virtio|vd[a-z]|phb|rtas" | sed "s/^/GUEST-DMESG /"; ls -l /dev/vd* | sed "s/^/GUEST-DEV /"; (while :; do echo "GUEST-HB $(cut -d" " -f1 /proc/uptime) $(grep -E "virtio|pci" /proc/interrupts | tr -s " " | tr "\n" "|")"; sleep 10; done) &'
        guest_step 600 'seq 1 200000 > /tmp/data; sz=$(wc -c < /tmp/data); echo GUEST-DATA size=$sz sum=$(sha256sum < /tmp/data | cut -d" " -f1); dd if=/tmp/data of=/dev/vda bs=64k 2>&1 | sed "s/^/GUEST-DD /"; sync; echo 3 > /proc/sys/vm/drop_caches; echo GUEST-VDA-WRITTEN sum=$(head -c $sz /dev/vda | sha256sum | cut -d" " -f1)'
        guest_step 300 'echo GUEST-VDB-MARKER $(head -c 14 /dev/vdb); if dd if=/tmp/data of=/dev/vdb bs=4k count=1 conv=fsync 2>/tmp/err; then echo GUEST-RO-WRITE-ACCEPTED; else echo GUEST-RO-WRITE-REFUSED: $(head -n1 /tmp/err); fi; cat /sys/block/vdb/ro | sed "s/^/GUEST-VDB-RO-ATTR /"'
        guest_step 600 '/bin/diskbench /dev/vdc'
        n=$(count GUEST-READY)
        send 'echo GUEST-REBOOTING; reboot -f'
        if wait_for GUEST-INIT-REACHED 2 900 && wait_for GUEST-READY $((n + 1)) 900; then
            echo "L1-GUEST-READY-2 uptime=$(up)"
            guest_step 600 'ls -l /dev/vd* | sed "s/^/GUEST-DEV2 /"; echo GUEST-VDA-AFTER-REBOOT sum=$(head -c 1288895 /dev/vda | sha256sum | cut -d" " -f1)'
            send 'poweroff -f'
        fi
    fi
fi
if [ "$mode" = crash ]; then
    # Firmware-assisted dump end to end (see boot-our-vmm.sh --crash for the kinds). The kdump
    # kinds are the same guest and crash as sysrq / hardlockup, captured by kdump instead.
    kind="$(cat /vmm-crash 2>/dev/null || echo sysrq)"
    capture=fadump
    case "$kind" in
        kdump) capture=kdump how=sysrq ;;
        kdump-hardlockup) capture=kdump how=hardlockup ;;
        *) how="$kind" ;;
    esac
    if wait_for GUEST-READY 1 900; then
        echo "L1-GUEST-READY-1 uptime=$(up)"
        # Pattern pages with their physical addresses, recorded before the crash.
        guest_step 120 'echo GUEST-FADUMP-REGISTERED=$(cat /sys/kernel/fadump/registered 2>/dev/null || echo absent) GUEST-KEXEC-CRASH-LOADED=$(cat /sys/kernel/kexec_crash_loaded 2>/dev/null || echo absent); fadump-pattern 4 > /tmp/pat 2>&1 & i=0; while ! grep -q READY /tmp/pat && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; cat /tmp/pat'
        n=$(count GUEST-READY)
        case "$how" in
            bug) crash='echo BUG > /sys/kernel/debug/provoke-crash/DIRECT' ;;
            panic) crash='echo PANIC > /sys/kernel/debug/provoke-crash/DIRECT' ;;
            *) crash='echo c > /proc/sysrq-trigger' ;;
        esac
        other=""
        if [ "${cpus:-1}" -gt 1 ]; then
            if [ "$how" = hardlockup ]; then
                # The other vCPU spins in the kernel with interrupts off (LKDTM HARDLOCKUP).
                other='taskset -c 1 sh -c "echo HARDLOCKUP > /sys/kernel/debug/provoke-crash/DIRECT" & sleep 2; '
            else
                # The other vCPU is busy in userspace. The crash follows one second later, in
                # the same command: a long busy L2 vCPU trips L0's TCG nested-HV (observed:
                # cpu1 starved ~16 s, then ran userspace with broken translation and oopsed
                # in the SLB-miss handler of a radix kernel), so the window is kept short.
                other='taskset -c 1 sh -c "while :; do :; done" & sleep 1; '
            fi
        fi
        if [ "$(count GUEST-INIT-REACHED)" != 1 ]; then
            # The guest rebooted by itself before the crash we meant to cause: say so plainly
            # (the checks then fail on the crash path instead of analysing the wrong dump).
            echo "L1-UNEXPECTED-REBOOT before the $kind crash; guest log follows"
            grep -E "BUG|Oops|NIP|LOCKUP|os-term" /tmp/vmm-out | head -20 | sed 's/^/L1-UNEXPECTED /'
        fi
        # The whole sequence runs pinned to cpu0, so nothing it forks (sleep) can be queued
        # on cpu1 just before cpu1 locks up with interrupts off (seen: the crash never came).
        send "taskset -c 0 sh -c '$other echo GUEST-CRASHING kind=$kind; $crash'"
        # Crash -> capture kernel's /init, timed here in L1 (10 ms clock, 0.1 s polling): the
        # same measure for our VMM and for QEMU (--vmm qemu-sid).
        if [ "$kind" != unregistered ]; then
            (
                # The guest kernel's own first line about the crash.
                until grep -qE "sysrq: Trigger a crash|Performing direct entry (BUG|PANIC)" /tmp/vmm-out; do sleep 0.1; done
                a=$(up)
                while [ "$(count GUEST-INIT-REACHED)" -lt 2 ] && [ ! -f /tmp/vmm-rc ]; do sleep 0.1; done
                b=$(up)
                echo "L1-PHASE crash-to-capture-init seconds=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }')"
            ) &
        fi
        if [ "$kind" = unregistered ]; then
            # No dump registered: the VMM reboots the guest plainly; power off there.
            if wait_for GUEST-INIT-REACHED 2 900 && wait_for GUEST-READY $((n + 1)) 900; then
                echo "L1-GUEST-READY-2 uptime=$(up)"
                guest_step 60 'echo GUEST-AFTER-REBOOT vmcore=$(ls /proc/vmcore 2>/dev/null || echo none)'
                send 'poweroff -f'
            fi
        elif wait_for GUEST-INIT-REACHED 2 900 && wait_for GUEST-READY $((n + 1)) 900; then
            echo "L1-GUEST-READY-2 uptime=$(up)"
            if [ "$kind" = second ]; then
                # A second crash in the capture kernel, before release: a dump is active, so
                # no second dump, a plain reboot, and the first dump is still there.
                n=$(count GUEST-READY)
                send 'echo GUEST-SECOND-CRASH; echo c > /proc/sysrq-trigger'
                wait_for GUEST-INIT-REACHED 3 900 && wait_for GUEST-READY $((n + 1)) 900 &&
                    echo "L1-GUEST-READY-3 uptime=$(up)"
            fi
            if [ -s /vmm-guest-cmd ]; then
                # --guest-cmd runs in the capture kernel here.
                guest_step 300 "$(cat /vmm-guest-cmd)" || echo "L1-GUEST-CMD-TIMEOUT"
            fi
            # Save the dump raw onto the VMM's virtio-blk disk (L1's export disk underneath).
            guest_step 3600 'sz=$(stat -c %s /proc/vmcore); t0=$(cut -d" " -f1 /proc/uptime); dd if=/proc/vmcore of=/dev/vda bs=1M conv=fsync 2>&1 | tail -n1 | sed "s/^/GUEST-DD /"; t1=$(cut -d" " -f1 /proc/uptime); echo GUEST-VMCORE-SAVED bytes=$sz t0=$t0 t1=$t1'
            if [ "$capture" = kdump ]; then
                # kdump's way back: the kdump kernel reboots (our VMM resets the machine and
                # boots the production kernel), whose /init loads the crash kernel again.
                n=$(count GUEST-READY)
                send 'echo GUEST-REBOOTING; reboot -f'
                if wait_for GUEST-INIT-REACHED 3 900 && wait_for GUEST-READY $((n + 1)) 900; then
                    echo "L1-GUEST-READY-3 uptime=$(up)"
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
fi
t=0
while [ ! -f /tmp/vmm-rc ] && [ $t -lt 900 ]; do sleep 1; t=$((t + 1)); done
sleep 1
kill $tailpid 2>/dev/null
echo "L1-RESULT vmm-rc=$(cat /tmp/vmm-rc 2>/dev/null || echo timeout) uptime=$(up)"
if [ "$mode" = disk ]; then
    echo "L1-BACKING-FILE sum=$(head -c 1288895 /tmp/disk0.img | sha256sum | cut -d' ' -f1)"
    echo "L1-RO-BACKING ro-sum-after=$(sha256sum < /tmp/disk1.img | cut -d' ' -f1)"
    # Pass the backing file out: the runner checksums it again on the x86 host.
    if [ -b /dev/vda ]; then
        dd if=/tmp/disk0.img of=/dev/vda bs=1M conv=fsync 2>/dev/null && echo "L1-EXPORTED disk0.img"
    fi
fi

# The peer: QEMU 7.2 as the VMM on the same L1 KVM, same guest kernel and initramfs, same
# vCPUs and memory; the guest powers off as soon as it reaches /init.
if [ -x /qemu/usr/bin/qemu-system-ppc64 ]; then
    Q=/qemu
    peer_action=poweroff
    [ "$mode" = disk ] && peer_action=diskbench
    set -- "$Q/lib64/ld64.so.2" --library-path "$Q/lib/powerpc64le-linux-gnu:$Q/usr/lib/powerpc64le-linux-gnu" \
        "$Q/usr/bin/qemu-system-ppc64" -L "$Q/usr/share/qemu" \
        -M pseries,accel=kvm,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off,cap-hpt-max-page-size=4k \
        $(cat /peer-args) -nodefaults -nographic -serial stdio -no-reboot \
        -kernel /guest/vmlinux -initrd /guest/initrd.cpio.gz -append "console=hvc0 guest.action=$peer_action"
    if [ "$mode" = disk ]; then
        # Same throughput rounds under QEMU: a 64 MiB file on the same tmpfs as ours.
        dd if=/dev/zero of=/tmp/bench-peer.img bs=1M count=64 2>/dev/null
        set -- "$@" -drive file=/tmp/bench-peer.img,format=raw,if=none,id=bench -device virtio-blk-pci,drive=bench
    fi
    echo "L1-PEER-START uptime=$(up)"
    timeout -s KILL 900 "$@" < /dev/null 2>&1
    echo "L1-PEER-RESULT rc=$? uptime=$(up)"
fi
poweroff -f
