#!/usr/bin/env bash
# The project's test command (README, line 2). Installs what it needs on a fresh Debian
# bookworm machine, then runs the lints and every test the default run covers (well under
# 30 minutes on 2 cores). The nested KVM runs are longer and live behind their own commands
# (README, line 1, and integration-tests/nested/README.md).
#
#   bash .ci/test.sh                  # everything
#   SKIP_INSTALL=1 bash .ci/test.sh   # when the packages are known to be there
#   SKIP_PPC64=1 bash .ci/test.sh     # x86 only: skip the ppc64le cross build + qemu-user tests
set -euo pipefail
cd "$(dirname "$0")/.."

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
  echo "+ installing: ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

echo "+ cargo fmt --check"
cargo fmt --all -- --check
echo "+ cargo clippy (x86_64)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "+ cargo test --workspace (x86_64; includes the pseries and powernv benches and the fuzz corpus)"
cargo test --workspace
echo "+ nested runner host tests"
python3 -m unittest discover -s integration-tests/nested/lib -p 'test_*.py'
if [ -z "${SKIP_PPC64:-}" ]; then
  echo "+ vmm for powerpc64le: build, clippy, unit tests under qemu-user"
  if [ -n "${SKIP_INSTALL:-}" ]; then export NO_INSTALL=1; fi
  bash vmm/ci/ppc64-build-test.sh
fi
echo "+ all checks passed"
