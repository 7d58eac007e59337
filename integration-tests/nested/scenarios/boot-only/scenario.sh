# shellcheck shell=bash
# boot-only, host half (sourced by boot-our-vmm.sh): the guest powers off at /init.
# shellcheck disable=SC2034 # read by boot-our-vmm.sh
action=poweroff
