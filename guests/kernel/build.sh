#!/usr/bin/env bash
# Build the ppc64le guest kernel reproducibly from a pinned Debian linux-source package.
#
#   guests/kernel/build.sh                 # 6.12 (default): prints the directory holding
#                                          # vmlinux + vmlinux.debug + config
#   guests/kernel/build.sh --series 6.1    # 6.1: the pre-6.10 fadump layout (3 sections,
#                                          # FADMPINF), for the fadump matrix
#   guests/kernel/build.sh --cached-only   # print the directory if built, else exit 1
#                                          # (no apt, no build)
#   guests/kernel/build.sh --platform powernv   # a bare-metal OPAL kernel (powernv-guest.config)
#                                          # for QEMU's powernv machine + skiboot (MPIPL fadump)
#
# Series and their pinned source packages (bookworm-security drops old versions, so a bump is an
# explicit edit of the table below):
#   6.12  linux-source-6.12 6.12.117-1~deb12u1
#   6.1   linux-source-6.1  6.1.192-2
# Both use the same config fragment, pseries-guest.config (--platform pseries, the default);
# --platform powernv uses powernv-guest.config instead.
#
# Output (cached, never rebuilt for the same key):
#   $PPC_VMM_CACHE/kernel/<version>-<key>/           (pseries)
#   $PPC_VMM_CACHE/kernel/<version>-powernv-<key>/   (powernv)
#       vmlinux        stripped ELF, what the VMM loads
#       vmlinux.debug  DWARF for drgn/crash (objcopy --only-keep-debug)
#       config         the final .config
# <key> is a hash of the config fragment and of recipe.sh (the build steps); with the version in
# the name, editing the fragment or the recipe triggers a rebuild and nothing else does (this
# script only picks the source and the cache entry).
#
# Environment: PPC_VMM_CACHE (default ~/.cache/ppc-vmm), LINUX_SOURCE_VERSION (pin override for
# the chosen series), JOBS (default nproc), NO_INSTALL=1 to skip apt-get.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
recipe="$here/recipe.sh"
cache="${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}"

log() { echo "guests/kernel: $*" >&2; }
usage() { echo "usage: $0 [--series 6.12|6.1] [--platform pseries|powernv] [--cached-only]" >&2; exit 2; }

series=6.12 cached_only=0 platform=pseries
while [ $# -gt 0 ]; do
    case "$1" in
        --cached-only) cached_only=1; shift ;;
        --platform) [ $# -ge 2 ] || usage; platform="$2"; shift 2 ;;
        --platform=*) platform="${1#--platform=}"; shift ;;
        --series) [ $# -ge 2 ] || usage; series="$2"; shift 2 ;;
        --series=*) series="${1#--series=}"; shift ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) usage ;;
    esac
done
case "$series" in
    6.12) pinned=6.12.117-1~deb12u1 ;;
    6.1) pinned=6.1.192-2 ;;
    *) log "unknown series $series (6.12 or 6.1)"; exit 2 ;;
esac
# The pseries cache directory name has no platform part (it predates --platform): every pseries
# kernel already built keeps its key and its directory.
case "$platform" in
    pseries) fragment="$here/pseries-guest.config" tag="" ;;
    powernv) fragment="$here/powernv-guest.config" tag="powernv-" ;;
    *) log "unknown platform $platform (pseries or powernv)"; exit 2 ;;
esac
pkg="linux-source-$series"
tarball="/usr/src/$pkg.tar.xz"
version="${LINUX_SOURCE_VERSION:-$pinned}"

if [ "$cached_only" = 1 ]; then
    key_hash="$(cat "$fragment" "$recipe" | sha256sum | cut -c1-16)"
    out="$cache/kernel/${version//[~:]/_}-$tag$key_hash"
    [ -f "$out/vmlinux" ] && [ -f "$out/vmlinux.debug" ] && { echo "$out"; exit 0; }
    exit 1
fi

need_pkgs=(gcc-powerpc64le-linux-gnu bc bison flex libssl-dev libelf-dev xz-utils make)
install_deps() {
    [ "${NO_INSTALL:-0}" = 1 ] && return 0
    local missing=()
    for p in "${need_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    local have_src
    have_src="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)"
    [ "$have_src" = "$version" ] || missing+=("$pkg=$version")
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
install_deps

have_src="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)"
if [ "$have_src" != "$version" ]; then
    log "$pkg $have_src installed, $version pinned; set LINUX_SOURCE_VERSION to override"
    exit 1
fi

key_hash="$(cat "$fragment" "$recipe" | sha256sum | cut -c1-16)"
out="$cache/kernel/${version//[~:]/_}-$tag$key_hash"

# Builds made before the recipe moved out of this script were keyed by sha256(fragment +
# build.sh): 6.12.117-1~deb12u1 with this fragment is ...-390d1de938adf433. recipe.sh runs the
# very same steps, so key 9711cd7a8b0aa605 of that version is that build: hard-link its three
# outputs instead of rebuilding for 25 minutes. Any edit of the fragment or of recipe.sh changes
# the key and turns this off. (The adopted files carry the old build path in their build ID
# and DWARF; a fresh build here would differ only in those.)
legacy="$cache/kernel/6.12.117-1_deb12u1-390d1de938adf433"
if [ "$version" = 6.12.117-1~deb12u1 ] && [ "$key_hash" = 9711cd7a8b0aa605 ] &&
    [ ! -f "$out/vmlinux" ] && [ -f "$legacy/vmlinux" ] && [ -f "$legacy/vmlinux.debug" ] &&
    [ -f "$legacy/config" ]; then
    log "adopting $legacy (same source, fragment and build steps)"
    mkdir -p "$out"
    ln -f "$legacy/config" "$legacy/vmlinux.debug" "$out/"
    ln -f "$legacy/vmlinux" "$out/vmlinux"
fi

if [ -f "$out/vmlinux" ] && [ -f "$out/vmlinux.debug" ]; then
    log "cached: $out"
    echo "$out"
    exit 0
fi

[ -f "$tarball" ] || { log "$tarball missing (is $pkg installed?)"; exit 1; }
"$recipe" "$tarball" "$out" "$fragment"
echo "$out"
