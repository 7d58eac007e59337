#!/usr/bin/env bash
# Boot L0 (QEMU TCG) → L1 (Debian ppc64le + KVM-HV) and run PAYLOAD_DIR/run.sh inside L1.
#
#   integration-tests/nested/run-l1.sh PAYLOAD_DIR [--machine pseries|powernv] [--timeout S]
#       [--mem 4G] [--out DIR [--out-size 4G]] [--log FILE] [--append ARGS] [--verbose]
#       [--wait-idle S] [--keep-initrd] [--run-dir DIR]     (--help lists them all)
#
# Exits with the payload's status. Needs integration-tests/nested/setup.sh to have run.
# See README.md next to this script.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"
L1_KERNEL_DIR="${L1_KERNEL_VERSION//[~:]/_}"
BUSYBOX_DIR="${BUSYBOX_VERSION//[~:]/_}"
export L1_KERNEL_DIR BUSYBOX_DIR
exec python3 "$here/lib/run_l1.py" "$@"
