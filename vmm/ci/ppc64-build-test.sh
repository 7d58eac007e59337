#!/usr/bin/env bash
# Build the vmm crate for powerpc64le and run its unit tests under qemu-user.
#
#   vmm/ci/ppc64-build-test.sh          # from anywhere; installs what it needs (apt, rustup)
#
# What runs where:
#   * x86_64 `cargo test -p vmm` (the normal CI run) covers the KVM-independent logic and the
#     layout/ioctl checks against the ppc64 kernel headers (needs the cross compiler below).
#   * This script additionally runs the same unit tests as ppc64le binaries under
#     `qemu-ppc64le`: the ioctl numbers actually compiled for powerpc, and the KVM_RUN wrapper's
#     FP/vector clobber test (trap 1), which only exists on powerpc64.
#   * Nothing here needs /dev/kvm; booting a guest is integration-tests/nested/.
# Environment: CARGO_TARGET_DIR (default: target), NO_INSTALL=1 to skip apt/rustup.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target=powerpc64le-unknown-linux-gnu

if [ "${NO_INSTALL:-0}" != 1 ]; then
    pkgs=(gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross linux-libc-dev-ppc64el-cross qemu-user)
    missing=()
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "ppc64-build-test: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
fi

export CARGO_TARGET_POWERPC64LE_UNKNOWN_LINUX_GNU_LINKER=powerpc64le-linux-gnu-gcc
export CARGO_TARGET_POWERPC64LE_UNKNOWN_LINUX_GNU_RUNNER="qemu-ppc64le -L /usr/powerpc64le-linux-gnu"

cd "$repo"
echo "ppc64-build-test: building ppc-vmm for $target" >&2
cargo build -p vmm --release --target "$target"
file "${CARGO_TARGET_DIR:-target}/$target/release/ppc-vmm" 2>/dev/null || true
echo "ppc64-build-test: unit tests under qemu-ppc64le" >&2
# tests/remote.rs and one test of tests/api_server.rs exec the built ppc64 binaries, which a
# test already running under qemu-user cannot start (127); they run on x86_64 in CI.
cargo test -p vmm --target "$target" --lib --bins --test module_graph --test api_server \
    -- --skip ppc_vmm_refuses_an_api_socket_or_event_monitor_it_cannot_use_before_building_the_vm
echo "ppc64-build-test: clippy for $target" >&2
cargo clippy -p vmm --all-targets --target "$target" -- -D warnings
echo "ppc64-build-test: OK" >&2
