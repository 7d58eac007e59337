# shellcheck shell=bash
# disk, host half (sourced by boot-our-vmm.sh): three disks from L1 files (run.sh makes them),
# and the output disk to carry the writable one's backing file out.
# shellcheck disable=SC2034 # read by boot-our-vmm.sh
disks=" --disk path=/tmp/disk0.img --disk path=/tmp/disk1.img,readonly=on --disk path=/tmp/bench.img"
# shellcheck disable=SC2034
out_image=1
