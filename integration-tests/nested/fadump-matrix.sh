#!/usr/bin/env bash
# The fadump matrix (issue 5): named cases, each one nested run of boot-our-vmm.sh --mode
# crash, run one after the other (one emulator at a time), then a summary table.
#
#   integration-tests/nested/fadump-matrix.sh [CASE...]      (no CASE: the default set)
#   integration-tests/nested/fadump-matrix.sh --list
#
# Cases:
#   sysrq-2cpu     Linux 6.12, 2 vCPUs, sysrq c while cpu1 is busy in userspace  (default set)
#   sysrq-1cpu     Linux 6.12, 1 vCPU, sysrq c                                    (default set)
#   lkdtm-bug      LKDTM BUG (an oops; crash_fadump from the oops path)           (default set)
#   lkdtm-panic    LKDTM PANIC                                                    (default set)
#   hardlockup     LKDTM HARDLOCKUP pinned to cpu1 (irqs off), sysrq c on cpu0    (default set)
#   second-crash   a second sysrq crash in the capture kernel before release      (default set)
#   unregistered   no fadump=on: the crash reboots plainly, no dump               (default set)
#   linux-6.1      Linux 6.1 guest (pre-6.10 layout, FADMPINF), 2 vCPUs, sysrq c
#   hash-powernv   hash-MMU (HPT) guest on the powernv L0, 2 vCPUs, sysrq c: the dump's HPTE
#                  section is filled from KVM's HPT and verified by the VMM (4-5 minutes)
# Each case takes 2-4 minutes here (the 6.1 case builds its kernel once, ~25 min, cached).
# Logs: each run's directory under $PPC_VMM_CACHE/nested/runs/ (printed in the table).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

main() {
    local all=(sysrq-2cpu sysrq-1cpu lkdtm-bug lkdtm-panic hardlockup second-crash unregistered linux-6.1 hash-powernv)
    local default=(sysrq-2cpu sysrq-1cpu lkdtm-bug lkdtm-panic hardlockup second-crash unregistered)
    if [ "${1:-}" = --list ]; then printf '%s\n' "${all[@]}"; exit 0; fi
    if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then sed -n '2,20p' "$0"; exit 0; fi
    local cases=("$@")
    [ ${#cases[@]} -gt 0 ] || cases=("${default[@]}")
    local results=() failed=0
    for c in "${cases[@]}"; do
        local args
        case "$c" in
            sysrq-2cpu) args=(--cpus 2 --crash sysrq) ;;
            sysrq-1cpu) args=(--cpus 1 --crash sysrq) ;;
            lkdtm-bug) args=(--cpus 2 --crash bug) ;;
            lkdtm-panic) args=(--cpus 2 --crash panic) ;;
            hardlockup) args=(--cpus 2 --crash hardlockup) ;;
            second-crash) args=(--cpus 2 --crash second) ;;
            unregistered) args=(--cpus 2 --crash unregistered) ;;
            linux-6.1) args=(--cpus 2 --crash sysrq --guest-kernel 6.1) ;;
            hash-powernv) args=(--cpus 2 --crash sysrq --l0 powernv --mmu hash --timeout 2400) ;;
            *) echo "fadump-matrix: unknown case $c (--list)" >&2; exit 2 ;;
        esac
        echo "== fadump-matrix: $c: boot-our-vmm.sh --mode crash ${args[*]}"
        local log rc=0
        log="$(mktemp)"
        "$here/boot-our-vmm.sh" --mode crash "${args[@]}" > "$log" 2>&1 || rc=$?
        grep -E '^(PASS|FAIL)' "$log" | sed "s/^/  [$c] /"
        local run size phases
        run="$(sed -n 's/.*log in \(.*\)\/console.log$/\1/p' "$log" | head -1)"
        size="$(sed -n 's/^vmcore: .* (\([0-9]*\) bytes)$/\1/p' "$log" | head -1)"
        phases="$(grep -m1 'fadump: phases' "$log" | sed 's/.*fadump: phases: //' || true)"
        cp "$log" "${run:-/tmp}/matrix-$c.log" 2>/dev/null || true
        rm -f "$log"
        [ $rc -eq 0 ] || failed=1
        results+=("$(printf '%-14s %-4s vmcore=%-10s %s\n    %s' "$c" "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "${size:--}" "${run:-?}" "${phases:-no dump}")")
    done
    echo
    echo "== fadump matrix =="
    printf '%s\n' "${results[@]}"
    exit $failed
}
main "$@"
