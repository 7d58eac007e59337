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
    # The dump's CPU notes, read at once from its ELF header (the first program header of
    # /proc/vmcore is the merged PT_NOTE): one NT_PRSTATUS per CPU that saved its registers,
    # with pr_pid and the NIP (pr_reg[32]). Shown here too in case the save never completes.
    u() { od -An -t "$1" -j "$2" -N "${1#?}" /proc/vmcore | tr -d ' '; }
    phoff=$(u u8 32)
    if [ "$(u u4 "$phoff")" = 4 ]; then
        off=$(u u8 $((phoff + 8))) end=$(($(u u8 $((phoff + 8))) + $(u u8 $((phoff + 32)))))
        n=0 pids="" nips=""
        while [ "$off" -lt "$end" ]; do
            namesz=$(u u4 "$off") descsz=$(u u4 $((off + 4))) type=$(u u4 $((off + 8)))
            [ "$namesz" = 0 ] && break
            desc=$((off + 12 + (namesz + 3) / 4 * 4))
            if [ "$type" = 1 ]; then
                n=$((n + 1)) pids="$pids,$(u u4 $((desc + 32)))" nips="$nips,0x$(u x8 $((desc + 112 + 32 * 8)))"
            fi
            off=$((desc + (descsz + 3) / 4 * 4))
        done
        echo "GUEST-VMCORE-NOTES prstatus=$n pid=${pids#,} nip=${nips#,}"
    else
        echo "GUEST-VMCORE-NOTES first program header is not PT_NOTE"
    fi
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
