#!/usr/bin/env bash
# Runs cargo-fuzz on the project's one stable toolchain. cargo-fuzz is installed once from
# crates.io (`cargo install --locked`) into the shared cache, keyed by its version, and libFuzzer's
# sanitizer flags need nightly features, which RUSTC_BOOTSTRAP=1 unlocks on stable.
#
#   fuzz/cargo-fuzz.sh list
#   fuzz/cargo-fuzz.sh run hcall_dispatch -- -max_total_time=300 -timeout=2
#   fuzz/cargo-fuzz.sh cmin hcall_dispatch
#
# Prints the path of the cargo-fuzz binary when called as `fuzz/cargo-fuzz.sh --install-only`.
set -euo pipefail
version=0.13.2
root="${HOME}/.cache/ppc-vmm/cargo-fuzz-${version}"
bin="${root}/bin/cargo-fuzz"
if [ ! -x "$bin" ]; then
  cargo install cargo-fuzz --version "$version" --locked --root "$root" >&2
fi
if [ "${1:-}" = "--install-only" ]; then
  echo "$bin"
  exit 0
fi
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
# `cargo fuzz` looks the binary up as a cargo subcommand; call it directly instead.
exec "$bin" fuzz "$@"
