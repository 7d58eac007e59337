#!/bin/sh
# /init of the tiny L2 guest initramfs: print the marker the payload asserts, power off.
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
echo "NESTED-PHASE l2-init uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "L2-GUEST-MARKER kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo) mmu=$(sed -n 's/^MMU[[:space:]]*: //p' /proc/cpuinfo)"
poweroff -f
