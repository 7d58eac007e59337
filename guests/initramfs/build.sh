#!/usr/bin/env bash
# Build a busybox initramfs (gzip'd newc cpio) for a ppc64le guest or for the nested L1.
#
#   guests/initramfs/build.sh --out FILE --init SCRIPT [--add SRC=DEST]...
#
#   --init SCRIPT   becomes /init (a busybox sh script; see guest-init.sh)
#   --add SRC=DEST  copies a host file (or directory, recursively) to DEST in the image
#
# The image holds /bin/busybox (static, from Debian's busybox-static:ppc64el, pinned below)
# and /dev/console; applets are linked at boot by the init script (`busybox --install -s`).
# Output is reproducible: sorted entries, owner 0:0, mtime 0, `gzip -n`.
# Environment: PPC_VMM_CACHE (default ~/.cache/ppc-vmm), BUSYBOX_VERSION (pin override),
# NO_INSTALL=1 to skip apt.
set -euo pipefail

: "${BUSYBOX_VERSION:=1:1.35.0-4+deb12u1+b1}"
cache="${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}"
log() { echo "guests/initramfs: $*" >&2; }

out="" init="" adds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --init) init="$2"; shift 2 ;;
        --add) adds+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) log "unknown argument $1"; exit 2 ;;
    esac
done
[ -n "$out" ] && [ -n "$init" ] || { log "usage: build.sh --out FILE --init SCRIPT [--add SRC=DEST]..."; exit 2; }
[ -f "$init" ] || { log "init script $init not found"; exit 2; }

# Static busybox, cached per version.
bb="$cache/busybox/${BUSYBOX_VERSION//[~:]/_}/busybox"
if [ ! -x "$bb" ]; then
    if [ "${NO_INSTALL:-0}" != 1 ]; then
        if ! dpkg --print-foreign-architectures | grep -qx ppc64el; then
            log "dpkg --add-architecture ppc64el"
            dpkg --add-architecture ppc64el
            apt-get update -qq || true
        fi
        command -v cpio >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cpio >/dev/null
    fi
    tmp="$(mktemp -d)"
    (cd "$tmp" && apt-get download -qq "busybox-static:ppc64el=$BUSYBOX_VERSION") || {
        apt-get update -qq || true
        (cd "$tmp" && apt-get download -qq "busybox-static:ppc64el=$BUSYBOX_VERSION")
    }
    dpkg -x "$tmp"/busybox-static_*.deb "$tmp/root"
    mkdir -p "$(dirname "$bb")"
    cp "$tmp/root/bin/busybox" "$bb.tmp" && mv "$bb.tmp" "$bb"
    rm -rf "$tmp"
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,etc,root,mnt,usr/bin,usr/sbin,lib,var/log}
cp "$bb" "$stage/bin/busybox"
chmod 755 "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp "$init" "$stage/init"
chmod 755 "$stage/init"
mknod -m 600 "$stage/dev/console" c 5 1
for a in "${adds[@]}"; do
    src="${a%%=*}" dest="${a#*=}"
    [ -e "$src" ] || { log "--add: $src not found"; exit 2; }
    mkdir -p "$stage/$(dirname "$dest")"
    cp -RL "$src" "$stage/$dest" # follow symlinks: the image must hold the file itself
done
find "$stage" -exec touch -h -d @0 {} +
mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
    gzip -9n > "$out.tmp"
mv "$out.tmp" "$out"
log "wrote $out ($(du -h "$out" | cut -f1))"
