#!/bin/busybox sh
# /init of the L2 test guest: mount the basics, announce ourselves on the console, then act
# on `guest.action=` from the kernel command line:
#   shell (default)  interactive shell on the console (hvc0)
#   poweroff         power off at once
#   diskbench        run /bin/diskbench (diskbench.sh) on /dev/vda (guest.diskbench=DEV to pick
#                    another disk; it is overwritten), then power off
#   commands         read one command line at a time from the console and run it; this is
#                    how the nested test drives `reboot -f` / `poweroff -f` from outside
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
fi

action=shell
diskdev=/dev/vda
for w in $(cat /proc/cmdline); do
    case "$w" in
        guest.action=*) action="${w#guest.action=}" ;;
        guest.diskbench=*) diskdev="${w#guest.diskbench=}" ;;
    esac
done
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
