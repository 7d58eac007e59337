#!/usr/bin/env bash
# End-to-end proof of the nested environment with QEMU 7.2 as the VMM inside L1:
# L0 (QEMU TCG) → L1 (Debian ppc64le, kvm-hv) → QEMU 7.2 + KVM → L2 (Linux, busybox /init).
#
#   integration-tests/nested/prove-qemu-peer.sh [--machine pseries|powernv] [--runs N]
#       [--guest-kernel VMLINUX] [--timeout S] [--l2-mem 1G] [--l2-machine-opts ,cap-x=y]
#       [--l2-append ARGS] [--l2-qemu-args ARGS] [--hash]
#
# Passes when every run's L2 guest printed its `L2-GUEST-MARKER` line (checked inside L1 and
# again on the host in the console log copied out through the output disk). Prints each run's
# phase times and, for several runs, their ranges. Guest kernel: --guest-kernel, else the
# newest ~/.cache/ppc-vmm/kernel/*/vmlinux (guests/kernel/build.sh), else the L1 kernel itself.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"

# L0 under TCG offers no Spectre mitigations, so the L1 KVM reports them unavailable and QEMU
# refuses its default workaround levels: ask for none (the guest then runs unmitigated).
l2_opts=",cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off"
# L1 has 4K pages: QEMU refuses its default 64K HPT page-size cap (radix guests are unaffected).
l2_opts="$l2_opts,cap-hpt-max-page-size=4k"
l2_append=quiet l2_qemu_args="" l2_mmu=Radix
machine=pseries runs=1 guest_kernel="" timeout=900 l2_mem=1G l2_timeout=600
while [ $# -gt 0 ]; do
    case "$1" in
    --machine) machine="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --guest-kernel) guest_kernel="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --l2-mem) l2_mem="$2"; shift 2 ;;
    --l2-machine-opts) l2_opts="$l2_opts$2"; shift 2 ;;
    --l2-append) l2_append="$l2_append $2"; shift 2 ;;
    --l2-qemu-args) l2_qemu_args="$l2_qemu_args $2"; shift 2 ;;
    --hash) # HPT (hash-MMU) L2; powernv L1 only. Trap 2: the VRMA allows RAM/4 for the RMA,
        # so the first NUMA node is kept at 256 MiB.
        l2_append="$l2_append disable_radix" l2_mmu=Hash
        l2_qemu_args="$l2_qemu_args -object memory-backend-ram,id=m0,size=256M -numa node,memdev=m0"
        l2_qemu_args="$l2_qemu_args -object memory-backend-ram,id=m1,size=768M -numa node,memdev=m1"
        shift ;;
    *) echo "usage: $0 [--machine pseries|powernv] [--runs N] [--guest-kernel F] [--timeout S]" >&2; exit 2 ;;
    esac
done

qroot="$NESTED_CACHE/qemu-l1/${QEMU_L1_VERSION//[~:]/_}/root"
busybox="$NESTED_CACHE/busybox/${BUSYBOX_VERSION//[~:]/_}/busybox"
l1_vmlinux="$NESTED_CACHE/l1-kernel/${L1_KERNEL_VERSION//[~:]/_}/vmlinux"
for f in "$qroot/usr/bin/qemu-system-ppc64" "$busybox" "$l1_vmlinux"; do
    [ -e "$f" ] || { echo "prove-qemu-peer: $f missing; run $here/setup.sh" >&2; exit 1; }
done
if [ -z "$guest_kernel" ]; then
    # Our 6.12 guest kernel if it is built (cached), else the L1 kernel itself. Not "the newest
    # file in the cache": the 6.1 matrix kernel lives there too.
    guest_kernel="$(NO_INSTALL=1 "$here/../../guests/kernel/build.sh" --cached-only 2>/dev/null)/vmlinux" || true
    [ -f "$guest_kernel" ] || guest_kernel="$l1_vmlinux"
fi
guest_kernel="$(readlink -f "$guest_kernel")"
echo "prove-qemu-peer: machine=$machine guest kernel=$guest_kernel" >&2

work="$NESTED_CACHE/qemu-peer/$(date -u +%Y%m%dT%H%M%S)-$$"
payload="$work/payload"
mkdir -p "$payload"
cp "$here/lib/qemu-peer-payload.sh" "$payload/run.sh"
ln -s "$guest_kernel" "$payload/vmlinux"
ln -s "$qroot" "$payload/qemu"
python3 "$here/lib/l2_initramfs.py" "$busybox" "$payload/l2-initrd.cpio.gz"
cat > "$payload/l2.conf" <<EOF
L2_MEM=$l2_mem
L2_MACHINE_OPTS='$l2_opts'
L2_APPEND='$l2_append'
L2_QEMU_ARGS='$l2_qemu_args'
L2_EXPECT_MMU=$l2_mmu
L2_TIMEOUT=$l2_timeout
EOF

fail=0
for i in $(seq 1 "$runs"); do
    rd="$work/run$i"
    echo "prove-qemu-peer: run $i/$runs" >&2
    set +e
    "$here/run-l1.sh" "$payload" --machine "$machine" --timeout "$timeout" --run-dir "$rd" \
        --out "$rd/out"
    rc=$?
    set -e
    if [ "$rc" != 0 ]; then
        echo "prove-qemu-peer: run $i FAILED (status $rc)" >&2; fail=1; continue
    fi
    # Independent host-side check of the guest's own console, copied out through the disk.
    if ! grep -a "^L2-GUEST-MARKER .*mmu=$l2_mmu" "$rd/out/l2-console.log" >&2; then
        echo "prove-qemu-peer: run $i: marker missing from $rd/out/l2-console.log" >&2; fail=1
    fi
done

python3 "$here/lib/summarize.py" "$work"/run*/result.json
[ "$fail" = 0 ] && echo "prove-qemu-peer: PASS ($runs run(s), $machine)" >&2
exit "$fail"
