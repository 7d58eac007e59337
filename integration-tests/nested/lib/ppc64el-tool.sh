# shellcheck shell=bash
# Sourced by the setup-*.sh scripts that bring one ppc64el Debian binary into a payload:
#
#   ppc64el_tool DIR "PINNED_PACKAGE=VERSION" "BINARY ..." [LIBRARY_PACKAGE...]
#
# makes DIR/root (once; DIR/.done marks it) holding BINARY (paths relative to the package tree),
# its program interpreter and its DT_NEEDED closure as regular files at the paths a Debian
# system has them (lib/minimal-rootfs.py, which fails on a missing soname), and DIR/packages.txt
# (packages and versions). The pinned package comes at its pinned version, each library package
# (libc6 always) at the machine's apt candidate unless written NAME=VERSION, all by `apt-get download` into
# $NESTED_CACHE/debs and `dpkg -x`. The apt sources are the machine's own. NO_INSTALL=1: no
# dpkg --add-architecture / apt-get update. Needs $here (the nested directory) and log().
ppc64el_tool() {
    local dir="$1" pinned="$2" bins="$3"
    shift 3
    [ -f "$dir/.done" ] && return 0
    local name="${pinned%%=*}" ver="${pinned#*=}"
    if [ "${NO_INSTALL:-0}" != 1 ]; then
        if ! dpkg --print-foreign-architectures | grep -qx ppc64el; then
            log "dpkg --add-architecture ppc64el"
            dpkg --add-architecture ppc64el
            apt-get update -qq || log "warning: apt-get update reported errors (continuing)"
        fi
        if ! apt-cache show "$name:ppc64el=$ver" >/dev/null 2>&1; then
            apt-get update -qq || log "warning: apt-get update reported errors (continuing)"
        fi
    fi
    local pvs=("$pinned") p v lib
    for lib in libc6 "$@"; do
        case "$lib" in *=*) pvs+=("$lib"); continue ;; esac
        v="$(apt-cache policy "$lib:ppc64el" | awk '/^  Candidate:/ { print $2 }')"
        [ -n "$v" ] && [ "$v" != "(none)" ] || { log "no $lib:ppc64el candidate"; return 1; }
        pvs+=("$lib=$v")
    done
    log "ppc64el: ${pvs[*]}"
    mkdir -p "$NESTED_CACHE/debs"
    local specs=() pv
    for pv in "${pvs[@]}"; do
        p="${pv%%=*}" v="${pv#*=}"
        [ -f "$NESTED_CACHE/debs/${p}_${v//:/%3a}_ppc64el.deb" ] || specs+=("$p:ppc64el=$v")
    done
    if [ ${#specs[@]} -gt 0 ]; then
        (cd "$NESTED_CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "${specs[@]}" >&2)
    fi
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/full"
    local deb
    for pv in "${pvs[@]}"; do
        p="${pv%%=*}" v="${pv#*=}"
        deb="$NESTED_CACHE/debs/${p}_${v//:/%3a}_ppc64el.deb"
        [ -f "$deb" ] || { log "download of $p $v did not produce $deb"; return 1; }
        dpkg -x "$deb" "$dir.tmp/full"
        echo "$p $v" >> "$dir.tmp/packages.txt"
    done
    # shellcheck disable=SC2086 # a list of paths
    python3 "$here/lib/minimal-rootfs.py" "$dir.tmp/full" "$dir.tmp/root" $bins
    rm -rf "$dir.tmp/full"
    touch "$dir.tmp/.done"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
}
