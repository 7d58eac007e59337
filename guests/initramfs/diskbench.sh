#!/bin/busybox sh
# shellcheck shell=dash
# diskbench DEV: sequential direct-I/O throughput of a guest disk (its contents are
# overwritten): 64 MiB written then read with O_DIRECT in 1 MiB requests, three rounds, one
# GUEST-DISKBENCH line per round. Busybox dd prints no timing and busybox date has no %N, so
# the clock is /proc/uptime (10 ms resolution, under 2% of a round in the nested stack).
set -u
[ $# -eq 1 ] && [ -b "$1" ] || { echo "usage: diskbench BLOCKDEV" >&2; exit 2; }
now() { cut -d' ' -f1 /proc/uptime; }
for round in 1 2 3; do
    t0=$(now)
    dd if=/dev/zero of="$1" bs=1M count=64 oflag=direct conv=fsync 2>/dev/null || echo "GUEST-DISKBENCH-ERROR write"
    t1=$(now)
    dd if="$1" of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null || echo "GUEST-DISKBENCH-ERROR read"
    t2=$(now)
    awk -v d="$1" -v r=$round -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
        printf "GUEST-DISKBENCH dev=%s round=%d bytes=67108864 write_s=%.2f read_s=%.2f write_MBps=%.1f read_MBps=%.1f\n",
            d, r, b - a, c - b, 64 / (b - a + 1e-9), 64 / (c - b + 1e-9) }'
done
