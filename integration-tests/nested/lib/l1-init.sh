#!/bin/sh
# /init of the L1 initramfs (busybox). Loads KVM-HV, runs /payload/run.sh, writes /out to the
# output disk, prints `NESTED-EXIT <status>` and powers off. Every line the host driver
# (run_l1.py) times starts with `NESTED-PHASE <name>`.
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp /out
mount -t tmpfs tmpfs /tmp
echo "NESTED-PHASE l1-init uptime=$(cut -d' ' -f1 /proc/uptime)"

finish() {
    echo "NESTED-EXIT $1"
    sync
    poweroff -f
    sleep 5
    echo o > /proc/sysrq-trigger
}

# Modules listed in load order (dependencies first) by the host builder.
while read -r m; do
    if ! insmod "/lib/modules/nested/$m.ko"; then echo "nested-init: insmod $m failed"; fi
    case "$m" in
    kvm_hv)
        if grep -q '^kvm_hv ' /proc/modules && [ -c /dev/kvm ]; then
            echo "NESTED-PHASE kvm-hv-loaded uptime=$(cut -d' ' -f1 /proc/uptime)"
        else
            echo "NESTED-PHASE kvm-hv-failed"
            dmesg | grep -i kvm | tail -5
            finish 125
        fi
        ;;
    esac
done < /lib/modules/nested/order

# The output disk (if the host attached one) is the only virtio block device.
NESTED_OUT=/out
NESTED_OUT_DEV=
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -b /dev/vda ] && { NESTED_OUT_DEV=/dev/vda; break; }
    grep -q 'nested.out=1' /proc/cmdline || break
    sleep 0.5
done
export NESTED_OUT NESTED_OUT_DEV

cd /payload || finish 126
echo "NESTED-PHASE payload-start"
sh ./run.sh
rc=$?
cd /
echo "NESTED-PHASE payload-end status=$rc"

# /out is archived onto the disk unless the payload left it empty (it may have streamed its
# own tar to $NESTED_OUT_DEV instead).
if [ -n "$NESTED_OUT_DEV" ] && [ -n "$(ls -A /out)" ]; then
    echo "NESTED-PHASE out-write-start"
    if tar -C /out -cf "$NESTED_OUT_DEV" . && sync; then
        echo "NESTED-PHASE out-written"
        echo "NESTED-OUT $(du -sk /out | cut -f1)KiB"
    else
        echo "nested-init: writing /out to $NESTED_OUT_DEV failed"
        [ "$rc" = 0 ] && rc=124
    fi
fi
finish "$rc"
