#!/usr/bin/env bash
# Creates (once) a Python venv holding the pinned drgn, for analyze-vmcore.py, and prints the
# venv's python path on stdout (everything else goes to stderr). Idempotent: an existing venv
# that already imports the pinned drgn is reused untouched.
#
#   PY=$(integration-tests/nested/drgn-env.sh) && "$PY" integration-tests/nested/analyze-vmcore.py ...
#
# The venv lives in the cache, keyed by the drgn version, so a bump is an edit of DRGN_VERSION
# and never disturbs an older venv. Needs python3 (>= 3.8; Debian bookworm has 3.11) with venv;
# installs python3-venv through apt when it is missing and we are root (NO_INSTALL=1 skips apt).
set -euo pipefail

# drgn 0.3.0: the newest release, with a cp311 manylinux2014 x86_64 wheel (no compiler needed).
: "${DRGN_VERSION:=0.3.0}"
: "${PYTHON:=/usr/bin/python3}"
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
CACHE="${PPC_VMM_CACHE:-$HOME/.cache/ppc-vmm}"
VENV="$CACHE/drgn-venv-$DRGN_VERSION"
VPY="$VENV/bin/python"

log() { echo "drgn-env: $*" >&2; }

if [ -x "$VPY" ] && "$VPY" -c "import sys, drgn; sys.exit(drgn.__version__ != '$DRGN_VERSION')" 2>/dev/null; then
    echo "$VPY"
    exit 0
fi

if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "${NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" != 0 ]; then
        log "$PYTHON has no venv/ensurepip; install python3-venv (apt-get install python3-venv)"
        exit 1
    fi
    log "installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y python3-venv >&2 || { apt-get update >&2 && apt-get install -y python3-venv >&2; }
fi

log "creating $VENV with drgn==$DRGN_VERSION"
# A half-made venv (interrupted install) fails the import check above and is rebuilt whole.
rm -rf "$VENV"
mkdir -p "$CACHE"
"$PYTHON" -m venv "$VENV" >&2
"$VPY" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    "drgn==$DRGN_VERSION" >&2
"$VPY" -c "import drgn; assert drgn.__version__ == '$DRGN_VERSION', drgn.__version__" >&2
log "ready: $VPY"
echo "$VPY"
