#!/usr/bin/env bash
# Boot a Linux guest under OUR VMM on a real (nested) ppc64 KVM-HV, from one command:
#
#   L0  qemu-system-ppc64 -M pseries,cap-nested-hv=on (TCG, on this x86 machine)
#   L1  Debian 6.12 ppc64el kernel + kvm-hv, busybox initramfs (l1-init-vmm.sh)
#   L2  ppc-vmm (static ppc64le build of vmm/) running the guest kernel + guests/initramfs
#
#   integration-tests/nested/boot-our-vmm.sh [--guest-kernel debian|ours|6.1] [--cpus N]
#                                            [--mode drive|crash|disk|boot-only] [--timeout SECONDS]
#                                            [--memory SIZE (1G; crash mode 1536M)] [--no-peer]
#                                            [--append "GUEST CMDLINE"] [--guest-cmd "SHELL CMD"]
#                                            [--crash sysrq|bug|panic|hardlockup|second|unregistered
#                                                     |kdump|kdump-hardlockup]
#                                            [--vmm ours|qemu-sid] [--l0 pseries|powernv] [--mmu radix|hash]
#                                            [--debuginfo FILE] [--run-dir DIR]
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
# releases the memory, registers again and carries on. kdump / kdump-hardlockup: the same
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
# Logs: $PPC_VMM_CACHE/nested/runs/<timestamp>/.
set -euo pipefail
# The whole script is one function, parsed before it runs: editing this file while a run is
# in progress (it takes minutes) cannot break that run.
main() {

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}"
guest_kernel=ours cpus=2 mode=drive timeout=1500 memory="" peer=1 append="" guest_cmd="" crash=sysrq
recheck="" vmm=ours l0=pseries mmu=radix debuginfo="" run_dir=""
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
        -h|--help) sed -n '2,52p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
log() { echo "nested/boot-our-vmm: $*" >&2; }

if [ -n "$recheck" ]; then
    # Only the checks, on an earlier run directory (its console log, export image, settings).
    run="$(cd "$recheck" && pwd)"
    mode="$(cat "$run/vmm-mode")" crash="$(cat "$run/vmm-crash" 2>/dev/null || echo sysrq)"
    cpus="$(sed -n 's/.*--cpus \([0-9]*\).*/\1/p' "$run/vmm-args")"
    gk="$(cat "$run/guest-kernel" 2>/dev/null || echo "")"
    vmm="$(cat "$run/vmm-which" 2>/dev/null || echo ours)"
    grep -q -- "--mmu hash" "$run/vmm-args" && mmu="hash"
else
# shellcheck source=versions.sh
. "$here/versions.sh"
l1dir="$NESTED_CACHE/l1-kernel/${L1_KERNEL_VERSION//[~:]/_}"
# setup.sh is idempotent but also builds things this runner does not need; skip it when the
# L1 kernel is already unpacked and the L0 emulator is installed.
if [ ! -f "$l1dir/.done" ] || ! command -v qemu-system-ppc64 >/dev/null; then
    "$here/setup.sh" >/dev/null
fi
l1vmlinux="$l1dir/vmlinux"
moddir="$(echo "$l1dir"/root/lib/modules/*/kernel/arch/powerpc/kvm)"

case "$guest_kernel" in
    ours) gk="$("$repo/guests/kernel/build.sh")/vmlinux" ;;
    6.1) gk="$("$repo/guests/kernel/build.sh" --series 6.1)/vmlinux" ;;
    debian) gk="$l1vmlinux" ;;
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

run="${run_dir:-$cache/nested/runs/$(date -u +%Y%m%dT%H%M%S)}"
mkdir -p "$run/mods"
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
xz -dc "$moddir/kvm.ko.xz" > "$run/mods/kvm.ko"
xz -dc "$moddir/kvm-hv.ko.xz" > "$run/mods/kvm-hv.ko"

case "$l0:$mmu" in
    pseries:radix|powernv:radix|powernv:hash) ;;
    pseries:hash) echo "--mmu hash needs --l0 powernv (a nested pseries L1 runs radix guests only)" >&2; exit 2 ;;
    *) echo "unknown --l0 $l0 / --mmu $mmu" >&2; exit 2 ;;
esac
mmu_arg=""
[ "$mmu" = hash ] && append="disable_radix${append:+ $append}" mmu_arg=" --mmu hash"
action=commands
case "$mode" in
    drive) ;;
    crash)
        case "$crash" in
            # crashkernel= sets fadump's boot-memory size (the capture kernel's RAM). Linux caps
            # it at RAM/4 and needs at least 320M, so it takes >= 1280 MiB of RAM: crash mode
            # defaults to 1536M, and 384M (not Linux's own 320M default) shows it was honoured.
            sysrq|bug|panic|hardlockup|second) append="fadump=on crashkernel=${CRASHKERNEL:-384M}${append:+ $append}" ;;
            unregistered) ;;
            # kdump: the crash kernel (vmlinux + capture initramfs, nr_cpus=1) runs inside the
            # reservation; 256M leaves it ample room (busybox initramfs, dd with 1 MiB blocks).
            kdump|kdump-hardlockup) append="crashkernel=${CRASHKERNEL:-256M} guest.kdump=1${append:+ $append}" ;;
            *) echo "unknown --crash $crash" >&2; exit 2 ;;
        esac
        peer=0
        memory="${memory:-1536M}" ;;
    boot-only) action=poweroff ;;
    disk) ;;
    *) echo "unknown --mode $mode" >&2; exit 2 ;;
esac
pattern_bin="$("$repo/guests/pattern/build.sh")"
memory="${memory:-1G}"
kdump_add=()
if [ "$mode" = crash ] && case "$crash" in kdump*) true ;; *) false ;; esac; then
    # kdump: the crash kernel is the same vmlinux (relocatable) with its own initramfs, which
    # goes inside the production one (an initramfs cannot hold itself): busybox and the same
    # /init, no kexec. The production image also gets /sbin/kexec with its loader and libc.
    "$repo/guests/initramfs/build.sh" --out "$run/kdump-initrd.cpio.gz" --init "$repo/guests/initramfs/guest-init.sh"
    kexec_root="$("$here/setup-kexec-tools.sh")"
    kdump_add=(--add "$gk=kdump/vmlinux" --add "$run/kdump-initrd.cpio.gz=kdump/initrd.cpio.gz")
    while IFS= read -r f; do kdump_add+=(--add "$kexec_root/$f=$f"); done < <(cd "$kexec_root" && find . -type f | sed 's|^\./||' | sort)
fi
"$repo/guests/initramfs/build.sh" --out "$run/l2-initrd.cpio.gz" --init "$repo/guests/initramfs/guest-init.sh" \
    --add "$pattern_bin=bin/fadump-pattern" --add "$repo/guests/initramfs/diskbench.sh=bin/diskbench" "${kdump_add[@]}"
disks=""
[ "$mode" = disk ] && disks=" --disk path=/tmp/disk0.img --disk path=/tmp/disk1.img,readonly=on --disk path=/tmp/bench.img"
# The vmcore disk is L1's export disk itself, so the dump lands in $run/export.img.
[ "$mode" = crash ] && disks=" --disk path=/dev/vda"
# L0 gives L1 one raw disk (sparse) to carry results out: the vmcore, the disk backing file.
export_img=""
if [ "$mode" = crash ] || [ "$mode" = disk ]; then
    export_img="$run/export.img"
    truncate -s 0 "$export_img" && truncate -s 4G "$export_img"
    xz -dc "$moddir/../../../drivers/block/virtio_blk.ko.xz" > "$run/mods/virtio_blk.ko"
fi
echo "--kernel /guest/vmlinux --initramfs /guest/initrd.cpio.gz --cpus $cpus --memory $memory --serial tty --log-level ${VMM_LOG_LEVEL:-info}$disks$mmu_arg" > "$run/vmm-args"
echo "console=hvc0 guest.action=$action${append:+ $append}" > "$run/vmm-cmdline"
printf '%s' "$guest_cmd" > "$run/vmm-guest-cmd"
echo "$mode" > "$run/vmm-mode"
echo "$crash" > "$run/vmm-crash"
echo "$gk" > "$run/guest-kernel"
peer_add=()
# --vmm qemu-sid: the same run with QEMU 11.1 (Debian sid) as the VMM instead of ours.
qsid_root=""
case "$vmm" in
    ours) ;;
    qemu-sid)
        [ "$mode" = crash ] || { echo "--vmm qemu-sid is for --mode crash" >&2; exit 2; }
        qsid_root="$("$here/setup-qemu-sid.sh")" ;;
    *) echo "unknown --vmm $vmm" >&2; exit 2 ;;
esac
echo "$vmm" > "$run/vmm-which"
qroot="$NESTED_CACHE/qemu-l1/${QEMU_L1_VERSION//[~:]/_}/root"
if [ "$peer" = 1 ]; then
    [ -x "$qroot/usr/bin/qemu-system-ppc64" ] || "$here/setup.sh" >/dev/null
    echo "-smp $cpus -m $memory" > "$run/peer-args"
    peer_add=(--add "$qroot=qemu" --add "$run/peer-args=peer-args")
fi
"$repo/guests/initramfs/build.sh" --out "$run/l1-initrd.cpio.gz" --init "$here/l1-init-vmm.sh" "${peer_add[@]}" \
    --add "$vmm_bin=ppc-vmm" --add "$gk=guest/vmlinux" --add "$run/l2-initrd.cpio.gz=guest/initrd.cpio.gz" \
    --add "$run/mods/kvm.ko=modules/kvm.ko" --add "$run/mods/kvm-hv.ko=modules/kvm-hv.ko" \
    --add "$run/vmm-args=vmm-args" --add "$run/vmm-cmdline=vmm-cmdline" --add "$run/vmm-guest-cmd=vmm-guest-cmd" --add "$run/vmm-mode=vmm-mode" \
    --add "$run/vmm-crash=vmm-crash" ${export_img:+--add "$run/mods/virtio_blk.ko=modules/virtio_blk.ko"} \
    ${qsid_root:+--add "$qsid_root=qemu-sid"}

# L1's CPUs (L0 -smp), default 2. An L2 vCPU that runs without exits (busy in userspace, or
# spinning in its kernel) can starve a 1-CPU L1 under L0's TCG nested-HV: L1 printed nothing
# more for 8 minutes with a busy loop on the guest's cpu1 (crash mode), and for over 2
# minutes after a guest reboot (disk mode); the same runs complete with 2 L1 CPUs.
l1_cpus="${L1_CPUS:-2}"
export L1_CPUS="$l1_cpus"
# One emulator at a time on the shared 2-core host: wait (up to 10 min) for others to finish.
for _ in $(seq "${NESTED_WAIT_IDLE:-600}"); do pgrep -f '^qemu-system-ppc' >/dev/null || break; sleep 1; done
pgrep -f '^qemu-system-ppc' >/dev/null && log "warning: another emulator is running; timings will suffer"
log "L0: qemu-system-ppc64 $l0 TCG, L1 -smp $l1_cpus; log in $run/console.log"
echo "$l0" > "$run/l0-machine"
python3 - "$run" "$timeout" "$l1vmlinux" "$export_img" "$l0" <<'PY'
import subprocess, sys, time, os, signal
run, timeout, l1, export_img, l0 = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
if l0 == "powernv":
    # No -nodefaults: without the default BMC, L1's power-off never ends QEMU.
    machine = ["-M", "powernv9"]
else:
    machine = ["-M", "pseries,cap-nested-hv=on,x-vof=on", "-cpu", "power9", "-nodefaults",
               "-serial", "mon:stdio"]
# nmi_watchdog=0: L1's hard-lockup detector takes an L1 CPU that runs one L2 vCPU for 10+ s
# without an exit (a kdump kernel's parked secondary spins there for good) for a locked-up CPU
# and sends it an NMI IPI (H_SIGNAL_SYS_RESET to L0); under L0's TCG nested-HV that System Reset
# landed in the L2 guest instead ("Oops: System Reset" at kexec_wait in the kdump kernel, right
# after L1's "watchdog: CPU 0 detected hard LOCKUP on other CPUs 1"), killing the capture.
cmd = ["qemu-system-ppc64"] + machine + [
       "-accel", "tcg", "-smp", os.environ.get("L1_CPUS", "1"), "-m", "3G", "-nographic",
       "-kernel", l1, "-initrd", f"{run}/l1-initrd.cpio.gz",
       "-append", "console=hvc0 quiet nmi_watchdog=0"]
if export_img:
    cmd += ["-drive", f"file={export_img},format=raw,if=none,id=export,cache=unsafe",
            "-device", "virtio-blk-pci,drive=export"]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
with open(f"{run}/console.log", "w") as logf:
    import selectors
    sel = selectors.DefaultSelector(); sel.register(p.stdout, selectors.EVENT_READ)
    buf = b""
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            print("TIMEOUT", flush=True); p.kill(); break
        if not sel.select(min(left, 5)):
            if p.poll() is not None: break
            continue
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk: break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            s = line.decode("utf-8", "replace").rstrip("\r")
            stamp = f"[{time.monotonic() - t0:8.2f}] "
            logf.write(stamp + s + "\n"); logf.flush()
            print(stamp + s, flush=True)
    p.wait()
PY
fi

logf="$run/console.log"
first() { grep -m1 -- "$1" "$logf" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'; }
nth() { grep -- "$1" "$logf" | sed -n "$2"'s/^\[ *\([0-9.]*\)\].*/\1/p'; }
echo
echo "== phases (host seconds since L0 start) =="
printf '%-34s %s\n' "L1 at /init" "$(first L1-INIT-REACHED)"
printf '%-34s %s\n' "kvm-hv loaded" "$(first L1-KVM-LOADED)"
printf '%-34s %s\n' "our VMM started" "$(first L1-VMM-START)"
printf '%-34s %s\n' "guest first console line" "$(first 'Linux version')"
printf '%-34s %s\n' "guest /init reached (boot 1)" "$(nth GUEST-INIT-REACHED 1)"
printf '%-34s %s\n' "guest /init reached (after reboot)" "$(nth GUEST-INIT-REACHED 2)"
if [ "$mode" = disk ]; then
    printf '%-34s %s\n' "guest wrote + read back /dev/vda" "$(first 'GUEST-VDA-WRITTEN sum=[0-9a-f]')"
    printf '%-34s %s\n' "guest read-only write attempt" "$(first 'GUEST-VDB-RO-ATTR')"
    printf '%-34s %s\n' "guest /dev/vda after reboot" "$(first 'GUEST-VDA-AFTER-REBOOT sum=[0-9a-f]')"
fi
printf '%-34s %s\n' "L1 result" "$(first L1-RESULT)"
grep -m1 L1-RESULT "$logf" || true
# after VMM_MARK: seconds from VMM_MARK to the first GUEST-INIT-REACHED after it
to_init() {
    awk -v mark="$1" '
        { t = substr($0, 2, index($0, "]") - 2) + 0 }
        index($0, mark) && !start { start = t; next }
        start && /GUEST-INIT-REACHED/ { printf "%.2f", t - start; exit }' "$logf"
}
ours_init="$(to_init L1-VMM-START)"
if grep -q L1-PEER-START "$logf"; then
    peer_init="$(to_init L1-PEER-START)"
    printf '%-34s %s\n' "peer (QEMU 7.2) started" "$(first L1-PEER-START)"
    printf '%-34s %s\n' "peer guest /init reached" "$(first L1-PEER-START >/dev/null; awk '/L1-PEER-START/{f=1} f&&/GUEST-INIT-REACHED/{print substr($0,2,index($0,"]")-2)+0; exit}' "$logf")"
    echo "VMM start -> guest /init: ours ${ours_init:-?} s, QEMU 7.2 ${peer_init:-?} s"
    if [ -n "$ours_init" ] && [ -n "$peer_init" ]; then
        awk -v a="$ours_init" -v b="$peer_init" 'BEGIN { printf "ratio ours/QEMU = %.2f\n", a / b }'
    fi
else
    echo "VMM start -> guest /init: ours ${ours_init:-?} s"
fi

# Crash -> back in production, host seconds: from the kernel's first line about the crash to
# GUEST-PRODUCTION (fadump: re-registered; kdump: rebooted, crash kernel loaded again).
crash_to_production() {
    local a b
    a="$(first "sysrq: Trigger a crash\|Performing direct entry \(BUG\|PANIC\)")"
    b="$(first "GUEST-PRODUCTION nproc=[0-9]")"
    [ -n "$a" ] && [ -n "$b" ] &&
        awk -v a="$a" -v b="$b" 'BEGIN { printf "crash -> back in production: %.2f s (host)\n", b - a }'
    return 0
}
fail=0
second_boot=0
[ "$crash" = second ] && second_boot=1
check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; fail=1; fi; }
inits=$(grep -c GUEST-INIT-REACHED "$logf" || true)
if [ "$mode" = drive ]; then
    check "guest reached init twice (boot + reboot)" '[ "$inits" -ge 2 ]'
    check "nproc = $cpus" 'grep -q "GUEST-INIT-REACHED nproc=$cpus" "$logf"'
    check "cpu1 offline (stop-self) and back online (start-cpu)" \
        'grep -q "GUEST-CPU1-OFFLINE nproc=$((cpus - 1))" "$logf" && grep -q "GUEST-CPU1-ONLINE nproc=$cpus" "$logf"'
elif [ "$mode" = disk ]; then
    want="$(seq 1 200000 | sha256sum | cut -d' ' -f1)"
    size="$(seq 1 200000 | wc -c)"
    echo "expected pattern: $size bytes, sha256 $want"
    grep -E 'GUEST-(DMESG|DEV|DATA|DD|VDA|VDB|RO-)|L1-(DISKS|BACKING|RO-BACKING)|PCI .* slot|virtio|MMIO' "$logf" | grep -v 'GUEST-RUN' | head -80 || true
    check "guest reached init twice (boot + reboot)" '[ "$inits" -ge 2 ]'
    check "guest sees /dev/vda and /dev/vdb" 'grep -q "GUEST-DEV .*/dev/vda" "$logf" && grep -q "GUEST-DEV .*/dev/vdb" "$logf"'
    check "guest generated the pattern ($size bytes)" 'grep -q "GUEST-DATA size=$size sum=$want" "$logf"'
    check "written to /dev/vda, synced, read back identical (caches dropped)" 'grep -q "GUEST-VDA-WRITTEN sum=$want" "$logf"'
    check "read-only /dev/vdb shows its marker" 'grep -q "GUEST-VDB-MARKER RO-DISK-MARKER" "$logf"'
    check "read-only /dev/vdb refuses the write" 'grep -qE "GUEST-RO-WRITE-REFUSED: [^$]" "$logf" && ! grep -qE "GUEST-RO-WRITE-ACCEPTED$" "$logf"'
    check "/dev/vda identical after a reboot through our VMM" 'grep -q "GUEST-VDA-AFTER-REBOOT sum=$want" "$logf"'
    check "L1 backing file holds the data after power-off" 'grep -q "L1-BACKING-FILE sum=$want" "$logf"'
    ro_before="$(sed -n 's/.*L1-DISKS-CREATED ro-sum-before=\([0-9a-f]*\).*/\1/p' "$logf" | head -1)"
    check "read-only backing file unchanged" '[ -n "$ro_before" ] && grep -q "L1-RO-BACKING ro-sum-after=$ro_before" "$logf"'
    host_sum="$(head -c "$size" "$run/export.img" | sha256sum | cut -d' ' -f1)"
    echo "backing file passed out of L1, on the x86 host: sha256 $host_sum"
    check "backing file, passed out of L1, holds the data on the x86 host" '[ "$host_sum" = "$want" ]'
    # Throughput: ours before L1-PEER-START, QEMU's after; median of the three rounds.
    bench() { # $1 = ours|peer, $2 = write|read: the median MB/s of the rounds (mawk: no asort)
        awk -v who="$1" -v what="$2" '
            /L1-PEER-START/ { peer = 1 }
            /GUEST-DISKBENCH dev=/ && ((who == "peer") == peer) {
                for (i = 1; i <= NF; i++) if (index($i, what "_MBps=") == 1) { split($i, kv, "="); print kv[2] + 0 }
            }' "$logf" | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; printf "%.1f", v[int((NR + 1) / 2)] }'
    }
    grep -h 'GUEST-DISKBENCH dev=' "$logf" | sed 's/^.*GUEST-DISKBENCH/GUEST-DISKBENCH/' || true
    ours_w="$(bench ours write || true)" ours_r="$(bench ours read || true)"
    check "direct-I/O rounds ran under our VMM (64 MiB write + read)" '[ -n "$ours_w" ] && [ -n "$ours_r" ] && ! grep -q GUEST-DISKBENCH-ERROR "$logf"'
    if grep -q L1-PEER-START "$logf"; then
        peer_w="$(bench peer write || true)" peer_r="$(bench peer read || true)"
        check "the same rounds ran under QEMU 7.2 in the same L1" '[ -n "$peer_w" ] && [ -n "$peer_r" ]'
        if [ -n "$peer_w" ] && [ -n "$peer_r" ] && [ -n "$ours_w" ] && [ -n "$ours_r" ]; then
            echo "dd 64 MiB O_DIRECT, median MB/s: write ours $ours_w QEMU $peer_w, read ours $ours_r QEMU $peer_r"
            awk -v a="$ours_w" -v b="$peer_w" -v c="$ours_r" -v d="$peer_r" \
                'BEGIN { printf "throughput ratio ours/QEMU: write %.2f, read %.2f\n", a / b, c / d }'
        fi
    fi
elif [ "$mode" = crash ] && [ "$crash" = unregistered ]; then
    check "guest did not register fadump" 'grep -q "GUEST-FADUMP-REGISTERED=absent" "$logf" || grep -q "GUEST-FADUMP-REGISTERED=0" "$logf"'
    # Our VMM's own log says what it did; under another VMM (--vmm qemu-sid) the guest-side
    # checks below are the evidence.
    if [ "$vmm" = ours ]; then
        check "VMM: os-term without a registered dump -> plain reboot" 'grep -q "ibm,os-term with no dump registered" "$logf"'
        check "VMM wrote no dump" '! grep -q "fadump: dump written" "$logf"'
    fi
    check "guest booted again, with no /proc/vmcore" '[ "$inits" -ge 2 ] && grep -q "GUEST-AFTER-REBOOT vmcore=none" "$logf"'
elif [ "$mode" = crash ] && case "$crash" in kdump*) true ;; *) false ;; esac; then
    # kdump instead of fadump: same guest, same crash, same save, same drgn checks.
    check "the guest ran until the requested crash (no earlier reboot)" '! grep -q L1-UNEXPECTED-REBOOT "$logf"'
    ck="$(sed -n 's/.*crashkernel=\([0-9]*\)M.*/\1/p' "$run/vmm-cmdline")"
    check "crashkernel=${ck}M reserved for the kdump kernel" 'grep -q "Reserving ${ck}MB of memory at [0-9]*MB for crashkernel" "$logf"'
    check "no fadump: not registered, no dump written by the VMM" \
        '! grep -q "Registration is successful" "$logf" && ! grep -q "fadump: dump written" "$logf" && grep -qE "GUEST-FADUMP-REGISTERED=(absent|0)" "$logf"'
    check "crash kernel loaded with kexec -p (/sys/kernel/kexec_crash_loaded = 1)" \
        'grep -q "GUEST-KDUMP-LOADED crash_loaded=1" "$logf" && grep -q "GUEST-KEXEC-CRASH-LOADED=1" "$logf"'
    grep -m1 "GUEST-KDUMP-LOADED" "$logf" | sed 's/^.*GUEST-KDUMP-LOADED/GUEST-KDUMP-LOADED/' || true
    grep "GUEST-KEXEC " "$logf" | grep -v GUEST-RUN | head -5 | sed 's/^\[ *[0-9.]*\] //' || true
    check "pattern pages recorded with physical addresses" '[ "$(grep -v GUEST-RUN "$logf" | grep -c "FADUMP-PATTERN seed=0x[0-9a-f]* page=[0-9]* vaddr=0x[0-9a-f]* phys=0x[0-9a-f]*")" -ge 4 ]'
    # What the crashing kernel says about stopping the other CPU (kexec/crash.c), and how our
    # VMM answered the NMI IPI (H_SIGNAL_SYS_RESET) it tried first.
    grep -E "Sending IPI to other CPUs|IPI complete|cpu\(s\) not responding|Activate system reset|unhandled hcall|kexec: Starting switchover|Starting crashdump kernel" "$logf" | head -10 | sed 's/^/  crash: /' || true
    check "kdump kernel booted (nr_cpus=1) and saw the dump (/proc/vmcore)" \
        '[ "$inits" -ge 2 ] && [ "$(grep GUEST-INIT-REACHED "$logf" | sed -n 2p | grep -c "nproc=1 ")" = 1 ] && grep -q "GUEST-VMCORE .*/proc/vmcore" "$logf"'
    grep -m1 "GUEST-CMDLINE" "$logf" | sed 's/^.*GUEST-CMDLINE/kdump kernel command line:/' || true
    grep -m1 "GUEST-VMCORE-NOTES" "$logf" | sed 's/^.*GUEST-VMCORE-NOTES/kdump kernel, CPU notes in \/proc\/vmcore:/' || true
    saved="$(sed -n 's/.*GUEST-VMCORE-SAVED bytes=\([0-9][0-9]*\).*/\1/p' "$logf" | head -1)"
    check "kdump kernel saved /proc/vmcore to the virtio-blk disk" '[ -n "$saved" ] && [ "$saved" -gt 0 ]'
    if [ -n "$saved" ] && [ "$saved" -gt 0 ]; then
        head -c "$saved" "$run/export.img" > "$run/vmcore"
        echo "vmcore: $run/vmcore ($saved bytes)"
        check "vmcore on the host is an ELF64 core" '[ "$(head -c 5 "$run/vmcore" | od -An -c | tr -d " ")" = "177ELF002" ]'
    fi
    check "rebooted through our VMM into production, crash kernel loaded again" \
        '[ "$inits" -eq 3 ] && [ "$(grep -c "GUEST-KDUMP-LOADED crash_loaded=1" "$logf")" -ge 2 ] && grep -q "GUEST-PRODUCTION nproc=$cpus .*kexec_crash_loaded=1 vmcore=none" "$logf"'
    echo "== kdump phases (host seconds since L0 start) =="
    printf '%-34s %s\n' "crash triggered" "$(first "GUEST-CRASHING kind=[a-z]")"
    printf '%-34s %s\n' "kernel's crash line" "$(first "sysrq: Trigger a crash")"
    printf '%-34s %s\n' "kdump kernel /init" "$(nth GUEST-INIT-REACHED 2)"
    printf '%-34s %s\n' "vmcore saved" "$(first "GUEST-VMCORE-SAVED bytes=[0-9]")"
    printf '%-34s %s\n' "production /init (after reboot)" "$(nth GUEST-INIT-REACHED 3)"
    printf '%-34s %s\n' "crash kernel loaded, production" "$(first "GUEST-PRODUCTION nproc=[0-9]")"
    grep -m1 "L1-PHASE crash-to-capture-init" "$logf" | sed 's/^\[ *[0-9.]*\] //' || true
    grep -m1 "GUEST-VMCORE-SAVED bytes=[0-9]" "$logf" | sed 's/^.*GUEST-VMCORE-SAVED/GUEST-VMCORE-SAVED/' || true
    crash_to_production
    if [ -s "$run/vmcore" ]; then
        kdir="$(dirname "$gk")"
        if [ -x "$here/drgn-env.sh" ] && [ -f "$here/analyze-vmcore.py" ] && [ -f "$kdir/vmlinux.debug" ]; then
            py="$("$here/drgn-env.sh")"
            # kdump-hardlockup: cpu1 spins with interrupts off and only an NMI (on pseries
            # H_SIGNAL_SYS_RESET, which our VMM does not offer) could stop it, so the crashing
            # kernel gives up on it and kdump has no registers for it: expected, and checked.
            expect=()
            [ "$crash" = kdump-hardlockup ] && expect=(--expect-missing-prstatus 1)
            if "$py" "$here/analyze-vmcore.py" --vmcore "$run/vmcore" --vmlinux "$kdir/vmlinux.debug" \
                --console "$logf" --cpus "$cpus" --crash-symbol sysrq_handle_crash "${expect[@]}" | tee "$run/drgn.txt"; then
                echo "PASS: drgn analysis of the vmcore"
            else
                echo "FAIL: drgn analysis of the vmcore"; fail=1
            fi
        else
            echo "FAIL: drgn analysis not available (drgn-env.sh / analyze-vmcore.py / vmlinux.debug)"; fail=1
        fi
    fi
elif [ "$mode" = crash ]; then
    check "the guest ran until the requested crash (no earlier reboot)" '! grep -q L1-UNEXPECTED-REBOOT "$logf"'
    ck="$(sed -n 's/.*crashkernel=\([0-9]*\)M.*/\1/p' "$run/vmm-cmdline")"
    # The reservation is the boot memory plus the CPU-state and HPTE areas (24 MB more for
    # a 1.5 GiB hash guest), so it must be at least the crashkernel= size.
    reserved="$(sed -n 's/.*fadump: Reserved \([0-9]*\)MB of memory.*/\1/p' "$logf" | head -1)"
    [ -n "$ck" ] &&
        check "boot memory sized by crashkernel=${ck}M (reserved ${reserved:-?} MB)" '[ -n "$reserved" ] && [ "$reserved" -ge "$ck" ]'
    check "guest registered fadump with our firmware (registered = 1)" 'grep -q "Registration is successful" "$logf" && grep -q "GUEST-FADUMP-REGISTERED=1" "$logf"'
    check "pattern pages recorded with physical addresses" '[ "$(grep -v GUEST-RUN "$logf" | grep -c "FADUMP-PATTERN seed=0x[0-9a-f]* page=[0-9]* vaddr=0x[0-9a-f]* phys=0x[0-9a-f]*")" -ge 4 ]'
    [ "$mmu" = hash ] && check "VMM filled the HPTE section from KVM's HPT and read it back identical" \
        'grep -q "fadump: HPTE section verified" "$logf"'
    [ "$vmm" = ours ] && check "VMM preserved the dump (status 0xc000, $cpus CPUs)" 'grep -q "fadump: dump written: status 0xc000, $cpus CPUs saved" "$logf"'
    check "capture kernel booted by the VMM after the crash" '[ "$inits" -ge 2 ]'
    check "capture kernel sees the dump (/proc/vmcore)" 'grep -q "GUEST-VMCORE .*/proc/vmcore" "$logf"'
    if [ "$crash" = second ]; then
        check "second crash before release: the guest boots again" \
            'grep -q GUEST-SECOND-CRASH "$logf" && [ "$inits" -ge 3 ]'
        [ "$vmm" = ours ] && check "second crash: plain reboot, no second dump (VMM log)" \
            'grep -q "ibm,os-term with no dump registered" "$logf" && [ "$(grep -c "fadump: dump written" "$logf")" = 1 ]'
        check "the first dump is still there after the reboot" '[ "$(grep -c "GUEST-VMCORE .*/proc/vmcore" "$logf")" -ge 2 ]'
    fi
    saved="$(sed -n 's/.*GUEST-VMCORE-SAVED bytes=\([0-9][0-9]*\).*/\1/p' "$logf" | head -1)"
    check "capture kernel saved /proc/vmcore to the virtio-blk disk" '[ -n "$saved" ] && [ "$saved" -gt 0 ]'
    if [ -n "$saved" ] && [ "$saved" -gt 0 ]; then
        # (--recheck of a run whose export image was already dropped reuses its vmcore.)
        [ -f "$run/export.img" ] && head -c "$saved" "$run/export.img" > "$run/vmcore"
        echo "vmcore: $run/vmcore ($saved bytes)"
        check "vmcore on the host is an ELF64 core" '[ "$(head -c 5 "$run/vmcore" | od -An -c | tr -d " ")" = "177ELF002" ]'
    fi
    check "release_mem, then registered again (registered = 1)" 'grep -q GUEST-RELEASED "$logf" && grep -q "GUEST-REREGISTERED registered=1" "$logf"'
    check "back in production without another reboot" 'grep -q "GUEST-PRODUCTION" "$logf" && [ "$inits" -eq $((2 + ${second_boot:-0})) ]'
    echo "== fadump phases (host seconds since L0 start; VMM phases from its own log) =="
    printf '%-34s %s\n' "crash triggered" "$(first "GUEST-CRASHING kind=[a-z]")"
    printf '%-34s %s\n' "VMM dump written" "$(first 'fadump: dump written')"
    printf '%-34s %s\n' "capture kernel /init" "$(nth GUEST-INIT-REACHED "$((2 + ${second_boot:-0}))")"
    printf '%-34s %s\n' "vmcore saved" "$(first "GUEST-VMCORE-SAVED bytes=[0-9]")"
    printf '%-34s %s\n' "re-registered, back in production" "$(first "GUEST-PRODUCTION nproc=[0-9]")"
    grep -m1 "L1-PHASE crash-to-capture-init" "$logf" | sed 's/^\[ *[0-9.]*\] //' || true
    grep -m1 "fadump: phases" "$logf" | sed 's/^\[ *[0-9.]*\] //' || true
    grep -m1 "GUEST-VMCORE-SAVED bytes=[0-9]" "$logf" | sed 's/^.*GUEST-VMCORE-SAVED/GUEST-VMCORE-SAVED/' || true
    crash_to_production
    if [ -s "$run/vmcore" ]; then
        # The dump, analyzed on the host by drgn (PyPI) with the guest's DWARF.
        dbg="$(cat "$run/debuginfo" 2>/dev/null || echo "$(dirname "$gk")/vmlinux.debug")"
        if [ -x "$here/drgn-env.sh" ] && [ -f "$here/analyze-vmcore.py" ] && [ -f "$dbg" ]; then
            py="$("$here/drgn-env.sh")"
            case "$crash" in
                bug) sym=lkdtm_BUG ;;
                panic) sym=lkdtm_PANIC ;;
                *) sym=sysrq_handle_crash ;;
            esac
            if "$py" "$here/analyze-vmcore.py" --vmcore "$run/vmcore" --vmlinux "$dbg" \
                --console "$logf" --cpus "$cpus" --crash-symbol "$sym" | tee "$run/drgn.txt"; then
                echo "PASS: drgn analysis of the vmcore"
            else
                echo "FAIL: drgn analysis of the vmcore"; fail=1
            fi
            if [ "$crash" = hardlockup ]; then
                check "the CPU spinning with interrupts off was stopped in lkdtm_HARDLOCKUP (drgn trace)" \
                    'grep -q "lkdtm_HARDLOCKUP" "$run/drgn.txt"'
            fi
        else
            echo "FAIL: drgn analysis not available (drgn-env.sh / analyze-vmcore.py / debug info $dbg)"; fail=1
        fi
    fi
else
    check "guest reached init" '[ "$inits" -ge 1 ]'
fi
check "VMM exited 0 on guest power-off" 'grep -q "L1-RESULT vmm-rc=0" "$logf"'
# Disk: a crash run's export image holds the vmcore (GBs). A passing run keeps the vmcore and
# drops the image; runs older than the newest $NESTED_KEEP_RUNS (default 20) keep only their
# logs. A failing run keeps everything for a look.
if [ "$mode" = crash ] && [ "$fail" = 0 ] && [ -s "$run/vmcore" ]; then rm -f "$run/export.img"; fi
runs_dir="$(dirname "$run")"
# shellcheck disable=SC2012
ls -1dt "$runs_dir"/*/ 2>/dev/null | tail -n +"$(( ${NESTED_KEEP_RUNS:-20} + 1 ))" |
    while read -r old; do rm -f "$old/export.img" "$old/vmcore" "$old/vmlinux"; done
exit $fail
}
main "$@"
