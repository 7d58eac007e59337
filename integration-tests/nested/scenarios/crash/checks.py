"""crash, host checks (lib/checks.py runs this table on the console log and run directory).

Paths by --crash: fadump (sysrq, bug, panic, hardlockup, second, nmi-hung: every vCPU spins
with interrupts off and the VMM's NMI sends them to crash_fadump), kdump (kdump,
kdump-hardlockup: the same guest and crash, captured by kexec -p), unregistered (no dump: a
plain reboot), host-dump (no fadump; the hung guest is NMI'd, panics, and the VMM writes an ELF
core itself, --on-crash host-dump), power-button (an EPOW event: the guest shuts down in order,
the VMM exits 0). The vmcore is cut out of export.img and analysed with drgn
(analyze-vmcore.py).
"""
import os
import re

import checks
import vmcore_check as vc
from checks import Check, Step

# The guest kernel's own first line about the crash (what L1's crash-to-capture timer uses).
CRASH_LINE = r"sysrq: Trigger a crash|Performing direct entry (BUG|PANIC)"
PATTERN_PAGE = r"FADUMP-PATTERN seed=0x[0-9a-f]* page=[0-9]* vaddr=0x[0-9a-f]* phys=0x[0-9a-f]*"
ELF64_LE_MAGIC = b"\x7fELF\x02"


def hotplug(r):
    """Memory DLPAR kinds: window LMBs 6 and 7 (0x60000000-0x80000000) added by the guest."""
    return r.crash.startswith("hotplug-")


LMB = 0x1000_0000
WINDOW_LMBS = {6: 0x8000_0006, 7: 0x8000_0007}


def host_add(r):
    """The host adds the LMBs (vm.resize over the API socket) instead of the guest."""
    return r.crash == "hotplug-host-add"


def removes(r):
    return r.crash.startswith("hotplug-remove")


def kernel_610(r):
    """6.10+ builds the elfcorehdr in the capture kernel (hotplug_ready exists and is 1)."""
    return r.has(r"GUEST-HP-BOOT .*hotplug_ready=1\b")


def owned_at_crash(r):
    return {6} if removes(r) else {6, 7}


def expected_window_loads(r):
    """The window LMBs the vmcore has PT_LOADs for. 6.10+: what the crashed kernel owned (the
    capture kernel's memblock, from the VMM's drconf node). Before 6.10: what the kernel owned
    at its last registration (boot, then after the add with the udev-like rule, then after the
    remove with it)."""
    if kernel_610(r):
        return owned_at_crash(r)
    if r.crash in ("hotplug-add-rereg", "hotplug-remove-stale"):
        return {6, 7}
    if r.crash == "hotplug-remove-rereg":
        return {6}
    return set()


def read_disk_pattern(r):
    """The pattern lines the guest wrote to the last MiB of its disk (the export image), kept
    as RUN/pattern.txt (a --recheck after the image was dropped reuses it)."""
    img = r.path("export.img")
    if os.path.exists(img):
        with open(img, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - (1 << 20)))
            data = f.read().split(b"\0", 1)[0]
        with open(r.path("pattern.txt"), "wb") as out:
            out.write(data)
    r.values["disk_pattern"] = vc.parse_pattern_console(r.read("pattern.txt"))


def disk_pages(r):
    run = r.values.get("disk_pattern")
    return run.pages if run else []


def lmb_of(phys):
    return phys // LMB


def window_pages(r):
    return [p for p in disk_pages(r) if lmb_of(p.phys) in WINDOW_LMBS]


def vmcore_window_lmbs(r):
    """Window LMBs any PT_LOAD of the saved vmcore overlaps."""
    with vc.ElfCore(r.path("vmcore")) as core:
        ranges = core.phys_ranges()
    r.values["phys_ranges"] = ranges
    return {k for k in WINDOW_LMBS if any(a < (k + 1) * LMB and b > k * LMB for a, b in ranges)}


def pattern_pages_as_expected(r):
    """Every pattern page in covered memory reads back identical from the vmcore (ELF reader);
    every page in a window LMB the vmcore does not cover is absent from it."""
    want_loads = expected_window_loads(r)
    good = bad = missing_ok = 0
    with vc.ElfCore(r.path("vmcore")) as core:
        for p in disk_pages(r):
            k = lmb_of(p.phys)
            covered = k not in WINDOW_LMBS or k in want_loads
            try:
                got = core.read_phys(p.phys, p.pagesize)
            except vc.VmcoreError:
                got = None
            if not covered:
                if got is None:
                    missing_ok += 1
                else:
                    bad += 1
                continue
            diff = None if got is None else vc.compare_bytes(vc.expected_page(p.seed, p.page, p.pagesize), got)[0]
            if diff == 0:
                good += 1
            else:
                bad += 1
    r.show(f"  pattern pages: {good} match, {missing_ok} absent as expected (uncovered window LMBs), "
           f"{bad} wrong; {len(window_pages(r))} of {len(disk_pages(r))} in the window")
    return bool(disk_pages(r)) and bad == 0


def hp_state(r, label):
    return r.value(rf"GUEST-HP-STATE {label} (m6=\S+ m7=\S+)") or "?"


def unregistered(r):
    return r.crash == "unregistered"


def kdump(r):
    return r.crash.startswith("kdump")


def host_dump(r):
    return r.crash == "host-dump"


def power_button(r):
    return r.crash == "power-button"


def nmi(r):
    """The cases whose guest hangs with every vCPU spinning and gets the VMM's NMI."""
    return r.crash in ("nmi-hung", "host-dump")


def fadump(r):
    return not unregistered(r) and not kdump(r) and not host_dump(r) and not power_button(r)


def captured(r):
    return not unregistered(r) and not power_button(r)


def guest_saved(r):
    """The guest (capture or kdump kernel) saved the vmcore, not the VMM."""
    return captured(r) and not host_dump(r)


def second(r):
    return r.crash == "second"


def crashkernel_mb(r):
    v = re.search(r"crashkernel=(\d+)M", r.cmdline)
    return int(v.group(1)) if v else None


def pattern_pages(r):
    return len([ln for ln in r.grep(PATTERN_PAGE) if "GUEST-RUN" not in ln])


def saved_bytes(r):
    """The vmcore's size at the start of the export disk: as the guest saved it, or (host-dump)
    as our VMM wrote it there."""
    if host_dump(r):
        v = r.value(r"host dump written: /dev/vda \((\d+) bytes")
    else:
        v = r.value(r"GUEST-VMCORE-SAVED bytes=(\d+)")
    return int(v) if v else None


def cut_vmcore(r):
    """The dump the capture kernel wrote raw at the start of the export disk, as RUN/vmcore
    (a --recheck of a run whose export image was already dropped reuses its vmcore). Copied
    sparse: all-zero chunks become holes (a hosting-size guest's vmcore is mostly untouched,
    zero RAM), so the file reads back the same and costs only the data on disk."""
    n = saved_bytes(r)
    if not n:
        return
    if os.path.exists(r.path("export.img")):
        checks.copy_sparse(r.path("export.img"), 0, n, r.path("vmcore"))
    r.show(f"vmcore: {r.path('vmcore')} ({n} bytes)")


def memory_bytes(r):
    """The guest's --memory from the VMM arguments."""
    m = re.search(r"--memory (\d+)([MG])", r.args)
    return int(m.group(1)) << (20 if m.group(2) == "M" else 30) if m else 0


def pattern_phys(r):
    return [int(m, 16) for m in
            (re.search(r"phys=0x([0-9a-f]+)", ln).group(1) for ln in r.grep(PATTERN_PAGE)
             if "GUEST-RUN" not in ln)]


def dump_covers_ram(r):
    """The PT_LOAD headers vmcore-save printed cover RAM up to its end (minus what the
    crashed kernel reserved for the dump itself, which fadump leaves out)."""
    loads = [(int(a, 16), int(b, 16)) for a, b in
             (re.search(r"paddr=0x([0-9a-f]+) memsz=0x([0-9a-f]+)", ln).groups()
              for ln in r.grep(r"GUEST-SAVE VMCORE-SAVE-LOAD paddr="))]
    r.values["loads"] = loads
    return bool(loads) and max(a + b for a, b in loads) == memory_bytes(r)


HIGH = 4 << 30


def is_elf64_core(r):
    with open(r.path("vmcore"), "rb") as f:
        return f.read(5) == ELF64_LE_MAGIC


def has_vmcore(r):
    return os.path.isfile(r.path("vmcore")) and os.path.getsize(r.path("vmcore")) > 0


def show_lines(pattern, limit=1, prefix="", label=None, when=captured):
    """A Step printing the first LIMIT lines matching PATTERN (console stamp dropped; from
    LABEL on when given)."""
    def step(r):
        for line in [ln for ln in r.grep(pattern) if "GUEST-RUN" not in ln][:limit]:
            text = checks.strip_stamp(line)
            if label and label in text:
                text = text[text.index(label):]
            r.show(prefix + text)
    return Step(step, when)


def crash_to_production(r):
    a, b = r.first(CRASH_LINE), r.first(r"GUEST-PRODUCTION nproc=[0-9]")
    if a is not None and b is not None:
        r.show(f"crash -> back in production: {b - a:.2f} s (host)")


def phases(title, rows, when):
    def step(r):
        r.show(f"== {title} phases (host seconds since L0 start"
               f"{'; VMM phases from its own log' if title == 'fadump' else ''}) ==")
        for label, pattern, n in rows(r):
            r.show_phase(label, r.nth(pattern, n))
    return Step(step, when)


def fadump_rows(r):
    capture_init = 2 + (1 if second(r) else 0)
    return [("crash triggered", r"GUEST-CRASHING kind=[a-z]", 1),
            ("VMM dump written", r"fadump: dump written", 1),
            ("capture kernel /init", r"GUEST-INIT-REACHED", capture_init),
            ("vmcore saved", r"GUEST-VMCORE-SAVED bytes=[0-9]", 1),
            ("re-registered, back in production", r"GUEST-PRODUCTION nproc=[0-9]", 1)]


def kdump_rows(_r):
    return [("crash triggered", r"GUEST-CRASHING kind=[a-z]", 1),
            ("kernel's crash line", r"sysrq: Trigger a crash", 1),
            ("kdump kernel /init", r"GUEST-INIT-REACHED", 2),
            ("vmcore saved", r"GUEST-VMCORE-SAVED bytes=[0-9]", 1),
            ("production /init (after reboot)", r"GUEST-INIT-REACHED", 3),
            ("crash kernel loaded, production", r"GUEST-PRODUCTION nproc=[0-9]", 1)]


def debuginfo(r):
    """The guest's DWARF for drgn: the run's debuginfo file, else vmlinux.debug beside the
    guest kernel."""
    return r.setting("debuginfo") or os.path.join(os.path.dirname(r.guest_kernel), "vmlinux.debug")


def crash_symbol(r):
    return {"bug": "lkdtm_BUG", "panic": "lkdtm_PANIC", "nmi-hung": "lkdtm_HARDLOCKUP",
            "host-dump": "lkdtm_HARDLOCKUP"}.get(r.crash, "sysrq_handle_crash")


SPIN = "lkdtm_HARDLOCKUP"


def spinning_cpus(text):
    """Note indices whose drgn trace in analyze-vmcore's `cpu context` check (lines
    `cpu note N: kernel mode, ...` followed by that CPU's frames) passes through the spin."""
    out, current = set(), None
    for line in text.splitlines():
        m = re.search(r"cpu note (\d+): (kernel|user) mode", line)
        if m:
            current = int(m.group(1)) if m.group(2) == "kernel" else None
            continue
        if re.match(r"(PASS|FAIL|SKIP): ", line.strip()) or re.search(r"cpu note \d+:", line):
            current = None
        elif current is not None and SPIN in line:
            out.add(current)
    return out


def nmi_targets(r):
    return "[" + ", ".join(str(i) for i in range(r.cpus)) + "]"


def drgn_applies(r):
    """drgn checks every pattern page: not for a dump that by design lacks some (pre-6.10
    hotplug kinds whose elfcorehdr predates the add)."""
    if not hotplug(r):
        return True
    return expected_window_loads(r) >= {lmb_of(p.phys) for p in window_pages(r)}


def drgn(r):
    """analyze-vmcore.py on the vmcore; r.values['drgn'] = its status, None if unavailable.
    Hotplug kinds: the pattern lines come from the guest's disk (pattern.txt).
    kdump-hardlockup: cpu1 spins with interrupts off; the crashing kernel stops it with an NMI
    IPI (H_SIGNAL_SYS_RESET, which our VMM and QEMU serve), so kdump has its registers too.
    Run directories from before our VMM served it (H_FUNCTION) lack cpu1's note:
    `unhandled hcall H_SIGNAL_SYS_RESET` in the log says so, and the analysis expects it."""
    dbg = debuginfo(r)
    extra = ["--crash-symbol", crash_symbol(r)]
    if r.crash == "kdump-hardlockup" and r.has(r"unhandled hcall H_SIGNAL_SYS_RESET"):
        extra += ["--expect-missing-prstatus", "1"]
    console = "pattern.txt" if hotplug(r) else "console.log"
    r.values["drgn"] = checks.analyze_vmcore(r, dbg, extra, console) if os.path.isfile(dbg) else None


def drgn_name(r):
    if r.values.get("drgn") is None:
        return ("drgn analysis not available (drgn-env.sh / analyze-vmcore.py / debug info "
                f"{debuginfo(r)})")
    return "drgn analysis of the vmcore"


def vmm_ours(r):
    return r.vmm == "ours"


def api(r):
    """Our VMM ran with --api-socket and --event-monitor (ppc-remote was in the payload)."""
    return fadump(r) and vmm_ours(r) and r.has(r"NESTED-API ")


def event_names(r):
    """(source/event) of every --event-monitor line L1 printed, in order."""
    names = []
    for ln in r.grep(r"NESTED-EVENT \{"):
        m = re.search(r'"source":"([a-z-]+)","event":"([a-z-]+)"', ln)
        if m:
            names.append(f"{m.group(1)}/{m.group(2)}")
    return names


def disk_fault(r):
    """disk-enospc / disk-eio: the VMM's disk fails during the first save and heals."""
    return r.crash in ("disk-enospc", "disk-eio")


def fault_kind(r):
    return r.crash[len("disk-"):]


# What the host's failing write returns, as the VMM logs it (std::io::Error's Display).
FAULT_ERRNO = {"enospc": "No space left on device (os error 28)",
               "eio": "Input/output error (os error 5)"}


def attempt(r, n):
    """The capture kernel's save attempt N: {rc, bytes, t0, t1, ioerr_lines}, or None."""
    for ln in r.grep(rf"GUEST-SAVE-ATTEMPT n={n} rc=[0-9]"):
        if "GUEST-RUN" in ln:
            continue
        m = re.search(r"rc=(\d+) bytes=(\d+) t0=([0-9.]+) t1=([0-9.]+) ioerr_lines=(\d+)", ln)
        if m:
            return {"rc": int(m.group(1)), "bytes": int(m.group(2)), "t0": float(m.group(3)),
                    "t1": float(m.group(4)), "ioerr_lines": int(m.group(5))}
    return None


def failed_first(r):
    a = attempt(r, 1)
    return a is not None and a["rc"] != 0


def saw_io_errors(r):
    a = attempt(r, 1)
    return a is not None and a["ioerr_lines"] > 0 and r.has(r"I/O error, dev vda, sector \d+")


def vmm_host_errors(r, label="fault"):
    """The VMM's count of requests the host's file failed (vm.counters' host_io_errors of the
    disk, asked by L1 at LABEL: `capture` before the save, `fault` after the failed one)."""
    v = r.value(rf"NESTED-API-DISK-ERRORS {label} host_io_errors=(\d+)")
    return int(v) if v is not None else None


def vmm_alive_after_fault(r):
    return (r.has(r"NESTED-FAULT-VMM-ALIVE pid=\d+ state=[RSD] threads=[1-9]\d* exited=no")
            and r.has(r"NESTED-API-FADUMP fault state=dump-active\b"))


def dump_kept(r):
    a = attempt(r, 1)
    v = r.value(r"GUEST-VMCORE-AFTER-FAULT bytes=(\d+) ")
    return a is not None and v is not None and int(v) == a["bytes"] > 0


def retry_saved(r):
    a, b = attempt(r, 1), attempt(r, 2)
    return (b is not None and b["rc"] == 0 and a is not None and b["bytes"] == a["bytes"]
            and saved_bytes(r) == b["bytes"])


def save_ratio(r):
    a, b = attempt(r, 1), attempt(r, 2)
    if a and b and b["t1"] > b["t0"]:
        r.show(f"  save attempts (guest clock): failed {a['t1'] - a['t0']:.2f} s, retry "
               f"{b['t1'] - b['t0']:.2f} s (ratio failed/retry {(a['t1'] - a['t0']) / (b['t1'] - b['t0']):.2f}); "
               f"{a['ioerr_lines']} kernel I/O error lines; the VMM counted {vmm_host_errors(r)} failed host requests")


EVENTS_OF_A_FADUMP_RUN = ["vmm/starting", "vm/fadump-registered", "vm/booted", "guest/panic",
                          "vm/fadump-dump-started", "vm/fadump-dump-written", "vm/shutdown"]


CHECKS = [
    # --- unregistered: no dump registered, the VMM reboots the guest plainly -------------
    Check("guest did not register fadump",
          lambda r: r.has(r"GUEST-FADUMP-REGISTERED=(absent|0)\b"), when=unregistered),
    # Our VMM's own log says what it did; under another VMM (--vmm qemu-sid) the guest-side
    # checks are the evidence.
    Check("VMM: os-term without a registered dump -> plain reboot",
          lambda r: r.has(r"ibm,os-term with no dump registered"),
          when=lambda r: unregistered(r) and vmm_ours(r)),
    Check("VMM wrote no dump", lambda r: not r.has(r"fadump: dump written"),
          when=lambda r: unregistered(r) and vmm_ours(r)),
    Check("guest booted again, with no /proc/vmcore",
          lambda r: r.inits >= 2 and r.has(r"GUEST-AFTER-REBOOT vmcore=none"), when=unregistered),

    # --- power-button: EPOW event, orderly shutdown, VMM exit 0 -------------------------
    Check("VMM queued the EPOW shutdown event (power button)",
          lambda r: r.has(r"power button pressed: EPOW shutdown event"), when=power_button),
    Check("guest kernel took the EPOW event (Power off requested)",
          lambda r: r.has(r"Power off requested"), when=power_button),
    Check("guest's init ran its poweroff (orderly_poweroff -> /sbin/poweroff)",
          lambda r: r.has(r"GUEST-ORDERLY-POWEROFF pid="), when=power_button),
    Check("VMM saw the guest's RTAS power-off (the exit status is the common check)",
          lambda r: r.has(r"guest powered off"), when=power_button),
    # --- nmi-hung / host-dump: every vCPU spins with interrupts off, then the NMI ---------
    Check(lambda r: f"every vCPU spun with interrupts off ({r.cpus} LKDTM HARDLOCKUPs)",
          lambda r: r.count(r"Performing direct entry HARDLOCKUP") >= r.cpus, when=nmi),
    Check(lambda r: f"VMM delivered the NMI (system reset) to vcpus {nmi_targets(r)}",
          lambda r: r.has(re.escape(f"NMI: system reset delivered to vcpus {nmi_targets(r)}")),
          when=nmi),
    Check("host-dump: VMM wrote the ELF core with every vCPU and the guest's VMCOREINFO",
          lambda r: r.has(rf"host dump written: /dev/vda \(\d+ bytes, \d+ of \d+ RAM bytes "
                          rf"non-zero, {r.cpus} vCPUs, vmcoreinfo 6\.[0-9.]+[^ ]*;"),
          when=host_dump),
    Check("host-dump: the guest rebooted after the dump, with no /proc/vmcore",
          lambda r: r.inits >= 2 and r.has(r"GUEST-AFTER-REBOOT vmcore=none"), when=host_dump),
    # --- fadump and kdump ---------------------------------------------------------------
    Check("the guest ran until the requested crash (no earlier reboot)",
          lambda r: not r.has(r"NESTED-UNEXPECTED-REBOOT"), when=captured),
    Check(lambda r: f"crashkernel={crashkernel_mb(r)}M reserved for the kdump kernel",
          lambda r: r.has(rf"Reserving {crashkernel_mb(r)}MB of memory at [0-9]*MB for crashkernel"),
          when=kdump),
    # fadump: the reservation is the boot memory plus the CPU-state and HPTE areas (24 MB
    # more for a 1.5 GiB hash guest), so it must be at least the crashkernel= size.
    Check(lambda r: f"boot memory sized by crashkernel={crashkernel_mb(r)}M "
                    f"(reserved {r.value(r'fadump: Reserved ([0-9]+)MB of memory') or '?'} MB)",
          lambda r: int(r.value(r"fadump: Reserved ([0-9]+)MB of memory") or -1) >= crashkernel_mb(r),
          when=lambda r: fadump(r) and crashkernel_mb(r) is not None),
    Check("no fadump: not registered, no dump written by the VMM",
          lambda r: not r.has(r"Registration is successful") and not r.has(r"fadump: dump written")
          and r.has(r"GUEST-FADUMP-REGISTERED=(absent|0)\b"), when=kdump),
    Check("crash kernel loaded with kexec -p (/sys/kernel/kexec_crash_loaded = 1)",
          lambda r: r.has(r"GUEST-KDUMP-LOADED crash_loaded=1\b")
          and r.has(r"GUEST-KEXEC-CRASH-LOADED=1\b"), when=kdump),
    show_lines(r"GUEST-KDUMP-LOADED", label="GUEST-KDUMP-LOADED", when=kdump),
    show_lines(r"GUEST-KEXEC ", limit=5, when=kdump),
    Check("guest registered fadump with our firmware (registered = 1)",
          lambda r: r.has(r"Registration is successful") and r.has(r"GUEST-FADUMP-REGISTERED=1\b"),
          when=fadump),
    Check("pattern pages recorded with physical addresses", lambda r: pattern_pages(r) >= 4,
          when=captured),
    # A guest of hosting size: some pattern pages above 4 GiB (drgn then reads them back from
    # the vmcore with the others).
    Check(lambda r: f"pattern pages above 4 GiB: {sum(p >= HIGH for p in pattern_phys(r))} "
                    f"of {pattern_pages(r)}",
          lambda r: any(p >= HIGH for p in pattern_phys(r)),
          when=lambda r: captured(r) and memory_bytes(r) > HIGH),
    # What the crashing kernel says about stopping the other CPU (kexec/crash.c), and how our
    # VMM answered the NMI IPI (H_SIGNAL_SYS_RESET) it tried first.
    show_lines(r"Sending IPI to other CPUs|IPI complete|cpu\(s\) not responding|Activate "
               r"system reset|unhandled hcall|kexec: Starting switchover|Starting crashdump "
               r"kernel", limit=10, prefix="  crash: ", when=kdump),
    Check("VMM filled the HPTE section from KVM's HPT and read it back identical",
          lambda r: r.has(r"fadump: HPTE section verified"),
          when=lambda r: fadump(r) and r.mmu == "hash"),
    Check(lambda r: f"VMM preserved the dump (status 0xc000, {r.cpus} CPUs)",
          lambda r: r.has(rf"fadump: dump written: status 0xc000, {r.cpus} CPUs saved"),
          when=lambda r: fadump(r) and vmm_ours(r)),
    Check("capture kernel booted by the VMM after the crash", lambda r: r.inits >= 2, when=fadump),
    Check("capture kernel sees the dump (/proc/vmcore)",
          lambda r: r.has(r"GUEST-VMCORE .*/proc/vmcore"), when=fadump),
    Check("kdump kernel booted (nr_cpus=1) and saw the dump (/proc/vmcore)",
          lambda r: r.inits >= 2 and "nproc=1 " in r.grep(r"GUEST-INIT-REACHED")[1]
          and r.has(r"GUEST-VMCORE .*/proc/vmcore"), when=kdump),
    show_lines(r"GUEST-CMDLINE", label="GUEST-CMDLINE", when=kdump),
    show_lines(r"GUEST-VMCORE-NOTES", label="GUEST-VMCORE-NOTES", when=kdump),
    # --- second: a second crash in the capture kernel, before release -------------------
    Check("second crash before release: the guest boots again",
          lambda r: r.has(r"GUEST-SECOND-CRASH") and r.inits >= 3, when=second),
    Check("second crash: plain reboot, no second dump (VMM log)",
          lambda r: r.has(r"ibm,os-term with no dump registered")
          and r.count(r"fadump: dump written") == 1,
          when=lambda r: second(r) and vmm_ours(r)),
    Check("the first dump is still there after the reboot",
          lambda r: r.count(r"GUEST-VMCORE .*/proc/vmcore") >= 2, when=second),
    # --- memory DLPAR (hotplug kinds) ----------------------------------------------------
    Step(read_disk_pattern, when=hotplug),
    Check("drconf node in the tree, 256 MiB memory blocks",
          lambda r: r.has(r"GUEST-HP-BOOT drconf=yes block=10000000 "), when=hotplug),
    show_lines(r"GUEST-HP-BOOT", label="GUEST-HP-BOOT", when=hotplug),
    Check("adding past the window (3 LMBs of 2) refused, nothing added",
          lambda r: r.has(r"GUEST-HP-ADD-PAST rc=[1-9]") and hp_state(r, "past") == "m6=absent m7=absent",
          when=lambda r: hotplug(r) and not host_add(r)),
    Check("the guest added LMBs 6 and 7 itself (memory add count 2), online",
          lambda r: r.has(r"GUEST-HP-ADD rc=0") and hp_state(r, "added") == "m6=online m7=online",
          when=lambda r: hotplug(r) and not host_add(r)),
    Check("vm.resize past the window: 400, nothing added",
          lambda r: r.has(r"NESTED-HP-API past status=400 ") and hp_state(r, "past") == "m6=absent m7=absent",
          when=host_add),
    Check("vm.resize to 2 GiB: 204; the guest took LMBs 6 and 7 from the hot-plug event, online",
          lambda r: r.has(r"NESTED-HP-API add status=204 ") and r.has(r"GUEST-HP-ADD rc=0")
          and hp_state(r, "added") == "m6=online m7=online"
          and r.has(r"vm.resize: 0x60000000 -> 0x80000000: 2 LMBs \[80000006, 80000007\] offered, 1 hot-plug events"),
          when=host_add),
    Check("vm.resize while the dump is active: 409, nothing changes",
          lambda r: r.has(r"NESTED-HP-API capture status=409 "), when=host_add),
    show_lines(r"NESTED-HP-API", limit=3, when=host_add),
    Check("VMM: both LMBs acquired and configured through RTAS",
          lambda r: all(r.has(rf"dlpar: LMB {i:#x} .* configured") for i in WINDOW_LMBS.values()),
          when=lambda r: hotplug(r) and vmm_ours(r)),
    Check("the guest removed LMB 7 (memory remove index), the VMM saw it released",
          lambda r: r.has(r"GUEST-HP-REMOVE rc=0") and hp_state(r, "removed") == "m6=online m7=absent"
          and r.has(r"dlpar: LMB 0x80000007 .* released by the guest"),
          when=lambda r: hotplug(r) and removes(r)),
    Check("re-registered fadump after each change (the udev rule's kdumpctl reload)",
          lambda r: r.count(r"GUEST-HP-REREG rc=0 registered=1") == (2 if r.crash == "hotplug-remove-rereg" else 1),
          when=lambda r: r.crash.endswith(("-rereg", "-stale")) and not kernel_610(r)),
    Check(lambda r: f"pattern pages on the disk, {len(window_pages(r))} of {len(disk_pages(r))} "
                    "in the hot-added LMBs",
          lambda r: len(window_pages(r)) >= 1, when=hotplug),
    Check(lambda r: "VMM: the fadump reset keeps exactly the LMBs the crashed kernel owned "
                    f"({sorted(owned_at_crash(r))})",
          lambda r: r.has(r"hotplug: Fadump reset: the guest keeps LMBs \[" +
                          ", ".join(f"{WINDOW_LMBS[k]:x}" for k in sorted(owned_at_crash(r))) + r"\]"),
          when=lambda r: hotplug(r) and vmm_ours(r)),
    show_lines(r"GUEST-HP-STATE capture", label="GUEST-HP-STATE", when=hotplug),
    show_lines(r"GUEST-HP-CAPTURE-ADD", label="GUEST-HP-CAPTURE-ADD", when=hotplug),
    # The capture kernel may not add memory while the dump is active: its release would free
    # the new LMB a second time (it frees up to the end of memory at release time).
    Check("an add in the capture kernel (dump active) is refused, nothing changes",
          lambda r: r.has(r"GUEST-HP-CAPTURE-ADD rc=[1-9]") and hp_state(r, "capture-add") == hp_state(r, "capture"),
          when=hotplug),
    Check("VMM: the capture kernel's acquisition refused while the dump is active",
          lambda r: r.has(r"not given to the guest: a firmware-assisted dump is active"),
          when=lambda r: hotplug(r) and removes(r) and vmm_ours(r)),
    # --- the saved vmcore ---------------------------------------------------------------
    Check(lambda r: f"{'kdump' if kdump(r) else 'capture'} kernel saved /proc/vmcore to the "
                    "virtio-blk disk",
          lambda r: (saved_bytes(r) or 0) > 0, when=guest_saved),
    Check("--save sparse: vmcore-save read the whole vmcore and its PT_LOADs reach the end of RAM",
          lambda r: dump_covers_ram(r) and r.has(rf"VMCORE-SAVE-DONE read={saved_bytes(r)} "),
          when=lambda r: captured(r) and r.setting("vmm-save") == "sparse"),
    show_lines(r"VMCORE-SAVE-DONE", label="VMCORE-SAVE-DONE",
               when=lambda r: captured(r) and r.setting("vmm-save") == "sparse"),
    Step(cut_vmcore, when=captured),
    Check("vmcore on the host is an ELF64 core", is_elf64_core,
          when=lambda r: captured(r) and (saved_bytes(r) or 0) > 0),
    Check(lambda r: f"vmcore PT_LOADs over the window: LMBs {sorted(expected_window_loads(r))} "
                    f"({'6.10+: the capture kernel' if kernel_610(r) else 'pre-6.10: the last registration'})",
          lambda r: vmcore_window_lmbs(r) == expected_window_loads(r),
          when=lambda r: hotplug(r) and has_vmcore(r)),
    Check("pattern pages: present ones identical, the uncovered window's absent",
          pattern_pages_as_expected, when=lambda r: hotplug(r) and has_vmcore(r)),
    # --- disk faults during the save (disk-enospc, disk-eio) ------------------------------
    Check(lambda r: f"{fault_kind(r)}: the failing disk was set up in L1",
          lambda r: r.has(r"NESTED-FAULT-SETUP enospc tmpfs=\d+M file=\S+ bytes=2147483648 ")
          if fault_kind(r) == "enospc" else
          r.has(r'NESTED-FAULT-SETUP eio dmsetup=1\.02\.\d+ table="0 \d+ linear \d+:\d+ 0" node=block'),
          when=disk_fault),
    Check("eio: the device-mapper table was `error` during the first save, switched after it had written",
          lambda r: r.has(r"NESTED-FAULT-ARMED eio written_sectors=[1-9]\d* ")
          and r.has(r'NESTED-FAULT-TABLE during="0 \d+ error ?"'),
          when=lambda r: disk_fault(r) and fault_kind(r) == "eio"),
    Check("the capture kernel's first save failed (dd status not 0)", failed_first, when=disk_fault),
    Check("the capture kernel saw I/O errors on vda (its kernel log)", saw_io_errors, when=disk_fault),
    Check(lambda r: f"VMM: the host's {FAULT_ERRNO[fault_kind(r)].split(' (')[0]} completed "
                    f"requests with IOERR (its log; vm.counters: {vmm_host_errors(r, 'capture')} "
                    f"before the save, {vmm_host_errors(r)} after the failed one)",
          lambda r: vmm_host_errors(r, "capture") == 0 and (vmm_host_errors(r) or 0) > 0
          and r.has(r"virtio-blk: host I/O failed, request completed with IOERR \(1 so far\): "
                    + re.escape(f"host I/O error: {FAULT_ERRNO[fault_kind(r)]}")),
          when=disk_fault),
    Check("VMM kept running through the fault and answered vm.fadump: dump-active",
          vmm_alive_after_fault, when=disk_fault),
    Check("the dump stayed in guest memory (/proc/vmcore, same size, after the failure)",
          dump_kept, when=disk_fault),
    Check(lambda r: f"{fault_kind(r)}: the fault cleared",
          lambda r: r.has(r"NESTED-FAULT-CLEARED enospc free_kb=\d+") if fault_kind(r) == "enospc"
          else r.has(r'NESTED-FAULT-CLEARED eio table="0 \d+ linear '),
          when=disk_fault),
    Check("the retry saved the whole vmcore (dd status 0, same size)", retry_saved, when=disk_fault),
    Check("enospc: the saved vmcore copied from L1's tmpfs onto the export disk",
          lambda r: r.has(rf"NESTED-FAULT-EXPORTED bytes={saved_bytes(r)} status=0"),
          when=lambda r: disk_fault(r) and fault_kind(r) == "enospc"),
    Step(save_ratio, when=disk_fault),
    # --- back in production -------------------------------------------------------------
    Check("release_mem, then registered again (registered = 1)",
          lambda r: r.has(r"GUEST-RELEASED") and r.has(r"GUEST-REREGISTERED registered=1\b"),
          when=fadump),
    Check("back in production without another reboot",
          lambda r: r.has(r"GUEST-PRODUCTION") and r.inits == 2 + (1 if second(r) else 0),
          when=fadump),
    Check("rebooted through our VMM into production, crash kernel loaded again",
          lambda r: r.inits == 3 and r.count(r"GUEST-KDUMP-LOADED crash_loaded=1\b") >= 2
          and r.has(rf"GUEST-PRODUCTION nproc={r.cpus} .*kexec_crash_loaded=1 vmcore=none"),
          when=kdump),
    # --- the operator API (ppc-remote in L1) and the event monitor ---------------------
    Check("API: vm.fadump before the crash: registered",
          lambda r: r.has(r"NESTED-API-FADUMP before state=registered\b"), when=api),
    Check("API: vm.fadump in the capture kernel: dump-active, the last dump with its phases",
          lambda r: r.has(r"NESTED-API-FADUMP capture state=dump-active\b")
          and r.has(r'NESTED-API +"outcome": "dumped"') and r.has(r'NESTED-API +"phases_ms"'),
          when=api),
    Check("API: vm.info counts the capture boot (boot_count 2, running)",
          lambda r: r.has(r"NESTED-API-INFO capture state=running\b")
          and r.has(r'NESTED-API +"boot_count": 2\b'), when=api),
    Check(lambda r: "event monitor: " + ", ".join(EVENTS_OF_A_FADUMP_RUN),
          lambda r: all(e in event_names(r) for e in EVENTS_OF_A_FADUMP_RUN)
          and r.has(r'NESTED-EVENT .*"event":"booted".*"kind":"capture"'), when=api),
    show_lines(r'NESTED-EVENT .*"fadump-dump-written"', label="fadump-dump-written event",
               when=api),
    Check("API: the NMI went through vm.nmi (ppc-remote nmi) and the event monitor saw it",
          lambda r: r.has(r"api: vm.nmi requested") and "vm/nmi" in event_names(r),
          when=lambda r: nmi(r) and vmm_ours(r) and r.has(r"NESTED-API ")),
    Check("API: the power button went through vm.power-button and the event monitor saw it",
          lambda r: r.has(r"api: vm.power-button requested")
          and "vm/power-button" in event_names(r),
          when=lambda r: power_button(r) and vmm_ours(r) and r.has(r"NESTED-API ")),
    phases("fadump", fadump_rows, when=fadump),
    phases("kdump", kdump_rows, when=kdump),
    show_lines(r"NESTED-PHASE crash-to-capture-init"),
    show_lines(r"fadump: phases", when=fadump),
    show_lines(r"GUEST-VMCORE-SAVED bytes=[0-9]", label="GUEST-VMCORE-SAVED"),
    Step(crash_to_production, when=captured),
    # --- the dump, analysed on the host by drgn with the guest's DWARF --------------------
    Step(drgn, when=lambda r: captured(r) and has_vmcore(r) and drgn_applies(r)),
    Check(drgn_name, lambda r: r.values["drgn"] == 0,
          when=lambda r: captured(r) and has_vmcore(r) and drgn_applies(r)),
    Check("the CPU spinning with interrupts off was stopped in lkdtm_HARDLOCKUP (drgn trace)",
          lambda r: "lkdtm_HARDLOCKUP" in r.read("drgn.txt"),
          when=lambda r: r.crash == "hardlockup" and has_vmcore(r) and r.values.get("drgn") is not None),
    Check(lambda r: f"drgn shows every CPU where it spun ({SPIN} in the traces of "
                    f"{len(spinning_cpus(r.read('drgn.txt')))} of {r.cpus} CPU notes)",
          lambda r: len(spinning_cpus(r.read("drgn.txt"))) == r.cpus,
          when=lambda r: nmi(r) and has_vmcore(r) and r.values.get("drgn") is not None),
]


def after(run, passed):
    """A crash run's export image holds the vmcore (GBs): a passing run keeps the vmcore and
    drops the image; a failing run keeps everything for a look."""
    if passed and has_vmcore(run) and os.path.exists(run.path("export.img")):
        os.remove(run.path("export.img"))
