#!/usr/bin/env python3
"""The fadump matrix: named crash cases, each one nested run, and one table of the results.

Run through ../fadump-matrix.sh (see its --help). For every case and VMM it runs
`boot-our-vmm.sh --mode crash ...` into its own run directory, then reads the run's console
log for the numbers a user cares about:

  vmcore bytes            what the capture kernel saved (GUEST-VMCORE-SAVED bytes=)
  crash -> capture /init  L1's own measure, from the kernel's crash line to the capture
                          kernel's /init (NESTED-PHASE crash-to-capture-init, 10 ms clock)
  vmcore saved            the capture kernel's `dd` of /proc/vmcore, guest clock (t1 - t0)
  back in production      host clock, from the kernel's crash line to GUEST-PRODUCTION
                          (released, registered again, ready)

and prints one table (plus a side-by-side table, ours vs QEMU 11.1 with ratios, when both
VMMs ran; plus the spread of each phase when a case ran more than once). --json FILE writes
every run and the summaries as JSON.
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NESTED = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import kernel_check  # noqa: E402

# name: (boot-our-vmm.sh arguments, what it shows, in the default set)
CASES = {
    "sysrq-2cpu": (["--cpus", "2", "--crash", "sysrq"],
                   "Linux 6.12, 2 vCPUs, sysrq c while cpu1 is busy in userspace", True),
    "sysrq-1cpu": (["--cpus", "1", "--crash", "sysrq"], "1 vCPU, sysrq c", True),
    "sysrq-1g": (["--cpus", "2", "--crash", "sysrq", "--memory", "4608M", "--crashkernel", "1152M",
                  "--l1-mem", "6G", "--timeout", "2400"],
                 "sysrq-2cpu with 1152 MiB of boot memory (4.5 GiB guest, 6 GiB L1)", False),
    "lkdtm-bug": (["--cpus", "2", "--crash", "bug"],
                  "LKDTM BUG (an oops; crash_fadump from the oops path)", True),
    "lkdtm-panic": (["--cpus", "2", "--crash", "panic"], "LKDTM PANIC", True),
    "hardlockup": (["--cpus", "2", "--crash", "hardlockup"],
                   "LKDTM HARDLOCKUP pinned to cpu1 (irqs off), sysrq c on cpu0", True),
    "second-crash": (["--cpus", "2", "--crash", "second"],
                     "a second sysrq crash in the capture kernel before release", True),
    # L1 gets a CPU more than the guest: with both L1 CPUs inside spinning L2 vCPUs, L0's TCG
    # nested-HV left L1 none to run on (no L1 output for 10 minutes, L1 -smp 2).
    "nmi-hung": (["--cpus", "2", "--crash", "nmi-hung", "--l1-cpus", "3"],
                 "every vCPU spins with irqs off (LKDTM HARDLOCKUP); the VMM's NMI (SIGUSR1) "
                 "sends them to crash_fadump", True),
    "host-dump": (["--cpus", "1", "--crash", "host-dump"],  # run once with 1 vCPU
                  "no fadump: the hung guest is NMI'd, panics, and the VMM writes an ELF core "
                  "(--on-crash host-dump); drgn on the host", True),
    "power-button": (["--cpus", "2", "--crash", "power-button"],
                     "power button (SIGUSR2): EPOW event, orderly shutdown, VMM exit 0", False),
    "unregistered": (["--cpus", "2", "--crash", "unregistered"],
                     "no fadump=on: the crash reboots plainly, no dump", True),
    "hosting-8g": (["--cpus", "2", "--crash", "sysrq", "--memory", "8G", "--crashkernel", "1024M",
                    "--append", "kernelcore=4G", "--save", "sparse", "--timeout", "2400"],
                   "8 GiB guest, 1 GiB boot memory; kernelcore=4G puts user pages (the "
                   "pattern) above 4 GiB; vmcore saved sparse", False),
    # The disk fails during the capture kernel's save and heals; a retry saves the dump whole.
    "disk-enospc": (["--cpus", "2", "--crash", "disk-enospc", "--l1-mem", "4G"],
                    "the VMM's disk is a file on a 256 MiB tmpfs in L1: the save fails "
                    "(ENOSPC -> IOERR), the tmpfs grows, the retry saves the dump", False),
    "disk-eio": (["--cpus", "2", "--crash", "disk-eio"],
                 "the VMM's disk is a device-mapper device: switched to `error` mid-save "
                 "(EIO -> IOERR), back to `linear`, the retry saves the dump", False),
    "linux-6.1": (["--cpus", "2", "--crash", "sysrq", "--guest-kernel", "6.1"],
                  "Linux 6.1 guest (pre-6.10 layout, FADMPINF), sysrq c", False),
    "hash-powernv": (["--cpus", "2", "--crash", "sysrq", "--l0", "powernv", "--mmu", "hash",
                      "--timeout", "2400"],
                     "hash-MMU guest on the powernv L0: HPTE section from KVM's HPT", False),
    "kdump-sysrq": (["--cpus", "2", "--crash", "kdump"],
                    "the sysrq-2cpu crash captured by kdump (kexec -p) instead of fadump", False),
    "kdump-hardlockup": (["--cpus", "2", "--crash", "kdump-hardlockup"],
                         "the hardlockup crash captured by kdump: is the spinning CPU saved?",
                         False),
    # Memory DLPAR (--memory size=1536M,hotplug_size=512M; the guest adds LMBs 6 and 7 itself
    # through /sys/kernel/dlpar, the pattern lands in them; its addresses go to the disk too).
    "hotplug-add-6.12": (["--cpus", "2", "--crash", "hotplug-add"],
                         "Linux 6.12: add 512 MiB (2 LMBs), pattern in them, crash: the "
                         "vmcore holds them", False),
    "hotplug-remove-6.12": (["--cpus", "2", "--crash", "hotplug-remove"],
                            "Linux 6.12: add 2 LMBs, remove LMB 7, crash: no PT_LOAD for it",
                            False),
    "hotplug-host-add-6.12": (["--cpus", "2", "--crash", "hotplug-host-add"],
                              "Linux 6.12: the host adds 512 MiB with vm.resize (hot-plug "
                              "events), pattern in them, crash: dumped; a resize while the "
                              "dump is active is refused", False),
    "hotplug-add-6.1": (["--cpus", "2", "--crash", "hotplug-add", "--guest-kernel", "6.1"],
                        "Linux 6.1: add 2 LMBs, no re-registration: the elfcorehdr from "
                        "boot has no PT_LOAD for them", False),
    "hotplug-add-rereg-6.1": (["--cpus", "2", "--crash", "hotplug-add-rereg",
                               "--guest-kernel", "6.1"],
                              "Linux 6.1: add 2 LMBs, re-register (the udev rule): dumped",
                              False),
    "hotplug-remove-stale-6.1": (["--cpus", "2", "--crash", "hotplug-remove-stale",
                                  "--guest-kernel", "6.1"],
                                 "Linux 6.1: add, re-register, remove LMB 7, no re-registration:"
                                 " a stale PT_LOAD read as zeros", False),
    "hotplug-remove-rereg-6.1": (["--cpus", "2", "--crash", "hotplug-remove-rereg",
                                  "--guest-kernel", "6.1"],
                                 "Linux 6.1: add, remove LMB 7, re-registering after each: no "
                                 "PT_LOAD for it", False),
}
# kdump case -> the fadump case with the same guest and crash (the side-by-side table).
KDUMP_PAIRS = {"kdump-sysrq": "sysrq-2cpu", "kdump-hardlockup": "hardlockup"}
VMMS = ("ours", "qemu-sid")
VMM_LABEL = {"ours": "ours", "qemu-sid": "QEMU 11.1"}

STAMP = re.compile(r"^\[ *([0-9.]+)\] ")
# The guest kernel's own first line about the crash (as L1's crash-to-capture timer uses).
CRASH_LINE = re.compile(r"sysrq: Trigger a crash|Performing direct entry (BUG|PANIC)")


def host_time(line):
    m = STAMP.match(line)
    return float(m.group(1)) if m else None


def first_time(lines, pattern):
    rx = re.compile(pattern)
    for line in lines:
        if rx.search(line):
            return host_time(line)
    return None


def parse_run(console_text, runner_text=""):
    """The numbers and failed checks of one run, from its console log and runner output."""
    lines = console_text.splitlines()
    out = {"vmcore_bytes": None, "crash_to_capture_init_s": None, "vmcore_save_s": None,
           "back_in_production_s": None, "vmm_phases": None}
    out.update({key: None for _label, key in VMM_PHASES})
    for line in lines:
        m = re.search(r"GUEST-VMCORE-SAVED bytes=(\d+) t0=([0-9.]+) t1=([0-9.]+)", line)
        if m and out["vmcore_bytes"] is None:
            out["vmcore_bytes"] = int(m.group(1))
            out["vmcore_save_s"] = round(float(m.group(3)) - float(m.group(2)), 2)
        # NESTED-PHASE since the runners became one; L1-PHASE in run directories from before.
        m = re.search(r"(?:NESTED|L1)-PHASE crash-to-capture-init seconds=([0-9.]+)", line)
        if m and out["crash_to_capture_init_s"] is None:
            out["crash_to_capture_init_s"] = float(m.group(1))
        m = re.search(r"fadump: phases: (.*)$", line)
        if m and out["vmm_phases"] is None:
            out["vmm_phases"] = m.group(1).strip()
            for label, key in VMM_PHASES:
                v = re.search(re.escape(label) + r" ([0-9.]+) ms", line)
                out[key] = float(v.group(1)) if v else None
    crash = first_time(lines, CRASH_LINE.pattern)
    prod = first_time(lines, r"GUEST-PRODUCTION nproc=\d")
    if crash is not None and prod is not None and prod >= crash:
        out["back_in_production_s"] = round(prod - crash, 2)
    # boot-our-vmm.sh (run-l1.sh) waits for another emulator (NESTED_WAIT_IDLE) and its checks
    # warn when it still had to start beside one: that run's timings shared the 2 cores.
    out["concurrent_emulator"] = "another emulator is running" in runner_text
    checks = [ln for ln in runner_text.splitlines() if ln.startswith(("PASS:", "FAIL:"))]
    out["passed_checks"] = sum(1 for c in checks if c.startswith("PASS:"))
    out["failed_checks"] = [c[len("FAIL: "):] for c in checks if c.startswith("FAIL:")]
    return out


# Our VMM's own account of the crash (its `fadump: phases:` log line), in ms.
VMM_PHASES = (("stop + registers", "vmm_stop_ms"), ("dump", "vmm_dump_ms"),
              ("reset", "vmm_reset_ms"), ("capture boot set up", "vmm_boot_ms"),
              ("total", "vmm_total_ms"))

PHASES = (("crash_to_capture_init_s", "crash->capture /init"),
          ("vmcore_save_s", "vmcore saved"),
          ("back_in_production_s", "back in production"))


def fmt_s(v):
    return "-" if v is None else f"{v:.2f} s"


def fmt_bytes(v):
    return "-" if v is None else str(v)


def results_table(runs):
    """The main table: one line per run."""
    head = ("case", "vmm", "result", "vmcore bytes", "crash->capture /init", "vmcore saved",
            "back in production", "run")
    rows = [head]
    for r in runs:
        rows.append((r["case"], VMM_LABEL.get(r["vmm"], r["vmm"]),
                     "PASS" if r["passed"] else "FAIL", fmt_bytes(r["vmcore_bytes"]),
                     fmt_s(r["crash_to_capture_init_s"]), fmt_s(r["vmcore_save_s"]),
                     fmt_s(r["back_in_production_s"]), os.path.basename(r["run_dir"])))
    return render(rows)


def render(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def spread(runs):
    """Per (case, vmm) with several runs: pass count and min / median / max of each phase."""
    groups = {}
    for r in runs:
        groups.setdefault((r["case"], r["vmm"]), []).append(r)
    out = []
    for (case, vmm), group in groups.items():
        entry = {"case": case, "vmm": vmm, "runs": len(group),
                 "passed": sum(1 for r in group if r["passed"])}
        keys = [k for k, _l in PHASES] + ["vmcore_bytes"] + [k for _l, k in VMM_PHASES]
        for key in keys:
            values = [r.get(key) for r in group if r.get(key) is not None]
            if values:
                entry[key] = {"min": min(values), "median": statistics.median(values),
                              "max": max(values), "n": len(values)}
        out.append(entry)
    return out


def spread_cell(v, unit):
    if v is None:
        return "-"
    cell = f"{v['min']:.2f} / {v['median']:.2f} / {v['max']:.2f} {unit}"
    return cell + (f" (x{v['max'] / v['min']:.2f})" if v["min"] else "")


def spread_table(entries):
    """One row per (case, vmm, phase): pass count, then min / median / max and max/min."""
    rows = [("case", "vmm", "passed", "phase", "min / median / max (max/min)")]
    for e in entries:
        label = VMM_LABEL.get(e["vmm"], e["vmm"])
        passed = f"{e['passed']}/{e['runs']}"
        phases = [(k, l, "s") for k, l in PHASES]
        phases += [(k, f"VMM: {l}", "ms") for l, k in VMM_PHASES]
        for key, name, unit in phases:
            if e.get(key) is not None:
                rows.append((e["case"], label, passed, name, spread_cell(e[key], unit)))
    return render(rows)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def conformance(runs):
    """Ours vs QEMU 11.1 per case: results and phase ratios (medians when repeated)."""
    by = {}
    for r in runs:
        by.setdefault(r["case"], {}).setdefault(r["vmm"], []).append(r)
    out = []
    for case, per in by.items():
        if "ours" not in per or "qemu-sid" not in per:
            continue
        entry = {"case": case}
        for vmm in VMMS:
            group = per[vmm]
            entry[vmm] = {
                "passed": all(r["passed"] for r in group),
                "failed_checks": sorted({c for r in group for c in r["failed_checks"]}),
            }
            for key, _label in PHASES:
                values = [r[key] for r in group if r[key] is not None]
                entry[vmm][key] = statistics.median(values) if values else None
        for key, _label in PHASES:
            entry[f"ratio_{key}"] = ratio(entry["ours"][key], entry["qemu-sid"][key])
        out.append(entry)
    return out


def conformance_table(entries):
    rows = [("case", "ours", "QEMU 11.1", "crash->capture /init ours/QEMU",
             "vmcore saved ours/QEMU", "back in production ours/QEMU")]
    notes = []
    for e in entries:
        cells = []
        for key, _label in PHASES:
            r = e[f"ratio_{key}"]
            cells.append("-" if r is None else
                         f"{e['ours'][key]:.2f}/{e['qemu-sid'][key]:.2f} = {r:.2f}")
        rows.append((e["case"], "PASS" if e["ours"]["passed"] else "FAIL",
                     "PASS" if e["qemu-sid"]["passed"] else "FAIL", *cells))
        for vmm in VMMS:
            for c in e[vmm]["failed_checks"]:
                notes.append(f"  {e['case']} under {VMM_LABEL[vmm]}: FAIL: {c}")
    text = render(rows)
    if notes:
        text += "\nfailing checks:\n" + "\n".join(notes)
    return text


def kdump_vs_fadump(runs):
    """kdump / fadump per pair of cases run by our VMM (medians when repeated)."""
    out = []
    for kcase, fcase in KDUMP_PAIRS.items():
        k = [r for r in runs if r["case"] == kcase and r["vmm"] == "ours"]
        f = [r for r in runs if r["case"] == fcase and r["vmm"] == "ours"]
        if not k or not f:
            continue
        entry = {"kdump": kcase, "fadump": fcase,
                 "kdump_passed": all(r["passed"] for r in k),
                 "fadump_passed": all(r["passed"] for r in f)}
        for key, _label in PHASES + (("vmcore_bytes", "vmcore bytes"),):
            kv = [r[key] for r in k if r[key] is not None]
            fv = [r[key] for r in f if r[key] is not None]
            entry[key] = (statistics.median(kv) if kv else None,
                          statistics.median(fv) if fv else None)
            entry[f"ratio_{key}"] = ratio(*entry[key])
        out.append(entry)
    return out


def kdump_table(entries):
    rows = [("kdump case / fadump case", "kdump", "fadump", "crash->capture /init k/f",
             "vmcore saved k/f", "back in production k/f", "vmcore bytes k/f")]
    for e in entries:
        cells = []
        for key, _label in PHASES + (("vmcore_bytes", "vmcore bytes"),):
            k, f = e[key]
            r = e[f"ratio_{key}"]
            if r is None:
                cells.append("-")
            elif key == "vmcore_bytes":
                cells.append(f"{k}/{f} = {r:.2f}")
            else:
                cells.append(f"{k:.2f}/{f:.2f} = {r:.2f}")
        rows.append((f"{e['kdump']} / {e['fadump']}", "PASS" if e["kdump_passed"] else "FAIL",
                     "PASS" if e["fadump_passed"] else "FAIL", *cells))
    return render(rows)


def run_case(case, vmm, run_dir, kernel_args, runner=None, extra_env=None):
    """One nested run; returns its record."""
    args, _what, _default = CASES[case]
    args = list(args)
    if kernel_args:
        args = [a for a in args]  # a user kernel replaces the case's own
        args += kernel_args
    cmd = [runner or os.path.join(NESTED, "boot-our-vmm.sh"), "--mode", "crash", *args,
           "--vmm", vmm, "--run-dir", run_dir]
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, "runner.log")
    env = dict(os.environ, **(extra_env or {}))
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    with open(log_path, errors="replace") as f:
        runner_text = f.read()
    console = os.path.join(run_dir, "console.log")
    console_text = ""
    if os.path.exists(console):
        with open(console, errors="replace") as f:
            console_text = f.read()
    record = {"case": case, "vmm": vmm, "run_dir": run_dir, "rc": proc.returncode,
              "passed": proc.returncode == 0, "command": cmd}
    record.update(parse_run(console_text, runner_text))
    if proc.returncode != 0 and not record["failed_checks"]:
        record["failed_checks"] = [f"runner exited {proc.returncode} before its checks "
                                   f"(see {log_path})"]
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fadump-matrix.sh", description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", help="case names (default: the default set); --list")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--guest-kernel", metavar="VMLINUX",
                    help="verify this kernel: checked up front, then every case boots it")
    ap.add_argument("--debuginfo", metavar="FILE", help="its DWARF for drgn")
    ap.add_argument("--config", metavar="FILE",
                    help="its .config (default: embedded, or beside the image)")
    ap.add_argument("--vmm", choices=("ours", "qemu-sid", "both"), default="ours",
                    help="which VMM runs the guest in L1 (both: ours, then QEMU 11.1, per case)")
    ap.add_argument("--runs", type=int, default=1, help="run each case N times in a row")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--out", metavar="DIR", help="where the run directories go "
                    "(default $PPC_VMM_CACHE/nested/runs)")
    ap.add_argument("--check-only", action="store_true",
                    help="with --guest-kernel: only the up-front kernel check")
    ap.add_argument("--report", nargs="+", metavar="RUN_DIR",
                    help="no runs: the tables (and --json) of earlier run directories "
                    "named <time>-<case>-<vmm>[-N]")
    args = ap.parse_args(argv)

    if args.report:
        runs = [record_from_dir(d) for d in args.report]
        return summarize(runs, args, None, args.vmm == "both" or
                         len({r["vmm"] for r in runs}) > 1)
    if args.list:
        for name, (_a, what, default) in CASES.items():
            print(f"{name:14} {'(default) ' if default else ''}{what}")
        return 0
    cases = args.cases or [c for c, (_a, _w, d) in CASES.items() if d]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        print(f"fadump-matrix: unknown case(s) {', '.join(unknown)} (--list)", file=sys.stderr)
        return 2
    if args.runs < 1:
        print("fadump-matrix: --runs must be at least 1", file=sys.stderr)
        return 2

    kernel_args = []
    kcheck = None
    if args.guest_kernel:
        if "linux-6.1" in cases:
            print("fadump-matrix: linux-6.1 names its own kernel; with --guest-kernel use "
                  "sysrq-2cpu and the other cases", file=sys.stderr)
            return 2
        try:
            kcheck = kernel_check.check_kernel(args.guest_kernel, cases, args.config,
                                               args.debuginfo)
        except kernel_check.KernelCheckError as e:
            print(f"MISSING: {e}\nfadump-matrix: refusing to run", file=sys.stderr)
            return 3
        kernel_check.report(kcheck)
        if not kcheck["ok"]:
            print("fadump-matrix: the kernel cannot run these cases; nothing was run")
            if args.json:
                write_json(args.json, {"kernel_check": kcheck, "runs": []})
            return 3
        kernel_args = ["--guest-kernel", os.path.abspath(args.guest_kernel),
                       "--debuginfo", os.path.abspath(kcheck["info"]["debuginfo"])]
        if args.check_only:
            return 0
    elif args.check_only:
        print("fadump-matrix: --check-only needs --guest-kernel", file=sys.stderr)
        return 2

    cache = os.environ.get("PPC_VMM_CACHE", os.path.expanduser("~/.cache/ppc-vmm"))
    out = args.out or os.path.join(cache, "nested", "runs")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    vmms = VMMS if args.vmm == "both" else (args.vmm,)
    runs = []
    for case in cases:
        for n in range(args.runs):
            for vmm in vmms:
                suffix = f"-{n + 1}" if args.runs > 1 else ""
                run_dir = os.path.join(out, f"{stamp}-{case}-{vmm}{suffix}")
                print(f"== fadump-matrix: {case} ({VMM_LABEL[vmm]}){suffix}: {run_dir}",
                      flush=True)
                record = run_case(case, vmm, run_dir, kernel_args)
                runs.append(record)
                for c in record["failed_checks"]:
                    print(f"  [{case}] FAIL: {c}")
                print(f"  [{case}] {'PASS' if record['passed'] else 'FAIL'} "
                      f"({record['passed_checks']} checks passed)", flush=True)

    return summarize(runs, args, kcheck, args.vmm == "both")


def record_from_dir(run_dir):
    """A run's record from its directory alone (for --report): case and VMM from its name,
    passed = it printed checks and none failed."""
    run_dir = os.path.abspath(run_dir)
    m = re.match(r"^\d{8}T\d{6}-(.+)-(ours|qemu-sid)(?:-\d+)?$", os.path.basename(run_dir))
    case, vmm = (m.group(1), m.group(2)) if m else (os.path.basename(run_dir), "ours")
    texts = []
    for name in ("console.log", "runner.log"):
        path = os.path.join(run_dir, name)
        with open(path, errors="replace") if os.path.exists(path) else open(os.devnull) as f:
            texts.append(f.read())
    record = {"case": case, "vmm": vmm, "run_dir": run_dir, "rc": None}
    record.update(parse_run(*texts))
    record["passed"] = record["passed_checks"] > 0 and not record["failed_checks"]
    return record


def summarize(runs, args, kcheck, side_by_side):
    print("\n== fadump matrix ==")
    print(results_table(runs))
    busy = [os.path.basename(r["run_dir"]) for r in runs if r.get("concurrent_emulator")]
    if busy:
        print(f"(started beside another emulator, timings shared the cores: {', '.join(busy)})")
    result = {"kernel_check": kcheck, "runs": runs}
    if len(runs) > len({(r["case"], r["vmm"]) for r in runs}):
        result["spread"] = spread(runs)
        print("\n== spread over repeated runs (min / median / max, max/min) ==")
        print(spread_table(result["spread"]))
    if side_by_side:
        result["conformance"] = conformance(runs)
        print("\n== conformance: ours vs QEMU 11.1 (same guest, crash and drive script) ==")
        print(conformance_table(result["conformance"]))
    pairs = kdump_vs_fadump(runs)
    if pairs:
        result["kdump_vs_fadump"] = pairs
        print("\n== kdump vs fadump (same guest and crash, our VMM; ratios kdump/fadump) ==")
        print(kdump_table(pairs))
    passed = sum(1 for r in runs if r["passed"])
    print(f"\nmatrix: {passed} passed, {len(runs) - passed} failed")
    if args.json:
        write_json(args.json, result)
        print(f"JSON: {args.json}")
    # With --vmm both, QEMU's failures are findings for the table, not our failures.
    ours_failed = any(not r["passed"] for r in runs if r["vmm"] == "ours")
    return 1 if ours_failed or (args.vmm == "qemu-sid" and passed < len(runs)) else 0


def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
