#!/usr/bin/env bash
# The project's test command (README, line 2). Installs what it needs on a fresh Debian
# bookworm machine, then runs the lints, every unit test and bench, and fadump end to end on a
# real guest: L0 QEMU (TCG) -> L1 Linux with KVM-HV -> our VMM -> Linux 6.12 with 2 vCPUs
# registers fadump, crashes (sysrq), our VMM preserves the dump and boots the capture kernel,
# which saves /proc/vmcore; drgn checks it on the host. Fresh machine: about 25 minutes on
# 2 cores (the guest kernel build is most of it); with the caches warm about 10 (README).
#
#   bash .ci/test.sh                  # everything
#   SKIP_INSTALL=1 bash .ci/test.sh   # when the packages are known to be there
#   SKIP_PPC64=1 bash .ci/test.sh     # skip the ppc64le cross build's unit tests under qemu-user
#   SKIP_NESTED=1 bash .ci/test.sh    # a developer's quick run: no guest kernel, no nested case
#                                     # (the drgn host tests then skip instead of failing)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
stamp() { echo "+ [$(( $(date +%s) - start ))s] $*"; }

need_pkgs=()
command -v dtc >/dev/null 2>&1 || need_pkgs+=(device-tree-compiler)
command -v cpio >/dev/null 2>&1 || need_pkgs+=(cpio)
# The vmcore checker's tests build guests/pattern/fadump-pattern.c for the host and run it.
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc libc6-dev)
# The vmm crate's layout tests compile the kernel's ppc64 headers with the cross compiler.
dpkg -s gcc-powerpc64le-linux-gnu >/dev/null 2>&1 || need_pkgs+=(gcc-powerpc64le-linux-gnu)
dpkg -s libc6-dev-ppc64el-cross >/dev/null 2>&1 || need_pkgs+=(libc6-dev-ppc64el-cross)
dpkg -s linux-libc-dev-ppc64el-cross >/dev/null 2>&1 || need_pkgs+=(linux-libc-dev-ppc64el-cross)
if [ "${#need_pkgs[@]}" -gt 0 ] && [ -z "${SKIP_INSTALL:-}" ]; then
  stamp "installing: ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
if [ -n "${SKIP_INSTALL:-}" ]; then export NO_INSTALL=1; fi

stamp "cargo fmt --check"
cargo fmt --all -- --check
stamp "cargo clippy (x86_64)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
stamp "cargo test --workspace (x86_64; includes the pseries and powernv benches, the OPAL conformance replay and the fuzz corpus)"
cargo test --workspace
stamp "firmware embedding example (register -> os-term -> dump -> ibm,kernel-dump)"
cargo run -q -p firmware --example fadump_cycle
stamp "rustdoc: no warnings in the workspace (firmware: every public item documented)"
RUSTDOCFLAGS="-D warnings" cargo doc -q --workspace --no-deps
if [ -z "${SKIP_PPC64:-}" ]; then
  stamp "vmm for powerpc64le: build, clippy, unit tests under qemu-user"
  bash vmm/ci/ppc64-build-test.sh
fi

if [ -z "${SKIP_NESTED:-}" ]; then
  # What the nested case and the drgn host tests need, made before either runs: the L0
  # emulator and L1 packages, the guest kernel with its DWARF (cached by version and recipe),
  # and the pinned drgn venv. All cached under ~/.cache/ppc-vmm, never in the repo.
  stamp "nested prerequisites: L0/L1 packages, guest kernel, drgn venv"
  integration-tests/nested/setup.sh >/dev/null
  guests/kernel/build.sh >/dev/null
  integration-tests/nested/drgn-env.sh >/dev/null
  # Every host test must run now: a missing prerequisite is a failure, not a skip.
  export PPC_VMM_NO_SKIP=1
fi
stamp "nested runner and vmcore checker host tests"
python3 -m unittest discover -s integration-tests/nested/lib -p 'test_*.py'

if [ -z "${SKIP_NESTED:-}" ]; then
  # fadump end to end on a real guest, every check asserted (boot-our-vmm.sh --mode crash
  # through the matrix driver: Linux 6.12, 2 vCPUs, sysrq c, vmcore saved by the capture
  # kernel, drgn on the host). A failure here fails CI: no retry.
  stamp "nested fadump case: sysrq-2cpu (L0 TCG -> L1 KVM-HV -> ppc-vmm -> Linux 6.12)"
  json="${CARGO_TARGET_DIR:-target}/ci-fadump-matrix.json"
  integration-tests/nested/fadump-matrix.sh --json "$json" sysrq-2cpu
fi
stamp "all checks passed"
