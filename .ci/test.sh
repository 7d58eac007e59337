#!/usr/bin/env bash
# The project's test command (README line 2). Installs what it needs on a fresh Debian
# bookworm machine, then runs the lints and the whole workspace's tests, benches included.
#
#   bash .ci/test.sh            # everything the default run covers (well under 30 minutes)
#   SKIP_INSTALL=1 bash .ci/test.sh   # when the packages are known to be there
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v dtc >/dev/null 2>&1 || need_pkgs+=(device-tree-compiler)
if [ "${#need_pkgs[@]}" -gt 0 ] && [ -z "${SKIP_INSTALL:-}" ]; then
  echo "+ installing: ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

echo "+ cargo fmt --check"
cargo fmt --all -- --check
echo "+ cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "+ cargo test --workspace"
cargo test --workspace
