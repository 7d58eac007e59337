#!/usr/bin/env bash
# Idempotent installer of Debian sid's QEMU 11.1 as a tiny rootfs run through its own dynamic
# loader. Two builds of the same pinned version:
#
#   integration-tests/nested/setup-qemu-sid.sh               # ppc64el: the VMM inside L1
#   integration-tests/nested/setup-qemu-sid.sh --arch amd64  # amd64: an L0 on this host
#
# Both print the rootfs directory when done.
#
# ppc64el (default) has pseries fadump (`ibm,configure-kernel-dump`) and runs as the VMM inside
# L1, next to the bookworm QEMU 7.2 peer that setup.sh installs. amd64 has powernv MPIPL and runs
# on the bookworm host itself (opal-conformance.sh): sid's libc is newer than bookworm's, which is
# why either is always started through the rootfs's own loader.
#
# Result: $NESTED_CACHE/qemu-sid/<version>/root (ppc64el) or
# $NESTED_CACHE/qemu-sid-amd64/<version>/root (amd64) holding usr/bin/qemu-system-ppc64, the
# dynamic loader (lib64/ld64.so.2, lib64/ld-linux-x86-64.so.2) and every shared object in the
# binary's DT_NEEDED closure (all from sid), and the pseries/powernv firmware in usr/share/qemu
# (vof.bin, slof.bin, skiboot.lid). Run it (rootfs at $Q, LIBDIR the arch's multiarch name,
# powerpc64le-linux-gnu or x86_64-linux-gnu; `--print-run` prints this command prefix):
#   $Q/lib64/<loader> --library-path $Q/lib/LIBDIR:$Q/usr/lib/LIBDIR \
#       $Q/usr/bin/qemu-system-ppc64 -L $Q/usr/share/qemu ...
# Next to root/: packages.txt (every package and version unpacked) and closure.txt (sizes).
#
# How: a private apt configuration under <base>/apt (its own sources list, lists, cache, and an
# empty dpkg status so nothing installed on the host counts) with only `sid main` for the
# chosen architecture as the native one. The host's apt configuration, lists and
# dpkg state are never read or written by it. The package set is what apt's resolver would
# install for qemu-system-ppc=<pin> (plus qemu-system-data at the same version, for
# skiboot.lid) without recommends (`apt-get -s install` on the empty
# status: one consistent choice per alternative/virtual package, unlike
# `apt-cache depends --recurse`, which lists every provider). All of it is unpacked
# (dpkg-deb -x, no maintainer scripts) into a scratch tree, then lib/minimal-rootfs.py keeps the
# binary, the firmware and the shared objects it needs, failing on any missing soname.
# The directory is created atomically (tmp + mv) and checked before it is published:
# qemu-system-ppc64 --version and -machine help (pseries, resp. powernv9, listed) run on the host
# (ppc64el through qemu-user, qemu-ppc64le), and the binary must contain
# "ibm,configure-kernel-dump" (ppc64el) or "mpipl-boot" (amd64).
# On later runs only that check is repeated. Kept in the cache: debs/ (the .debs, 37 MB for
# 11.1.3 ppc64el) and the version directory (root/ is about 70 MB); the sid index is dropped.
#
# Environment: NESTED_CACHE (see versions.sh), QEMU_SID_VERSION (pin override),
#   QEMU_SID_MIRROR (default: the mirror of the machine's bookworm apt source, from
#   lib/debian-mirror.sh), NO_INSTALL=1 (do not apt-get install
#   qemu-user on the host; the ppc64el check is then skipped with a warning when it is missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"
# sid drops superseded versions: a bump is an edit of this pin, and the cache is keyed by it.
: "${QEMU_SID_VERSION:=1:11.1.3+ds-1}"
# The sid suite comes from the mirror this machine's own apt sources use for bookworm.
: "${QEMU_SID_MIRROR:=$("$here/lib/debian-mirror.sh" bookworm)}"

log() { echo "nested/setup-qemu-sid: $*" >&2; }
die() { log "error: $*"; exit 1; }

arch=ppc64el print_run=0
while [ $# -gt 0 ]; do
    case "$1" in
    --arch) [ $# -ge 2 ] || die "--arch needs ppc64el or amd64"; arch="$2"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    --print-run) print_run=1; shift ;;
    -h | --help) sed -n '2,46p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
    esac
done
# Per architecture: cache base (ppc64el keeps the directory it always had), multiarch library
# directory, loader, the string the binary must contain, the machine -machine help must list.
case "$arch" in
ppc64el)
    base="$NESTED_CACHE/qemu-sid" triplet=powerpc64le-linux-gnu loader=lib64/ld64.so.2
    marker='ibm,configure-kernel-dump' machine=pseries ;;
amd64)
    base="$NESTED_CACHE/qemu-sid-amd64" triplet=x86_64-linux-gnu loader=lib64/ld-linux-x86-64.so.2
    marker='mpipl-boot' machine=powernv9 ;;
*) die "unknown --arch $arch (ppc64el or amd64)" ;;
esac
qdir="$base/${QEMU_SID_VERSION//[~:]/_}"
root="$qdir/root"
aptdir="$base/apt"
debs="$base/debs"
libpath_rel="lib/$triplet:usr/lib/$triplet"

# Private apt configuration. APT_CONFIG is read before Dir::Etc::parts, and both parts and
# main point into $aptdir, so none of /etc/apt is consulted (the keyring is only read).
write_apt_config() {
    mkdir -p "$aptdir/etc/apt.conf.d" "$aptdir/etc/preferences.d" "$aptdir/etc/sources.list.d" \
        "$aptdir/etc/trusted.gpg.d" "$aptdir/lists/partial" "$aptdir/cache/archives/partial" \
        "$aptdir/state"
    [ -f "$aptdir/state/status" ] || : > "$aptdir/state/status"
    echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $QEMU_SID_MIRROR sid main" \
        > "$aptdir/etc/sources.list"
    # The host's own proxy setting, if any, is carried over: the one thing it needs from there.
    local proxy=""
    proxy="$(apt-config dump Acquire::http::Proxy 2>/dev/null | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p' | head -1)"
    cat > "$aptdir/apt.conf" <<EOF
Dir::Etc "$aptdir/etc";
Dir::Etc::main "$aptdir/etc/apt.conf";
Dir::Etc::parts "$aptdir/etc/apt.conf.d";
Dir::Etc::sourcelist "$aptdir/etc/sources.list";
Dir::Etc::sourceparts "$aptdir/etc/sources.list.d";
Dir::Etc::preferences "$aptdir/etc/preferences";
Dir::Etc::preferencesparts "$aptdir/etc/preferences.d";
Dir::Etc::trusted "$aptdir/etc/trusted.gpg";
Dir::Etc::trustedparts "$aptdir/etc/trusted.gpg.d";
Dir::State "$aptdir/state";
Dir::State::lists "$aptdir/lists";
Dir::State::status "$aptdir/state/status";
Dir::Cache "$aptdir/cache";
Dir::Cache::archives "$aptdir/cache/archives";
Dir::Log "$aptdir/log";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Sandbox::User "root";
APT::Get::Assume-Yes "true";
Acquire::Languages "none";
// The registry mirror serves a frozen snapshot whose Release is past its Valid-Until on this
// clock; the signature is still checked against debian-archive-keyring.
Acquire::Check-Valid-Until "false";
Acquire::Check-Date "false";
EOF
    if [ -n "$proxy" ]; then echo "Acquire::http::Proxy \"$proxy\";" >> "$aptdir/apt.conf"; fi
}
sid_apt_get() { APT_CONFIG="$aptdir/apt.conf" apt-get -q "$@"; }
sid_apt_cache() { APT_CONFIG="$aptdir/apt.conf" apt-cache "$@"; }

# qemu-user for the host-side check.
ensure_qemu_user() {
    command -v qemu-ppc64le >/dev/null && return 0
    if [ "${NO_INSTALL:-0}" = 1 ]; then return 1; fi
    log "installing qemu-user on the host (for the check)"
    apt-get update -qq || log "warning: apt-get update reported errors (continuing)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
    command -v qemu-ppc64le >/dev/null
}

# run_cmd DIR: the command prefix that starts DIR's qemu-system-ppc64 through its own loader
# (under qemu-user for ppc64el on this host).
run_cmd() {
    local r="$1"
    local libpath="$r/${libpath_rel//:/:$r/}"
    if [ "$arch" = ppc64el ]; then printf 'qemu-ppc64le '; fi
    printf '%s --library-path %s %s\n' "$r/$loader" "$libpath" "$r/usr/bin/qemu-system-ppc64"
}

# check DIR: run the rootfs's qemu-system-ppc64 through its own loader (ppc64el: under qemu-user).
check_root() {
    local r="$1" bin="$1/usr/bin/qemu-system-ppc64" out run
    [ -x "$bin" ] || die "$bin missing"
    grep -aqF "$marker" "$bin" || die "$bin has no \"$marker\""
    for f in "$loader" usr/share/qemu/vof.bin usr/share/qemu/slof.bin usr/share/qemu/skiboot.lid; do
        [ -f "$r/$f" ] || die "$r/$f missing"
    done
    if [ "$arch" = ppc64el ] && ! ensure_qemu_user; then
        log "warning: qemu-ppc64le not available; skipped running the binary"
        return 0
    fi
    read -ra run < <(run_cmd "$r")
    out="$("${run[@]}" --version 2>&1)" ||
        die "qemu-system-ppc64 --version failed: $out"
    case "$out" in
    *"QEMU emulator version"*"$QEMU_SID_VERSION"*) ;;
    *) die "unexpected --version output: $out" ;;
    esac
    log "$(echo "$out" | head -1)"
    out="$("${run[@]}" -machine help 2>&1)" ||
        die "qemu-system-ppc64 -machine help failed: $out"
    echo "$out" | grep -q "^$machine " || die "no $machine machine in: $out"
    log "machine: $(echo "$out" | grep "^$machine " | head -1 | tr -s ' ')"
}

if [ ! -f "$qdir/.done" ]; then
    t0=$(date +%s)
    for t in apt-get apt-cache dpkg-deb python3; do
        command -v "$t" >/dev/null || die "$t missing"
    done
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || die "debian-archive-keyring missing"
    write_apt_config
    # The sid index and apt's binary caches (~150 MB) are only needed while building.
    trap 'rm -rf "$aptdir/lists" "$aptdir/cache"' EXIT
    log "apt-get update (private: $aptdir)"
    sid_apt_get update -qq >&2 || die "apt-get update of sid failed"
    # (apt-cache show PKG=VER succeeds even when VER is absent: compare the version list.)
    if ! sid_apt_cache madison qemu-system-ppc | awk -F' *[|] *' '{ print $2 }' |
        grep -qxF "$QEMU_SID_VERSION"; then
        die "qemu-system-ppc $QEMU_SID_VERSION is not in sid (now: $(sid_apt_cache policy qemu-system-ppc |
            sed -n 's/^  Candidate: //p')); set QEMU_SID_VERSION or bump the pin"
    fi

    # 1. The package set apt would install, as "name version" lines.
    # qemu-system-data (skiboot.lid, slof.bin, vof.bin) is named: it is a dependency of the
    # ppc64el build but only a recommendation of the amd64 one.
    sim="$(sid_apt_get -s install --no-install-recommends "qemu-system-ppc=$QEMU_SID_VERSION" \
        "qemu-system-data=$QEMU_SID_VERSION" 2>&1)" ||
        die "apt could not resolve qemu-system-ppc=$QEMU_SID_VERSION: $sim"
    mapfile -t closure < <(echo "$sim" | sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*/\1 \2/p')
    [ ${#closure[@]} -gt 0 ] || die "empty package set from: $sim"
    grep -qx "qemu-system-ppc $QEMU_SID_VERSION" < <(printf '%s\n' "${closure[@]}") ||
        die "resolver did not pick qemu-system-ppc $QEMU_SID_VERSION"
    log "${#closure[@]} packages in the closure"

    # 2. Download what the debs cache lacks, in one apt-get call.
    mkdir -p "$debs"
    deb_of() { compgen -G "$debs/${1}_${2//:/%3a}_*.deb" | head -1 || true; }
    want=()
    for pv in "${closure[@]}"; do
        read -r p v <<< "$pv"
        [ -n "$(deb_of "$p" "$v")" ] || want+=("$p=$v")
    done
    if [ ${#want[@]} -gt 0 ]; then
        log "downloading ${#want[@]} packages"
        (cd "$debs" && sid_apt_get download -qq "${want[@]}" >&2) || die "apt-get download failed"
    fi

    # 3. Unpack everything, then keep the binary, firmware and its shared-object closure.
    rm -rf "$qdir.tmp" && mkdir -p "$qdir.tmp/full"
    dl_bytes=0
    for pv in "${closure[@]}"; do
        read -r p v <<< "$pv"
        deb="$(deb_of "$p" "$v")"
        [ -n "$deb" ] || die "no .deb for $p $v in $debs after download"
        dpkg-deb -x "$deb" "$qdir.tmp/full"
        dl_bytes=$((dl_bytes + $(stat -c %s "$deb")))
        echo "$p $v" >> "$qdir.tmp/packages.txt"
    done
    # sid's packages ship /usr only; /lib, /lib64 are base-files' merged-/usr symlinks, which
    # are not in a dependency closure. Recreate them so the ELF interpreter /lib64/ld64.so.2
    # and the usual library directories resolve in the scratch tree.
    for d in lib lib64; do
        if [ ! -e "$qdir.tmp/full/$d" ] && [ -d "$qdir.tmp/full/usr/$d" ]; then
            ln -s "usr/$d" "$qdir.tmp/full/$d"
        fi
    done
    unpacked_kb=$(du -sk "$qdir.tmp/full" | cut -f1)
    python3 "$here/lib/minimal-rootfs.py" \
        --lib-dir "lib/$triplet" --lib-dir "usr/lib/$triplet" --lib-dir lib64 --lib-dir lib \
        --lib-dir usr/lib "$qdir.tmp/full" "$qdir.tmp/root" \
        usr/bin/qemu-system-ppc64 \
        usr/share/qemu/vof.bin usr/share/qemu/slof.bin usr/share/qemu/skiboot.lid ||
        die "shared-object closure incomplete (see above)"
    rm -rf "$qdir.tmp/full"
    root_kb=$(du -sk "$qdir.tmp/root" | cut -f1)
    {
        echo "packages ${#closure[@]}"
        echo "debs_mb $((dl_bytes / 1048576))"
        echo "unpacked_mb $((unpacked_kb / 1024))"
        echo "root_mb $((root_kb / 1024))"
        echo "root_files $(find "$qdir.tmp/root" -type f | wc -l)"
    } > "$qdir.tmp/closure.txt"
    check_root "$qdir.tmp/root"
    touch "$qdir.tmp/.done"
    rm -rf "$qdir" && mv "$qdir.tmp" "$qdir"
    log "built in $(($(date +%s) - t0)) s: $(tr '\n' ' ' < "$qdir/closure.txt")"
else
    check_root "$root"
fi

if [ "$print_run" = 1 ]; then run_cmd "$root"; else echo "$root"; fi
