# shellcheck shell=bash
# crash, host half (sourced by boot-our-vmm.sh, which has set $crash, $append, $memory, $gk,
# $run): the guest's command line for the crash kind, its memory, its disk, no peer.
# shellcheck disable=SC2034,SC2154 # set and read by boot-our-vmm.sh
case "$crash" in
    # crashkernel= sets fadump's boot-memory size (the capture kernel's RAM). Linux caps it at
    # RAM/4 and needs at least 320M, so it takes >= 1280 MiB of RAM: crash mode defaults to
    # 1536M, and 384M (not Linux's own 320M default) shows it was honoured.
    sysrq|bug|panic|hardlockup|second|nmi-hung|disk-enospc|disk-eio) append="fadump=on crashkernel=${CRASHKERNEL:-384M}${append:+ $append}" ;;
    # Memory DLPAR: hot-added blocks online into ZONE_MOVABLE (removable; user pages prefer
    # them), a 512 MiB window after 1536 MiB of boot RAM (LMBs 6 and 7, below 2 GiB).
    hotplug-add|hotplug-remove|hotplug-add-rereg|hotplug-remove-rereg|hotplug-remove-stale|hotplug-host-add)
        append="fadump=on crashkernel=${CRASHKERNEL:-384M} memhp_default_state=online_movable${append:+ $append}"
        memory="${memory:-size=1536M,hotplug_size=512M}"
        ;;
    # host-dump: no fadump; the hung guest is NMI'd, panics, and its ibm,os-term makes our VMM
    # write an ELF core of it (--on-crash host-dump) onto the export disk. power-button: no
    # dump at all, the guest shuts down on an EPOW event.
    unregistered|host-dump|power-button) ;;
    # kdump: the crash kernel (vmlinux + capture initramfs, nr_cpus=1) runs inside the
    # reservation; 256M leaves it ample room (busybox initramfs, dd with 1 MiB blocks).
    kdump|kdump-hardlockup) append="crashkernel=${CRASHKERNEL:-256M} guest.kdump=1${append:+ $append}" ;;
    *) echo "unknown --crash $crash" >&2; exit 2 ;;
esac
peer=0
memory="${memory:-1536M}"
# A guest of hosting size: the export disk holds its whole vmcore (RAM + headers), and L1 gets
# room for what the guest touches (its kernel and pattern pages, the boot memory fadump keeps,
# the capture kernel) beside itself. Untouched guest RAM costs L1 nothing: reads of it, as the
# capture kernel's save does, map the zero page.
mem_mib="${memory#size=}"
mem_mib="${mem_mib%%,*}"
mem_mib="${mem_mib%[MG]}"
case "${memory%%,*}" in *G) mem_mib=$((mem_mib * 1024)) ;; esac
if [ "$mem_mib" -gt 2048 ]; then
    out_size="${out_size:-$(( mem_mib / 1024 + 2 ))G}"
    l1_mem="${l1_mem:-6G}"
fi
vmm_choices="ours qemu-sid"
# QEMU gets `-m` from --memory's first size: no hotplug window there.
case "$crash" in hotplug-*|disk-*) vmm_choices="ours" ;; esac
# The vmcore disk is L1's output disk itself, so the dump lands in $run/export.img.
disks=" --disk path=/dev/vda"
# The host-initiated kind drives vm.resize through the VMM's API socket from L1.
if [ "$crash" = hotplug-host-add ]; then
    disks+=" --api-socket path=/tmp/vmm-api.sock"
    l1_add+=("$("$repo/guests/pattern/build.sh" api-request)=api-request")
fi
# Disk faults during the save (run.sh): the disk is a file on a small tmpfs in L1 (ENOSPC), or
# a device-mapper device over the export disk whose table L1 switches to `error` (EIO), for
# which L1 gets bookworm's dmsetup and the L1 kernel's dm_mod (with its dependencies).
case "$crash" in
    disk-enospc)
        disks=" --disk path=/mnt/fault/disk.img"
        # L1 holds the 1.2 GiB vmcore in its tmpfs beside the guest.
        l1_mem="${l1_mem:-4G}"
        ;;
    disk-eio)
        disks=" --disk path=/dev/mapper/vmcore-fault"
        l1_add+=("$("$here/setup-dmsetup.sh")=dmsetup")
        rm -rf "$run/l1-modules" && mkdir -p "$run/l1-modules"
        python3 "$here/lib/initramfs.py" stage-modules "$l1dir/root" "$run/l1-modules" dm_mod
        l1_add+=("$run/l1-modules=modules")
        ;;
esac
out_image=1
case "$crash" in
    # The VMM itself writes the core onto L1's output disk; the guest has no disk. (These words
    # go into vmm-args with the disks.)
    host-dump) disks=" --on-crash host-dump=/dev/vda" vmm_choices=ours ;;
    power-button) disks="" vmm_choices=ours ;;
esac
case "$crash" in
    kdump*)
        # kdump: the crash kernel is the same vmlinux (relocatable) with its own initramfs,
        # which goes inside the production one (an initramfs cannot hold itself): busybox and
        # the same /init, no kexec. The production image also gets /sbin/kexec with its loader
        # and libc.
        "$repo/guests/initramfs/build.sh" --out "$run/kdump-initrd.cpio.gz" --init "$repo/guests/initramfs/guest-init.sh"
        kexec_root="$("$here/setup-kexec-tools.sh")"
        l2_add+=(--add "$gk=kdump/vmlinux" --add "$run/kdump-initrd.cpio.gz=kdump/initrd.cpio.gz")
        while IFS= read -r f; do l2_add+=(--add "$kexec_root/$f=$f"); done < <(cd "$kexec_root" && find . -type f | sed 's|^\./||' | sort)
        ;;
esac
