#!/usr/bin/env bash
# The fadump matrix, and the verification tool for a kernel you bring.
#
#   integration-tests/nested/fadump-matrix.sh [CASE...]            # the default set, our kernel
#   integration-tests/nested/fadump-matrix.sh --list
#   integration-tests/nested/fadump-matrix.sh --guest-kernel VMLINUX [--debuginfo FILE]
#                                             [--config FILE] [CASE...]
#   integration-tests/nested/fadump-matrix.sh --vmm both [CASE...]  # ours vs QEMU 11.1
#   options: --runs N (each case N times in a row: pass count and spread), --json FILE,
#            --out DIR (run directories), --check-only (with --guest-kernel)
#
# Each case is one nested run of boot-our-vmm.sh --mode crash (L0 QEMU TCG -> L1 Linux with
# KVM-HV -> our VMM or QEMU 11.1 -> the guest), one after the other (one emulator at a time);
# the vmcore the capture kernel saves is checked on the host with drgn. At the end one table:
# case, vmm, pass/fail, vmcore bytes, crash -> capture /init, vmcore saved, back in production
# (and with --vmm both a side-by-side table with ratios ours/QEMU; with --runs N the spread).
#
# --guest-kernel VMLINUX: before anything runs, lib/kernel_check.py checks the image (a
# ppc64le vmlinux ELF), finds its configuration (--config, else embedded CONFIG_IKCONFIG, else
# config / .config / config-<release> beside it) and its DWARF (--debuginfo, else the image, else
# vmlinux.debug beside it), and refuses with a list of what is missing (e.g. CONFIG_FA_DUMP)
# for the chosen cases; exit 3 then, nothing run.
#
# Cases (--list): sysrq-2cpu, sysrq-1cpu, lkdtm-bug, lkdtm-panic, hardlockup, second-crash,
# unregistered (the default set, 2-4 minutes each here), hosting-8g (an 8 GiB guest with 1 GiB
# of boot memory, pattern pages above 4 GiB, vmcore saved sparse), linux-6.1 (builds the 6.1
# kernel once), hash-powernv (hash-MMU guest on the powernv L0, 4-5 minutes), and kdump-sysrq /
# kdump-hardlockup (the same guest and crash captured by kdump; run with sysrq-2cpu /
# hardlockup they add a kdump-vs-fadump table).
# Exit status: 0 when every run of our VMM passed (QEMU's failures under --vmm both are
# findings in the table), 1 otherwise, 2 bad arguments, 3 kernel refused.
# Logs: each run's directory (console.log, runner.log, vmcore, drgn.txt) under
# $PPC_VMM_CACHE/nested/runs/, named <time>-<case>-<vmm>.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in -h|--help) sed -n '2,30p' "$0"; exit 0 ;; esac
exec python3 "$here/lib/fadump_matrix.py" "$@"
