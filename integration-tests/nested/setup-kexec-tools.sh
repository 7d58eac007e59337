#!/usr/bin/env bash
# Idempotent: Debian bookworm's kexec-tools (ppc64el) and the shared objects /sbin/kexec needs,
# as a tiny tree to copy into the L2 guest's initramfs (boot-our-vmm.sh --crash kdump*).
#
#   integration-tests/nested/setup-kexec-tools.sh     # prints the tree's directory when done
#
# Result: $NESTED_CACHE/kexec-tools/<version>/root holding sbin/kexec, its program interpreter
# lib64/ld64.so.2 and its DT_NEEDED closure (libc.so.6) under lib/powerpc64le-linux-gnu, as
# regular files at the paths a Debian system has them, so the binary runs as it is when the
# tree is laid over the initramfs root. Next to root/: packages.txt (packages and versions).
# How: `apt-get download` of kexec-tools:ppc64el=<pin> and of the libc6:ppc64el candidate
# (kexec-tools Depends only on libc6 and debconf; debconf is for its maintainer scripts), dpkg -x
# into a scratch tree, then lib/minimal-rootfs.py copies the binary and what it needs, failing
# on a missing soname. The directory is keyed by the kexec-tools version and created atomically.
#
# Environment: NESTED_CACHE (see versions.sh), KEXEC_TOOLS_VERSION (pin override),
#   NO_INSTALL=1 (no dpkg --add-architecture / apt-get update).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"
log() { echo "nested/setup-kexec-tools: $*" >&2; }

kdir="$NESTED_CACHE/kexec-tools/${KEXEC_TOOLS_VERSION//[~:]/_}"
if [ ! -f "$kdir/.done" ]; then
    if [ "${NO_INSTALL:-0}" != 1 ]; then
        if ! dpkg --print-foreign-architectures | grep -qx ppc64el; then
            log "dpkg --add-architecture ppc64el"
            dpkg --add-architecture ppc64el
            apt-get update -qq || log "warning: apt-get update reported errors (continuing)"
        fi
        if ! apt-cache show "kexec-tools:ppc64el=$KEXEC_TOOLS_VERSION" >/dev/null 2>&1; then
            apt-get update -qq || log "warning: apt-get update reported errors (continuing)"
        fi
    fi
    libc_ver="$(apt-cache policy libc6:ppc64el | awk '/^  Candidate:/ { print $2 }')"
    [ -n "$libc_ver" ] && [ "$libc_ver" != "(none)" ] || { log "no libc6:ppc64el candidate"; exit 1; }
    log "kexec-tools:ppc64el $KEXEC_TOOLS_VERSION + libc6:ppc64el $libc_ver"
    mkdir -p "$NESTED_CACHE/debs"
    specs=()
    for pv in "kexec-tools=$KEXEC_TOOLS_VERSION" "libc6=$libc_ver"; do
        p="${pv%%=*}" v="${pv#*=}"
        [ -f "$NESTED_CACHE/debs/${p}_${v//:/%3a}_ppc64el.deb" ] || specs+=("$p:ppc64el=$v")
    done
    if [ ${#specs[@]} -gt 0 ]; then
        (cd "$NESTED_CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "${specs[@]}" >&2)
    fi
    rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp/full"
    for pv in "kexec-tools=$KEXEC_TOOLS_VERSION" "libc6=$libc_ver"; do
        p="${pv%%=*}" v="${pv#*=}"
        deb="$NESTED_CACHE/debs/${p}_${v//:/%3a}_ppc64el.deb"
        [ -f "$deb" ] || { log "download of $p $v did not produce $deb"; exit 1; }
        dpkg -x "$deb" "$kdir.tmp/full"
        echo "$p $v" >> "$kdir.tmp/packages.txt"
    done
    python3 "$here/lib/minimal-rootfs.py" "$kdir.tmp/full" "$kdir.tmp/root" sbin/kexec
    rm -rf "$kdir.tmp/full"
    touch "$kdir.tmp/.done"
    rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
fi
echo "$kdir/root"
