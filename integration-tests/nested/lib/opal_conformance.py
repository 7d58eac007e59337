#!/usr/bin/env python3
"""Run QEMU 11.1 powernv9 + skiboot with a fadump=on guest, crash it, and read what the
firmware recorded out of guest memory through QEMU's monitor (opal-conformance.sh's runner).

    opal_conformance.py run --qemu-root ROOT --kernel VMLINUX --initrd INITRD --out RUN_DIR
    opal_conformance.py fixtures RUN_DIR FIXTURE_DIR

`run` boots the guest (its /init is lib/opal-conformance-init.sh), and at each
`OPALCONF-WAIT <phase>` console line reads guest memory with HMP `pmemsave`, then answers the
guest with a line on its console:

  first    skiboot's MDST/MDDT (the registration as OPAL recorded it), SPIRAH, proc_dump_area,
           skiboot's mpipl_metadata, and the kernel's opal_fadump_mem_struct (its address from
           the kernel's "Kernel metadata addr" line)
  capture  the MDRT (result table), SPIRAH, proc_dump_area and the register data it points at,
           the kernel metadata again, the crash info header, and skiboot's memory (to find the
           opal_mpipl_fadump structures and the tag array QUERY_TAG reads)

It writes RUN_DIR/console.log, RUN_DIR/mem/*.bin, RUN_DIR/capture.json (everything decoded)
and exits 0 when both phases were read and the capture kernel exported a vmcore.
`fixtures` copies the small structures and capture.json into the repository's fixture directory.

Only one emulator runs at a time on this host: before starting, it waits (up to --wait-idle
seconds) while any other qemu-system-ppc* process runs. QEMU is started through a symlink named
qemu-system-ppc64 to the rootfs's loader, with argv[0] qemu-system-ppc64, so that other scripts'
`pgrep -x qemu-system-ppc` / `pgrep -f ^qemu-system-ppc` see it.
"""
import argparse
import base64
import gzip
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

SKIBOOT_BASE = 0x3000_0000
SPIRAH = SKIBOOT_BASE + 0x10000
PROC_DUMP_AREA = SKIBOOT_BASE + 0x10300
MDST = SKIBOOT_BASE + 0x10C00
MDDT = SKIBOOT_BASE + 0x11000
MDRT = SKIBOOT_BASE + 0x1C00000
MDRT_SIZE = 0x8000
DUMP_METADATA = SKIBOOT_BASE + 0x1C08000
SKIBOOT_SIZE = 0x1C10000
HRMOR_BIT = 1 << 63
KERNEL_METADATA_SIZE = 3088
TABLE_SIZE = 0x400


def log(msg):
    print(f"opal-conformance: {msg}", file=sys.stderr, flush=True)


def other_emulators():
    """PIDs of other emulators, by process name and by command line."""
    pids = set()
    for args in (["pgrep", "-x", "qemu-system-ppc"], ["pgrep", "-x", "qemu-system-ppc64"],
                 ["pgrep", "-f", r"^\S*qemu-system-ppc"]):
        r = subprocess.run(args, capture_output=True, text=True)
        pids.update(int(p) for p in r.stdout.split())
    pids.discard(os.getpid())
    return sorted(pids)


def wait_idle(limit):
    start = time.time()
    while True:
        pids = other_emulators()
        if not pids:
            return []
        if time.time() - start > limit:
            log(f"warning: other emulators still running after {limit} s: {pids}")
            return pids
        if int(time.time() - start) % 60 == 0:
            log(f"waiting for other emulators to finish: {pids}")
        time.sleep(1)


class Monitor:
    """HMP over a unix socket."""

    def __init__(self, path, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.s.settimeout(120)
        self._until_prompt()

    def _until_prompt(self):
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("monitor closed")
            buf += chunk
        return buf.decode(errors="replace")

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\n")
        out = self._until_prompt()
        # The reply echoes the command; strip that and the prompt.
        return out.replace("(qemu) ", "").strip()


class Run:
    def __init__(self, out):
        self.out = out
        self.mem = os.path.join(out, "mem")
        os.makedirs(self.mem, exist_ok=True)
        self.console = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.mon = None

    def save(self, name, addr, size):
        path = os.path.join(self.mem, f"{name}.bin")
        if os.path.exists(path):
            os.unlink(path)
        reply = self.mon.cmd(f'pmemsave {addr:#x} {size:#x} "{path}"')
        if not os.path.exists(path) or os.path.getsize(path) != size:
            raise RuntimeError(f"pmemsave {name} {addr:#x}+{size:#x} failed: {reply}")
        with open(path, "rb") as f:
            return f.read()


def be64(b, o):
    return struct.unpack_from(">Q", b, o)[0]


def be32(b, o):
    return struct.unpack_from(">I", b, o)[0]


def be16(b, o):
    return struct.unpack_from(">H", b, o)[0]


def table16(b):
    """MDST/MDDT entries up to the first all-zero one."""
    out = []
    for o in range(0, len(b), 16):
        addr, region, dtype, _res, size = struct.unpack_from(">QBBHI", b, o)
        if addr == 0 and size == 0:
            break
        out.append({"addr": addr, "addr_stripped": addr & ~HRMOR_BIT, "data_region": region,
                    "dump_type": dtype, "size": size})
    return out


def mdrt_entries(b):
    out = []
    for o in range(0, len(b), 32):
        src, dest, region, dtype, _res, size, _pad = struct.unpack_from(">QQBBHIQ", b, o)
        if src == 0 and dest == 0 and size == 0 and region == 0:
            continue
        out.append({"index": o // 32, "src": src, "dest": dest, "data_region": region,
                    "dump_type": dtype, "size": size})
    return out


def ntuple(b, off):
    addr, alloc_cnt, act_cnt, alloc_len, act_len, tce_off = struct.unpack_from(">QHHIII", b, off)
    return {"addr": addr, "alloc_cnt": alloc_cnt, "act_cnt": act_cnt, "alloc_len": alloc_len,
            "act_len": act_len, "tce_off": tce_off}


def spirah(b):
    return {"mdump_src": ntuple(b, 0xA0), "mdump_dst": ntuple(b, 0xC0),
            "mdump_res": ntuple(b, 0xE0), "proc_dump_area": ntuple(b, 0x100)}


def proc_dump_area(b):
    return {"thread_size": be32(b, 0), "version": b[4], "alloc_addr": be64(b, 0x10),
            "alloc_size": be32(b, 0x1C), "dest_addr": be64(b, 0x20), "act_size": be32(b, 0x2C)}


def mpipl_metadata(b):
    # skiboot: struct mpipl_metadata { u32 crashing_pir; u64 kernel_tag; u64 boot_mem_size; }
    # packed.
    crashing_pir, kernel_tag, boot_mem = struct.unpack_from(">IQQ", b, 0)
    return {"crashing_pir": crashing_pir, "kernel_tag": kernel_tag, "boot_mem_size": boot_mem}


def kernel_metadata(b):
    n = be16(b, 4)
    return {"version": b[0], "region_cnt": n, "registered_regions": be16(b, 6),
            "fadumphdr_addr": be64(b, 8),
            "regions": [{"src": be64(b, 16 + 24 * i), "dest": be64(b, 24 + 24 * i),
                         "size": be64(b, 32 + 24 * i)} for i in range(min(n, 128))]}


def regdata(b, stride):
    threads = []
    for o in range(0, len(b) - stride + 1, stride):
        t = b[o:o + stride]
        offset, ecnt, esize, eactsz = (be32(t, 8), be32(t, 12), be32(t, 16), be32(t, 20))
        entries = []
        start = 0x18
        for i in range(ecnt):
            e = start + i * 16
            if e + 16 > len(t):
                break
            entries.append([be32(t, e), be32(t, e + 4), be64(t, e + 8)])
        threads.append({"pir": be32(t, 0), "core_state": t[4], "offset": offset, "ecnt": ecnt,
                        "esize": esize, "eactsz": eactsz, "entries": entries})
    return threads


def find_all(hay, needle):
    out, i = [], hay.find(needle)
    while i >= 0:
        out.append(i)
        i = hay.find(needle, i + 1)
    return out


def find_firmware_structs(sk, pda, kernel_tag, boot_mem):
    """In skiboot's memory: the CPU and OPAL opal_mpipl_fadump structures and the tag array."""
    found = {}
    dest = pda["dest_addr"] & ~HRMOR_BIT
    if dest:
        # version 1, reserved[7], crashing_pir, cpu_data_version, cpu_data_size, region_cnt 1,
        # region {dest, dest, act_size}: the bytes skiboot's post_mpipl_arch_regs_data writes.
        region = struct.pack(">QQQ", dest, dest, pda["act_size"])
        for at in find_all(sk, region):
            hdr = at - 0x18
            if hdr >= 0 and sk[hdr] == 1 and be32(sk, hdr + 0x14) == 1:
                found["cpu_metadata_addr"] = SKIBOOT_BASE + hdr
                found["cpu_metadata"] = sk[hdr:hdr + 0x30].hex()
                break
    # Tag array: {cpu, opal, kernel, boot_mem} as native (BE) u64.
    if kernel_tag and boot_mem:
        needle = struct.pack(">QQ", kernel_tag, boot_mem)
        for at in find_all(sk, needle):
            arr = at - 16
            if arr < 0 or arr % 8:
                continue
            cpu, opal = be64(sk, arr), be64(sk, arr + 8)
            found["tags_addr"] = SKIBOOT_BASE + arr
            found["tags"] = {"cpu": cpu, "opal": opal, "kernel": kernel_tag, "boot_mem": boot_mem}
            if SKIBOOT_BASE <= opal < SKIBOOT_BASE + len(sk):
                o = opal - SKIBOOT_BASE
                n = be32(sk, o + 0x14)
                if n < 64:
                    found["opal_metadata"] = sk[o:o + 0x18 + 24 * n].hex()
            if SKIBOOT_BASE <= cpu < SKIBOOT_BASE + len(sk):
                o = cpu - SKIBOOT_BASE
                found["cpu_metadata_at_tag"] = sk[o:o + 0x30].hex()
            break
    return found


def vmcore_notes(head):
    """PRSTATUS notes (pid, and the pr_reg GPRs/nip/msr/ccr...) from the vmcore's first bytes."""
    if head[:4] != b"\x7fELF":
        return {"error": "no ELF header"}
    endian = "<" if head[5] == 1 else ">"
    phoff, = struct.unpack_from(endian + "Q", head, 0x20)
    phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
    notes, loads = [], []
    for i in range(phnum):
        p = phoff + i * phentsize
        if p + 56 > len(head):
            break
        p_type, _f, p_off, _va, p_pa, p_filesz, _memsz, _al = struct.unpack_from(
            endian + "IIQQQQQQ", head, p)
        if p_type == 1:
            loads.append({"paddr": p_pa, "offset": p_off, "size": p_filesz})
        if p_type != 4:
            continue
        end = min(p_off + p_filesz, len(head))
        o = p_off
        while o + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from(endian + "III", head, o)
            name = head[o + 12:o + 12 + namesz].rstrip(b"\0").decode(errors="replace")
            d = o + 12 + ((namesz + 3) & ~3)
            desc = head[d:d + descsz]
            if ntype == 1 and name == "CORE" and len(desc) >= 112 + 48 * 8:
                pid, = struct.unpack_from(endian + "i", desc, 32)
                regs = struct.unpack_from(endian + "48Q", desc, 112)
                notes.append({"pid": pid, "gpr1": regs[1], "nip": regs[32], "msr": regs[33],
                              "ctr": regs[35], "link": regs[36], "xer": regs[37],
                              "ccr": regs[38], "dar": regs[41], "dsisr": regs[42]})
            o = d + ((descsz + 3) & ~3)
    return {"prstatus": notes, "pt_load": loads}


def parse_console(lines):
    c = {"first": {}, "capture": {}, "dmesg_first": [], "dmesg_capture": [], "dt": {},
         "resmem": {}, "linux_threads": [], "skiboot_version": None}
    phase = "first"
    head = []
    for line in lines:
        if "OPALCONF-CAPTURE" in line:
            phase = "capture"
        m = re.search(r"OPALCONF-(FIRST|CAPTURE) (.*)", line)
        if m:
            for kv in m.group(2).split():
                k, _, v = kv.partition("=")
                c[phase][k] = v
        m = re.search(r"OPALCONF-DMESG (.*)", line)
        if m:
            c[f"dmesg_{phase}"].append(m.group(1).strip())
        m = re.search(r"OPALCONF-DT (\w+) (\S+) ([0-9a-f]*)", line)
        if m:
            c["dt"].setdefault(m.group(1), {})[m.group(2)] = m.group(3)
        m = re.search(r"OPALCONF-RESMEM (\w+) (\S+) ([0-9a-f]*)", line)
        if m:
            c["resmem"].setdefault(m.group(1), {})[m.group(2)] = m.group(3)
        m = re.search(r"OPALCONF-VMCORE-HEAD (\S+)", line)
        if m:
            head.append(m.group(1))
        m = re.search(r"Kernel metadata addr: ([0-9a-fx]+)", line)
        if m and phase == "first":
            c["kernel_metadata_addr"] = int(m.group(1), 16)
        m = re.search(r"opal fadump: \[(\d+)\] PIR: 0x([0-9a-f]+), core state: 0x([0-9a-f]+)", line)
        if m:
            c["linux_threads"].append({"index": int(m.group(1)), "pir": int(m.group(2), 16),
                                       "core_state": int(m.group(3), 16)})
        m = re.search(r"opal fadump: (Crashing CPU PIR|CPU PIR): 0x([0-9a-f]+) - R1 : 0x([0-9a-f]+), "
                      r"NIP : 0x([0-9a-f]+)", line)
        if m:
            c["linux_threads"].append({"crashing": m.group(1).startswith("Crashing"),
                                       "pir": int(m.group(2), 16), "r1": int(m.group(3), 16),
                                       "nip": int(m.group(4), 16)})
        m = re.search(r"opal fadump: \s*Offset: (\d+), Entry size: (\d+), Cnt: (\d+)", line)
        if m:
            c["linux_hdr"] = {"regs_offset": int(m.group(1)), "esize": int(m.group(2)),
                              "ecnt": int(m.group(3))}
        m = re.search(r"opal fadump: NumCpus\s*: (\d+)", line)
        if m:
            c["linux_num_cpus"] = int(m.group(1))
        m = re.search(r"OPAL (v\S+) starting", line)
        if m and not c["skiboot_version"]:
            c["skiboot_version"] = m.group(1)
    if head:
        try:
            raw = gzip.decompress(base64.b64decode("".join(head)))
            c["vmcore"] = vmcore_notes(raw)
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            c["vmcore"] = {"error": str(e)}
    return c


PNOR_SIZE = 32 << 20
PNOR_BLOCK = 0x1000


def ffs_checksum(words_bytes):
    c = 0
    for (w,) in struct.iter_unpack(">I", words_bytes):
        c ^= w
    return c


def make_pnor(path):
    """A PNOR image holding only a valid FFS partition table (skiboot's libflash format: a
    48-byte header and one 128-byte "part" entry, each with an XOR checksum word).

    Why: without a flash whose FFS header parses, skiboot (v7.1 as Debian ships it) never sets
    system_flash, and on CEC_REBOOT2(MPIPL) p9_sbe_terminate -> flash_unregister dereferences the
    NULL system_flash and takes a machine check instead of triggering the SBE (fixed in skiboot
    by "flash: Handle nullptr dereference of system_flash", 2025; QEMU's default PNOR file is
    not shipped by Debian). With a table, flash_unregister resets the BMC's HIOMAP and the
    MPIPL proceeds.
    """
    entry = bytearray(128)
    entry[0:4] = b"part"
    # base, size (blocks), pid (top level), id, type (partition), flags, actual (bytes)
    struct.pack_into(">IIIIIII", entry, 16, 0, 1, 0xFFFFFFFF, 1, 3, 0, PNOR_BLOCK)
    struct.pack_into(">I", entry, 124, ffs_checksum(bytes(entry[:124])))
    hdr = bytearray(48)
    # magic "PART", version 1, TOC size (blocks), entry size, entry count, block size/count
    struct.pack_into(">IIIIIII", hdr, 0, 0x50415254, 1, 1, 128, 1, PNOR_BLOCK,
                     PNOR_SIZE // PNOR_BLOCK)
    struct.pack_into(">I", hdr, 44, ffs_checksum(bytes(hdr[:44])))
    with open(path, "wb") as f:
        f.write(hdr + entry)
        f.truncate(PNOR_SIZE)


def start_qemu(args, run):
    q = args.qemu_root
    loader = os.path.join(q, "lib64/ld-linux-x86-64.so.2")
    link = os.path.join(args.out, "qemu-system-ppc64")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(loader, link)
    libpath = f"{q}/lib/x86_64-linux-gnu:{q}/usr/lib/x86_64-linux-gnu"
    sock = os.path.join(args.out, "monitor.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    append = (f"console=hvc0 fadump=on crashkernel={args.crashkernel} loglevel=8 "
              '"dyndbg=file opal-fadump.c +p"')
    pnor = os.path.join(args.out, "pnor.img")
    make_pnor(pnor)
    argv = ["qemu-system-ppc64", "--library-path", libpath, f"{q}/usr/bin/qemu-system-ppc64",
            "-L", f"{q}/usr/share/qemu", "-M", "powernv9", "-accel", "tcg",
            "-smp", str(args.smp), "-m", args.mem, "-display", "none",
            "-serial", "stdio", "-monitor", f"unix:{sock},server,nowait",
            "-drive", f"file={pnor},format=raw,if=mtd",
            "-kernel", args.kernel, "-initrd", args.initrd, "-append", append]
    with open(os.path.join(args.out, "qemu-cmdline.txt"), "w") as f:
        f.write(" ".join(argv[3:]) + "\n")
    log(f"starting QEMU: {' '.join(argv[3:])}")
    proc = subprocess.Popen(argv, executable=link, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, sock


def _stop(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_run(args):
    # A TERM/INT ends the run through the `finally` below, which kills QEMU (in its own session).
    signal.signal(signal.SIGTERM, _stop)
    os.makedirs(args.out, exist_ok=True)
    run = Run(args.out)
    concurrent = wait_idle(args.wait_idle)
    t0 = time.time()
    proc, sock = start_qemu(args, run)
    events = []
    conlog = open(os.path.join(args.out, "console.log"), "w", buffering=1)

    def reader():
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            conlog.write(line + "\n")
            with run.cond:
                run.console.append(line)
                m = re.search(r"OPALCONF-(WAIT \w+|POWEROFF|FAIL.*|CRASH)", line)
                if m:
                    events.append((time.time() - t0, m.group(1)))
                run.cond.notify_all()
        with run.cond:
            events.append((time.time() - t0, "EOF"))
            run.cond.notify_all()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    result = {"concurrent_emulators_at_start": concurrent, "phases": {}, "ok": False,
              "machine": {"ram": args.mem, "smp": args.smp, "crashkernel": args.crashkernel}}
    done_phases = set()
    seen = 0
    deadline = t0 + args.timeout
    try:
        run.mon = Monitor(sock)
        while True:
            with run.cond:
                while seen >= len(events) and time.time() < deadline:
                    run.cond.wait(timeout=5)
                if seen >= len(events):
                    raise TimeoutError(f"no progress within {args.timeout} s")
                t, ev = events[seen]
                seen += 1
                lines = list(run.console)
            log(f"[{t:6.1f}s] {ev}")
            result["phases"][ev] = round(t, 1)
            if ev == "WAIT first":
                c = parse_console(lines)
                km = c.get("kernel_metadata_addr")
                for name, addr, size in [("first-spirah", SPIRAH, 0x300),
                                         ("first-proc-dump-area", PROC_DUMP_AREA, 0x100),
                                         ("first-mdst", MDST, TABLE_SIZE),
                                         ("first-mddt", MDDT, TABLE_SIZE),
                                         ("first-mpipl-metadata", DUMP_METADATA, 0x100)]:
                    run.save(name, addr, size)
                if km:
                    run.save("first-kernel-metadata", km & ~0xC000_0000_0000_0000,
                             KERNEL_METADATA_SIZE)
                done_phases.add("first")
                proc.stdin.write(b"go\n")
                proc.stdin.flush()
            elif ev == "WAIT capture":
                c = parse_console(lines)
                spi = run.save("capture-spirah", SPIRAH, 0x300)
                pda_b = run.save("capture-proc-dump-area", PROC_DUMP_AREA, 0x100)
                run.save("capture-mdrt", MDRT, MDRT_SIZE)
                run.save("capture-mdst", MDST, TABLE_SIZE)
                run.save("capture-mddt", MDDT, TABLE_SIZE)
                run.save("capture-mpipl-metadata", DUMP_METADATA, 0x100)
                pda = proc_dump_area(pda_b)
                dest = pda["dest_addr"] & ~HRMOR_BIT
                if dest and pda["act_size"]:
                    run.save("capture-regdata", dest, pda["act_size"])
                km = c.get("kernel_metadata_addr")
                if km:
                    kb = run.save("capture-kernel-metadata", km & ~0xC000_0000_0000_0000,
                                  KERNEL_METADATA_SIZE)
                    fdh = be64(kb, 8)
                    if fdh:
                        run.save("capture-crash-info", fdh & ~0xC000_0000_0000_0000, 0x1000)
                run.save("capture-skiboot", SKIBOOT_BASE, SKIBOOT_SIZE)
                # What TAG_OPAL's regions point at: the MDRT's OPAL entries as recorded, and the
                # destination OPAL registered (first boot's MDDT), 4 KiB of each.
                for e in mdrt_entries(rd(args.out, "capture-mdrt")):
                    if e["data_region"] == 0x03:
                        run.save(f"capture-mdrt-opal-dest-{e['index']}", e["dest"] & ~HRMOR_BIT,
                                 0x1000)
                for e in table16(rd(args.out, "first-mddt") or b""):
                    if e["data_region"] == 0x03:
                        run.save("capture-registered-opal-dest", e["addr_stripped"], 0x1000)
                del spi
                done_phases.add("capture")
                proc.stdin.write(b"go\n")
                proc.stdin.flush()
            elif ev.startswith("FAIL"):
                log(f"guest reported {ev}")
            elif ev in ("POWEROFF", "EOF"):
                break
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            log("QEMU did not exit after the guest's power-off; quitting it")
            run.mon.cmd("quit")
            proc.wait(timeout=30)
    except Exception as e:  # noqa: BLE001 - reported below, QEMU is ended either way
        log(f"error: {e}")
        result["error"] = str(e)
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        th.join(timeout=10)
        conlog.close()
    result["seconds"] = round(time.time() - t0, 1)
    result["qemu_exit"] = proc.returncode
    capture = decode(args.out, run.console)
    capture["run"] = result
    ok = (done_phases == {"first", "capture"} and
          int(capture["console"]["capture"].get("vmcore", "0")) > 0 and
          not any(e[1].startswith("FAIL") for e in events))
    capture["run"]["ok"] = ok
    with open(os.path.join(args.out, "capture.json"), "w") as f:
        json.dump(capture, f, indent=1, sort_keys=True)
    log(f"{'OK' if ok else 'FAILED'}: {args.out}/capture.json ({result['seconds']} s)")
    return 0 if ok else 1


def rd(out, name):
    p = os.path.join(out, "mem", f"{name}.bin")
    if not os.path.exists(p):
        return None
    with open(p, "rb") as f:
        return f.read()


def decode(out, console):
    c = parse_console(console)
    d = {"console": c}
    if (b := rd(out, "first-mdst")) is not None:
        d["first_mdst"] = table16(b)
    if (b := rd(out, "first-mddt")) is not None:
        d["first_mddt"] = table16(b)
    if (b := rd(out, "first-mpipl-metadata")) is not None:
        d["first_mpipl_metadata"] = mpipl_metadata(b)
    if (b := rd(out, "first-spirah")) is not None:
        d["first_spirah"] = spirah(b)
    if (b := rd(out, "first-kernel-metadata")) is not None:
        d["first_kernel_metadata"] = kernel_metadata(b)
    if (b := rd(out, "capture-spirah")) is not None:
        d["capture_spirah"] = spirah(b)
    if (b := rd(out, "capture-mdrt")) is not None:
        d["capture_mdrt"] = mdrt_entries(b)
    if (b := rd(out, "capture-mdst")) is not None:
        d["capture_mdst"] = table16(b)
    if (b := rd(out, "capture-mpipl-metadata")) is not None:
        d["capture_mpipl_metadata"] = mpipl_metadata(b)
    pda = None
    if (b := rd(out, "capture-proc-dump-area")) is not None:
        pda = d["capture_proc_dump_area"] = proc_dump_area(b)
    if (b := rd(out, "capture-regdata")) is not None and pda and pda["thread_size"]:
        d["capture_regdata"] = regdata(b, pda["thread_size"])
    if (b := rd(out, "capture-kernel-metadata")) is not None:
        d["capture_kernel_metadata"] = kernel_metadata(b)
    if (b := rd(out, "capture-crash-info")) is not None:
        # struct fadump_crash_info_header: magic u64, version u32, crashing_cpu u32 (native LE).
        magic, version, crashing_cpu = struct.unpack_from("<QII", b, 0)
        d["capture_crash_info"] = {"magic": magic, "version": version,
                                   "crashing_cpu": crashing_cpu}
    sk = rd(out, "capture-skiboot")
    if sk is not None:
        # Does the memory each OPAL destination holds start like OPAL's image (skiboot reloads
        # the same image at SKIBOOT_BASE on the MPIPL boot)?
        checks = {}
        for name in sorted(os.listdir(os.path.join(out, "mem"))):
            if name.startswith("capture-mdrt-opal-dest-") or name == "capture-registered-opal-dest.bin":
                b = rd(out, name[:-4])
                checks[name[:-4]] = {"first_256_bytes_equal_opal_image": b[:256] == sk[:256]}
        d["opal_copy_check"] = checks
    if (b := rd(out, "capture-skiboot")) is not None and pda:
        fm = d.get("first_mpipl_metadata", {})
        d["firmware_structs"] = find_firmware_structs(
            b, pda, fm.get("kernel_tag", 0), fm.get("boot_mem_size", 0))
    return d


# Fixture: the structures the Rust replay needs (a few KiB), plus capture.json.
FIXTURE_FILES = {
    "first-mdst": None, "first-mddt": None, "first-mpipl-metadata": 0x20,
    "first-kernel-metadata": None, "first-proc-dump-area": 0x30, "capture-proc-dump-area": 0x30,
    "capture-regdata": None, "capture-spirah": None, "capture-crash-info": 0x200,
}


def cmd_fixtures(args):
    os.makedirs(args.fixture_dir, exist_ok=True)
    for name, keep in FIXTURE_FILES.items():
        b = rd(args.run_dir, name)
        if b is None:
            raise SystemExit(f"{name}.bin missing in {args.run_dir}/mem")
        with open(os.path.join(args.fixture_dir, f"{name}.bin"), "wb") as f:
            f.write(b[:keep] if keep else b)
    # The MDRT: only its used prefix (32-byte entries up to the last non-zero one).
    b = rd(args.run_dir, "capture-mdrt")
    used = max([e["index"] + 1 for e in mdrt_entries(b)] or [0])
    with open(os.path.join(args.fixture_dir, "capture-mdrt.bin"), "wb") as f:
        f.write(b[:32 * used])
    with open(os.path.join(args.run_dir, "capture.json")) as f:
        cap = json.load(f)
    fs = cap.get("firmware_structs", {})
    if "cpu_metadata" in fs:
        with open(os.path.join(args.fixture_dir, "capture-cpu-metadata.bin"), "wb") as f:
            f.write(bytes.fromhex(fs["cpu_metadata"]))
    if "opal_metadata" in fs:
        with open(os.path.join(args.fixture_dir, "capture-opal-metadata.bin"), "wb") as f:
            f.write(bytes.fromhex(fs["opal_metadata"]))
    shutil.copy(os.path.join(args.run_dir, "capture.json"),
                os.path.join(args.fixture_dir, "capture.json"))
    log(f"fixtures written to {args.fixture_dir}")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--qemu-root", required=True)
    r.add_argument("--kernel", required=True)
    r.add_argument("--initrd", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--smp", type=int, default=2)
    r.add_argument("--mem", default="4G")
    r.add_argument("--crashkernel", default="1G")
    r.add_argument("--timeout", type=int, default=1500)
    r.add_argument("--wait-idle", type=int, default=900)
    fx = sub.add_parser("fixtures")
    fx.add_argument("run_dir")
    fx.add_argument("fixture_dir")
    dc = sub.add_parser("decode")
    dc.add_argument("run_dir")
    args = ap.parse_args()
    if args.cmd == "run":
        return cmd_run(args)
    if args.cmd == "fixtures":
        return cmd_fixtures(args)
    with open(os.path.join(args.run_dir, "console.log")) as f:
        lines = f.read().splitlines()
    json.dump(decode(args.run_dir, lines), sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
