#!/bin/sh
# drive, L1 half: boot, --guest-cmd, CPU hot-unplug/plug (RTAS stop-self, then
# query-cpu-stopped-state + start-cpu), reboot, power-off; then the QEMU 7.2 peer boot.
# shellcheck source=../../lib/l1-vmm.sh # beside run.sh in the payload
. ./l1-vmm.sh
vmm_start
if ready 1; then
    if [ -s "$P"/vmm-guest-cmd ]; then
        # An extra command from --guest-cmd, run first; done when the guest asks for the next.
        guest_step 900 "$(cat "$P"/vmm-guest-cmd); echo GUEST-CMD-DONE"
    fi
    n=$(count GUEST-READY)
    # shellcheck disable=SC2016 # expanded in the guest
    send 'echo 0 > /sys/devices/system/cpu/cpu1/online && echo GUEST-CPU1-OFFLINE nproc=$(nproc) && echo 1 > /sys/devices/system/cpu/cpu1/online && echo GUEST-CPU1-ONLINE nproc=$(nproc); echo GUEST-NPROC=$(nproc); reboot -f'
    # The rebooted guest announces itself again; only then power it off.
    ready 2 "$n" && send 'poweroff -f'
fi
vmm_wait; rc=$?
peer poweroff
exit $rc
