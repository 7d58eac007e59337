#!/usr/bin/env bash
# Idempotent: Debian bookworm's dmsetup (ppc64el) and the shared objects it needs, as a tiny
# tree for L1 (the crash scenario's disk-eio fault: a device-mapper device whose table is
# switched to `error` while the guest saves its vmcore, then back to `linear`).
#
#   integration-tests/nested/setup-dmsetup.sh     # prints the tree's directory when done
#
# Result: $NESTED_CACHE/dmsetup/<version>/root holding sbin/dmsetup, lib64/ld64.so.2 and the
# DT_NEEDED closure (libdevmapper, libselinux, libudev, libpcre2, libcap, libc) under
# lib/powerpc64le-linux-gnu; packages.txt beside it. How: lib/ppc64el-tool.sh (`apt-get
# download` of dmsetup and libdevmapper1.02.1 at the pin, the libraries at the machine's apt
# candidates, from the machine's own sources; dpkg -x; lib/minimal-rootfs.py). L1 has no udev:
# run it as `dmsetup --noudevsync` with DM_DISABLE_UDEV=1, so that it makes /dev/mapper nodes
# itself. Environment: NESTED_CACHE, DMSETUP_VERSION (versions.sh), NO_INSTALL=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"
log() { echo "nested/setup-dmsetup: $*" >&2; }

ddir="$NESTED_CACHE/dmsetup/${DMSETUP_VERSION//[~:]/_}"
# shellcheck source=lib/ppc64el-tool.sh
. "$here/lib/ppc64el-tool.sh"
# libdevmapper1.02.1 is built from the same source at the same version (dmsetup depends on
# it and it on dmsetup); the rest are libdevmapper's Depends and theirs.
ppc64el_tool "$ddir" "dmsetup=$DMSETUP_VERSION" sbin/dmsetup \
    "libdevmapper1.02.1=$DMSETUP_VERSION" libselinux1 libpcre2-8-0 libudev1 libcap2
echo "$ddir/root"
