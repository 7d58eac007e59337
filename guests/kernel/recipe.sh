#!/usr/bin/env bash
# The guest kernel build itself: everything that decides the bytes of the output, and nothing
# else. guests/kernel/build.sh picks the source (series, pinned version), computes the cache key
# from this file plus the config fragment, and calls
#
#   guests/kernel/recipe.sh TARBALL OUT FRAGMENT
#
# TARBALL  /usr/src/linux-source-<series>.tar.xz (unpacked to OUT/build/<its top directory>)
# OUT      the cache directory; receives vmlinux (stripped, what the VMM loads), vmlinux.debug
#          (objcopy --only-keep-debug, for drgn/crash) and config (the final .config)
# FRAGMENT merged onto ppc64le_allnoconfig, then olddefconfig; every CONFIG_ line must survive
#
# Environment: JOBS (default nproc). Editing this file changes the cache key of every series.
set -euo pipefail

[ $# = 3 ] || { echo "usage: $0 TARBALL OUT FRAGMENT" >&2; exit 2; }
tarball="$1" out="$2" fragment="$3"
jobs="${JOBS:-$(nproc)}"

log() { echo "guests/kernel: $*" >&2; }

# The build tree path is embedded in the image (build ID), so it is a fixed function of the key.
work="$out/build"
src="$work/$(basename "$tarball" .tar.xz)"
mkdir -p "$work"
if [ ! -f "$src/Makefile" ]; then
    log "unpacking $tarball"
    rm -rf "$src"
    tar -C "$work" -xJf "$tarball"
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
