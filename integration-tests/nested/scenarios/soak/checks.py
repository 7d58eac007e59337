"""soak, host checks (lib/checks.py runs this table on the console log and run directory).

One VMM process: CYCLES fadump cycles (crash -> capture -> save -> release -> re-register, the
capture kernel crashing in the next cycle), then REBOOTS reboots (RUN/soak-settings). Every
cycle's dump is checked as the fadump matrix checks one: in the guest (the capture kernel's
note count), in the VMM log (the dump written, every CPU saved) and on the host (the cycle's
vmcore cut out of its own region of export.img and analysed by analyze-vmcore.py with drgn
against that cycle's pattern pages). L1's `NESTED-SOAK` samples after each cycle and reboot
must be flat:

- open fds and threads: every sample of a series (the cycles, the reboots) equal to its
  first;
- resident memory outside guest RAM (VmRSS less the RSS of the mappings of 256 MiB or more,
  which are guest RAM): the last sample within max(2 MiB, 2 %) of the series' second (the
  first sample may still be warming allocator caches);
- guest RAM: the same mappings of 256 MiB or more in every sample (no big mapping leaked),
  their RSS within their size. All of VmRSS is reported, not bounded: it includes the guest
  RAM pages the guest has touched, which the VMM does not choose (a capture kernel that
  becomes production writes pages earlier kernels never touched).
"""
import os
import re

import checks
import vmcore_check as vc
from checks import Check, Step

SAMPLE = re.compile(r"NESTED-SOAK (start|crash|reboot) n=(\d+) rss_kb=(\d+) guest_rss_kb=(\d+) "
                    r"host_rss_kb=(\d+) guest_maps=(\d+) guest_map_kb=(\d+) fds=(\d+) "
                    r"threads=(\d+) uptime=([0-9.]+)")
FIELDS = ("rss_kb", "guest_rss_kb", "host_rss_kb", "guest_maps", "guest_map_kb", "fds", "threads",
          "uptime")
CRASH_LINE = r"sysrq: Trigger a crash"


def settings(r):
    """cycles, reboots, stride_mib from RUN/soak-settings."""
    out = {"cycles": 0, "reboots": 0, "stride_mib": 0}
    for word in r.setting("soak-settings").split():
        k, _, v = word.partition("=")
        if k in out and v.isdigit():
            out[k] = int(v)
    return out


def cycles(r):
    return settings(r)["cycles"]


def reboots(r):
    return settings(r)["reboots"]


def samples(r, kind):
    """{n: {field: value}} of L1's NESTED-SOAK KIND lines (the last line per n)."""
    out = {}
    for line in r.grep(SAMPLE.pattern):
        m = SAMPLE.search(line)
        if m.group(1) == kind:
            vals = [float(x) if f == "uptime" else int(x) for f, x in zip(FIELDS, m.groups()[2:])]
            out[int(m.group(2))] = dict(zip(FIELDS, vals))
    return out


def series(r, kind, field):
    s = samples(r, kind)
    return [s[n][field] for n in sorted(s)]


def not_run(line):
    """A line the guest printed, not its echo of the command L1 typed."""
    return "GUEST-RUN" not in line


def per_cycle(r, pattern):
    """Cycle numbers N for which a guest line matches PATTERN (with {n} for N's digits)."""
    rx = re.compile(pattern.format(n=r"(\d+)"))
    found = set()
    for line in filter(not_run, r.lines):
        m = rx.search(line)
        if m:
            found.add(int(m.group(1)))
    return found


def every_cycle(pattern):
    """A predicate: PATTERN's line is there for every cycle 1..CYCLES."""
    return lambda r: per_cycle(r, pattern) >= set(range(1, cycles(r) + 1))


def rss_bound_kb(base_kb):
    return max(2048, base_kb * 2 // 100)


def flat_rss(r, kind, field):
    """The last sample within rss_bound_kb of the second (False with fewer than 2)."""
    s = series(r, kind, field)
    return len(s) >= 2 and s[-1] - s[1] <= rss_bound_kb(s[1])


def equal_throughout(r, kind, field):
    s = series(r, kind, field)
    return bool(s) and len(set(s)) == 1


def expected_count(r, kind):
    return cycles(r) if kind == "crash" else reboots(r)


def has_series(kind):
    return lambda r: expected_count(r, kind) > 0


def describe(r, kind, field):
    s = series(r, kind, field)
    if not s:
        return "no samples"
    return f"first {s[0]}, second {s[1] if len(s) > 1 else '-'}, last {s[-1]}, max {max(s)}, min {min(s)}"


def table(kind):
    """The samples as a table: n, the three figures (RSS in MiB: all, guest RAM, the rest),
    and for cycles the crash -> capture and save times."""
    def step(r):
        s = samples(r, kind)
        start = samples(r, "start").get(0)
        r.show(f"== soak: {kind} samples (our VMM's /proc/PID after each; RSS in MiB) ==")
        r.show(f"{'n':>4} {'VmRSS':>8} {'guest':>8} {'other':>8} {'fds':>4} {'thr':>4}"
               + (f" {'crash->capture s':>16} {'save s':>7}" if kind == "crash" else
                  f" {'reboot s':>8}"))
        rows = ([("start", start)] if start else []) + [(n, s[n]) for n in sorted(s)]
        ctc, save = crash_to_capture(r), save_seconds(r)
        # A reboot's time counts from the sample before it: the last cycle's, for the first.
        before = samples(r, "crash")
        prev = before[max(before)]["uptime"] if kind == "reboot" and before else None
        for n, v in rows:
            extra = ""
            if kind == "crash" and n != "start":
                extra = f" {fmt(ctc.get(n)):>16} {fmt(save.get(n)):>7}"
            elif kind == "reboot" and n != "start":
                extra = f" {fmt(v['uptime'] - prev) if prev is not None else '':>8}"
            r.show(f"{n:>4} {v['rss_kb'] / 1024:8.1f} {v['guest_rss_kb'] / 1024:8.1f} "
                   f"{v['host_rss_kb'] / 1024:8.1f} {v['fds']:>4} {v['threads']:>4}{extra}")
            if n != "start":
                prev = v["uptime"]
        for field in ("rss_kb", "guest_rss_kb", "host_rss_kb", "guest_maps", "guest_map_kb", "fds",
                      "threads"):
            r.show(f"  {field}: {describe(r, kind, field)}")
    return Step(step, has_series(kind))


def fmt(v):
    return "" if v is None else f"{v:.2f}"


def crash_to_capture(r):
    """{cycle: seconds} from L1's NESTED-SOAK-CTC lines."""
    out = {}
    for line in r.grep(r"NESTED-SOAK-CTC cycle=\d+ seconds=[0-9.]+"):
        m = re.search(r"cycle=(\d+) seconds=([0-9.]+)", line)
        out[int(m.group(1))] = float(m.group(2))
    return out


def save_seconds(r):
    """{cycle: guest seconds of the save} from GUEST-VMCORE-SAVED's t0 / t1."""
    out = {}
    for line in filter(not_run, r.grep(r"GUEST-VMCORE-SAVED cycle=\d+ bytes=\d+")):
        m = re.search(r"cycle=(\d+) .*t0=([0-9.]+) t1=([0-9.]+)", line)
        if m:
            out[int(m.group(1))] = float(m.group(3)) - float(m.group(2))
    return out


def saved(r):
    """{cycle: (offset, bytes)} of the vmcores the capture kernels saved."""
    out = {}
    for line in filter(not_run, r.grep(r"GUEST-VMCORE-SAVED cycle=\d+ bytes=\d+ offset=\d+")):
        m = re.search(r"cycle=(\d+) bytes=(\d+) offset=(\d+)", line)
        out[int(m.group(1))] = (int(m.group(3)), int(m.group(2)))
    return out


def ratios(r):
    """Timings as ratios within this run: the last cycle's crash -> capture and save against
    the first's, the mean of the last 10 reboots against the first 10."""
    ctc, save = crash_to_capture(r), save_seconds(r)
    parts = []
    for name, d in (("crash -> capture /init", ctc), ("vmcore save", save)):
        if len(d) >= 2 and d[min(d)] > 0:
            first, last = min(d), max(d)
            parts.append(f"{name}: cycle {last} / cycle {first} = {d[last] / d[first]:.2f} "
                         f"(range {min(d.values()) / d[first]:.2f}-{max(d.values()) / d[first]:.2f})")
    up = series(r, "reboot", "uptime")
    if len(up) >= 3:
        gaps = [b - a for a, b in zip(up, up[1:])]
        k = min(10, len(gaps) // 2)
        head, tail = sum(gaps[:k]) / k, sum(gaps[-k:]) / k
        if head > 0:
            parts.append(f"reboot -> prompt: mean of the last {k} / the first {k} = {tail / head:.2f}")
    for p in parts:
        r.show("timing: " + p)


def slice_console(r, n):
    """The console lines from cycle N-1's crash to cycle N's (cycle N's pattern pages), as
    RUN/console-cycle-N.txt, for analyze-vmcore.py."""
    start = re.compile(rf"GUEST-CRASHING kind=soak cycle={n - 1}\b")
    end = re.compile(rf"GUEST-CRASHING kind=soak cycle={n}\b")
    keep, out = n == 1, []
    for line in r.lines:
        if keep:
            out.append(line)
            if end.search(line) and not_run(line):
                break
        elif start.search(line) and not_run(line):
            keep = True
    name = f"console-cycle-{n}.txt"
    with open(r.path(name), "w") as f:
        f.write("\n".join(out) + "\n")
    return name


def debuginfo(r):
    return r.setting("debuginfo") or os.path.join(os.path.dirname(r.guest_kernel), "vmlinux.debug")


def dumps(r):
    """Every cycle's vmcore cut out of export.img (RUN/vmcore-cycle-N, sparse; a --recheck
    after the image was dropped reuses them) and analysed by drgn (RUN/drgn-cycle-N.txt).
    r.values['dumps'] = {cycle: {"elf": bool, "drgn": status or None, "fails": [...],
    "crashtime": str}}."""
    out = {}
    img = r.path("export.img")
    dbg = debuginfo(r)
    for n, (offset, size) in sorted(saved(r).items()):
        core = f"vmcore-cycle-{n}"
        if os.path.exists(img):
            checks.copy_sparse(img, offset, size, r.path(core))
        d = out[n] = {"elf": False, "drgn": None, "fails": [], "crashtime": None, "seed": None}
        if not os.path.isfile(r.path(core)):
            continue
        with open(r.path(core), "rb") as f:
            d["elf"] = f.read(5) == b"\x7fELF\x02"
        console = slice_console(r, n)
        pattern = vc.parse_pattern_console(r.read(console))
        d["seed"] = pattern.seed if pattern else None
        if os.path.isfile(dbg):
            report = f"drgn-cycle-{n}.txt"
            d["drgn"] = checks.analyze_vmcore(r, dbg, ["--crash-symbol", "sysrq_handle_crash"],
                                              console, vmcore=core, report=report, show=False)
            text = r.read(report)
            d["fails"] = [ln.strip() for ln in text.splitlines() if ln.startswith("FAIL:")]
            m = re.search(r"CRASHTIME=(\d+)", text)
            d["crashtime"] = m.group(1) if m else None
            passes = sum(ln.startswith("PASS:") for ln in text.splitlines())
            r.show(f"  cycle {n}: {core} ({size} bytes at {offset:#x}): drgn status {d['drgn']}, "
                   f"{passes} PASS, {len(d['fails'])} FAIL, CRASHTIME {d['crashtime']}, "
                   f"pattern seed {d['seed']:#x}" if d["seed"] is not None else
                   f"  cycle {n}: {core}: drgn status {d['drgn']}, no pattern lines")
            for line in d["fails"]:
                r.show(f"    {line}")
    r.values["dumps"] = out


def all_dumps(pred):
    def check(r):
        d = r.values.get("dumps", {})
        return len(d) == cycles(r) and all(pred(v) for v in d.values())
    return check


def dumps_distinct(r):
    """Each cycle's dump is a new one: distinct CRASHTIMEs, rising, distinct pattern seeds."""
    d = r.values.get("dumps", {})
    times = [d[n]["crashtime"] for n in sorted(d)]
    seeds = [d[n]["seed"] for n in sorted(d)]
    return (len(d) == cycles(r) and None not in times and None not in seeds
            and [int(t) for t in times] == sorted({int(t) for t in times})
            and len(set(seeds)) == len(seeds))


def with_debuginfo(r):
    return cycles(r) > 0 and os.path.isfile(debuginfo(r))


def drgn_name(r):
    d = r.values.get("dumps", {})
    if any(v["drgn"] is None for v in d.values()):
        return ("drgn analysis not available (drgn-env.sh / analyze-vmcore.py / debug info "
                f"{debuginfo(r)})")
    return (f"drgn analysis of every vmcore passes "
            f"({sum(v['drgn'] == 0 for v in d.values())} of {cycles(r)})")


def hdr_pages(r):
    """The header page's /proc/kpageflags at each step (L1 prints one line per probe): the
    first cycle's lines and every line where it was not reserved."""
    lines = [checks.strip_stamp(ln) for ln in filter(not_run, r.grep(
        r"GUEST-SOAK-HDRPAGE cycle=\d+ when=[a-z-]+ addr=0x[0-9a-f]+ flags=0x[0-9a-f]+ reserved=[01]"))]
    lines = [ln[ln.index("GUEST-SOAK-HDRPAGE"):] for ln in lines]
    shown = [ln for i, ln in enumerate(lines) if i < 3 or ln.endswith("reserved=0")]
    r.show(f"crash-info header page (kpageflags; {len(lines)} probes, "
           f"{sum(ln.endswith('reserved=0') for ln in lines)} not reserved):")
    for ln in shown[:12]:
        r.show("  " + ln)


def thread_names(r, label):
    return r.value(rf"NESTED-SOAK-THREADS {label} (\S+)")


CHECKS = [
    Check("soak ran to the end (no NESTED-SOAK-ABORT)",
          lambda r: not r.has(r"NESTED-SOAK-ABORT") and r.has(r"GUEST-SOAK-END registered=1\b")),
    Check(lambda r: f"one VMM process: {1 + cycles(r) + reboots(r)} guest boots "
                    f"(1 + {cycles(r)} capture kernels + {reboots(r)} reboots)",
          lambda r: r.inits == 1 + cycles(r) + reboots(r)
          and r.count(r"NESTED-PHASE l2-vmm-start") == 1),
    # --- every cycle's dump ----------------------------------------------------------------
    # Linux 6.10+ (6.12 here) frees the page holding the crash-info header when the capture
    # kernel releases the dump memory (the reservation's end, header included, is not page
    # aligned and the release starts at that page); re-registration then writes the header
    # into free memory, which is reused, and the next capture kernel finds it overwritten.
    Check("every capture kernel found the crashed kernel's fadump header intact "
          "(no 'Fadump header is corrupted')",
          lambda r: not r.has(r"Fadump header is corrupted"), when=has_series("crash")),
    Step(hdr_pages, when=has_series("crash")),
    # A boot that starts with an IPI pending from the kernel before it (a vCPU reset while
    # another still ran the old kernel) takes it before it can map it, forever.
    Check("no boot looped on a stale IPI ('Interrupt 0x2 (real) is invalid')",
          lambda r: not r.has(r"Interrupt 0x2 \(real\) is invalid")),
    Check(lambda r: f"fadump registered before each of the {cycles(r)} crashes",
          every_cycle(r"GUEST-SOAK-CYCLE n={n} registered=1\b"), when=has_series("crash")),
    Check(lambda r: f"VMM preserved {cycles(r)} dumps (status 0xc000, {r.cpus} CPUs each), no "
                    "crash without a registered dump",
          lambda r: r.count(rf"fadump: dump written: status 0xc000, {r.cpus} CPUs saved") == cycles(r)
          and not r.has(r"ibm,os-term with no dump registered"), when=has_series("crash")),
    Check(lambda r: f"capture kernel saw every dump with {r.cpus} NT_PRSTATUS notes (in the guest)",
          lambda r: len([ln for ln in r.grep(rf"GUEST-VMCORE-NOTES prstatus={r.cpus} ")
                         if not_run(ln)]) == cycles(r), when=has_series("crash")),
    Check("every cycle's vmcore saved into its own region (vmcore-save read all of it)",
          lambda r: set(saved(r)) == set(range(1, cycles(r) + 1))
          and all(r.has(rf"GUEST-SAVE cycle={n} VMCORE-SAVE-DONE read={b} .*offset={o}\b")
                  for n, (o, b) in saved(r).items())
          and all(o + b <= n * settings(r)["stride_mib"] << 20 for n, (o, b) in saved(r).items()),
          when=has_series("crash")),
    Check("every cycle: release_mem, registered again, /proc/vmcore gone",
          lambda r: every_cycle(r"GUEST-RELEASED cycle={n} rc=0\b")(r)
          and every_cycle(r"GUEST-REREGISTERED cycle={n} registered=1 vmcore=gone")(r),
          when=has_series("crash")),
    Check("every cycle back in production without a reboot (all CPUs, MemTotal the same every cycle)",
          lambda r: len(set(re.sub(r".*mem=", "", ln) for ln in
                            filter(not_run, r.grep(rf"GUEST-PRODUCTION cycle=\d+ nproc={r.cpus} ")))) == 1
          and every_cycle(rf"GUEST-PRODUCTION cycle={{n}} nproc={r.cpus} ")(r),
          when=has_series("crash")),
    Step(dumps, when=has_series("crash")),
    Check(lambda r: f"every vmcore on the host is an ELF64 core ({cycles(r)})",
          all_dumps(lambda d: d["elf"]), when=has_series("crash")),
    Check(drgn_name, all_dumps(lambda d: d["drgn"] == 0), when=with_debuginfo),
    Check("each dump is a new one (CRASHTIME rising, a new pattern seed each cycle)",
          dumps_distinct, when=with_debuginfo),
    # --- the figures --------------------------------------------------------------------
    table("crash"),
    table("reboot"),
    Step(ratios),
    Step(lambda r: r.show(f"threads at start: {thread_names(r, 'start')}; at the end: "
                          f"{thread_names(r, 'end')}")),
    Step(lambda r: r.show(f"fds at start: {r.value(r'NESTED-SOAK-FDS start (.*)')}; at the end: "
                          f"{r.value(r'NESTED-SOAK-FDS end (.*)')}")),
]
for _kind in ("crash", "reboot"):
    CHECKS += [
        Check(lambda r, k=_kind: f"{k}: a sample after each of the {expected_count(r, k)}",
              lambda r, k=_kind: sorted(samples(r, k)) == list(range(1, expected_count(r, k) + 1)),
              when=has_series(_kind)),
        Check(lambda r, k=_kind: f"{k}: open fds flat ({describe(r, k, 'fds')})",
              lambda r, k=_kind: equal_throughout(r, k, "fds"), when=has_series(_kind)),
        Check(lambda r, k=_kind: f"{k}: threads flat ({describe(r, k, 'threads')})",
              lambda r, k=_kind: equal_throughout(r, k, "threads"), when=has_series(_kind)),
        Check(lambda r, k=_kind: f"{k}: RSS outside guest RAM flat, last within max(2 MiB, 2%) "
                                 f"of the second (kB: {describe(r, k, 'host_rss_kb')})",
              lambda r, k=_kind: flat_rss(r, k, "host_rss_kb"), when=has_series(_kind)),
        Check(lambda r, k=_kind: f"{k}: guest RAM mappings unchanged ({describe(r, k, 'guest_maps')} "
                                 f"mappings of {describe(r, k, 'guest_map_kb')} kB), their RSS "
                                 "within them",
              lambda r, k=_kind: equal_throughout(r, k, "guest_maps")
              and equal_throughout(r, k, "guest_map_kb")
              and all(v["guest_rss_kb"] <= v["guest_map_kb"] for v in samples(r, k).values()),
              when=has_series(_kind)),
    ]


def after(run, passed):
    """A passing run keeps its per-cycle vmcores (sparse) and drops the export image."""
    if passed and os.path.exists(run.path("export.img")):
        os.remove(run.path("export.img"))
