#!/usr/bin/env bash
# Build the ppc64le pseries guest kernel reproducibly from Debian's linux-source-6.12.
#
#   guests/kernel/build.sh            # prints the directory holding vmlinux + vmlinux.debug
#
# Output (cached, never rebuilt for the same key):
#   $PPC_VMM_CACHE/kernel/<version>-<fragment hash>/
#       vmlinux        stripped ELF, what the VMM loads
#       vmlinux.debug  DWARF for drgn/crash (objcopy --only-keep-debug)
#       config         the final .config
# The key is the pinned source package version plus a hash of the config fragment and of
# this script, so editing either triggers a rebuild and nothing else does.
#
# Environment: PPC_VMM_CACHE (default ~/.cache/ppc-vmm), LINUX_SOURCE_VERSION (pin override),
# JOBS (default nproc), NO_INSTALL=1 to skip apt-get.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fragment="$here/pseries-guest.config"
# Pinned: bookworm-security drops old versions, so a bump is an explicit edit here.
version="${LINUX_SOURCE_VERSION:-6.12.117-1~deb12u1}"
cache="${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}"
jobs="${JOBS:-$(nproc)}"

log() { echo "guests/kernel: $*" >&2; }

need_pkgs=(gcc-powerpc64le-linux-gnu bc bison flex libssl-dev libelf-dev xz-utils make)
install_deps() {
    [ "${NO_INSTALL:-0}" = 1 ] && return 0
    local missing=()
    for p in "${need_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    local have_src
    have_src="$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || true)"
    [ "$have_src" = "$version" ] || missing+=("linux-source-6.12=$version")
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
install_deps

have_src="$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || true)"
if [ "$have_src" != "$version" ]; then
    log "linux-source-6.12 $have_src installed, $version pinned; set LINUX_SOURCE_VERSION to override"
    exit 1
fi

key_hash="$(cat "$fragment" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
out="$cache/kernel/${version//[~:]/_}-$key_hash"
if [ -f "$out/vmlinux" ] && [ -f "$out/vmlinux.debug" ]; then
    log "cached: $out"
    echo "$out"
    exit 0
fi

# The build tree path is embedded in the image (build ID), so it is a fixed function of the key.
work="$out/build"
src="$work/linux-source-6.12"
mkdir -p "$work"
if [ ! -f "$src/Makefile" ]; then
    log "unpacking /usr/src/linux-source-6.12.tar.xz"
    rm -rf "$src"
    tar -C "$work" -xJf /usr/src/linux-source-6.12.tar.xz
fi

export ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu-
export KBUILD_BUILD_USER=ppc-vmm KBUILD_BUILD_HOST=ppc-vmm KBUILD_BUILD_VERSION=1
export KBUILD_BUILD_TIMESTAMP="2026-01-01 00:00:00 UTC"
export SOURCE_DATE_EPOCH=1767225600
obj="$work/obj"
mkdir -p "$obj"

log "configuring (ppc64le_allnoconfig + $(basename "$fragment"))"
make -s -C "$src" O="$obj" ppc64le_allnoconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$fragment" >/dev/null
make -s -C "$src" O="$obj" olddefconfig

# Every option the fragment asks for must have survived olddefconfig (a silently dropped
# dependency would otherwise ship a kernel without, say, FA_DUMP).
bad=0
while IFS= read -r line; do
    case "$line" in CONFIG_*=*) ;; *) continue ;; esac
    if ! grep -qx "$line" "$obj/.config"; then log "fragment line not in final config: $line"; bad=1; fi
done < "$fragment"
[ "$bad" = 0 ] || exit 1

log "building vmlinux with $jobs jobs (several minutes)"
start=$(date +%s)
make -s -C "$src" O="$obj" -j"$jobs" vmlinux
log "built in $(( $(date +%s) - start ))s"

tmp="$out/.tmp"
mkdir -p "$tmp"
${CROSS_COMPILE}objcopy --only-keep-debug "$obj/vmlinux" "$tmp/vmlinux.debug"
${CROSS_COMPILE}objcopy --strip-debug --add-gnu-debuglink="$tmp/vmlinux.debug" "$obj/vmlinux" "$tmp/vmlinux"
cp "$obj/.config" "$tmp/config"
mv "$tmp/vmlinux.debug" "$tmp/config" "$out/"
mv "$tmp/vmlinux" "$out/vmlinux"
rmdir "$tmp"
log "done: $out ($(du -h "$out/vmlinux" | cut -f1) stripped)"
echo "$out"
