#!/usr/bin/env python3
"""The host checks of a boot-our-vmm.sh run, over its console log and run directory.

    python3 lib/checks.py RUN_DIR     (boot-our-vmm.sh runs it after every run and on --recheck)

Each scenario's table is `CHECKS` in scenarios/<mode>/checks.py: a list of `Check(name,
predicate)` (a predicate takes a `Run` and returns a bool) and `Step(function)` (prints a
report or computes a value a later check reads, e.g. cutting the vmcore out of the export
image), both with an optional `when` (a predicate: the entry applies to this run at all).
A name may be a function of the run. This module prints the common phase times, evaluates the
table and then `COMMON_TAIL`, prints `PASS: name` / `FAIL: name` per check (the lines
fadump_matrix.py counts), calls the scenario's `after(run, passed)` if it has one, prunes old
run directories, and exits 1 if any check failed.

A predicate that raises is a failed check (its error is printed beside it), not a crash of the
checker. lib/test_checks.py feeds the tables synthetic console logs.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NESTED = os.path.dirname(HERE)
SCENARIOS = os.path.join(NESTED, "scenarios")
STAMP = re.compile(r"^\[ *([0-9.]+)\] ")


class Check:
    """A PASS/FAIL line: NAME (a string or a function of the run) and PREDICATE(run)."""

    def __init__(self, name, predicate, when=None):
        self.name, self.predicate, self.when = name, predicate, when


class Step:
    """Not a check: FUNCTION(run) prints a report or stores a value in run.values."""

    def __init__(self, function, when=None):
        self.function, self.when = function, when


class Run:
    """One run as the checks see it: its settings files and its console log (host-stamped
    lines, `[  12.345] text`)."""

    def __init__(self, run_dir, console=None, out=print):
        self.dir = os.path.abspath(run_dir)
        self.out = out
        self.mode = self.setting("vmm-mode", "drive")
        self.crash = self.setting("vmm-crash", "sysrq")
        self.vmm = self.setting("vmm-which", "ours")
        self.args = self.setting("vmm-args")
        self.cmdline = self.setting("vmm-cmdline")
        self.guest_kernel = self.setting("guest-kernel")
        m = re.search(r"--cpus (\d+)", self.args)
        self.cpus = int(m.group(1)) if m else 1
        self.mmu = "hash" if "--mmu hash" in self.args else "radix"
        if console is None:
            console = self.read("console.log")
        self.lines = console.splitlines()
        self.values = {}

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name, default=""):
        try:
            with open(self.path(name), errors="replace") as f:
                return f.read()
        except OSError:
            return default

    def setting(self, name, default=""):
        return self.read(name, default).strip() or default

    # The console log, grep-like. PATTERN is a Python regular expression.
    def grep(self, pattern):
        rx = re.compile(pattern)
        return [line for line in self.lines if rx.search(line)]

    def has(self, pattern):
        return bool(self.grep(pattern))

    def count(self, pattern):
        return len(self.grep(pattern))

    def value(self, pattern, group=1):
        """Group GROUP of PATTERN's first match in the log, or None."""
        rx = re.compile(pattern)
        for line in self.lines:
            m = rx.search(line)
            if m:
                return m.group(group)
        return None

    def nth(self, pattern, n):
        """Host seconds of the Nth (1-based) line matching PATTERN, or None."""
        hits = self.grep(pattern)
        if len(hits) < n:
            return None
        m = STAMP.match(hits[n - 1])
        return float(m.group(1)) if m else None

    def first(self, pattern):
        return self.nth(pattern, 1)

    def after(self, mark, pattern):
        """Host seconds from the first line containing MARK to the first PATTERN after it."""
        start = None
        rx = re.compile(pattern)
        for line in self.lines:
            m = STAMP.match(line)
            t = float(m.group(1)) if m else None
            if start is None:
                if mark in line:
                    start = t
            elif rx.search(line) and t is not None and start is not None:
                return t - start
        return None

    @property
    def inits(self):
        return self.count(r"GUEST-INIT-REACHED")

    def show(self, line=""):
        self.out(line)

    def show_phase(self, label, t):
        self.out(f"{label:<34} {fmt(t, 3)}".rstrip())


def fmt(t, places=2):
    return "" if t is None else f"{t:.{places}f}"


def strip_stamp(line):
    return STAMP.sub("", line)


# The phase block every run prints first (host seconds since L0 start). A scenario adds its
# own rows with PHASES = [(label, pattern)], printed after the boot ones.
BOOT_PHASES = [
    ("L1 at /init", r"NESTED-PHASE l1-init\b"),
    ("kvm-hv loaded", r"NESTED-PHASE kvm-hv-loaded"),
    ("our VMM started", r"NESTED-PHASE l2-vmm-start"),
    ("guest first console line", r"Linux version"),
]


def print_phases(run, scenario):
    run.show()
    run.show("== phases (host seconds since L0 start) ==")
    for label, pattern in BOOT_PHASES:
        run.show_phase(label, run.first(pattern))
    run.show_phase("guest /init reached (boot 1)", run.nth(r"GUEST-INIT-REACHED", 1))
    run.show_phase("guest /init reached (after reboot)", run.nth(r"GUEST-INIT-REACHED", 2))
    for label, pattern in getattr(scenario, "PHASES", []):
        run.show_phase(label, run.first(pattern))
    run.show_phase("L1 result", run.first(r"NESTED-PHASE l2-vmm-exit"))
    for line in run.grep(r"NESTED-PHASE l2-vmm-exit")[:1]:
        run.show(line)
    ours = run.after("NESTED-PHASE l2-vmm-start", r"GUEST-INIT-REACHED")
    if run.has(r"NESTED-PHASE peer-start"):
        peer = run.after("NESTED-PHASE peer-start", r"GUEST-INIT-REACHED")
        run.show_phase("peer (QEMU 7.2) started", run.first(r"NESTED-PHASE peer-start"))
        start = run.first(r"NESTED-PHASE peer-start")
        run.show_phase("peer guest /init reached", None if peer is None else start + peer)
        run.show(f"VMM start -> guest /init: ours {fmt(ours) or '?'} s, "
                 f"QEMU 7.2 {fmt(peer) or '?'} s")
        if ours is not None and peer:
            run.show(f"ratio ours/QEMU = {ours / peer:.2f}")
    else:
        run.show(f"VMM start -> guest /init: ours {fmt(ours) or '?'} s")
    try:
        with open(run.path("result.json")) as f:
            concurrent = json.load(f).get("concurrent_emulators_at_start")
    except (OSError, ValueError):
        concurrent = None
    if concurrent:
        # fadump_matrix.py looks for these words (the run's timings shared the 2 cores).
        run.show(f"nested/boot-our-vmm: warning: another emulator is running "
                 f"({concurrent}); timings will suffer")


COMMON_TAIL = [
    Check("VMM exited 0 on guest power-off", lambda r: r.has(r"NESTED-PHASE l2-vmm-exit status=0\b")),
]


def evaluate(run, table):
    """Runs TABLE on RUN; returns [(name, passed)] of the checks that applied."""
    results = []
    for entry in table:
        if entry.when is not None and not entry.when(run):
            continue
        if isinstance(entry, Step):
            entry.function(run)
            continue
        name = entry.name(run) if callable(entry.name) else entry.name
        error = ""
        try:
            ok = bool(entry.predicate(run))
        except Exception as e:  # noqa: BLE001 - a broken predicate is a failed check
            ok, error = False, f" (check raised {type(e).__name__}: {e})"
        run.show(f"{'PASS' if ok else 'FAIL'}: {name}{error}")
        results.append((name, ok))
    return results


def load_scenario(mode):
    """scenarios/<mode>/checks.py as a module."""
    path = os.path.join(SCENARIOS, mode, "checks.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checks for mode {mode!r}: {path}")
    spec = importlib.util.spec_from_file_location(f"scenario_{mode.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_run(run, scenario=None):
    """Phases, the scenario's table, the common tail; returns [(name, passed)]."""
    scenario = scenario or load_scenario(run.mode)
    print_phases(run, scenario)
    return evaluate(run, scenario.CHECKS + COMMON_TAIL)


def prune(runs_dir, keep):
    """Runs older than the newest KEEP keep only their logs (vmcore, images, kernel go).
    Only directories that are runs (they hold vmm-mode) are touched."""
    dirs = [os.path.join(runs_dir, d) for d in os.listdir(runs_dir)]
    dirs = [d for d in dirs if os.path.isfile(os.path.join(d, "vmm-mode"))]
    dirs.sort(key=os.path.getmtime, reverse=True)
    for old in dirs[keep:]:
        # vmcore-cycle-N: the soak scenario's one vmcore per cycle.
        names = [n for n in os.listdir(old) if n.startswith("vmcore-cycle-")]
        for name in ("export.img", "vmcore", "vmlinux", *names):
            try:
                os.remove(os.path.join(old, name))
            except OSError:
                pass


# --- helpers the scenario tables share ---------------------------------------------------

def copy_sparse(src, offset, size, dst, chunk_size=1 << 20):
    """Copies SIZE bytes of file SRC from OFFSET into a new file DST, all-zero chunks as
    holes (a guest's vmcore is mostly untouched, zero RAM), so DST reads back the same and
    costs only the data on disk. Returns the bytes copied (fewer if SRC ends first)."""
    with open(src, "rb") as f, open(dst, "wb") as out:
        f.seek(offset)
        left = size
        while left:
            chunk = f.read(min(left, chunk_size))
            if not chunk:
                break
            if chunk.count(0) == len(chunk):
                out.seek(len(chunk), os.SEEK_CUR)
            else:
                out.write(chunk)
            left -= len(chunk)
        out.truncate(size - left)
    return size - left


def drgn_python():
    """The drgn venv's python (drgn-env.sh makes it), or None."""
    env = os.path.join(NESTED, "drgn-env.sh")
    if not os.access(env, os.X_OK):
        return None
    r = subprocess.run([env], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def analyze_vmcore(run, vmlinux, extra, console="console.log", vmcore="vmcore",
                   report="drgn.txt", show=True):
    """analyze-vmcore.py on RUN's VMCORE, its output kept in REPORT (and shown unless SHOW is
    false); returns its status (None when drgn or the analyzer is not available). CONSOLE:
    the run file holding the pattern lines (the console log, or a copy the guest wrote to its
    disk)."""
    analyzer = os.path.join(NESTED, "analyze-vmcore.py")
    py = drgn_python() if os.path.isfile(analyzer) else None
    if py is None:
        return None
    cmd = [py, analyzer, "--vmcore", run.path(vmcore), "--vmlinux", vmlinux,
           "--console", run.path(console), "--cpus", str(run.cpus), *extra]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(run.path(report), "w") as f:
        f.write(p.stdout)
    for line in p.stdout.splitlines() if show else []:
        run.show(line)
    return p.returncode


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    run = Run(argv[1])
    if not os.path.exists(run.path("console.log")):
        print(f"checks: {run.path('console.log')} does not exist", file=sys.stderr)
        return 2
    scenario = load_scenario(run.mode)
    results = check_run(run, scenario)
    passed = all(ok for _name, ok in results)
    if hasattr(scenario, "after"):
        scenario.after(run, passed)
    keep = int(os.environ.get("NESTED_KEEP_RUNS", "20"))
    prune(os.path.dirname(run.dir), keep)
    return 0 if passed else 1


if __name__ == "__main__":
    # The scenario tables import this module as `checks`: run main from that same module, or
    # their Check and Step would be other classes than the ones evaluate() knows.
    sys.path.insert(0, HERE)
    import checks  # noqa: E402 pylint: disable=import-self
    sys.exit(checks.main(sys.argv))
