#!/usr/bin/env bash
# Boot a Linux guest under OUR VMM on a real (nested) ppc64 KVM-HV, from one command:
#
#   L0  qemu-system-ppc64 -M pseries,cap-nested-hv=on (TCG, on this x86 machine)
#   L1  Debian 6.12 ppc64el kernel + kvm-hv, busybox initramfs (l1-init-vmm.sh)
#   L2  ppc-vmm (static ppc64le build of vmm/) running the guest kernel + guests/initramfs
#
#   integration-tests/nested/boot-our-vmm.sh [--guest-kernel debian|ours] [--cpus N]
#                                            [--mode drive|crash|disk|boot-only] [--timeout SECONDS]
#                                            [--memory SIZE] [--no-peer]
#                                            [--append "GUEST CMDLINE"] [--guest-cmd "SHELL CMD"]
#
# --guest-kernel ours (default) builds guests/kernel (cached); `debian` boots the L1 kernel
# itself as the guest (no build needed). --mode drive (default) makes the guest reboot once
# and then power off through our VMM, and asserts: guest init reached twice, nproc = --cpus,
# CPU hot-unplug/plug, VMM exit status 0. --mode crash boots with fadump=on, crashes the guest
# (sysrq c) and asserts the capture kernel booted by our VMM sees /proc/vmcore.
# --mode disk: L1 creates two backing files and our VMM gets `--disk path=/tmp/disk0.img
# --disk path=/tmp/disk1.img,readonly=on`; the guest writes a known pattern (seq 1 200000,
# checksum computed here on the host) to /dev/vda, syncs, drops caches and reads it back,
# tries to write /dev/vdb (must fail), reboots through our VMM, reads /dev/vda back again and
# powers off; L1 then checksums its backing file (and the read-only one, unchanged). No peer.
# --mode boot-only: the guest powers off as soon as it reaches /init. --guest-cmd runs a shell
# command in the guest first (drive mode) or in the capture kernel (crash mode).
# Environment: VMM_LOG_LEVEL (ppc-vmm --log-level, default info). Prints the time of each phase (seconds since L0 start). Unless --no-peer,
# the same L1 boot then runs the same guest under QEMU 7.2/KVM (setup.sh's ppc64el build) as a
# peer and prints the ratio of "VMM start -> guest /init" between ours and QEMU.
# Uses integration-tests/nested/setup.sh for the L0 emulator, L1 kernel and busybox.
# Logs: $PPC_VMM_CACHE/nested/runs/<timestamp>/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}"
guest_kernel=ours cpus=2 mode=drive timeout=1500 memory=1G peer=1 append="" guest_cmd=""
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
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
log() { echo "nested/boot-our-vmm: $*" >&2; }

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
    debian) gk="$l1vmlinux" ;;
    *) gk="$guest_kernel" ;;
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

run="$cache/nested/runs/$(date -u +%Y%m%dT%H%M%S)"
mkdir -p "$run/mods"
xz -dc "$moddir/kvm.ko.xz" > "$run/mods/kvm.ko"
xz -dc "$moddir/kvm-hv.ko.xz" > "$run/mods/kvm-hv.ko"

action=commands
case "$mode" in
    drive) ;;
    crash) append="fadump=on${append:+ $append}" ;;
    boot-only) action=poweroff ;;
    disk) peer=0 ;;
    *) echo "unknown --mode $mode" >&2; exit 2 ;;
esac
"$repo/guests/initramfs/build.sh" --out "$run/l2-initrd.cpio.gz" --init "$repo/guests/initramfs/guest-init.sh"
disks=""
[ "$mode" = disk ] && disks=" --disk path=/tmp/disk0.img --disk path=/tmp/disk1.img,readonly=on"
echo "--kernel /guest/vmlinux --initramfs /guest/initrd.cpio.gz --cpus $cpus --memory $memory --serial tty --log-level ${VMM_LOG_LEVEL:-info}$disks" > "$run/vmm-args"
echo "console=hvc0 guest.action=$action${append:+ $append}" > "$run/vmm-cmdline"
printf '%s' "$guest_cmd" > "$run/vmm-guest-cmd"
echo "$mode" > "$run/vmm-mode"
peer_add=()
qroot="$NESTED_CACHE/qemu-l1/${QEMU_L1_VERSION//[~:]/_}/root"
if [ "$peer" = 1 ]; then
    [ -x "$qroot/usr/bin/qemu-system-ppc64" ] || "$here/setup.sh" >/dev/null
    echo "-smp $cpus -m $memory" > "$run/peer-args"
    peer_add=(--add "$qroot=qemu" --add "$run/peer-args=peer-args")
fi
"$repo/guests/initramfs/build.sh" --out "$run/l1-initrd.cpio.gz" --init "$here/l1-init-vmm.sh" "${peer_add[@]}" \
    --add "$vmm_bin=ppc-vmm" --add "$gk=guest/vmlinux" --add "$run/l2-initrd.cpio.gz=guest/initrd.cpio.gz" \
    --add "$run/mods/kvm.ko=modules/kvm.ko" --add "$run/mods/kvm-hv.ko=modules/kvm-hv.ko" \
    --add "$run/vmm-args=vmm-args" --add "$run/vmm-cmdline=vmm-cmdline" --add "$run/vmm-guest-cmd=vmm-guest-cmd" --add "$run/vmm-mode=vmm-mode"

# One emulator at a time on the shared 2-core host: wait (up to 10 min) for others to finish.
for _ in $(seq 600); do pgrep -f '^qemu-system-ppc' >/dev/null || break; sleep 1; done
pgrep -f '^qemu-system-ppc' >/dev/null && log "warning: another emulator is running; timings will suffer"
log "L0: qemu-system-ppc64 pseries cap-nested-hv=on TCG; log in $run/console.log"
python3 - "$run" "$timeout" "$l1vmlinux" <<'PY'
import subprocess, sys, time, os, signal
run, timeout, l1 = sys.argv[1], float(sys.argv[2]), sys.argv[3]
cmd = ["qemu-system-ppc64", "-M", "pseries,cap-nested-hv=on,x-vof=on", "-cpu", "power9",
       "-accel", "tcg", "-smp", "1", "-m", "3G", "-nographic", "-nodefaults",
       "-serial", "mon:stdio", "-kernel", l1, "-initrd", f"{run}/l1-initrd.cpio.gz",
       "-append", "console=hvc0 quiet"]
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

fail=0
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
elif [ "$mode" = crash ]; then
    check "guest registered fadump with our firmware" 'grep -q "Registration is successful" "$logf"'
    check "capture kernel booted by our VMM after the crash" '[ "$inits" -ge 2 ]'
    check "capture kernel sees the dump (/proc/vmcore)" 'grep -q "GUEST-VMCORE .*/proc/vmcore" "$logf"'
else
    check "guest reached init" '[ "$inits" -ge 1 ]'
fi
check "VMM exited 0 on guest power-off" 'grep -q "L1-RESULT vmm-rc=0" "$logf"'
exit $fail
