#!/usr/bin/env bash
# OPAL MPIPL conformance: QEMU 11.1 powernv9 + skiboot (Debian sid, amd64, run on this host as
# L0) against our firmware::opal engine.
#
#   integration-tests/nested/opal-conformance.sh               # install/build, run, compare
#   integration-tests/nested/opal-conformance.sh --update-fixtures   # ...and refresh the
#                                 # committed fixtures from this run (then commit them)
#   integration-tests/nested/opal-conformance.sh --replay-only # only the Rust comparison on the
#                                 # committed fixtures (no emulator)
#
# Steps: setup-qemu-sid.sh --arch amd64 (QEMU + skiboot.lid), guests/kernel/build.sh --platform
# powernv (6.12 with FA_DUMP, OPAL_CORE, DYNAMIC_DEBUG), a busybox initramfs whose /init is
# lib/opal-conformance-init.sh, then lib/opal_conformance.py run: boot with fadump=on, read
# skiboot's registration (MDST/MDDT, mpipl_metadata, the kernel's opal_fadump_mem_struct) out of
# guest memory through the monitor, crash with sysrq c (MPIPL), read what the platform and
# skiboot recorded on the MPIPL boot (MDRT, proc_dump_area, the register data, the TAG_CPU/TAG_OPAL
# metadata and the tag array), check the capture kernel exported /proc/vmcore, power off. Then
# `cargo test -p integration-tests --test opal_conformance` replays the same registration and
# registers through our engine and prints the field-by-field table; with OPAL_CONFORMANCE_RUN set
# it compares against this run's capture instead of the committed fixtures.
#
# Output: $PPC_VMM_CACHE/opal-conformance/<time>/ (console.log, qemu-cmdline.txt, mem/*.bin,
# capture.json, replay.txt). One emulator at a time: the runner waits up to 15 minutes while any
# other qemu-system-ppc* runs. A run takes about 3-6 minutes of emulation plus builds on first use.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}"
fixtures="$repo/integration-tests/fixtures/opal-conformance"
log() { echo "opal-conformance: $*" >&2; }

update=0 replay_only=0
while [ $# -gt 0 ]; do
    case "$1" in
    --update-fixtures) update=1; shift ;;
    --replay-only) replay_only=1; shift ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    *) log "unknown argument $1"; exit 2 ;;
    esac
done

replay() {
    local run_dir="${1:-}" report=/dev/null
    [ -z "$run_dir" ] || report="$run_dir/../replay.txt"
    (cd "$repo" && OPAL_CONFORMANCE_RUN="$run_dir" cargo test -q -p integration-tests \
        --test opal_conformance -- --nocapture) 2>&1 | tee "$report"
    return "${PIPESTATUS[0]}"
}

if [ "$replay_only" = 1 ]; then
    replay ""
    exit
fi

qroot="$("$here/setup-qemu-sid.sh" --arch amd64)"
kdir="$("$repo/guests/kernel/build.sh" --platform powernv)"
run="$cache/opal-conformance/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$run"
"$repo/guests/initramfs/build.sh" --out "$run/initrd.cpio.gz" \
    --init "$here/lib/opal-conformance-init.sh"
log "run directory: $run"
rc=0
python3 "$here/lib/opal_conformance.py" run --qemu-root "$qroot" --kernel "$kdir/vmlinux" \
    --initrd "$run/initrd.cpio.gz" --out "$run" || rc=$?
if [ "$rc" != 0 ]; then
    log "the QEMU run failed (see $run/console.log)"
    exit "$rc"
fi
# The replay reads a fixture directory: this run's, and the committed one on --update-fixtures.
python3 "$here/lib/opal_conformance.py" fixtures "$run" "$run/fixtures"
if [ "$update" = 1 ]; then
    python3 "$here/lib/opal_conformance.py" fixtures "$run" "$fixtures"
fi
replay "$run/fixtures"
log "done: $run"
