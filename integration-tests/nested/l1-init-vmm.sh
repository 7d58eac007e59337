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
ls -l /dev/kvm
echo "L1-KVM-LOADED uptime=$(up)"

args="$(cat /vmm-args)"
cmdline="$(cat /vmm-cmdline)"
mkfifo /tmp/vmm-in
(
    # shellcheck disable=SC2086
    /ppc-vmm $args --cmdline "$cmdline" < /tmp/vmm-in > /tmp/vmm-out 2>&1
    echo $? > /tmp/vmm-rc
) &
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
    done
    return 0
}

# send CMD: type one command line into the guest's console (guest.action=commands)
send() { echo "$1" >&3; }
if [ "$(cat /vmm-mode 2>/dev/null)" = drive ]; then
    if wait_for GUEST-READY 1 900; then
        echo "L1-GUEST-READY-1 uptime=$(up)"
        if [ -s /vmm-guest-cmd ]; then
            # An extra command from --guest-cmd, run first; done when the guest asks for the
            # next one.
            n=$(count GUEST-READY)
            send "$(cat /vmm-guest-cmd); echo GUEST-CMD-DONE"
            wait_for GUEST-READY $((n + 1)) 900
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
if [ "$(cat /vmm-mode 2>/dev/null)" = crash ]; then
    # Firmware-assisted dump: crash the fadump=on guest, let the capture kernel boot (it
    # prints GUEST-VMCORE), then power it off.
    if wait_for GUEST-READY 1 900; then
        echo "L1-GUEST-READY-1 uptime=$(up)"
        n=$(count GUEST-READY)
        send 'echo c > /proc/sysrq-trigger'
        if wait_for GUEST-INIT-REACHED 2 900 && wait_for GUEST-READY $((n + 1)) 900; then
            echo "L1-GUEST-READY-2 uptime=$(up)"
            if [ -s /vmm-guest-cmd ]; then
                # --guest-cmd runs in the capture kernel here.
                n=$(count GUEST-READY)
                send "$(cat /vmm-guest-cmd)"
                wait_for GUEST-READY $((n + 1)) 300 || echo "L1-GUEST-CMD-TIMEOUT"
            fi
            send 'poweroff -f'
        fi
    fi
fi
t=0
while [ ! -f /tmp/vmm-rc ] && [ $t -lt 900 ]; do sleep 1; t=$((t + 1)); done
sleep 1
kill $tailpid 2>/dev/null
echo "L1-RESULT vmm-rc=$(cat /tmp/vmm-rc 2>/dev/null || echo timeout) uptime=$(up)"

# The peer: QEMU 7.2 as the VMM on the same L1 KVM, same guest kernel and initramfs, same
# vCPUs and memory; the guest powers off as soon as it reaches /init.
if [ -x /qemu/usr/bin/qemu-system-ppc64 ]; then
    Q=/qemu
    set -- "$Q/lib64/ld64.so.2" --library-path "$Q/lib/powerpc64le-linux-gnu:$Q/usr/lib/powerpc64le-linux-gnu" \
        "$Q/usr/bin/qemu-system-ppc64" -L "$Q/usr/share/qemu" \
        -M pseries,accel=kvm,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off,cap-hpt-max-page-size=4k \
        $(cat /peer-args) -nodefaults -nographic -serial stdio -no-reboot \
        -kernel /guest/vmlinux -initrd /guest/initrd.cpio.gz -append "console=hvc0 guest.action=poweroff"
    echo "L1-PEER-START uptime=$(up)"
    timeout -s KILL 900 "$@" < /dev/null 2>&1
    echo "L1-PEER-RESULT rc=$? uptime=$(up)"
fi
poweroff -f
