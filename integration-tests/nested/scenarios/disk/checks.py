"""disk, host checks (lib/checks.py runs this table on the console log and export.img)."""
import hashlib
import re
import statistics

from checks import Check, Step

# What the guest writes to /dev/vda: `seq 1 200000`, its size and checksum computed here.
PATTERN = "".join(f"{i}\n" for i in range(1, 200001)).encode()
SIZE = len(PATTERN)
SUM = hashlib.sha256(PATTERN).hexdigest()

PHASES = [
    ("guest wrote + read back /dev/vda", r"GUEST-VDA-WRITTEN sum=[0-9a-f]"),
    ("guest read-only write attempt", r"GUEST-VDB-RO-ATTR"),
    ("guest /dev/vda after reboot", r"GUEST-VDA-AFTER-REBOOT sum=[0-9a-f]"),
]

SHOWN = re.compile(r"GUEST-(DMESG|DEV|DATA|DD|VDA|VDB|RO-)|NESTED-(DISKS|BACKING|RO-BACKING)"
                   r"|PCI .* slot|virtio|MMIO")


def bench(run, who, what):
    """Median MB/s of the diskbench rounds, WHO = ours (before the peer started) or peer."""
    values, peer = [], False
    for line in run.lines:
        if "NESTED-PHASE peer-start" in line:
            peer = True
        if "GUEST-DISKBENCH dev=" in line and (who == "peer") == peer:
            m = re.search(rf"\b{what}_MBps=([0-9.]+)", line)
            if m:
                values.append(float(m.group(1)))
    return statistics.median_low(values) if values else None


def report(run):
    run.show(f"expected pattern: {SIZE} bytes, sha256 {SUM}")
    for line in [ln for ln in run.lines if SHOWN.search(ln) and "GUEST-RUN" not in ln][:80]:
        run.show(line)


def host_sum(run):
    """The backing file passed out of L1 (raw, at the start of export.img), on this host."""
    try:
        with open(run.path("export.img"), "rb") as f:
            run.values["host_sum"] = hashlib.sha256(f.read(SIZE)).hexdigest()
    except OSError:
        run.values["host_sum"] = None
    run.show(f"backing file passed out of L1, on the x86 host: sha256 {run.values['host_sum']}")


def ro_unchanged(run):
    before = run.value(r"NESTED-DISKS-CREATED ro-sum-before=([0-9a-f]+)")
    return bool(before) and run.has(rf"NESTED-RO-BACKING ro-sum-after={before}\b")


def show_bench(run):
    for line in run.grep(r"GUEST-DISKBENCH dev="):
        run.show(line[line.index("GUEST-DISKBENCH"):])
    run.values.update({k: bench(run, *k.split("_")) for k in
                       ("ours_write", "ours_read", "peer_write", "peer_read")})


def show_ratio(run):
    v = run.values
    if None in (v["ours_write"], v["ours_read"], v["peer_write"], v["peer_read"]):
        return
    run.show(f"dd 64 MiB O_DIRECT, median MB/s: write ours {v['ours_write']:.1f} QEMU "
             f"{v['peer_write']:.1f}, read ours {v['ours_read']:.1f} QEMU {v['peer_read']:.1f}")
    run.show(f"throughput ratio ours/QEMU: write {v['ours_write'] / v['peer_write']:.2f}, "
             f"read {v['ours_read'] / v['peer_read']:.2f}")


def peer_ran(run):
    return run.has(r"NESTED-PHASE peer-start")


CHECKS = [
    Step(report),
    Check("guest reached init twice (boot + reboot)", lambda r: r.inits >= 2),
    Check("guest sees /dev/vda and /dev/vdb",
          lambda r: r.has(r"GUEST-DEV .*/dev/vda") and r.has(r"GUEST-DEV .*/dev/vdb")),
    Check(f"guest generated the pattern ({SIZE} bytes)",
          lambda r: r.has(rf"GUEST-DATA size={SIZE} sum={SUM}")),
    Check("written to /dev/vda, synced, read back identical (caches dropped)",
          lambda r: r.has(rf"GUEST-VDA-WRITTEN sum={SUM}")),
    Check("read-only /dev/vdb shows its marker", lambda r: r.has(r"GUEST-VDB-MARKER RO-DISK-MARKER")),
    Check("read-only /dev/vdb refuses the write",
          lambda r: r.has(r"GUEST-RO-WRITE-REFUSED: [^$]") and not r.has(r"GUEST-RO-WRITE-ACCEPTED$")),
    Check("/dev/vda identical after a reboot through our VMM",
          lambda r: r.has(rf"GUEST-VDA-AFTER-REBOOT sum={SUM}")),
    Check("L1 backing file holds the data after power-off",
          lambda r: r.has(rf"NESTED-BACKING-FILE sum={SUM}")),
    Check("read-only backing file unchanged", ro_unchanged),
    Step(host_sum),
    Check("backing file, passed out of L1, holds the data on the x86 host",
          lambda r: r.values["host_sum"] == SUM),
    Step(show_bench),
    Check("direct-I/O rounds ran under our VMM (64 MiB write + read)",
          lambda r: r.values["ours_write"] is not None and r.values["ours_read"] is not None
          and not r.has(r"GUEST-DISKBENCH-ERROR")),
    Check("the same rounds ran under QEMU 7.2 in the same L1",
          lambda r: r.values["peer_write"] is not None and r.values["peer_read"] is not None,
          when=peer_ran),
    Step(show_ratio, when=peer_ran),
]
