#!/usr/bin/env python3
"""Checks a fadump vmcore from our VMM on the host, with drgn and with an independent reader.

    PY=$(integration-tests/nested/drgn-env.sh)
    "$PY" integration-tests/nested/analyze-vmcore.py --vmcore vmcore --vmlinux vmlinux.debug \\
        --console console.log --cpus 2 [--crash-symbol sysrq_handle_crash] [--no-drgn]
        [--expect-missing-prstatus CPUS]

Prints one `PASS: ...` / `FAIL: ...` line per check (details indented below it) and exits 1 if
any check failed, 2 on bad arguments. The checks:

  core      the file is an ELF64 ET_CORE for EM_PPC64 (lib/vmcore_check.py reads it, no drgn)
  vmcoreinfo  the VMCOREINFO note exists; its BUILD-ID and SYMBOL(_stext) match the vmlinux
  prstatus  exactly --cpus NT_PRSTATUS notes, MSR[SF] and MSR[LE] set in each; kernel mode
            (at least one, the crashing CPU): NIP and LR in the vmlinux's [_stext, _etext), r1
            in the linear map at a physical address the dump holds; user mode (MSR[PR]): NIP
            and r1 non-zero user addresses
  drgn      drgn opens the core with the vmlinux's DWARF; init_uts_ns.name.release equals
            VMCOREINFO's OSRELEASE
  stack     the crashed thread's stack trace (drgn's crashed_thread(), else each CPU's
            NT_PRSTATUS registers) contains --crash-symbol
  (traces from NT_PRSTATUS registers are followed through interrupt frames: where drgn stops
  at an exception entry, e.g. a system reset's, the interrupted context's struct pt_regs in
  that frame is unwound too, after a `-- interrupted context --` line)
  cpu context  every CPU's NT_PRSTATUS registers agree with the dumped kernel (drgn): in
            kernel mode they unwind through >= 2 named frames; in user mode (fadump does not
            stop the other CPUs, so the firmware may catch one in a program) NIP is in an
            executable mapping and r1 in a mapping of the task running on that CPU
  pattern   every page fadump-pattern printed on the console reads back byte-identical at its
            physical address, through the pure reader and through drgn's prog.read(.., True);
            with drgn, fadump-pattern's task is found and its page tables map each printed
            vaddr to the printed phys

--expect-missing-prstatus CPUS (e.g. `1`): the expectation for a kdump dump of a CPU that the
crashing kernel could not stop (it spins with interrupts off and there is no NMI to reach it):
those CPUs have no NT_PRSTATUS, so exactly --cpus minus that many notes are expected, the notes
are mapped to the other online CPUs, and a `missing cpu` check requires each such CPU to have
been online in the dumped kernel with its crash_notes buffer empty (crash_save_cpu() never ran
there), and says what drgn knows of it (the task it was running). Any other missing note still
fails. Not for fadump dumps: the firmware saves every vCPU.

--no-drgn runs only the drgn-free checks (used by the unit tests, which have no drgn).
--vmlinux may be the stripped image or its split debug file: a sibling `vmlinux` /
`vmlinux.debug` is loaded with it when present. drgn needs only the split debug file (it
reads the kernel's memory from the core: the main module's loaded file is DONT_NEED); the
stripped image alone gives no DWARF. Either file has the .symtab the pure checks use.
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import vmcore_check as vc  # noqa: E402

INDENT = "      "


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, message, details=()):
        print(f"{'PASS' if ok else 'FAIL'}: {message}")
        for line in details:
            print(INDENT + line)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        sys.stdout.flush()
        return ok

    def skip(self, message):
        print(f"SKIP: {message}")

    @staticmethod
    def info(line):
        print(INDENT + line)


def hexaddr(value):
    return f"0x{value:016x}"


def debug_files(vmlinux):
    """The given file plus its stripped/debug sibling, existing ones only, given one first."""
    files = [vmlinux]
    if vmlinux.endswith(".debug"):
        sibling = vmlinux[: -len(".debug")]
    else:
        sibling = vmlinux + ".debug"
    if os.path.exists(sibling):
        files.append(sibling)
    return files


def text_range(vmlinux_files):
    for path in vmlinux_files:
        try:
            syms = vc.elf_symbols(path, ["_stext", "_etext"])
        except (OSError, vc.VmcoreError):
            continue
        if "_stext" in syms and "_etext" in syms:
            return syms["_stext"], syms["_etext"], path
    return None


def check_core(report, core, args):
    loads = core.loads
    ranges = core.phys_ranges()
    total = sum(e - s for s, e in ranges)
    ok = core.e_type == vc.ET_CORE and core.e_machine == vc.EM_PPC64 and not core.truncated
    cut = (f", TRUNCATED: PT_LOAD program header(s) {core.truncated} run past the end of the "
           f"file" if core.truncated else "")
    report.check(ok, f"core: ELF64 {'little' if core.endian == '<' else 'big'}-endian, "
                 f"e_type {core.e_type} (4 = ET_CORE), e_machine {core.e_machine} "
                 f"(21 = EM_PPC64), {core.size} bytes{cut}", [
                     f"{len(loads)} PT_LOAD covering {total / 2**20:.1f} MiB of physical "
                     f"memory in {len(ranges)} range(s): "
                     + ", ".join(f"{s:#x}-{e:#x}" for s, e in ranges[:6])
                     + (" ..." if len(ranges) > 6 else ""),
                     f"{len(core.notes)} notes: "
                     + ", ".join(sorted({f'{n.name}/{n.type}' for n in core.notes})),
                 ])


def check_vmcoreinfo(report, core, vmlinux_files):
    info = core.vmcoreinfo()
    if info is None:
        report.check(False, "VMCOREINFO: no VMCOREINFO note in the core")
        return None
    details = [f"{key}={info[key]}" for key in ("OSRELEASE", "BUILD-ID", "PAGESIZE",
                                                "CRASHTIME", "KERNELOFFSET") if key in info]
    ok = "OSRELEASE" in info
    if not ok:
        details.append("no OSRELEASE line")
    build_id = info.get("BUILD-ID")
    if vmlinux_files:
        want = None
        for path in vmlinux_files:
            try:
                want = vc.elf_build_id(path)
            except (OSError, vc.VmcoreError):
                continue
            if want:
                break
        if build_id is not None and want is not None:
            same = want.startswith(build_id.lower()) or build_id.lower().startswith(want)
            details.append(f"vmlinux build ID {want}: {'matches' if same else 'DIFFERS'}")
            ok = ok and same
        stext = info.get("SYMBOL(_stext)")
        rng = text_range(vmlinux_files)
        if stext is not None and rng is not None:
            same = int(stext, 16) == rng[0]
            details.append(f"SYMBOL(_stext)={stext}: vmlinux _stext {hexaddr(rng[0])} "
                           f"{'matches' if same else 'DIFFERS'}")
            ok = ok and same
    report.check(ok, f"VMCOREINFO: OSRELEASE={info.get('OSRELEASE')}", details)
    return info


def phys_covered(core, addr, length=1):
    return any(s <= addr and addr + length <= e for s, e in core.phys_ranges())


# A CPU the firmware stopped in the first instructions of an exception vector (e.g. a
# decrementer taken from user mode): MSR is the kernel's already, but LR and r1 are still the
# interrupted context's, and there is no kernel frame yet. powerpc's vectors are named
# exc_real_0x... / exc_virt_0x... (exceptions-64s.S).
VECTOR_ENTRY = re.compile(r"\bexc_(real|virt)_0x[0-9a-f]+")


def register_problems(core, cpu, text, symbolize=None):
    """Why a NT_PRSTATUS's registers are implausible ([] if they are plausible).

    With fadump the kernel does not stop the other CPUs before ibm,os-term (powerpc's
    crash_smp_send_stop() returns early when fadump is registered): the firmware records each
    one wherever it was, so a CPU may be in user mode (MSR[PR] set). Kernel mode: NIP and LR
    in the vmlinux's text, r1 in the linear map at a physical address the dump holds. User
    mode: NIP and r1 non-zero user addresses (LR is anything the program left there).
    Both: MSR[SF] and MSR[LE] set.
    """
    reasons = []
    if cpu.msr & vc.MSR_PR:
        for name, value in (("NIP", cpu.nip), ("r1", cpu.sp)):
            if not 0 < value < vc.KERNEL_BASE:
                reasons.append(f"user-mode {name} is not a user address")
    elif symbolize is not None and VECTOR_ENTRY.search(symbolize(cpu.nip) or ""):
        # At a vector's entry: NIP in the vector, LR and r1 whatever was interrupted.
        if text is not None and not text[0] <= cpu.nip < text[1]:
            reasons.append("NIP outside kernel text")
    else:
        for name, value in (("NIP", cpu.nip), ("LR", cpu.lr)):
            if text is not None:
                if not text[0] <= value < text[1]:
                    reasons.append(f"{name} outside kernel text "
                                   f"[{hexaddr(text[0])}, {hexaddr(text[1])})")
            elif value < vc.KERNEL_BASE:
                reasons.append(f"{name} below {hexaddr(vc.KERNEL_BASE)}")
        sp = cpu.sp
        if not vc.KERNEL_BASE <= sp < vc.KERNEL_BASE + (1 << 60):
            reasons.append("r1 not in the kernel linear map")
        elif not phys_covered(core, sp - vc.KERNEL_BASE, 8):
            reasons.append(f"r1's physical address {sp - vc.KERNEL_BASE:#x} is not in the dump")
    if not cpu.msr & vc.MSR_SF:
        reasons.append("MSR_SF (64-bit) clear")
    if not cpu.msr & vc.MSR_LE:
        reasons.append("MSR_LE (little-endian) clear")
    return reasons


def check_prstatus(report, core, cpus, text, symbolize, missing=()):
    try:
        notes = core.prstatus()
    except vc.VmcoreError as e:
        report.check(False, f"NT_PRSTATUS notes unreadable: {e}")
        return []
    bad = []
    details = []
    for cpu in notes:
        reasons = register_problems(core, cpu, text, symbolize)
        mode = "user" if cpu.msr & vc.MSR_PR else "kernel"
        sym = symbolize if mode == "kernel" else (lambda _addr: "")
        details.append(
            f"cpu note {cpu.index} ({mode} mode): pr_pid {cpu.pid} NIP {hexaddr(cpu.nip)}"
            f"{sym(cpu.nip)} LR {hexaddr(cpu.lr)}{sym(cpu.lr)}")
        details.append(
            f"{'':13} r1 {hexaddr(cpu.sp)} MSR {hexaddr(cpu.msr)} CR {cpu.reg('ccr'):#010x} "
            f"r13 {hexaddr(cpu.reg('r13'))} trap {cpu.reg('trap'):#x}"
            + (f"  <-- {'; '.join(reasons)}" if reasons else ""))
        if reasons:
            bad.append(cpu.index)
    kernel_mode = [c.index for c in notes if not c.msr & vc.MSR_PR]
    where = (f"kernel text [{hexaddr(text[0])}, {hexaddr(text[1])}) of the vmlinux"
             if text is not None else f"addresses >= {hexaddr(vc.KERNEL_BASE)} (no vmlinux)")
    details.insert(0, f"kernel-mode NIP/LR checked against {where}")
    if not kernel_mode:
        details.append("no note is in kernel mode, but the crashing CPU's must be")
    want = cpus - len(missing)
    ok = len(notes) == want and not bad and bool(kernel_mode)
    if missing:
        summary = (f"{len(notes)} NT_PRSTATUS notes (expected {want}: one per vCPU less CPU(s) "
                   f"{','.join(map(str, missing))}, which --expect-missing-prstatus says kdump "
                   f"could not stop)")
    else:
        summary = f"{len(notes)} NT_PRSTATUS notes (expected {cpus}, one per vCPU)"
    if bad:
        summary += f"; implausible registers in note(s) {', '.join(map(str, bad))}"
    else:
        summary += (f"; all registers plausible ({len(kernel_mode)} in kernel mode, "
                    f"{len(notes) - len(kernel_mode)} in user mode)")
    report.check(ok, summary, details)
    return notes


def check_pattern(report, core, run, drgn_prog):
    if run is None:
        report.check(False, "pattern: no FADUMP-PATTERN lines in the console log")
        return
    pages = run.pages
    missing = run.missing()
    details = [f"seed {run.seed:#018x}, READY pages={run.ready_pages}, "
               f"{len(pages)} page line(s)"]
    if missing:
        details.append(f"no console line for page(s) {missing}")
    matched = 0
    matched_bytes = 0
    drgn_matched = 0
    for p in pages:
        want = vc.expected_page(p.seed, p.page, p.pagesize)
        try:
            got = core.read_phys(p.phys, p.pagesize)
            diff, first = vc.compare_bytes(want, got)
        except vc.VmcoreError as e:
            diff, first, got = None, None, None
            details.append(f"page {p.page} phys {p.phys:#x}: {e}")
        if diff == 0:
            matched += 1
            matched_bytes += len(want)
            line = f"page {p.page} phys {p.phys:#x} vaddr {p.vaddr:#x}: {len(want)} bytes match"
        elif diff is not None:
            line = (f"page {p.page} phys {p.phys:#x}: {diff} byte(s) differ, first at "
                    f"+{first:#x} (want {want[first:first + 8].hex()} got "
                    f"{got[first:first + 8].hex()})")
        else:
            line = None
        if drgn_prog is not None:
            try:
                dgot = drgn_prog.read(p.phys, p.pagesize, True)
                ddiff, dfirst = vc.compare_bytes(want, dgot)
                if ddiff == 0:
                    drgn_matched += 1
                    if line:
                        line += "; drgn read matches"
                else:
                    line = (line or "") + f"; drgn read: {ddiff} byte(s) differ at +{dfirst:#x}"
            except Exception as e:  # drgn.FaultError and friends
                line = (line or "") + f"; drgn read failed: {e}"
        if line:
            details.append(line)
    ok = bool(pages) and not missing and matched == len(pages)
    msg = f"pattern: {matched}/{len(pages)} pages ({matched_bytes} bytes) match via the ELF reader"
    if drgn_prog is not None:
        ok = ok and drgn_matched == len(pages)
        msg += f", {drgn_matched}/{len(pages)} via drgn prog.read(physical=True)"
    report.check(ok, msg, details)


# ---- drgn ----------------------------------------------------------------------------------

def frame_name(frame):
    name = getattr(frame, "name", None)
    if name:
        return name
    try:
        return frame.symbol().name
    except LookupError:
        return None


# "(/cache/.../linux-source-6.12/drivers/tty/sysrq.c:150:1)" -> "(drivers/tty/sysrq.c:150:1)"
_SRC_PREFIX = re.compile(r"\(/[^()\s]*/linux-source-[^/()\s]+/")


MAX_FRAMES_SHOWN = 32


def trace_lines(trace):
    lines = [_SRC_PREFIX.sub("(", line) for line in str(trace).splitlines()]
    if len(lines) > MAX_FRAMES_SHOWN:
        lines = lines[:MAX_FRAMES_SHOWN] + [f"... {len(lines) - MAX_FRAMES_SHOWN} more frames"]
    return lines


def open_drgn(report, args, vmlinux_files, info):
    try:
        import drgn
    except ImportError:
        report.check(False, "drgn: not importable by this python "
                     f"({sys.executable}); run with integration-tests/nested/drgn-env.sh's python")
        return None
    prog = drgn.Program()
    details = [f"drgn {drgn.__version__}"]
    try:
        prog.set_core_dump(args.vmcore)
    except Exception as e:
        report.check(False, f"drgn: set_core_dump failed: {e}")
        return None
    try:
        prog.load_debug_info(vmlinux_files)
    except drgn.MissingDebugInfoError as e:
        details.append(f"load_debug_info: {e}")
    except Exception as e:
        report.check(False, f"drgn: load_debug_info({vmlinux_files}) failed: {e}", details)
        return None
    try:
        main = prog.main_module()
        details.append(f"main module {main.name}: debug info {main.debug_file_status.name} "
                       f"from {main.debug_file_path}")
    except Exception as e:  # older/newer API or no main module
        details.append(f"main module: {e}")
    try:
        release = prog["init_uts_ns"].name.release.string_().decode()
    except Exception as e:
        report.check(False, f"drgn: cannot read init_uts_ns.name.release: {e}", details)
        return prog
    osrelease = info.get("OSRELEASE") if info else None
    details.append(f"init_uts_ns.name.release = {release!r}, VMCOREINFO OSRELEASE = "
                   f"{osrelease!r}")
    report.check(release == osrelease,
                 f"drgn: opened the vmcore with debug info; kernel release {release}"
                 + (" (agrees with VMCOREINFO)" if release == osrelease
                    else " (DIFFERS from VMCOREINFO)"), details)
    return prog


def check_stack(report, prog, notes, crash_symbol, missing=()):
    details = []
    # crash_fadump() records its CPU in crashing_cpu on every fadump path (panic or oops);
    # panic_cpu is set only on the panic path.
    crash_cpu = None
    for var in ("crashing_cpu", "panic_cpu"):
        try:
            obj = prog[var]
            value = obj.counter.value_() if var == "panic_cpu" else obj.value_()
            details.append(f"{var} = {value}")
            if crash_cpu is None and value >= 0:
                crash_cpu = value
        except Exception as e:
            details.append(f"{var} unreadable: {e}")
    try:
        cpu_numbers = vc.note_cpu_numbers(online_cpus(prog), missing)
        details.append(f"online CPUs with a note {cpu_numbers} (NT_PRSTATUS notes are in this "
                       f"order)")
    except Exception as e:
        cpu_numbers = []
        details.append(f"online CPUs unreadable: {e}")
    try:
        thread = prog.crashed_thread()
        trace = thread.stack_trace()
        names = [frame_name(f) for f in trace]
        comm = ""
        try:
            comm = f" ({thread.object.comm.string_().decode()})"
        except Exception:
            pass
        details.append(f"prog.crashed_thread(): tid {thread.tid}{comm}, {len(names)} frames:")
        details.extend("  " + line for line in trace_lines(trace))
        if crash_symbol in names:
            report.check(True, f"stack: crashed thread's trace contains {crash_symbol} "
                         f"(frame #{names.index(crash_symbol)})", details)
            return
        details.append(f"{crash_symbol} not in the crashed thread's trace; trying each "
                       f"CPU's NT_PRSTATUS registers")
    except Exception as e:
        details.append(f"prog.crashed_thread() failed: {e}; trying each CPU's NT_PRSTATUS "
                       f"registers")
    traces = note_traces(prog, notes)
    for cpu in notes:
        trace, err = traces[cpu.index]
        if trace is None:
            details.append(f"cpu note {cpu.index}: stack_trace failed: {err}")
            continue
        names = [frame_name(f) for f in trace]
        if crash_symbol in names:
            details.append(f"cpu note {cpu.index}: {len(names)} frames:")
            details.extend("  " + line for line in trace_lines(trace))
            # The capture kernel puts the crash header's registers at the crashing CPU's
            # place among the firmware's per-CPU entries: that note must be panic_cpu's.
            owner = cpu_numbers[cpu.index] if cpu.index < len(cpu_numbers) else None
            if owner is None or crash_cpu is None:
                same = True
                details.append(f"cpu note {cpu.index}'s CPU number or the crashing CPU is "
                               f"unknown: not cross-checked")
            else:
                same = owner == crash_cpu
                details.append(f"cpu note {cpu.index} is CPU {owner}; the crashing CPU is "
                               f"{crash_cpu}" + ("" if same else "  <-- the crash registers "
                                                             "sit at another CPU's place"))
            report.check(same, f"stack: cpu note {cpu.index}'s trace contains {crash_symbol} "
                         f"(frame #{names.index(crash_symbol)}; unwound from NT_PRSTATUS, as "
                         f"crashed_thread() failed)", details)
            return
        details.append(f"cpu note {cpu.index}: no {crash_symbol} in {len(names)} frames")
    report.check(False, f"stack: no stack trace contains {crash_symbol}", details)


# A ppc64 interrupt frame (exception entry): the marker at r1 + STACK_INT_FRAME_MARKER (32, the
# ELFv2 minimum frame), struct pt_regs at r1 + STACK_INT_FRAME_REGS (48). The marker is "REGS"
# (32-bit, 6.x kernels; either byte order) or "regshere" (64-bit, older kernels).
INT_FRAME_MARKER = 32
INT_FRAME_REGS = 48
REGS_MARKERS = {0x52454753, 0x53474552, 0x7265677368657265}
MAX_INTERRUPT_FRAMES = 3


class ChainedTrace:
    """A stack trace followed through interrupt frames: drgn stops at an exception entry
    (e.g. a system reset's), whose struct pt_regs holds the interrupted context; the frames
    unwound from those registers are appended, after a marker line."""

    def __init__(self, first):
        self.parts = [(first, None)]

    def __iter__(self):
        for trace, _ in self.parts:
            yield from trace

    def __str__(self):
        out = []
        for trace, regs_addr in self.parts:
            if regs_addr is not None:
                out.append(f"-- interrupted context (struct pt_regs at {regs_addr:#x}) --")
            out.append(str(trace))
        return "\n".join(out)


def interrupt_regs(prog, trace, regs_type):
    """The struct pt_regs of the interrupt frame the trace ends in, or None."""
    import drgn

    frames = list(trace)
    if not frames:
        return None
    sp = frames[-1].sp
    try:
        if prog.read_u64(sp + INT_FRAME_MARKER) not in REGS_MARKERS:
            return None
        regs = drgn.Object(prog, regs_type, address=sp + INT_FRAME_REGS)
        nip, trap = regs.nip.value_(), regs.trap.value_()
    except drgn.FaultError:
        return None
    # An interrupted context: a NIP and an interrupt vector (0x100 system reset, 0x900
    # decrementer, ...).
    if not nip or not trap or trap & 0xf or trap > 0x3000:
        return None
    return regs


def follow_interrupts(prog, trace, regs_type):
    chained = ChainedTrace(trace)
    seen = set()
    for _ in range(MAX_INTERRUPT_FRAMES):
        regs = interrupt_regs(prog, chained.parts[-1][0], regs_type)
        # A nested system reset reuses the NMI stack: its frame is where the first one's
        # was, so the first interrupted context is gone; stop instead of going round.
        if regs is None or regs.address_ in seen:
            break
        seen.add(regs.address_)
        try:
            chained.parts.append((prog.stack_trace(regs), regs.address_))
        except Exception:
            break
    return chained


def note_traces(prog, notes):
    """{note index: (trace or None, error)} unwound from each NT_PRSTATUS's pr_reg, followed
    through interrupt frames (ChainedTrace)."""
    import drgn

    try:
        regs_type = prog.type("struct pt_regs")
    except LookupError as e:
        return {cpu.index: (None, f"no struct pt_regs type: {e}") for cpu in notes}
    size = drgn.sizeof(regs_type)
    order = "little" if prog.platform.flags & drgn.PlatformFlags.IS_LITTLE_ENDIAN else "big"
    out = {}
    for cpu in notes:
        raw = b"".join(r.to_bytes(8, order) for r in cpu.regs)
        raw = (raw + bytes(max(0, size - len(raw))))[:size]
        try:
            trace = prog.stack_trace(drgn.Object.from_bytes_(prog, regs_type, raw))
            out[cpu.index] = (follow_interrupts(prog, trace, regs_type), None)
        except Exception as e:
            out[cpu.index] = (None, e)
    return out


def online_cpus(prog):
    from drgn.helpers.linux.cpumask import for_each_online_cpu

    return list(for_each_online_cpu(prog))


VM_EXEC = 0x4


def user_context_problems(prog, cpu_number, cpu, details):
    """A user-mode CPU: its NIP must be in an executable mapping, and r1 in a mapping, of the
    task the dumped kernel had running on that CPU. Appends what it finds to details."""
    from drgn.helpers.linux.mm import vma_find, vma_name
    from drgn.helpers.linux.sched import cpu_curr

    task = cpu_curr(prog, cpu_number)
    comm = task.comm.string_().decode(errors="replace")
    details.append(f"cpu note {cpu.index} = CPU {cpu_number}, user mode; running task: pid "
                   f"{task.pid.value_()} {comm!r}")
    if not task.mm:
        return [f"CPU {cpu_number}'s task {comm!r} has no mm but the CPU is in user mode"]
    problems = []
    for name, addr, need_exec in (("NIP", cpu.nip, True), ("r1", cpu.sp, False)):
        vma = vma_find(task.mm, addr)
        if not vma:
            problems.append(f"{name} {hexaddr(addr)} is in no mapping of {comm!r}")
            continue
        flags = vma.vm_flags.value_()
        where = (f"{vma_name(vma).decode(errors='replace') or '[anon]'} "
                 f"{vma.vm_start.value_():#x}-{vma.vm_end.value_():#x}")
        details.append(f"  {name} {hexaddr(addr)} in {where}"
                       + (" (executable)" if flags & VM_EXEC else ""))
        if need_exec and not flags & VM_EXEC:
            problems.append(f"{name} {hexaddr(addr)} is in a non-executable mapping")
    return problems


def check_cpu_traces(report, prog, notes, missing=()):
    """Every CPU's saved registers make sense against the dumped kernel's own state.

    For the crashing CPU the registers come from the kernel's own crash header; for the
    others, from the firmware's register save area, i.e. what our VMM captured from each vCPU.
    Kernel mode: drgn unwinds them through >= 2 named frames, frame 0 named. User mode: NIP
    lies in an executable mapping and r1 in a mapping of the task running on that CPU.
    """
    traces = note_traces(prog, notes)
    try:
        cpu_numbers = vc.note_cpu_numbers(online_cpus(prog), missing)
    except Exception as e:
        cpu_numbers = []
        report.info(f"online CPUs unreadable: {e}")
    good = 0
    details = []
    for cpu in notes:
        if cpu.msr & vc.MSR_PR:
            if cpu.index >= len(cpu_numbers):
                details.append(f"cpu note {cpu.index}: user mode, but no online CPU for it")
                continue
            try:
                problems = user_context_problems(prog, cpu_numbers[cpu.index], cpu, details)
            except Exception as e:
                problems = [f"task/mapping lookup failed: {e}"]
            if problems:
                details.append("  <-- " + "; ".join(problems))
            else:
                good += 1
            continue
        trace, err = traces[cpu.index]
        if trace is None:
            details.append(f"cpu note {cpu.index}: stack_trace failed: {err}")
            continue
        names = [frame_name(f) for f in trace]
        named = [n for n in names if n]
        ok = bool(names) and names[0] is not None and len(named) >= 2
        # Stopped at an exception vector's entry: no kernel frame exists yet (the LR and r1
        # are the interrupted context's), so frame 0 in the vector is all there is.
        at_vector = bool(names) and names[0] is not None and bool(VECTOR_ENTRY.search(names[0]))
        good += ok or at_vector
        details.append(f"cpu note {cpu.index}: kernel mode, {len(names)} frames, {len(named)} "
                       f"named" + ("" if ok else
                                   " (stopped at an exception vector's entry)" if at_vector else
                                   "  <-- frame 0 unnamed or fewer than 2 named frames"))
        details.extend("  " + line for line in trace_lines(trace))
    report.check(good == len(notes) and bool(notes),
                 f"cpu context: {good}/{len(notes)} CPUs' saved registers agree with the dumped "
                 f"kernel (kernel mode: unwinds through named frames; user mode: NIP/r1 in the "
                 f"running task's mappings)", details)


def check_missing_cpus(report, prog, missing):
    """--expect-missing-prstatus: each such CPU was online in the dumped kernel and its
    crash_notes buffer is empty (no crash_save_cpu() ran there); what drgn knows of it."""
    from drgn.helpers.linux.percpu import per_cpu_ptr
    from drgn.helpers.linux.sched import cpu_curr

    try:
        online = online_cpus(prog)
    except Exception as e:
        report.check(False, f"missing cpu: online CPUs unreadable: {e}")
        return
    for cpu in missing:
        details = [f"online CPUs in the dumped kernel: {online}"]
        ok = cpu in online
        if not ok:
            details.append(f"CPU {cpu} was not online: its note is missing for another reason")
        try:
            notes = per_cpu_ptr(prog["crash_notes"], cpu)
            head = prog.read(notes.value_(), 12)
            namesz = int.from_bytes(head[0:4], "little")
            details.append(f"crash_notes of CPU {cpu} at {notes.value_():#x}: first note header "
                           f"{head.hex()} (n_namesz {namesz})")
            if namesz != 0:
                ok = False
                details.append("  <-- the buffer holds a note, yet /proc/vmcore has none for "
                               "this CPU")
        except Exception as e:
            ok = False
            details.append(f"crash_notes of CPU {cpu} unreadable: {e}")
        try:
            task = cpu_curr(prog, cpu)
            comm = task.comm.string_().decode(errors="replace")
            details.append(f"running on CPU {cpu}: pid {task.pid.value_()} {comm!r}")
            try:
                trace = prog.stack_trace(task)
                details.append(f"drgn stack_trace of that task ({len(trace)} frames; without "
                               f"registers drgn can only use what was saved at its last switch):")
                details.extend("  " + line for line in trace_lines(trace))
            except Exception as e:
                details.append(f"drgn stack_trace of that task: {e}")
        except Exception as e:
            details.append(f"task running on CPU {cpu} unreadable: {e}")
        report.check(ok, f"missing cpu: CPU {cpu} has no NT_PRSTATUS, as expected: it was "
                     f"online and never saved its registers (kdump could not stop it)"
                     if ok else f"missing cpu: CPU {cpu}'s missing NT_PRSTATUS is not explained "
                     f"by an unstoppable CPU", details)


# The dumped kernel's own words on its way into the capture (kexec/crash.c, panic), which the
# console may not show: its last lines are printed from the dump's log buffer.
_CRASH_LOG = re.compile(r"Sending IPI|IPI complete|not responding|Activate system reset|"
                        r"kexec|crash|panic|fadump|System Reset", re.IGNORECASE)


def show_crash_log(report, prog, tail=60):
    try:
        from drgn.helpers.linux.printk import get_dmesg

        lines = get_dmesg(prog).decode(errors="replace").splitlines()[-tail:]
    except Exception as e:
        report.skip(f"dumped kernel's log: unreadable: {e}")
        return
    print("dumped kernel's log (crash-path lines among its last "
          f"{tail}, from the dump's log buffer):")
    for line in lines:
        if _CRASH_LOG.search(line):
            report.info(line)


def check_pattern_task(report, prog, run):
    """fadump-pattern's task in the dump, and its page tables, agree with the console."""
    if run is None or not run.pages:
        return
    try:
        from drgn.helpers.linux.mm import follow_phys
        from drgn.helpers.linux.pid import for_each_task
    except ImportError as e:
        report.skip(f"pattern task: drgn helpers unavailable: {e}")
        return
    try:
        tasks = [t for t in for_each_task(prog)
                 if t.comm.string_().decode().startswith("fadump-pattern")]
    except Exception as e:
        report.check(False, f"pattern task: walking the task list failed: {e}")
        return
    if not tasks:
        report.check(False, "pattern task: no fadump-pattern task in the dump's task list")
        return
    task = tasks[-1]
    details = [f"pid {task.pid.value_()} comm {task.comm.string_().decode()!r}"]
    good = 0
    for p in run.pages:
        try:
            phys = follow_phys(task.mm, p.vaddr).value_()
        except Exception as e:
            if "Radix" in str(e):
                # drgn 0.3.0 walks only radix page tables; a hash-MMU guest's dump is not
                # wrong for that.
                report.skip(f"pattern task: drgn cannot walk this guest's page tables: {e}")
                return
            details.append(f"page {p.page} vaddr {p.vaddr:#x}: page-table walk failed: {e}")
            continue
        same = phys == p.phys
        good += same
        details.append(f"page {p.page} vaddr {p.vaddr:#x} -> phys {phys:#x} "
                       f"({'as printed' if same else f'console said {p.phys:#x}'})")
    report.check(good == len(run.pages),
                 f"pattern task: {good}/{len(run.pages)} printed vaddr->phys translations "
                 f"agree with the dump's page tables", details)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vmcore", required=True)
    ap.add_argument("--vmlinux", help="vmlinux with DWARF (or its stripped image)")
    ap.add_argument("--console", required=True, help="guest console log")
    ap.add_argument("--cpus", type=int, required=True, help="number of guest vCPUs")
    ap.add_argument("--crash-symbol", default="sysrq_handle_crash")
    ap.add_argument("--no-drgn", action="store_true", help="only the drgn-free checks")
    ap.add_argument("--no-task-check", action="store_true",
                    help="skip looking for fadump-pattern's task (for cores without one)")
    ap.add_argument("--expect-missing-prstatus", type=vc.parse_cpu_list, default=[],
                    metavar="CPUS", help="kdump only: CPU numbers the crashing kernel could "
                    "not stop, expected to have no NT_PRSTATUS (see the module text)")
    args = ap.parse_args(argv)
    if args.vmlinux is None and not args.no_drgn:
        ap.error("--vmlinux is required unless --no-drgn")
    missing = args.expect_missing_prstatus
    if any(c >= args.cpus for c in missing) or len(missing) >= args.cpus:
        ap.error("--expect-missing-prstatus: CPU numbers below --cpus, and not all of them")

    report = Report()
    print(f"analyze-vmcore: {args.vmcore}")
    try:
        core = vc.ElfCore(args.vmcore)
    except (OSError, vc.VmcoreError) as e:
        report.check(False, f"core: cannot read {args.vmcore}: {e}")
        return 1
    with core, open(args.console, errors="replace") as f:
        run = vc.parse_pattern_console(f.read())
        vmlinux_files = debug_files(args.vmlinux) if args.vmlinux else []
        check_core(report, core, args)
        info = check_vmcoreinfo(report, core, vmlinux_files)
        rng = text_range(vmlinux_files)

        prog = None
        if args.no_drgn:
            report.skip("drgn checks (--no-drgn)")
        else:
            prog = open_drgn(report, args, vmlinux_files, info)

        def symbolize(addr):
            if prog is None:
                return ""
            try:
                sym = prog.symbol(addr)
                return f" <{sym.name}+{addr - sym.address:#x}>"
            except Exception:
                return ""

        notes = check_prstatus(report, core, args.cpus, rng, symbolize, missing)
        if prog is not None:
            check_stack(report, prog, notes, args.crash_symbol, missing)
            check_cpu_traces(report, prog, notes, missing)
            if missing:
                check_missing_cpus(report, prog, missing)
            show_crash_log(report, prog)
        check_pattern(report, core, run, prog)
        if prog is not None and args.no_task_check:
            report.skip("pattern task (--no-task-check)")
        elif prog is not None:
            check_pattern_task(report, prog, run)
    total = report.passed + report.failed
    print(f"analyze-vmcore: {report.passed} passed, {report.failed} failed (of {total} checks)")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
