#!/usr/bin/env bash
# Boot a Linux guest under OUR VMM on a real (nested) ppc64 KVM-HV, from one command:
#
#   L0  qemu-system-ppc64 -M pseries,cap-nested-hv=on (TCG, on this x86 machine)
#   L1  Debian 6.12 ppc64el kernel + kvm-hv, run-l1.sh's busybox initramfs; the payload is the
#       mode's scenario: scenarios/<mode>/run.sh (L1 half), scenario.sh and checks.py (host)
#   L2  ppc-vmm (static ppc64le build of vmm/) running the guest kernel + guests/initramfs
#
#   integration-tests/nested/boot-our-vmm.sh [--guest-kernel debian|ours|6.1] [--cpus N]
#                                            [--mode drive|crash|disk|boot-only|soak] [--timeout SECONDS]
#                                            [--memory SIZE (1G; crash mode 1536M)] [--no-peer]
#                                            [--crashkernel SIZE (crash mode, 384M)] [--l1-mem SIZE (3G)] [--l1-cpus N (2)]
#                                            [--append "GUEST CMDLINE"] [--guest-cmd "SHELL CMD"]
#                                            [--crash sysrq|bug|panic|hardlockup|second|unregistered
#                                                     |kdump|kdump-hardlockup|nmi-hung|host-dump
#                                                     |power-button|hotplug-add|hotplug-remove|hotplug-host-add
#                                                     |hotplug-add-rereg|hotplug-remove-rereg|hotplug-remove-stale
#                                                     |disk-enospc|disk-eio]
#                                            [--vmm ours|qemu-sid] [--l0 pseries|powernv] [--mmu radix|hash]
#                                            [--debuginfo FILE] [--run-dir DIR]
#                                            [--save dd|sparse]
#   integration-tests/nested/boot-our-vmm.sh --recheck RUN_DIR   (the checks only, on a past run)
#
# --guest-kernel ours (default) builds guests/kernel (cached), `6.1` its --series 6.1; `debian` boots the L1 kernel
# itself as the guest (no build needed); a path boots that vmlinux (an image with DWARF is
# stripped into the run directory first, and its DWARF serves drgn). --debuginfo FILE: the
# DWARF for drgn (default: the image itself if it has .debug_info, else vmlinux.debug beside
# it). fadump-matrix.sh --guest-kernel checks such a kernel's configuration first.
# --run-dir DIR: where the run's files go (default $PPC_VMM_CACHE/nested/runs/<timestamp>). --mode drive (default) makes the guest reboot once
# and then power off through our VMM, and asserts: guest init reached twice, nproc = --cpus,
# CPU hot-unplug/plug, VMM exit status 0.
# --mode crash: firmware-assisted dump end to end. The guest boots with fadump=on and a
# virtio-blk disk (L1's export disk, which L0 backs with $run/export.img); fadump-pattern
# records pattern pages and their physical addresses; the other vCPU is kept busy; the guest
# crashes (--crash: sysrq = `echo c > /proc/sysrq-trigger` (default), bug / panic = LKDTM
# BUG / PANIC, hardlockup = LKDTM HARDLOCKUP pinned to cpu1 then sysrq on cpu0, second = a
# second sysrq crash inside the capture kernel before release, unregistered = no fadump=on:
# the VMM must reboot plainly). The capture kernel saves /proc/vmcore raw onto the disk,
# releases the memory, registers again and carries on. --crashkernel SIZE sets the boot
# memory (crashkernel=, default 384M; write it in M). --save sparse saves the vmcore with
# guests/pattern/vmcore-save (every byte read, only non-zero 64 KiB blocks written, so the
# disk reads back identical) instead of dd: for guests of hosting size, whose untouched RAM
# would otherwise be written as gigabytes of zeros. --l1-mem SIZE: L1's memory (default 3G;
# crash mode raises it and the export disk for guests above 2 GiB). kdump / kdump-hardlockup: the same
# guest and crash as sysrq / hardlockup with kdump instead of fadump: no fadump=on, crashkernel=
# sized for kdump (CRASHKERNEL, default 256M), the guest's /init loads the same vmlinux with a
# capture initramfs as the crash kernel (`kexec -p`, Debian's kexec-tools, setup-kexec-tools.sh);
# the kdump kernel saves /proc/vmcore the same way and reboots (through our VMM) into
# production, which loads the crash kernel again. The host then cuts $run/vmcore out
# of the export image and analyses it with drgn (analyze-vmcore.py). No peer.
# --mode disk: L1 creates three backing files and our VMM gets `--disk path=/tmp/disk0.img
# --disk path=/tmp/disk1.img,readonly=on --disk path=/tmp/bench.img`; the guest writes a
# known pattern (seq 1 200000, checksum computed here on the host) to /dev/vda, syncs, drops
# caches and reads it back, tries to write /dev/vdb (must fail), runs three rounds of 64 MiB
# O_DIRECT dd write + read on /dev/vdc (guests/initramfs/diskbench.sh), reboots through our
# VMM, reads /dev/vda back again and powers off; L1 checksums its backing file (and the
# read-only one, unchanged) and passes it out; the host checksums it again. Unless
# --no-peer, QEMU 7.2 in the same L1 runs the same dd rounds and the throughput ratio is
# printed.
# --mode boot-only: the guest powers off as soon as it reaches /init. --guest-cmd runs a shell
# command in the guest first (drive mode) or in the capture kernel (crash mode).
# --l0 powernv: L0 is `-M powernv9` (L1 is a bare-metal KVM-HV host on OPAL) instead of pseries
# with cap-nested-hv; --mmu hash (powernv only: a nested pseries L1 runs radix guests only)
# passes `--mmu hash` to our VMM and `disable_radix` to the guest.
# Environment: VMM_LOG_LEVEL (ppc-vmm --log-level, default info). Prints the time of each phase (seconds since L0 start). Unless --no-peer,
# the same L1 boot then runs the same guest under QEMU 7.2/KVM (setup.sh's ppc64el build) as a
# peer and prints the ratio of "VMM start -> guest /init" between ours and QEMU.
# Uses integration-tests/nested/setup.sh for the L0 emulator, L1 kernel and busybox.
# Logs: $PPC_VMM_CACHE/nested/runs/<timestamp>/ (console.log, result.json with run-l1's phases).
# The checks (PASS:/FAIL: lines, exit status 1 on any failure) are lib/checks.py's.
set -euo pipefail
# The whole script is one function, parsed before it runs: editing this file while a run is
# in progress (it takes minutes) cannot break that run.
main() {

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}"
guest_kernel=ours cpus=2 mode=drive timeout=1500 memory="" peer=1 append="" guest_cmd="" crash=sysrq
recheck="" vmm=ours l0=pseries mmu=radix debuginfo="" run_dir="" save=dd l1_mem="" out_size=""
while [ $# -gt 0 ]; do
    case "$1" in
        --guest-kernel) guest_kernel="$2"; shift 2 ;;
        --cpus) cpus="$2"; shift 2 ;;
        --mode) mode="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        --memory) memory="$2"; shift 2 ;;
        --no-peer) peer=0; shift ;;
        --append) append="$2"; shift 2 ;;
        --guest-cmd) guest_cmd="$2"; shift 2 ;;
        --crash) crash="$2"; shift 2 ;;
        --recheck) recheck="$2"; shift 2 ;;
        --vmm) vmm="$2"; shift 2 ;;
        --l0) l0="$2"; shift 2 ;;
        --mmu) mmu="$2"; shift 2 ;;
        --debuginfo) debuginfo="$2"; shift 2 ;;
        --run-dir) run_dir="$2"; shift 2 ;;
        --crashkernel) export CRASHKERNEL="$2"; shift 2 ;;
        --save) save="$2"; shift 2 ;;
        --l1-mem) l1_mem="$2"; shift 2 ;;
        --l1-cpus) l1_cpus_opt="$2"; shift 2 ;;
        -h|--help) sed -n "2,$(grep -n '^set -euo' "$0" | cut -d: -f1)p" "$0" | sed '$d'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
log() { echo "nested/boot-our-vmm: $*" >&2; }

# Only the checks, on an earlier run directory (its console log, export image, settings).
[ -z "$recheck" ] || exec python3 "$here/lib/checks.py" "$recheck"

scenario="$here/scenarios/$mode"
[ -f "$scenario/run.sh" ] || { echo "unknown --mode $mode (no $scenario/run.sh)" >&2; exit 2; }
case "$l0:$mmu" in
    pseries:radix|powernv:radix|powernv:hash) ;;
    pseries:hash) echo "--mmu hash needs --l0 powernv (a nested pseries L1 runs radix guests only)" >&2; exit 2 ;;
    *) echo "unknown --l0 $l0 / --mmu $mmu" >&2; exit 2 ;;
esac

# shellcheck source=versions.sh
. "$here/versions.sh"
l1dir="$NESTED_CACHE/l1-kernel/${L1_KERNEL_VERSION//[~:]/_}"
# setup.sh is idempotent but also builds things this runner does not need; skip it when the
# L1 kernel is already unpacked and the L0 emulator is installed.
if [ ! -f "$l1dir/.done" ] || ! command -v qemu-system-ppc64 >/dev/null; then
    "$here/setup.sh" >/dev/null
fi

case "$guest_kernel" in
    ours) gk="$("$repo/guests/kernel/build.sh")/vmlinux" ;;
    6.1) gk="$("$repo/guests/kernel/build.sh" --series 6.1)/vmlinux" ;;
    debian) gk="$l1dir/vmlinux" ;;
    *) [ -f "$guest_kernel" ] || { echo "--guest-kernel $guest_kernel: no such file" >&2; exit 2; }
       gk="$(cd "$(dirname "$guest_kernel")" && pwd)/$(basename "$guest_kernel")" ;;
esac

log "building ppc-vmm (static, powerpc64le)"
if ! command -v powerpc64le-linux-gnu-gcc >/dev/null ||
    ! rustup target list --installed | grep -qx powerpc64le-unknown-linux-gnu; then
    "$repo/vmm/ci/ppc64-build-test.sh" >&2 # installs the cross toolchain and rustup target
fi
export CARGO_TARGET_POWERPC64LE_UNKNOWN_LINUX_GNU_LINKER=powerpc64le-linux-gnu-gcc
tdir="${CARGO_TARGET_DIR:-$repo/target}/ppc64-static" # crt-static build, kept apart
(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$tdir" \
    cargo build -q -p vmm --release --target powerpc64le-unknown-linux-gnu)
vmm_bin="$tdir/powerpc64le-unknown-linux-gnu/release/ppc-vmm"
remote_bin="$tdir/powerpc64le-unknown-linux-gnu/release/ppc-remote" # the same build makes it

run="${run_dir:-$cache/nested/runs/$(date -u +%Y%m%dT%H%M%S)}"
mkdir -p "$run"
run="$(cd "$run" && pwd)"
# A kernel the user brings may carry its DWARF (hundreds of MB): L1 gets a stripped copy
# (same build ID), drgn the original.
if [ -n "$(${CROSS_OBJDUMP:-powerpc64le-linux-gnu-objdump} -h "$gk" 2>/dev/null | awk '$2 == ".debug_info"')" ]; then
    : "${debuginfo:=$gk}"
    powerpc64le-linux-gnu-objcopy --strip-debug "$gk" "$run/vmlinux"
    log "stripped $gk's debug info into $run/vmlinux"
    gk="$run/vmlinux"
fi
[ -z "$debuginfo" ] || echo "$(cd "$(dirname "$debuginfo")" && pwd)/$(basename "$debuginfo")" > "$run/debuginfo"

# The scenario's host half: what its guest and L1 need beyond these defaults.
action=commands disks="" out_image=0 vmm_choices=ours l2_add=() l1_add=()
# shellcheck source=scenarios/crash/scenario.sh
. "$scenario/scenario.sh"
case " $vmm_choices " in
    *" $vmm "*) ;;
    *) echo "--vmm $vmm: --mode $mode runs under ${vmm_choices// / or }" >&2; exit 2 ;;
esac
mmu_arg=""
[ "$mmu" = hash ] && append="disable_radix${append:+ $append}" mmu_arg=" --mmu hash"
memory="${memory:-1G}"

case "$save" in dd|sparse) ;; *) echo "unknown --save $save" >&2; exit 2 ;; esac
pattern_bin="$("$repo/guests/pattern/build.sh")"
save_bin="$("$repo/guests/pattern/build.sh" vmcore-save)"
"$repo/guests/initramfs/build.sh" --out "$run/l2-initrd.cpio.gz" --init "$repo/guests/initramfs/guest-init.sh" \
    --add "$pattern_bin=bin/fadump-pattern" --add "$save_bin=bin/vmcore-save" \
    --add "$repo/guests/initramfs/diskbench.sh=bin/diskbench" "${l2_add[@]}"

# The settings, in the run directory (lib/checks.py and --recheck read them) and in the payload.
echo "--kernel /payload/guest/vmlinux --initramfs /payload/guest/initrd.cpio.gz --cpus $cpus --memory $memory${VMM_PREFAULT:+,prefault=$VMM_PREFAULT} --serial tty --log-level ${VMM_LOG_LEVEL:-info}$disks$mmu_arg${VMM_PRESERVE:+ --fadump-preserve $VMM_PRESERVE}" > "$run/vmm-args"
echo "console=hvc0 guest.action=$action${append:+ $append}" > "$run/vmm-cmdline"
printf '%s' "$guest_cmd" > "$run/vmm-guest-cmd"
echo "$mode" > "$run/vmm-mode"
echo "$crash" > "$run/vmm-crash"
echo "$save" > "$run/vmm-save"
echo "$gk" > "$run/guest-kernel"
echo "$vmm" > "$run/vmm-which"
echo "$l0" > "$run/l0-machine"

# The payload run-l1.sh packs into L1 (symlinks are followed): the scenario's run.sh, the L1
# library it sources, our VMM, the guest and the settings.
payload="$run/payload"
rm -rf "$payload"
mkdir -p "$payload/guest"
ln -s "$scenario/run.sh" "$payload/run.sh"
ln -s "$here/lib/l1-vmm.sh" "$payload/l1-vmm.sh"
ln -s "$vmm_bin" "$payload/ppc-vmm"
[ -x "$remote_bin" ] && ln -s "$remote_bin" "$payload/ppc-remote"
ln -s "$gk" "$payload/guest/vmlinux"
ln -s "$run/l2-initrd.cpio.gz" "$payload/guest/initrd.cpio.gz"
for f in vmm-args vmm-cmdline vmm-guest-cmd vmm-crash vmm-save; do ln -s "$run/$f" "$payload/$f"; done
# The scenario's L1 tools (FILE=NAME: FILE as /payload/NAME).
for a in "${l1_add[@]}"; do ln -s "${a%%=*}" "$payload/${a#*=}"; done
# --vmm qemu-sid: the same run with QEMU 11.1 (Debian sid) as the VMM instead of ours.
[ "$vmm" = ours ] || ln -s "$("$here/setup-qemu-sid.sh")" "$payload/qemu-sid"
if [ "$peer" = 1 ]; then
    qroot="$NESTED_CACHE/qemu-l1/${QEMU_L1_VERSION//[~:]/_}/root"
    [ -x "$qroot/usr/bin/qemu-system-ppc64" ] || "$here/setup.sh" >/dev/null
    echo "-smp $cpus -m $memory" > "$run/peer-args"
    ln -s "$qroot" "$payload/qemu"
    ln -s "$run/peer-args" "$payload/peer-args"
fi

# L1's CPUs (L0 -smp), default 2. An L2 vCPU that runs without exits (busy in userspace, or
# spinning in its kernel) can starve a 1-CPU L1 under L0's TCG nested-HV: L1 printed nothing
# more for 8 minutes with a busy loop on the guest's cpu1 (crash mode), and for over 2
# minutes after a guest reboot (disk mode); the same runs complete with 2 L1 CPUs.
# nmi_watchdog=0: L1's hard-lockup detector takes an L1 CPU that runs one L2 vCPU for 10+ s
# without an exit (a kdump kernel's parked secondary spins there for good) for a locked-up
# CPU and sends it an NMI IPI (H_SIGNAL_SYS_RESET to L0); under L0's TCG nested-HV that System
# Reset landed in the L2 guest instead ("Oops: System Reset" at kexec_wait in the kdump kernel,
# right after L1's "watchdog: CPU 0 detected hard LOCKUP on other CPUs 1"), killing the capture.
out_args=()
if [ "$out_image" = 1 ]; then
    # L0 gives L1 one raw disk (sparse) to carry results out: the vmcore, the disk backing file.
    out_args=(--out-image "$run/export.img" --out-size "${out_size:-4G}")
fi
# --l1-cpus (or L1_CPUS): L1's CPUs; one more than the guest's when every guest vCPU spins
# with interrupts off (nmi-hung), or L0's TCG nested-HV leaves L1 none to run on.
l1_cpus="${l1_cpus_opt:-${L1_CPUS:-2}}"
log "L0: qemu-system-ppc64 $l0 TCG, L1 -smp $l1_cpus; log in $run/console.log"
# run-l1.sh serializes runs (a lock) and waits for other emulators (--wait-idle). Its status
# is the scenario's (the VMM's); the checks below are the verdict either way.
rc=0
"$here/run-l1.sh" "$payload" --machine "$l0" --smp "$l1_cpus" --mem "${l1_mem:-3G}" --timeout "$timeout" \
    --append "nmi_watchdog=0" --wait-idle "${NESTED_WAIT_IDLE:-600}" --run-dir "$run" \
    --stamped-console "${out_args[@]}" || rc=$?
log "run-l1.sh exited $rc"
exec python3 "$here/lib/checks.py" "$run"
}
main "$@"
