#!/bin/sh
# run.sh of the QEMU-peer payload (copied into the payload directory by prove-qemu-peer.sh):
# boots the L2 guest with QEMU 7.2 on L1's KVM-HV and asserts the guest's marker line.
# Files next to it: vmlinux (L2 kernel), l2-initrd.cpio.gz, qemu/ (QEMU rootfs), l2.conf.
# shellcheck source=/dev/null # written by prove-qemu-peer.sh
. ./l2.conf
Q=/payload/qemu
LIBS=$Q/lib/powerpc64le-linux-gnu:$Q/usr/lib/powerpc64le-linux-gnu
# The rootfs is not chrooted into: run the binary through its own dynamic loader.
set -- "$Q/lib64/ld64.so.2" --library-path "$LIBS" "$Q/usr/bin/qemu-system-ppc64" \
    -L "$Q/usr/share/qemu" -M "pseries,accel=kvm,x-vof=on$L2_MACHINE_OPTS" -smp 1 -m "$L2_MEM" \
    -nodefaults -nographic -serial stdio -no-reboot \
    -kernel /payload/vmlinux -initrd /payload/l2-initrd.cpio.gz -append "console=hvc0 $L2_APPEND"
# Extra QEMU arguments are split on spaces on purpose (no quoting inside them).
# shellcheck disable=SC2086
set -- "$@" $L2_QEMU_ARGS
echo "qemu-peer: $*"
echo "NESTED-PHASE l2-vmm-start"
timeout -s KILL "$L2_TIMEOUT" "$@" </dev/null 2>&1 | tee /out/l2-console.log
echo "NESTED-PHASE l2-vmm-exit"
if grep -q "^L2-GUEST-MARKER .*mmu=$L2_EXPECT_MMU" /out/l2-console.log; then
    echo "qemu-peer: PASS: L2 guest marker seen (MMU $L2_EXPECT_MMU)"
    exit 0
fi
echo "qemu-peer: FAIL: no L2-GUEST-MARKER line with mmu=$L2_EXPECT_MMU from the guest"
exit 1
