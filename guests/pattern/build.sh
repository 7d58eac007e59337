#!/usr/bin/env bash
# Build one of the guest helpers (static ppc64le) and print its path. Cached by a hash of the
# source.
#
#   guests/pattern/build.sh [fadump-pattern|vmcore-save|api-request]   (default fadump-pattern;
#   api-request runs in L1: an HTTP request over the API socket of ppc-vmm)
#
# Environment: PPC_VMM_CACHE (default ~/.cache/ppc-vmm), NO_INSTALL=1 to skip apt-get.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}"
prog="${1:-fadump-pattern}"
case "$prog" in
    fadump-pattern|vmcore-save|api-request) ;;
    *) echo "guests/pattern: unknown program $prog" >&2; exit 2 ;;
esac
src="$here/$prog.c"
if [ "${NO_INSTALL:-0}" != 1 ]; then
    missing=()
    for p in gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "guests/pattern: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
key="$(cat "$src" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
out="$cache/pattern/$key/$prog"
if [ ! -x "$out" ]; then
    mkdir -p "$(dirname "$out")"
    # A temporary of its own: two runs building the same key at once must not move each
    # other's file (seen: `mv: cannot stat .../fadump-pattern.tmp` ended a run).
    tmp="$(mktemp "$out.XXXXXX")"
    powerpc64le-linux-gnu-gcc -O2 -Wall -Wextra -Werror -static -o "$tmp" "$src"
    chmod 755 "$tmp"
    mv "$tmp" "$out"
fi
echo "$out"
