#!/bin/sh
# disk, L1 half: three virtio-blk disks from L1 files. The guest finds /dev/vda, writes a known
# pattern, syncs and reads it back past the page cache; the read-only /dev/vdb refuses a
# write; diskbench runs on /dev/vdc; after a reboot through our VMM the data reads back
# identical; after power-off L1 checksums the backing files and passes disk0.img out raw on
# the output disk ($NESTED_OUT_DEV, the host's export.img). Then the peer's diskbench.
# shellcheck disable=SC2016 # the command lines are expanded in the guest
# shellcheck source=../../lib/l1-vmm.sh # beside run.sh in the payload
. ./l1-vmm.sh
# Backing files: a zeroed writable one, a read-only one with a marker whose checksum must not
# change, and scratch space for the direct-I/O throughput rounds (overwritten).
dd if=/dev/zero of=/tmp/disk0.img bs=1M count=16 2>/dev/null
dd if=/dev/zero of=/tmp/disk1.img bs=1M count=4 2>/dev/null
dd if=/dev/zero of=/tmp/bench.img bs=1M count=64 2>/dev/null
echo RO-DISK-MARKER | dd of=/tmp/disk1.img conv=notrunc 2>/dev/null
echo "NESTED-DISKS-CREATED ro-sum-before=$(sha256sum < /tmp/disk1.img | cut -d' ' -f1) uptime=$(up)"
vmm_start
if ready 1; then
    guest_step 300 'dmesg | grep -iE "pci|virtio|vd[a-z]|phb|rtas" | sed "s/^/GUEST-DMESG /"; ls -l /dev/vd* | sed "s/^/GUEST-DEV /"; (while :; do echo "GUEST-HB $(cut -d" " -f1 /proc/uptime) $(grep -E "virtio|pci" /proc/interrupts | tr -s " " | tr "\n" "|")"; sleep 10; done) &'
    guest_step 600 'seq 1 200000 > /tmp/data; sz=$(wc -c < /tmp/data); echo GUEST-DATA size=$sz sum=$(sha256sum < /tmp/data | cut -d" " -f1); dd if=/tmp/data of=/dev/vda bs=64k 2>&1 | sed "s/^/GUEST-DD /"; sync; echo 3 > /proc/sys/vm/drop_caches; echo GUEST-VDA-WRITTEN sum=$(head -c $sz /dev/vda | sha256sum | cut -d" " -f1)'
    guest_step 300 'echo GUEST-VDB-MARKER $(head -c 14 /dev/vdb); if dd if=/tmp/data of=/dev/vdb bs=4k count=1 conv=fsync 2>/tmp/err; then echo GUEST-RO-WRITE-ACCEPTED; else echo GUEST-RO-WRITE-REFUSED: $(head -n1 /tmp/err); fi; cat /sys/block/vdb/ro | sed "s/^/GUEST-VDB-RO-ATTR /"'
    guest_step 600 '/bin/diskbench /dev/vdc'
    n=$(count GUEST-READY)
    send 'echo GUEST-REBOOTING; reboot -f'
    if ready 2 "$n"; then
        guest_step 600 'ls -l /dev/vd* | sed "s/^/GUEST-DEV2 /"; echo GUEST-VDA-AFTER-REBOOT sum=$(head -c 1288895 /dev/vda | sha256sum | cut -d" " -f1)'
        send 'poweroff -f'
    fi
fi
vmm_wait; rc=$?
echo "NESTED-BACKING-FILE sum=$(head -c 1288895 /tmp/disk0.img | sha256sum | cut -d' ' -f1)"
echo "NESTED-RO-BACKING ro-sum-after=$(sha256sum < /tmp/disk1.img | cut -d' ' -f1)"
# Pass the backing file out: the host checksums it again.
if [ -n "$NESTED_OUT_DEV" ]; then
    dd if=/tmp/disk0.img of="$NESTED_OUT_DEV" bs=1M conv=fsync 2>/dev/null && echo "NESTED-EXPORTED disk0.img"
fi
if [ -d "$P"/qemu ]; then
    # The same throughput rounds under QEMU: a 64 MiB file on the same tmpfs as ours.
    dd if=/dev/zero of=/tmp/bench-peer.img bs=1M count=64 2>/dev/null
    peer diskbench -drive file=/tmp/bench-peer.img,format=raw,if=none,id=bench -device virtio-blk-pci,drive=bench
fi
exit $rc
