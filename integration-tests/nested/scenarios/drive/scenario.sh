# shellcheck shell=bash
# drive, host half (sourced by boot-our-vmm.sh): nothing beyond the defaults (the guest is
# driven through its console, guest.action=commands; the QEMU 7.2 peer unless --no-peer).
:
