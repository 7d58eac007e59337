"""Host-only tests of vmcore_check.py and analyze-vmcore.py (no emulator; a few seconds).

The drgn-free tests need only python3 (and a C compiler for the fadump-pattern.c cross-check);
AnalyzerDrgnImageTest also runs when drgn-env.sh's venv and a cached guest kernel exist.

    python3 -m unittest discover -s integration-tests/nested/lib -p 'test_*.py'

The synthetic core is written here byte by byte with the offsets spelled out as numbers (not
vmcore_check's constants), so a wrong constant there fails a test instead of agreeing with it.
"""

import os
import re
import glob
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vmcore_check as vc  # noqa: E402
import testenv  # noqa: E402

NESTED = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(NESTED))
ANALYZER = os.path.join(NESTED, "analyze-vmcore.py")
PATTERN_C = os.path.join(REPO, "guests", "pattern", "fadump-pattern.c")

PAGE = 65536
SEED = 0x0123456789ABCDEF
PATTERN_PHYS = 0x30000  # in the second PT_LOAD
MSR = (1 << 63) | (1 << 12) | (1 << 1) | 1  # SF | ME | RI | LE


def prstatus_desc(pid, nip, msr, lr, r1, endian="<"):
    """A 504-byte ppc64 struct elf_prstatus with the offsets written out by hand."""
    d = bytearray(504)
    struct.pack_into(endian + "i", d, 32, pid)             # pr_pid
    struct.pack_into(endian + "Q", d, 112 + 1 * 8, r1)     # pr_reg[1] = r1
    struct.pack_into(endian + "Q", d, 112 + 32 * 8, nip)   # pr_reg[32] = nip
    struct.pack_into(endian + "Q", d, 112 + 33 * 8, msr)   # pr_reg[33] = msr
    struct.pack_into(endian + "Q", d, 112 + 36 * 8, lr)    # pr_reg[36] = link
    struct.pack_into(endian + "Q", d, 112 + 40 * 8, 0x700)  # pr_reg[40] = trap
    return bytes(d)


def note_bytes(name, ntype, desc, endian="<"):
    nb = name.encode() + b"\0"
    out = struct.pack(endian + "III", len(nb), len(desc), ntype)
    out += nb + bytes(-len(nb) % 4) + desc + bytes(-len(desc) % 4)
    return out


def build_core(path, notes, loads, endian="<", machine=21, note_padding=0):
    """Writes an ELF64 ET_CORE: one PT_NOTE, then one PT_LOAD per (paddr, data, memsz)."""
    note_data = b"".join(note_bytes(n, t, d, endian) for n, t, d in notes) + bytes(note_padding)
    phnum = 1 + len(loads)
    pos = 64 + 56 * phnum
    note_off = pos
    pos += len(note_data)
    phdrs = [struct.pack(endian + "IIQQQQQQ", 4, 0, note_off, 0, 0, len(note_data),
                         len(note_data), 4)]
    blobs = []
    for paddr, data, memsz in loads:
        pos = (pos + 4095) // 4096 * 4096
        phdrs.append(struct.pack(endian + "IIQQQQQQ", 1, 7, pos, 0xC000000000000000 + paddr,
                                 paddr, len(data), memsz, 0))
        blobs.append((pos, data))
        pos += len(data)
    ident = b"\x7fELF" + bytes([2, 1 if endian == "<" else 2, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack(endian + "HHIQQQIHHHHHH", 4, machine, 1, 0, 64, 0, 0, 64, 56,
                               phnum, 64, 0, 0)
    with open(path, "wb") as f:
        f.write(ehdr + b"".join(phdrs) + note_data)
        for off, data in blobs:
            f.seek(off)
            f.write(data)


def pattern_page(seed, page, size=PAGE):
    return vc.expected_page(seed, page, size)


VMCOREINFO = b"OSRELEASE=6.12.117\nPAGESIZE=65536\nBUILD-ID=10864361b083fab3\nKERNELOFFSET=0\n"


def standard_notes(cpus=2, drop_vmcoreinfo=False):
    notes = []
    for cpu in range(cpus):
        notes.append(("CORE", 1, prstatus_desc(
            0, 0xC000000000123450 + cpu * 16, MSR, 0xC000000000234560 + cpu * 16,
            0xC000000000040000 + cpu * 0x4000)))
    if not drop_vmcoreinfo:
        notes.append(("VMCOREINFO", 0, VMCOREINFO))
    return notes


def standard_loads(flip_at=None):
    low = bytes(range(256)) * (0x10000 // 256)           # phys 0x0 .. 0x10000
    high = bytearray(0x40000)                             # phys 0x10000 .. 0x50000
    page = bytearray(pattern_page(SEED, 0))
    if flip_at is not None:
        page[flip_at] ^= 0x01
    rel = PATTERN_PHYS - 0x10000
    high[rel:rel + PAGE] = page
    high[0:PAGE] = pattern_page(SEED, 1)                  # page 1 at phys 0x10000
    return [(0x0, low, 0x10000), (0x10000, bytes(high), 0x48000)]  # last 0x8000: zero-filled


CONSOLE = (
    "[    3.100000] random boot noise\r\n"
    "FADUMP-PATTERN seed=0x1111111111111111 page=0 vaddr=0x7fff0000 phys=0x99990000 "
    "pagesize=65536\n"
    "FADUMP-PATTERN-READY pages=1 seed=0x1111111111111111\n"
    "~ # FADUMP-PATTERN seed=0x0123456789abcdef page=0 vaddr=0x7fffa5530000 phys=0x30000 "
    "pagesize=65536\r\n"
    "FADUMP-PATTERN seed=0x0123456789abcdef page=1 vaddr=0x7fffa5540000 phys=0x10000 "
    "pagesize=65536\n"
    "FADUMP-PATTERN seed=0x0123456789abcdef page=0 vaddr=0x7fffa5530000 phys=0x30000 "
    "pagesize=65536\n"
    "FADUMP-PATTERN-READY pages=2 seed=0x0123456789abcdef\n"
)


class Tmp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vmcore-test-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def core(self, name="core", notes=None, loads=None, **kw):
        path = os.path.join(self.dir, name)
        build_core(path, standard_notes() if notes is None else notes,
                   standard_loads() if loads is None else loads, **kw)
        return path


class PatternTest(unittest.TestCase):
    def test_mix_is_splitmix64(self):
        # splitmix64's first output for state 0 (a published test vector).
        self.assertEqual(vc.mix(0, 0, 0), 0xE220A8397B1DCDAF)
        # page goes into the high half, word into the low half.
        self.assertEqual(vc.mix(5 << 32, 0, 0), vc.mix(0, 5, 0))
        self.assertEqual(vc.mix(7, 0, 0), vc.mix(0, 0, 7))
        self.assertNotEqual(vc.mix(SEED, 1, 2), vc.mix(SEED, 2, 1))

    def test_page_layout(self):
        page = vc.expected_page(0xFEDCBA9890ABCDEF, 3, 4096)
        self.assertEqual(len(page), 4096)
        self.assertEqual(page[:32], b"FADUMP-PATTERN p0003 s90abcdef\n\0")
        # word 4 (bytes 32..40) is the first word the tag does not cover, little-endian.
        self.assertEqual(page[32:40], struct.pack("<Q", vc.mix(0xFEDCBA9890ABCDEF, 3, 4)))
        self.assertEqual(page[-8:], struct.pack("<Q", vc.mix(0xFEDCBA9890ABCDEF, 3, 511)))
        self.assertNotEqual(vc.expected_page(1, 0, 4096), vc.expected_page(2, 0, 4096))

    def test_console_parse(self):
        run = vc.parse_pattern_console(CONSOLE)
        self.assertEqual(run.seed, SEED)
        self.assertEqual(run.ready_pages, 2)
        self.assertEqual(run.pages, [vc.PatternPage(SEED, 0, 0x7FFFA5530000, 0x30000, 65536),
                                     vc.PatternPage(SEED, 1, 0x7FFFA5540000, 0x10000, 65536)])
        self.assertEqual(run.missing(), [])
        self.assertIsNone(vc.parse_pattern_console("no pattern here\n"))

    def test_console_missing_page(self):
        text = CONSOLE.replace("READY pages=2 seed=0x0123", "READY pages=4 seed=0x0123")
        self.assertEqual(vc.parse_pattern_console(text).missing(), [2, 3])

    def test_compare_bytes(self):
        self.assertEqual(vc.compare_bytes(b"abcd", b"abcd"), (0, None))
        self.assertEqual(vc.compare_bytes(b"abcd", b"abXY"), (2, 2))
        self.assertEqual(vc.compare_bytes(b"abcd", b"ab"), (2, 2))

    def test_matches_the_real_c_program(self):
        """Builds guests/pattern/fadump-pattern.c for the host, runs it, reads its pages back
        through /proc/PID/mem and compares them with expected_page()."""
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc or not os.path.exists(PATTERN_C):
            testenv.skip_or_fail(self, "no C compiler or no fadump-pattern.c")
        with tempfile.TemporaryDirectory() as tmp:
            exe = os.path.join(tmp, "fadump-pattern")
            subprocess.run([cc, "-O2", "-o", exe, PATTERN_C], check=True)
            with subprocess.Popen([exe, "3", "0xfeedfacecafebeef"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) as proc:
                self.check_running_pattern(proc)

    def check_running_pattern(self, proc):
        try:
            lines = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if line.startswith("FADUMP-PATTERN-READY"):
                    break
            if not any(x.startswith("FADUMP-PATTERN-READY") for x in lines):
                err = proc.stderr.read() if proc.poll() is not None else ""
                testenv.skip_or_fail(self, f"fadump-pattern did not run here (needs root): {err.strip()}")
            run = vc.parse_pattern_console("".join(lines))
            self.assertEqual(run.seed, 0xFEEDFACECAFEBEEF)
            self.assertEqual(run.missing(), [])
            self.assertEqual(len(run.pages), 3)
            with open(f"/proc/{proc.pid}/mem", "rb") as mem:
                for p in run.pages:
                    mem.seek(p.vaddr)
                    got = mem.read(p.pagesize)
                    self.assertEqual(vc.compare_bytes(
                        vc.expected_page(p.seed, p.page, p.pagesize), got), (0, None),
                        f"page {p.page}")
        finally:
            proc.kill()
            proc.wait()


class CpuListTest(unittest.TestCase):
    def test_parse_cpu_list(self):
        self.assertEqual(vc.parse_cpu_list("1"), [1])
        self.assertEqual(vc.parse_cpu_list("3, 1,3"), [1, 3])
        self.assertEqual(vc.parse_cpu_list(""), [])
        for bad in ("-1", "a", "1-2"):
            with self.assertRaises(ValueError):
                vc.parse_cpu_list(bad)

    def test_note_cpu_numbers(self):
        self.assertEqual(vc.note_cpu_numbers([0, 1], []), [0, 1])
        self.assertEqual(vc.note_cpu_numbers([0, 1], [1]), [0])
        self.assertEqual(vc.note_cpu_numbers([0, 1, 2, 3], [0, 2]), [1, 3])


class CoreTest(Tmp):
    def test_header_and_loads(self):
        with vc.ElfCore(self.core()) as core:
            self.assertEqual(core.endian, "<")
            self.assertEqual(core.e_machine, 21)
            self.assertEqual(core.e_type, 4)
            self.assertEqual([(s.paddr, s.memsz) for s in core.loads],
                             [(0, 0x10000), (0x10000, 0x48000)])
            self.assertEqual(core.phys_ranges(), [(0, 0x58000)])

    def test_prstatus(self):
        with vc.ElfCore(self.core()) as core:
            cpus = core.prstatus()
            self.assertEqual(len(cpus), 2)
            for i, cpu in enumerate(cpus):
                self.assertEqual(cpu.index, i)
                self.assertEqual(cpu.pid, 0)
                self.assertEqual(cpu.nip, 0xC000000000123450 + i * 16)
                self.assertEqual(cpu.lr, 0xC000000000234560 + i * 16)
                self.assertEqual(cpu.sp, 0xC000000000040000 + i * 0x4000)
                self.assertEqual(cpu.msr, MSR)
                self.assertEqual(cpu.reg("trap"), 0x700)
                self.assertEqual(len(cpu.regs), 48)

    def test_prstatus_pid_and_big_endian(self):
        notes = [("CORE", 1, prstatus_desc(77, 1, 2, 3, 4, ">")),
                 ("VMCOREINFO", 0, VMCOREINFO)]
        with vc.ElfCore(self.core(notes=notes, endian=">")) as core:
            (cpu,) = core.prstatus()
            self.assertEqual((cpu.pid, cpu.nip, cpu.msr, cpu.lr, cpu.sp), (77, 1, 2, 3, 4))
            self.assertEqual(core.vmcoreinfo()["OSRELEASE"], "6.12.117")

    def test_vmcoreinfo(self):
        with vc.ElfCore(self.core()) as core:
            info = core.vmcoreinfo()
            self.assertEqual(info["OSRELEASE"], "6.12.117")
            self.assertEqual(info["PAGESIZE"], "65536")

    def test_zero_padding_after_notes_is_ignored(self):
        with vc.ElfCore(self.core(note_padding=64)) as core:
            self.assertEqual(len(core.notes), 3)

    def test_missing_vmcoreinfo(self):
        with vc.ElfCore(self.core(notes=standard_notes(drop_vmcoreinfo=True))) as core:
            self.assertIsNone(core.vmcoreinfo())
            self.assertEqual(len(core.prstatus()), 2)

    def test_missing_prstatus(self):
        notes = standard_notes()
        del notes[1]
        with vc.ElfCore(self.core(notes=notes)) as core:
            self.assertEqual(len(core.prstatus()), 1)

    def test_wrong_prstatus_size_is_rejected(self):
        notes = [("CORE", 1, bytes(496)), ("VMCOREINFO", 0, VMCOREINFO)]
        with vc.ElfCore(self.core(notes=notes)) as core:
            with self.assertRaises(vc.VmcoreError):
                core.prstatus()

    def test_read_phys(self):
        with vc.ElfCore(self.core()) as core:
            self.assertEqual(core.read_phys(PATTERN_PHYS, PAGE), pattern_page(SEED, 0))
            self.assertEqual(core.read_phys(0x10000, PAGE), pattern_page(SEED, 1))
            self.assertEqual(core.read_phys(0x100, 4), bytes([0, 1, 2, 3]))
            # across the boundary of the two PT_LOADs
            self.assertEqual(core.read_phys(0xFFFE, 4), b"\xfe\xffFA")
            # p_memsz past p_filesz reads as zeros
            self.assertEqual(core.read_phys(0x50000, 16), bytes(16))
            with self.assertRaises(vc.VmcoreError):
                core.read_phys(0x57FF0, 32)  # runs past the last PT_LOAD
            with self.assertRaises(vc.VmcoreError):
                core.read_phys(0x100000, 1)

    def test_flipped_byte_is_found(self):
        with vc.ElfCore(self.core(loads=standard_loads(flip_at=4000))) as core:
            got = core.read_phys(PATTERN_PHYS, PAGE)
        self.assertEqual(vc.compare_bytes(pattern_page(SEED, 0), got), (1, 4000))

    def test_truncated_core_is_reported(self):
        path = self.core()
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 100)
        with vc.ElfCore(path) as core:
            self.assertEqual(core.truncated, [2])
            self.assertEqual(core.read_phys(0x100, 4), bytes([0, 1, 2, 3]))
            with self.assertRaises(vc.VmcoreError):
                core.read_phys(0x10000 + 0x40000 - 200, 200)  # the last file bytes: cut off

    def test_note_running_past_segment_is_rejected(self):
        bad = bytearray(note_bytes("CORE", 1, prstatus_desc(0, 1, 2, 3, 4)))
        struct.pack_into("<I", bad, 4, 5000)  # descsz larger than the segment
        with self.assertRaises(vc.VmcoreError):
            vc.parse_notes(bytes(bad), "<")

    def test_not_elf(self):
        path = os.path.join(self.dir, "junk")
        with open(path, "wb") as f:
            f.write(b"\0" * 128)
        with self.assertRaises(vc.VmcoreError):
            vc.ElfCore(path)


class AnalyzerPureTest(Tmp):
    """analyze-vmcore.py --no-drgn: the pure checks end to end, as the runner would call it."""

    def run_analyzer(self, core, console=CONSOLE, cpus=2, extra=()):
        cons = os.path.join(self.dir, "console.log")
        with open(cons, "w") as f:
            f.write(console)
        proc = subprocess.run(
            [sys.executable, ANALYZER, "--vmcore", core, "--console", cons, "--cpus", str(cpus),
             "--no-drgn", *extra], capture_output=True, text=True, timeout=60)
        return proc.returncode, proc.stdout + proc.stderr

    def test_good_core_passes(self):
        rc, out = self.run_analyzer(self.core())
        self.assertEqual(rc, 0, out)
        self.assertIn("PASS: 2 NT_PRSTATUS notes", out)
        self.assertIn("PASS: pattern: 2/2 pages", out)
        self.assertNotIn("FAIL", out)

    def test_flipped_byte_fails(self):
        rc, out = self.run_analyzer(self.core(loads=standard_loads(flip_at=100)))
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: pattern", out)

    def test_missing_note_fails(self):
        notes = standard_notes()
        del notes[0]
        rc, out = self.run_analyzer(self.core(notes=notes))
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: 1 NT_PRSTATUS notes", out)

    def test_wrong_cpu_count_fails(self):
        rc, out = self.run_analyzer(self.core(), cpus=4)
        self.assertEqual(rc, 1, out)

    def test_bad_msr_fails(self):
        notes = standard_notes()
        notes[1] = ("CORE", 1, prstatus_desc(0, 0xC000000000123450, MSR & ~1,
                                             0xC000000000234560, 0xC000000000040000))
        rc, out = self.run_analyzer(self.core(notes=notes))
        self.assertEqual(rc, 1, out)
        self.assertIn("MSR_LE", out)

    def test_truncated_core_fails(self):
        path = self.core()
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 4096)
        rc, out = self.run_analyzer(path)
        self.assertEqual(rc, 1, out)
        self.assertIn("TRUNCATED", out)

    def test_user_mode_cpu_passes(self):
        # fadump does not stop the other CPUs: the firmware may catch one in a program.
        notes = standard_notes()
        notes[1] = ("CORE", 1, prstatus_desc(0, 0x1000C350, MSR | (1 << 14), 0x1000C138,
                                             0x3FFFC6C29090))
        rc, out = self.run_analyzer(self.core(notes=notes))
        self.assertEqual(rc, 0, out)
        self.assertIn("(1 in kernel mode, 1 in user mode)", out)

    def test_user_mode_cpu_with_kernel_nip_fails(self):
        notes = standard_notes()
        notes[1] = ("CORE", 1, prstatus_desc(0, 0xC000000000123450, MSR | (1 << 14), 0,
                                             0x3FFFC6C29090))
        rc, out = self.run_analyzer(self.core(notes=notes))
        self.assertEqual(rc, 1, out)
        self.assertIn("user-mode NIP is not a user address", out)

    def test_no_kernel_mode_cpu_fails(self):
        user = ("CORE", 1, prstatus_desc(0, 0x1000C350, MSR | (1 << 14), 0, 0x3FFFC6C29090))
        rc, out = self.run_analyzer(self.core(notes=[user, user, ("VMCOREINFO", 0, VMCOREINFO)]))
        self.assertEqual(rc, 1, out)
        self.assertIn("no note is in kernel mode", out)

    def test_kdump_unstoppable_cpu_expected_passes(self):
        # kdump-hardlockup: CPU 1 spun with interrupts off and never saved its registers.
        notes = standard_notes()
        del notes[1]
        rc, out = self.run_analyzer(self.core(notes=notes),
                                    extra=["--expect-missing-prstatus", "1"])
        self.assertEqual(rc, 0, out)
        self.assertIn("PASS: 1 NT_PRSTATUS notes (expected 1: one per vCPU less CPU(s) 1", out)

    def test_expected_missing_cpu_present_fails(self):
        rc, out = self.run_analyzer(self.core(), extra=["--expect-missing-prstatus", "1"])
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: 2 NT_PRSTATUS notes (expected 1", out)

    def test_more_missing_than_expected_fails(self):
        notes = standard_notes(cpus=3)
        del notes[1:3]
        rc, out = self.run_analyzer(self.core(notes=notes), cpus=3,
                                    extra=["--expect-missing-prstatus", "1"])
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: 1 NT_PRSTATUS notes (expected 2", out)

    def test_expect_missing_all_cpus_is_refused(self):
        rc, out = self.run_analyzer(self.core(), extra=["--expect-missing-prstatus", "0,1"])
        self.assertEqual(rc, 2, out)
        rc, out = self.run_analyzer(self.core(), extra=["--expect-missing-prstatus", "2"])
        self.assertEqual(rc, 2, out)
        rc, out = self.run_analyzer(self.core(), extra=["--expect-missing-prstatus", "x"])
        self.assertEqual(rc, 2, out)

    def test_missing_vmcoreinfo_fails(self):
        rc, out = self.run_analyzer(self.core(notes=standard_notes(drop_vmcoreinfo=True)))
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: VMCOREINFO", out)

    def test_no_pattern_lines_fails(self):
        rc, out = self.run_analyzer(self.core(), console="nothing\n")
        self.assertEqual(rc, 1, out)


def find_drgn_python():
    cache = os.environ.get("PPC_VMM_CACHE", os.path.expanduser("~/.cache/ppc-vmm"))
    if os.environ.get("DRGN_PYTHON"):
        return os.environ["DRGN_PYTHON"]
    found = sorted(glob.glob(os.path.join(cache, "drgn-venv-*", "bin", "python")))
    return found[-1] if found else None


def find_vmlinux():
    """A ppc64 guest vmlinux whose split debug file sits beside it (the guest kernel cache)."""
    cache = os.environ.get("PPC_VMM_CACHE", os.path.expanduser("~/.cache/ppc-vmm"))
    if os.environ.get("VMLINUX"):
        return os.environ["VMLINUX"]
    for path in sorted(glob.glob(os.path.join(cache, "kernel", "*", "vmlinux"))):
        if os.path.exists(path + ".debug"):
            return path
    return None


class AnalyzerDrgnImageTest(Tmp):
    """analyze-vmcore.py with drgn, on a core made from the guest vmlinux's own image.

    The core maps the vmlinux's loadable bytes at physical 0 / 0xc000000000000000, so drgn
    reads the real init_uts_ns and symbols; two NT_PRSTATUS notes put CPU 0 at
    sysrq_handle_crash (LR in __handle_sysrq, r1 at a zero back chain) and a pattern page sits
    above the image. Needs drgn-env.sh's venv and a cached guest kernel: skipped without them
    (CI makes both first and sets PPC_VMM_NO_SKIP=1, so there they must run).
    """

    PATTERN_PHYS = 0xA00000
    STACK_PHYS = 0x900000
    MEM = 0x1000000

    def setUp(self):
        super().setUp()
        self.py = find_drgn_python()
        self.vmlinux = find_vmlinux()
        if not self.py or not os.path.exists(self.py) or not self.vmlinux:
            testenv.skip_or_fail(self, "no drgn venv (drgn-env.sh) or no cached guest vmlinux")

    def image_core(self, release=None, nip_symbol="sysrq_handle_crash", flip_at=None):
        with vc.ElfCore(self.vmlinux) as img:
            seg = img.loads[0]
            image = img._read_at(seg.offset, seg.filesz)
        syms = vc.elf_symbols(self.vmlinux, ["_stext", nip_symbol, "__handle_sysrq", "panic",
                                             "swapper_pg_dir"])
        build_id = vc.elf_build_id(self.vmlinux)
        if release is None:
            # The release string the image itself holds, as VMCOREINFO would print it.
            release = re.search(rb"Linux version (\S+)", image).group(1).decode()
        mem = bytearray(self.MEM)
        mem[seg.paddr:seg.paddr + len(image)] = image
        page = bytearray(vc.expected_page(SEED, 0, 4096))
        if flip_at is not None:
            page[flip_at] ^= 0x80
        mem[self.PATTERN_PHYS:self.PATTERN_PHYS + 4096] = page
        base = vc.KERNEL_BASE
        info = (f"OSRELEASE={release}\nBUILD-ID={build_id}\nPAGESIZE=4096\n"
                f"SYMBOL(_stext)={syms['_stext']:x}\n"
                f"SYMBOL(swapper_pg_dir)={syms['swapper_pg_dir']:x}\nKERNELOFFSET=0\n").encode()
        notes = [
            ("CORE", 1, prstatus_desc(0, syms[nip_symbol] + 8, MSR, syms["__handle_sysrq"] + 0x100,
                                      base + self.STACK_PHYS)),
            ("CORE", 1, prstatus_desc(0, syms["panic"] + 0x40, MSR, syms["panic"] + 0x80,
                                      base + self.STACK_PHYS + 0x1000)),
            ("VMCOREINFO", 0, info),
        ]
        path = os.path.join(self.dir, "image-core")
        build_core(path, notes, [(0, bytes(mem), self.MEM)])
        return path

    def run_analyzer(self, core):
        cons = os.path.join(self.dir, "console.log")
        with open(cons, "w") as f:
            f.write(f"FADUMP-PATTERN seed={SEED:#018x} page=0 vaddr=0x7fff0000 "
                    f"phys={self.PATTERN_PHYS:#x} pagesize=4096\n"
                    f"FADUMP-PATTERN-READY pages=1 seed={SEED:#018x}\n")
        proc = subprocess.run(
            [self.py, ANALYZER, "--vmcore", core, "--vmlinux", self.vmlinux + ".debug",
             "--console", cons, "--cpus", "2", "--no-task-check"],
            capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stdout + proc.stderr

    def test_good_image_core_passes(self):
        rc, out = self.run_analyzer(self.image_core())
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"PASS: drgn: opened the vmcore with debug info; kernel release "
                              r"\d+\.\d+\.\S+ \(agrees with VMCOREINFO\)")
        self.assertIn("PASS: stack:", out)
        self.assertIn("contains sysrq_handle_crash", out)
        self.assertIn("1/1 via drgn prog.read(physical=True)", out)
        self.assertIn("<sysrq_handle_crash+0x8>", out)
        self.assertIn("PASS: cpu context: 2/2", out)

    def test_release_mismatch_fails(self):
        rc, out = self.run_analyzer(self.image_core(release="6.12.0-not-this-one"))
        self.assertEqual(rc, 1, out)
        self.assertIn("DIFFERS from VMCOREINFO", out)

    def test_no_crash_frame_fails(self):
        rc, out = self.run_analyzer(self.image_core(nip_symbol="panic"))
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL: stack: no stack trace contains sysrq_handle_crash", out)

    def test_flipped_byte_fails_in_drgn_too(self):
        rc, out = self.run_analyzer(self.image_core(flip_at=2000))
        self.assertEqual(rc, 1, out)
        self.assertIn("0/1 via drgn", out)
        self.assertIn("drgn read: 1 byte(s) differ at +0x7d0", out)


class VectorEntryTest(unittest.TestCase):
    """A CPU the firmware stopped at an exception vector's entry (seen: cpu1 at
    exc_virt_0x4900_decrementer+0x14 with the user's LR) is plausible; elsewhere in the kernel
    the same user LR and r1 are not."""

    def test_vector_entry_keeps_the_interrupted_lr_and_r1(self):
        import importlib.util
        import types
        spec = importlib.util.spec_from_file_location("analyze_vmcore", ANALYZER)
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        cpu = types.SimpleNamespace(msr=vc.MSR_SF | vc.MSR_LE, nip=0xc000000000004914,
                                    lr=0x101768a0, sp=0x7fffc0de0000)
        text = (0xc000000000000000, 0xc000000000477000)
        self.assertEqual(
            m.register_problems(None, cpu, text, lambda _a: " <exc_virt_0x4900_decrementer+0x14>"),
            [])
        reasons = m.register_problems(None, cpu, text, lambda _a: " <crash_fadump+0x228>")
        self.assertTrue(any("LR outside kernel text" in r for r in reasons), reasons)
        self.assertTrue(any("r1 not in the kernel linear map" in r for r in reasons), reasons)
        # A vector's NIP must still be kernel text.
        cpu.nip = 0x1000
        self.assertEqual(
            m.register_problems(None, cpu, text, lambda _a: " <exc_virt_0x4900_decrementer+0x0>"),
            ["NIP outside kernel text"])


if __name__ == "__main__":
    unittest.main()
