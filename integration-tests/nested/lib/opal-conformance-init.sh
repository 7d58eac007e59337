#!/bin/busybox sh
# /init of the powernv guest of opal-conformance.sh (QEMU 11.1 powernv9 + skiboot, fadump=on).
# The host reads guest memory through QEMU's monitor at two points; the guest waits for a line
# on the console after each marker so that memory holds still meanwhile.
#
# First boot (no /proc/vmcore):
#   OPALCONF-FIRST registered=<0|1> ...   then the fadump lines of dmesg and the registered
#                                          regions (/sys/kernel/debug/powerpc/fadump_region)
#   OPALCONF-WAIT first                    host dumps skiboot's MDST/MDDT, metadata, the kernel's
#                                          opal_fadump_mem_struct; then sends a line
#   OPALCONF-CRASH                         echo c > /proc/sysrq-trigger (MPIPL)
# MPIPL boot (/proc/vmcore present and non-empty):
#   OPALCONF-CAPTURE vmcore=<bytes> ...    the fadump lines, the vmcore's ELF header and notes
#   OPALCONF-VMCORE-HEAD <base64 line>...  (first 16 KiB of /proc/vmcore, gzip'd)
#   OPALCONF-WAIT capture                  host dumps MDRT, proc_dump_area, register data, ...
#   OPALCONF-POWEROFF                      poweroff -f
# Anything unexpected prints OPALCONF-FAIL <why> and powers off.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

say() { echo "OPALCONF-$*"; }
fadump_log() { dmesg | grep -iE 'fadump|mpipl|opal.*dump' | sed 's/^/OPALCONF-DMESG /'; }
regions() {
    for f in /sys/kernel/debug/powerpc/fadump_region /sys/kernel/debug/fadump_region; do
        [ -r "$f" ] && sed 's/^/OPALCONF-REGION /' "$f" && return 0
    done
}
# /ibm,opal/dump as the kernel got it: one line per property, value in hex.
dump_node() {
    for f in /proc/device-tree/ibm,opal/dump/*; do
        [ -f "$f" ] || continue
        echo "OPALCONF-DT $1 ${f##*/} $(od -An -v -tx1 "$f" | tr -d ' \n')"
    done
    for f in /proc/device-tree/reserved-memory/*/; do
        [ -d "$f" ] || continue
        echo "OPALCONF-RESMEM $1 $(basename "$f") $(od -An -v -tx1 "$f/reg" 2>/dev/null | tr -d ' \n')"
    done
}
wait_host() {
    say "WAIT $1"
    # The host answers with a line on the console once it has read memory.
    read -r _answer
    say "RESUMED $1"
}
bye() {
    say "POWEROFF"
    sync
    poweroff -f
}

say "INIT kernel=$(uname -r) nproc=$(nproc) uptime=$(cut -d' ' -f1 /proc/uptime)"
vmcore_size=0
[ -e /proc/vmcore ] && vmcore_size=$(stat -c %s /proc/vmcore 2>/dev/null || echo 0)

if [ "$vmcore_size" -gt 0 ]; then
    say "CAPTURE vmcore=$vmcore_size enabled=$(cat /sys/kernel/fadump/enabled 2>/dev/null) registered=$(cat /sys/kernel/fadump/registered 2>/dev/null)"
    fadump_log
    regions
    dump_node capture
    [ -d /sys/firmware/opal/mpipl ] && say "OPALCORE $(ls -l /sys/firmware/opal/mpipl/ | tr -s ' ' | tr '\n' ';')"
    # ELF header, program headers and the notes (PRSTATUS per CPU) are at the start.
    dd if=/proc/vmcore bs=1024 count=16 2>/dev/null | gzip -9 | base64 | sed 's/^/OPALCONF-VMCORE-HEAD /'
    say "VMCORE-HEAD-END"
    wait_host capture
    bye
fi

reg="$(cat /sys/kernel/fadump/registered 2>/dev/null)"
say "FIRST registered=$reg enabled=$(cat /sys/kernel/fadump/enabled 2>/dev/null) mem_reserved=$(cat /sys/kernel/fadump/mem_reserved 2>/dev/null)"
fadump_log
regions
dump_node first
if [ "$reg" != 1 ]; then
    say "FAIL fadump not registered in the first kernel"
    bye
fi
wait_host first
say "CRASH"
echo c > /proc/sysrq-trigger
sleep 30
say "FAIL still alive after sysrq c"
bye
