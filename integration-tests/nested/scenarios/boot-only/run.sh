#!/bin/sh
# boot-only, L1 half: the guest (guest.action=poweroff) powers off as soon as it reaches /init;
# then the QEMU 7.2 peer boots the same guest.
# shellcheck source=../../lib/l1-vmm.sh # beside run.sh in the payload
. ./l1-vmm.sh
vmm_start
vmm_wait; rc=$?
peer poweroff
exit $rc
