# Pinned package versions and cache location for the nested environment (sourced by the
# scripts here). The archives drop old versions, so a bump is an explicit edit of this file,
# and every cache directory is keyed by the version it holds.
: "${NESTED_CACHE:=${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}/nested}"
# L1 kernel: Debian bookworm-backports, 4K pages, radix, kvm.ko + kvm-hv.ko as modules.
: "${L1_KERNEL_ABI:=6.12.95+deb12-powerpc64le}"
: "${L1_KERNEL_VERSION:=6.12.95-1~bpo12+1}"
# Static busybox for the L1 and L2 initramfs (bookworm).
: "${BUSYBOX_VERSION:=1:1.35.0-4+deb12u1+b1}"
# QEMU run as the VMM inside L1 (bookworm, ppc64el): the peer our VMM is compared with.
: "${QEMU_L1_VERSION:=1:7.2+dfsg-7+deb12u18+b3}"
export NESTED_CACHE L1_KERNEL_ABI L1_KERNEL_VERSION BUSYBOX_VERSION QEMU_L1_VERSION
# kexec-tools for the L2 guest's kdump (`kexec -p`), bookworm ppc64el; its libc6 is whatever
# bookworm's candidate is when the cache directory is made (recorded in its packages.txt).
: "${KEXEC_TOOLS_VERSION:=1:2.0.25-3+deb12u3}"
export KEXEC_TOOLS_VERSION
# dmsetup for L1's device-mapper fault (setup-dmsetup.sh), bookworm ppc64el, with
# libdevmapper1.02.1 of the same version; its other libraries are bookworm's candidates then.
: "${DMSETUP_VERSION:=2:1.02.185-2}"
export DMSETUP_VERSION
