#!/bin/busybox sh
# /init of the L2 test guest: mount the basics, announce ourselves on the console, then act
# on `guest.action=` from the kernel command line:
#   shell (default)  interactive shell on the console (hvc0)
#   poweroff         power off at once
#   diskbench        run /bin/diskbench (diskbench.sh) on /dev/vda (guest.diskbench=DEV to pick
#                    another disk; it is overwritten), then power off
#   commands         read one command line at a time from the console and run it; this is
#                    how the nested test drives `reboot -f` / `poweroff -f` from outside
# guest.kdump=1: before acting, load /kdump/vmlinux + /kdump/initrd.cpio.gz as the crash kernel
# with `kexec -p` (what Debian's kdump-tools does at boot), unless this is the capture kernel.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

echo "GUEST-INIT-REACHED nproc=$(nproc) kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
# In a capture kernel booted after a firmware-assisted dump, say so (the dump is /proc/vmcore).
if [ -e /proc/vmcore ]; then
    echo "GUEST-VMCORE $(ls -l /proc/vmcore)"
    dmesg | grep -i 'fadump' | sed 's/^/GUEST-FADUMP-LOG /'
    echo "GUEST-CMDLINE $(cat /proc/cmdline)"
fi

action=shell
diskdev=/dev/vda
kdump=0
capture_cmdline=""
for w in $(cat /proc/cmdline); do
    case "$w" in
        guest.action=*) action="${w#guest.action=}" ;;
        guest.diskbench=*) diskdev="${w#guest.diskbench=}" ;;
        guest.kdump=*) kdump="${w#guest.kdump=}" ;;
    esac
    # The capture kernel's command line: this one without crashkernel= and guest.kdump=, as
    # Debian's kdump-config derives it from /proc/cmdline.
    case "$w" in
        crashkernel=*|guest.kdump=*) ;;
        *) capture_cmdline="${capture_cmdline:+$capture_cmdline }$w" ;;
    esac
done
if [ "$kdump" = 1 ] && [ ! -e /proc/vmcore ]; then
    # Appended as Debian's KDUMP_CMDLINE_APPEND default does ("reset_devices
    # systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll nousb"), less what this guest
    # has no use for (systemd, USB). kexec-tools adds elfcorehdr= itself.
    capture_cmdline="$capture_cmdline reset_devices nr_cpus=1 irqpoll"
    t0=$(cut -d' ' -f1 /proc/uptime)
    kexec -p /kdump/vmlinux --initrd=/kdump/initrd.cpio.gz --append="$capture_cmdline" 2>&1 |
        sed 's/^/GUEST-KEXEC /'
    echo "GUEST-KDUMP-LOADED crash_loaded=$(cat /sys/kernel/kexec_crash_loaded 2>/dev/null || echo absent) t0=$t0 t1=$(cut -d' ' -f1 /proc/uptime) append='$capture_cmdline'"
fi
case "$action" in
    poweroff)
        echo "GUEST-POWEROFF"
        poweroff -f ;;
    diskbench)
        # /bin/diskbench is guests/initramfs/diskbench.sh, added by the runner that wants it.
        /bin/diskbench "$diskdev"
        poweroff -f ;;
    commands)
        while true; do
            echo "GUEST-READY"
            if read -r line; then
                echo "GUEST-RUN: $line"
                sh -c "$line"
            else
                sleep 1
            fi
        done ;;
    *)
        exec setsid cttyhack sh ;;
esac
