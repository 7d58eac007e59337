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
# How (lib/ppc64el-tool.sh): `apt-get download` of kexec-tools:ppc64el=<pin> and of the
# libc6:ppc64el candidate (kexec-tools Depends only on libc6 and debconf; debconf is for its
# maintainer scripts), dpkg -x into a scratch tree, then lib/minimal-rootfs.py copies the binary
# and what it needs, failing on a missing soname. The directory is keyed by the kexec-tools
# version and created atomically.
#
# Environment: NESTED_CACHE (see versions.sh), KEXEC_TOOLS_VERSION (pin override),
#   NO_INSTALL=1 (no dpkg --add-architecture / apt-get update).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"
log() { echo "nested/setup-kexec-tools: $*" >&2; }

kdir="$NESTED_CACHE/kexec-tools/${KEXEC_TOOLS_VERSION//[~:]/_}"
# shellcheck source=lib/ppc64el-tool.sh
. "$here/lib/ppc64el-tool.sh"
ppc64el_tool "$kdir" "kexec-tools=$KEXEC_TOOLS_VERSION" sbin/kexec
echo "$kdir/root"
