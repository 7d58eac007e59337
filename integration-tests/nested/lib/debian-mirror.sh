#!/usr/bin/env bash
# Prints the Debian archive mirror this machine's own apt sources use (the repository URI of
# its main suite, e.g. the one serving "bookworm"), so that scripts adding another suite
# (bookworm-backports, sid) take the machine's mirror instead of naming a host themselves.
#
#   lib/debian-mirror.sh [SUITE]     # SUITE defaults to the host's codename
#
# Reads `apt-get indextargets` (what the configured sources list, no network needed); falls back
# to the URIs:/deb lines of /etc/apt. Exits 1 with a message when no source serves SUITE.
set -euo pipefail
suite="${1:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
uri="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
    awk -v s="$suite" '$2 == s { print $1; exit }' || true)"
if [ -z "$uri" ]; then
    # No index target yet (a source file apt never read): the sources themselves.
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk -v s="$suite" '$1 == "deb" { for (i = 2; i < NF; i++) if ($(i + 1) == s && $i !~ /^\[/) { print $i; exit } }' || true)"
fi
if [ -z "$uri" ]; then
    uri="$(for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && cat "$f" && echo; done |
        awk -v s="$suite" '
            /^[[:space:]]*$/ { if (u != "" && hit) { print u; exit } u = ""; hit = 0; next }
            $1 == "URIs:" { u = $2 }
            $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
            END { if (u != "" && hit) print u }' | head -1 || true)"
fi
[ -n "$uri" ] || { echo "debian-mirror: no apt source of this machine serves '$suite'" >&2; exit 1; }
echo "${uri%/}"
