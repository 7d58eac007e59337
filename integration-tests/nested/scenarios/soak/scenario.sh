# shellcheck shell=bash
# soak, host half (sourced by boot-our-vmm.sh): one VMM process, SOAK_CYCLES fadump cycles
# (crash -> capture -> save -> release -> re-register, the capture kernel crashing again in
# the next cycle), then SOAK_REBOOTS guest reboots; L1 measures our VMM's resident memory,
# open file descriptors and threads after each. Each cycle's vmcore gets its own region of the
# export disk (vmcore-save OFFSET), so the host checks every one of them.
# shellcheck disable=SC2034,SC2154 # set and read by boot-our-vmm.sh
cycles="${SOAK_CYCLES:-20}"
reboots="${SOAK_REBOOTS:-200}"
case "$cycles$reboots" in *[!0-9]*|"") echo "SOAK_CYCLES / SOAK_REBOOTS: whole numbers" >&2; exit 2 ;; esac
[ "$crash" = sysrq ] || { echo "--mode soak crashes with sysrq only (no --crash)" >&2; exit 2; }
# As the crash mode's sysrq kind: fadump's boot memory sized by crashkernel= (see
# scenarios/crash/scenario.sh), 1536M of guest RAM.
append="fadump=on crashkernel=${CRASHKERNEL:-384M}${append:+ $append}"
peer=0
memory="${memory:-1536M}"
case "$memory" in
    [0-9]*M) mem_mib="${memory%M}" ;;
    [0-9]*G) mem_mib=$(( ${memory%G} * 1024 )) ;;
    *) echo "--mode soak: --memory in M or G (no hotplug window)" >&2; exit 2 ;;
esac
# A vmcore is at most RAM plus its headers (fadump leaves the reservation out): one region of
# RAM + 64 MiB per cycle; the guest refuses to save a bigger one rather than overlap the next.
stride_mib=$((mem_mib + 64))
out_size="${out_size:-$(( cycles * stride_mib + 64 ))M}"
[ "$mem_mib" -le 2048 ] || l1_mem="${l1_mem:-6G}"
disks=" --disk path=/dev/vda"
out_image=1
echo "cycles=$cycles reboots=$reboots stride_mib=$stride_mib" > "$run/soak-settings"
l1_add+=("$run/soak-settings=soak-settings")
# boot-our-vmm.sh's default (1500 s) is one crash; a cycle took about 40 s and a reboot about
# 5 s on a quiet host, so allow ~6x that and 15 minutes more.
min_timeout=$(( 900 + cycles * 240 + reboots * 30 ))
[ "$timeout" -ge "$min_timeout" ] || timeout="$min_timeout"
