#!/usr/bin/env bash
# Idempotent installer for the nested ppc64 KVM test environment (Debian bookworm, x86_64 host).
#
#   integration-tests/nested/setup.sh        # prints the cache directory when done
#
# Installs on the host:
#   - the bookworm-backports apt source (if no apt source names it yet)
#   - qemu-system-ppc from bookworm-backports (the L0 emulator, 10.0.x) and cpio
#   - the foreign architecture ppc64el
# Downloads and unpacks into the cache (default ~/.cache/ppc-vmm/nested, env NESTED_CACHE):
#   l1-kernel/<version>/   linux-image-<L1_KERNEL_ABI>:ppc64el from bookworm-backports,
#                          dpkg -x'd; vmlinux + modules
#   busybox/<version>/     busybox-static:ppc64el
#   qemu-l1/<version>/     qemu-system-ppc:ppc64el (bookworm, 7.2) and the shared libraries
#                          it needs, as a tiny rootfs to run QEMU-as-VMM inside L1
# Every directory is keyed by the exact package version and created atomically (tmp + mv),
# so a finished directory is never rebuilt and an interrupted run leaves nothing half-done.
#
# Environment: NESTED_CACHE, NO_INSTALL=1 (skip apt-get install/update; fail if missing),
#   L1_KERNEL_VERSION (pin override), QEMU_L1_VERSION (pin override).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"

log() { echo "nested/setup: $*" >&2; }

apt_updated=0
apt_update() {
    [ "$apt_updated" = 1 ] && return 0
    log "apt-get update"
    # A mirror mid-sync can fail one index (seen for bookworm-security ppc64el); the pinned
    # packages are checked explicitly afterwards, so a partial update is not fatal here.
    apt-get update -qq || log "warning: apt-get update reported errors (continuing)"
    apt_updated=1
}

if [ "${NO_INSTALL:-0}" != 1 ]; then
    # 1. bookworm-backports source.
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        # The machine's own mirror (the one its bookworm source uses), never a named host.
        mirror="$("$here/lib/debian-mirror.sh" bookworm)"
        log "adding bookworm-backports apt source ($mirror)"
        cat > /etc/apt/sources.list.d/bookworm-backports.sources <<EOF
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        apt_updated=0
    fi
    # 2. ppc64el foreign architecture.
    if ! dpkg --print-foreign-architectures | grep -qx ppc64el; then
        log "dpkg --add-architecture ppc64el"
        dpkg --add-architecture ppc64el
        apt_updated=0
    fi
    # 3. Host tools: L0 emulator from backports, cpio, xz, tar.
    have_l0="$(dpkg-query -W -f='${Version}' qemu-system-ppc 2>/dev/null || true)"
    missing=()
    case "$have_l0" in *bpo12*) ;; *) missing+=("qemu-system-ppc") ;; esac
    for p in cpio xz-utils tar gzip python3; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt_update
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports \
            "${missing[@]}" >/dev/null
    fi
    # ppc64el package lists must be present for apt-get download below.
    if ! apt-cache show "busybox-static:ppc64el" >/dev/null 2>&1; then apt_update; fi
    if ! apt-cache show "linux-image-${L1_KERNEL_ABI}:ppc64el=${L1_KERNEL_VERSION}" >/dev/null 2>&1; then
        apt_update
    fi
fi

command -v qemu-system-ppc64 >/dev/null || { log "qemu-system-ppc64 missing"; exit 1; }

mkdir -p "$NESTED_CACHE/debs"

# download PKG VERSION [ARCH]: fetch PKG:ARCH=VERSION into the debs dir once; prints its path.
download() {
    local pkg="$1" ver="$2" arch="${3:-ppc64el}" f
    f="$NESTED_CACHE/debs/${pkg}_${ver//:/%3a}_${arch}.deb"
    if [ ! -f "$f" ]; then
        local spec="${pkg}:${arch}=${ver}"
        [ "$arch" = all ] && spec="${pkg}=${ver}"
        (cd "$NESTED_CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "$spec" >&2)
    fi
    [ -f "$f" ] || { log "download of $pkg $ver ($arch) did not produce $f"; exit 1; }
    echo "$f"
}

# 4. L1 kernel.
l1dir="$NESTED_CACHE/l1-kernel/${L1_KERNEL_VERSION//[~:]/_}"
if [ ! -f "$l1dir/.done" ]; then
    log "L1 kernel linux-image-${L1_KERNEL_ABI} ${L1_KERNEL_VERSION}"
    deb="$(download "linux-image-${L1_KERNEL_ABI}" "$L1_KERNEL_VERSION")"
    rm -rf "$l1dir.tmp" && mkdir -p "$l1dir.tmp"
    dpkg -x "$deb" "$l1dir.tmp/root"
    ln -s "root/boot/vmlinux-${L1_KERNEL_ABI}" "$l1dir.tmp/vmlinux"
    [ -f "$l1dir.tmp/root/boot/vmlinux-${L1_KERNEL_ABI}" ] || { log "no vmlinux in $deb"; exit 1; }
    touch "$l1dir.tmp/.done"
    rm -rf "$l1dir" && mv "$l1dir.tmp" "$l1dir"
fi

# 5. busybox-static.
bbdir="$NESTED_CACHE/busybox/${BUSYBOX_VERSION//[~:]/_}"
if [ ! -f "$bbdir/.done" ]; then
    log "busybox-static ${BUSYBOX_VERSION}"
    deb="$(download busybox-static "$BUSYBOX_VERSION")"
    rm -rf "$bbdir.tmp" && mkdir -p "$bbdir.tmp"
    dpkg -x "$deb" "$bbdir.tmp/root"
    cp "$bbdir.tmp/root/bin/busybox" "$bbdir.tmp/busybox"
    rm -rf "$bbdir.tmp/root"
    touch "$bbdir.tmp/.done"
    rm -rf "$bbdir" && mv "$bbdir.tmp" "$bbdir"
fi

# 6. QEMU 7.2 (ppc64el) + the shared libraries its binary needs, as a rootfs for L1.
qdir="$NESTED_CACHE/qemu-l1/${QEMU_L1_VERSION//[~:]/_}"
if [ ! -f "$qdir/.done" ]; then
    log "qemu-system-ppc:ppc64el ${QEMU_L1_VERSION} + library closure"
    rm -rf "$qdir.tmp" && mkdir -p "$qdir.tmp/full"
    pkgs=(qemu-system-ppc)
    # Library closure from apt's Depends graph, restricted to shared-library packages
    # (lib*): that is what the dynamic linker needs; maintainer-script deps are not.
    while IFS= read -r p; do pkgs+=("$p"); done < <(
        apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances --no-pre-depends "qemu-system-ppc:ppc64el=${QEMU_L1_VERSION}" 2>/dev/null |
            sed -n 's/^\(\(lib\|zlib\)[^ <>]*\):ppc64el$/\1/p' | sort -u)
    # One apt-cache and one apt-get call for all of them: each call loads the whole package
    # cache (two architectures), seconds apiece.
    declare -A ver=([qemu-system-ppc]="$QEMU_L1_VERSION")
    libs=("${pkgs[@]:1}")
    while read -r p v; do ver[$p]="$v"; done < <(
        apt-cache policy "${libs[@]/%/:ppc64el}" |
            awk '/^[^ ]/ { p = $1; sub(/:ppc64el:$/, "", p) } /^  Candidate:/ { print p, $2 }')
    specs=()
    for p in "${pkgs[@]}"; do
        v="${ver[$p]:-}"
        if [ -z "$v" ] || [ "$v" = "(none)" ]; then log "no candidate for $p:ppc64el"; exit 1; fi
        [ -f "$NESTED_CACHE/debs/${p}_${v//:/%3a}_ppc64el.deb" ] || specs+=("$p:ppc64el=$v")
    done
    if [ ${#specs[@]} -gt 0 ]; then
        log "downloading ${#specs[@]} packages"
        (cd "$NESTED_CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "${specs[@]}" >&2)
    fi
    for p in "${pkgs[@]}"; do
        deb="$(download "$p" "${ver[$p]}")"
        dpkg -x "$deb" "$qdir.tmp/full"
        echo "$p ${ver[$p]}" >> "$qdir.tmp/packages.txt"
    done
    # pseries firmware (slof.bin, vof.bin) is in the architecture-independent data package,
    # whose version is the source version (no binNMU suffix).
    data_ver="${QEMU_L1_VERSION%+b[0-9]*}"
    deb="$(download qemu-system-data "$data_ver" all)"
    dpkg -x "$deb" "$qdir.tmp/full"
    echo "qemu-system-data $data_ver" >> "$qdir.tmp/packages.txt"
    # Keep only what the binary needs: the binary, the firmware it loads for pseries/VOF,
    # and the NEEDED closure of shared objects (by soname, searched in the usual dirs).
    python3 "$here/lib/minimal-rootfs.py" "$qdir.tmp/full" "$qdir.tmp/root" \
        usr/bin/qemu-system-ppc64 \
        usr/share/qemu/vof.bin usr/share/qemu/slof.bin
    rm -rf "$qdir.tmp/full"
    touch "$qdir.tmp/.done"
    rm -rf "$qdir" && mv "$qdir.tmp" "$qdir"
fi

# Sanity check of the L1 QEMU rootfs on the host through qemu-user, when present.
if command -v qemu-ppc64le >/dev/null && [ ! -f "$qdir/.user-checked" ]; then
    if qemu-ppc64le -L "$qdir/root" "$qdir/root/usr/bin/qemu-system-ppc64" --version >&2; then
        touch "$qdir/.user-checked"
    else
        log "warning: qemu-system-ppc64 (ppc64el) did not run under qemu-user"
    fi
fi

log "ready: L0 $(qemu-system-ppc64 --version | head -1)"
echo "$NESTED_CACHE"
