"""Pure-Python reading of a Linux ppc64 vmcore (ELF64 core) and of the fadump-pattern output.

No drgn here, so this is unit-testable with a plain python3 (test_vmcore_check.py) and gives
analyze-vmcore.py a second, independent reader to compare drgn with.

What it knows (layouts from the Linux ppc64 headers, described, not copied):
  * ELF64 header / program headers, either byte order (ppc64le cores are little-endian).
  * PT_NOTE entries: 4-byte-aligned name and descriptor (8 when the segment's p_align is 8).
  * NT_PRSTATUS (type 1, name "CORE") holding ppc64 `struct elf_prstatus`:
        0   pr_info      3 x s32 (signo, code, errno)
        12  pr_cursig    s16 (+2 padding)
        16  pr_sigpend   u64
        24  pr_sighold   u64
        32  pr_pid       s32, then pr_ppid 36, pr_pgrp 40, pr_sid 44
        48  pr_utime, pr_stime, pr_cutime, pr_cstime: 4 x {s64 sec, s64 usec}
        112 pr_reg       ELF_NGREG = 48 x u64: the first words of the kernel's pt_regs, i.e.
                         gpr[0..31], nip, msr, orig_gpr3, ctr, link, xer, ccr, softe, trap,
                         dar, dsisr, result (44 words), then 4 more pt_regs words (ppr, ...)
        496 pr_fpvalid   s32 (+4 padding)            -> sizeof = 504
    The fadump capture kernel leaves pr_pid at 0 (it has no task for a firmware-saved CPU).
  * The VMCOREINFO note (name "VMCOREINFO"): "KEY=VALUE" lines.
  * Physical reads over PT_LOAD p_paddr ranges (bytes past p_filesz up to p_memsz read as 0).
  * fadump-pattern's console lines and page contents (guests/pattern/fadump-pattern.c).
"""

import re
import struct
from dataclasses import dataclass, field

EM_PPC64 = 21
ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4
NT_PRSTATUS = 1

PRSTATUS_PID_OFFSET = 32
PRSTATUS_REG_OFFSET = 112
ELF_NGREG = 48
PRSTATUS_SIZE = 504

# Index of each pt_regs word in pr_reg.
GPR_COUNT = 32
REG_NAMES = [f"r{i}" for i in range(GPR_COUNT)] + [
    "nip", "msr", "orig_gpr3", "ctr", "link", "xer", "ccr", "softe", "trap", "dar",
    "dsisr", "result",
]
REG_INDEX = {name: i for i, name in enumerate(REG_NAMES)}

MSR_SF = 1 << 63
MSR_LE = 1 << 0
MSR_PR = 1 << 14  # problem state: the CPU was running a user program
KERNEL_BASE = 0xC000000000000000

ELF64_EHDR_SIZE = 64
ELF64_PHDR_SIZE = 56
MAX_PHNUM = 1 << 16
MAX_NOTE_BYTES = 64 << 20


class VmcoreError(Exception):
    """The file is not a core this module can read, or an access falls outside it."""


@dataclass(frozen=True)
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int


@dataclass(frozen=True)
class Note:
    name: str
    type: int
    desc: bytes


@dataclass(frozen=True)
class Prstatus:
    """One NT_PRSTATUS note: the CPU's index among the notes, pr_pid and the 48 pr_reg words."""

    index: int
    pid: int
    regs: tuple

    def reg(self, name):
        return self.regs[REG_INDEX[name]]

    @property
    def nip(self):
        return self.reg("nip")

    @property
    def msr(self):
        return self.reg("msr")

    @property
    def lr(self):
        return self.reg("link")

    @property
    def sp(self):
        return self.reg("r1")

    @classmethod
    def parse(cls, index, desc, endian):
        if len(desc) != PRSTATUS_SIZE:
            raise VmcoreError(
                f"NT_PRSTATUS #{index}: descriptor is {len(desc)} bytes, "
                f"ppc64 struct elf_prstatus is {PRSTATUS_SIZE}")
        (pid,) = struct.unpack_from(endian + "i", desc, PRSTATUS_PID_OFFSET)
        regs = struct.unpack_from(endian + f"{ELF_NGREG}Q", desc, PRSTATUS_REG_OFFSET)
        return cls(index=index, pid=pid, regs=tuple(regs))


def _align(value, alignment):
    return (value + alignment - 1) // alignment * alignment


def parse_notes(data, endian, alignment=4):
    """Parses a PT_NOTE segment's bytes into Notes. Trailing zero padding ends the list."""
    notes = []
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < 12:
            if any(data[pos:end]):
                raise VmcoreError(f"note header truncated at offset {pos}")
            break
        namesz, descsz, ntype = struct.unpack_from(endian + "III", data, pos)
        if namesz == 0 and descsz == 0 and ntype == 0:
            if any(data[pos:end]):
                raise VmcoreError(f"empty note followed by data at offset {pos}")
            break
        name_start = pos + 12
        desc_start = name_start + _align(namesz, alignment)
        next_pos = desc_start + _align(descsz, alignment)
        if desc_start + descsz > end or name_start + namesz > end:
            raise VmcoreError(
                f"note at offset {pos} (namesz {namesz}, descsz {descsz}) runs past its segment")
        name = bytes(data[name_start:name_start + namesz]).split(b"\0", 1)[0]
        notes.append(Note(name=name.decode("ascii", "replace"), type=ntype,
                          desc=bytes(data[desc_start:desc_start + descsz])))
        pos = next_pos
    return notes


def parse_vmcoreinfo(desc):
    """VMCOREINFO text -> dict; the last value wins for a repeated key."""
    info = {}
    for line in desc.decode("ascii", "replace").split("\n"):
        line = line.strip("\0").strip()
        if not line or "=" not in line:
            continue
        key, value = line.split("=", 1)
        info[key] = value
    return info


class ElfCore:
    """A read-only view of an ELF64 core file. Use as a context manager or call close()."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "rb")
        try:
            self._file.seek(0, 2)
            self.size = self._file.tell()
            self._parse_header()
        except BaseException:
            self._file.close()
            raise
        self._notes = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._file.close()

    def _read_at(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise VmcoreError(
                f"read of {length} bytes at file offset {offset:#x} is outside the "
                f"{self.size}-byte file")
        self._file.seek(offset)
        data = self._file.read(length)
        if len(data) != length:
            raise VmcoreError(f"short read at file offset {offset:#x}")
        return data

    def _parse_header(self):
        ident = self._read_at(0, 16) if self.size >= 16 else b""
        if ident[:4] != b"\x7fELF":
            raise VmcoreError("not an ELF file")
        if ident[4] != 2:
            raise VmcoreError(f"ELF class {ident[4]}: only ELF64 cores are supported")
        if ident[5] == 1:
            self.endian = "<"
        elif ident[5] == 2:
            self.endian = ">"
        else:
            raise VmcoreError(f"bad ELF data encoding {ident[5]}")
        hdr = self._read_at(0, ELF64_EHDR_SIZE)
        (self.e_type, self.e_machine, _version, _entry, phoff, _shoff, _flags, _ehsize,
         phentsize, phnum, _shentsize, _shnum, _shstrndx) = struct.unpack_from(
             self.endian + "HHIQQQIHHHHHH", hdr, 16)
        if phnum == 0 or phnum >= MAX_PHNUM:
            raise VmcoreError(f"unsupported program header count {phnum}")
        if phentsize != ELF64_PHDR_SIZE:
            raise VmcoreError(f"program header entry size {phentsize}, expected 56")
        table = self._read_at(phoff, phnum * phentsize)
        segments = []
        self.truncated = []
        for i in range(phnum):
            (ptype, pflags, offset, vaddr, paddr, filesz, memsz, align) = struct.unpack_from(
                self.endian + "IIQQQQQQ", table, i * phentsize)
            if offset + filesz > self.size:
                if ptype != PT_LOAD:
                    raise VmcoreError(
                        f"program header {i} (type {ptype}) maps file bytes "
                        f"{offset:#x}+{filesz:#x} past the end of the {self.size}-byte file")
                # A truncated dump: keep it readable up to the cut (reads past it fail) and
                # let the caller report it.
                self.truncated.append(i)
            if ptype == PT_LOAD and filesz > memsz:
                raise VmcoreError(f"PT_LOAD {i}: p_filesz {filesz:#x} > p_memsz {memsz:#x}")
            segments.append(Segment(ptype, pflags, offset, vaddr, paddr, filesz, memsz, align))
        self.segments = segments

    @property
    def loads(self):
        return [s for s in self.segments if s.type == PT_LOAD]

    @property
    def notes(self):
        if self._notes is None:
            notes = []
            for seg in self.segments:
                if seg.type != PT_NOTE:
                    continue
                if seg.filesz > MAX_NOTE_BYTES:
                    raise VmcoreError(f"PT_NOTE of {seg.filesz} bytes is implausibly large")
                notes.extend(parse_notes(self._read_at(seg.offset, seg.filesz), self.endian,
                                         8 if seg.align == 8 else 4))
            self._notes = notes
        return self._notes

    def prstatus(self):
        """Every NT_PRSTATUS note named CORE, in file order (the capture kernel's CPU order)."""
        found = [n for n in self.notes if n.type == NT_PRSTATUS and n.name == "CORE"]
        return [Prstatus.parse(i, n.desc, self.endian) for i, n in enumerate(found)]

    def vmcoreinfo(self):
        """The VMCOREINFO note as a dict, or None when the core has none."""
        for note in self.notes:
            if note.name == "VMCOREINFO":
                return parse_vmcoreinfo(note.desc)
        return None

    def phys_ranges(self):
        """Sorted [start, end) physical ranges the PT_LOADs cover (memsz), merged."""
        ranges = sorted((s.paddr, s.paddr + s.memsz) for s in self.loads if s.memsz)
        merged = []
        for start, end in ranges:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [tuple(r) for r in merged]

    def read_phys(self, addr, length):
        """Reads `length` bytes of guest physical memory at `addr`, across PT_LOAD boundaries.

        Raises VmcoreError when any byte is not covered by a PT_LOAD, or lies past the end of
        a truncated file.
        """
        if addr < 0 or length < 0:
            raise VmcoreError(f"bad physical read {addr:#x}+{length:#x}")
        out = bytearray()
        cur = addr
        end = addr + length
        loads = sorted(self.loads, key=lambda s: s.paddr)
        while cur < end:
            seg = next((s for s in loads if s.paddr <= cur < s.paddr + s.memsz), None)
            if seg is None:
                raise VmcoreError(f"physical address {cur:#x} is not in any PT_LOAD")
            chunk_end = min(end, seg.paddr + seg.memsz)
            rel = cur - seg.paddr
            file_part = max(0, min(chunk_end - seg.paddr, seg.filesz) - rel)
            if file_part:
                out += self._read_at(seg.offset + rel, file_part)
            out += bytes(chunk_end - cur - file_part)
            cur = chunk_end
        return bytes(out)


# ---- fadump-pattern -------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
TAG_BYTES = 32

_PAGE_RE = re.compile(
    r"FADUMP-PATTERN seed=0x([0-9a-fA-F]+) page=(\d+) vaddr=0x([0-9a-fA-F]+) "
    r"phys=0x([0-9a-fA-F]+) pagesize=(\d+)")
_READY_RE = re.compile(r"FADUMP-PATTERN-READY pages=(\d+) seed=0x([0-9a-fA-F]+)")


@dataclass(frozen=True)
class PatternPage:
    seed: int
    page: int
    vaddr: int
    phys: int
    pagesize: int


@dataclass
class PatternRun:
    seed: int
    pages: list = field(default_factory=list)
    ready_pages: int = None

    def missing(self):
        """Page indices below the READY count (or the highest seen) with no line of their own."""
        have = {p.page for p in self.pages}
        count = self.ready_pages if self.ready_pages is not None else max(have, default=-1) + 1
        return [i for i in range(count) if i not in have]


def mix(seed, page, word):
    """fadump-pattern.c's mix(): splitmix64's finaliser over seed ^ (page << 32) ^ word."""
    z = (seed ^ ((page << 32) & MASK64) ^ word) & MASK64
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def pattern_tag(seed, page):
    """The 32 bytes fadump-pattern copies over the start of a page: 31 characters and a NUL."""
    text = f"FADUMP-PATTERN p{page:04d} s{seed & 0xFFFFFFFF:08x}\n".encode("ascii")
    tag = (text + b"\0")[:TAG_BYTES]
    return tag + bytes(TAG_BYTES - len(tag))


def expected_page(seed, page, pagesize):
    if pagesize <= 0 or pagesize % 8:
        raise ValueError(f"page size {pagesize} is not a positive multiple of 8")
    words = [mix(seed, page, i) for i in range(pagesize // 8)]
    data = bytearray(struct.pack(f"<{len(words)}Q", *words))
    data[:TAG_BYTES] = pattern_tag(seed, page)
    return bytes(data)


def parse_pattern_console(text):
    """Finds fadump-pattern's lines in a console log (any prefix, CR/LF noise tolerated).

    Returns the PatternRun of the last seed that printed a READY line (or, failing that, the
    last seed seen), with duplicate page lines dropped. Returns None if there are none.
    """
    runs = {}
    order = []
    for m in _PAGE_RE.finditer(text):
        seed = int(m.group(1), 16)
        run = runs.get(seed)
        if run is None:
            run = runs[seed] = PatternRun(seed=seed)
        order.append(seed)
        page = PatternPage(seed, int(m.group(2)), int(m.group(3), 16), int(m.group(4), 16),
                           int(m.group(5)))
        if all(p.page != page.page for p in run.pages):
            run.pages.append(page)
    ready_seed = None
    for m in _READY_RE.finditer(text):
        seed = int(m.group(2), 16)
        if seed in runs:
            runs[seed].ready_pages = int(m.group(1))
            ready_seed = seed
    if not runs:
        return None
    chosen = runs[ready_seed if ready_seed is not None else order[-1]]
    chosen.pages.sort(key=lambda p: p.page)
    return chosen


def compare_bytes(expected, actual):
    """(number of differing bytes, offset of the first difference or None)."""
    if len(expected) != len(actual):
        n = max(len(expected), len(actual))
        diff = sum(1 for a, b in zip(expected, actual) if a != b) + n - min(len(expected),
                                                                            len(actual))
    else:
        diff = sum(1 for a, b in zip(expected, actual) if a != b) if expected != actual else 0
    if diff == 0:
        return 0, None
    first = next((i for i, (a, b) in enumerate(zip(expected, actual)) if a != b),
                 min(len(expected), len(actual)))
    return diff, first


# ---- the vmlinux's own ELF: symbols and build ID (so the register checks need no drgn) -------

SHT_SYMTAB = 2
SHT_NOTE = 7
NT_GNU_BUILD_ID = 3


def _elf_sections(f):
    f.seek(0)
    ident = f.read(64)
    if len(ident) < 64 or ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] not in (1, 2):
        raise VmcoreError("not an ELF64 file")
    endian = "<" if ident[5] == 1 else ">"
    shoff, = struct.unpack_from(endian + "Q", ident, 40)
    shentsize, shnum = struct.unpack_from(endian + "HH", ident, 58)
    if shentsize != 64 or shnum == 0 or shnum >= MAX_PHNUM:
        raise VmcoreError(f"unsupported section table ({shnum} x {shentsize} bytes)")
    f.seek(shoff)
    table = f.read(shnum * 64)
    if len(table) != shnum * 64:
        raise VmcoreError("section table runs past the end of the file")
    sections = []
    for i in range(shnum):
        (_name, stype, _flags, _addr, offset, size, link, _info, _align,
         entsize) = struct.unpack_from(endian + "IIQQQQIIQQ", table, i * 64)
        sections.append((stype, offset, size, link, entsize))
    return endian, sections


def _read_section(f, section):
    _stype, offset, size, _link, _entsize = section
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise VmcoreError("section runs past the end of the file")
    return data


def elf_symbols(path, names):
    """{name: value} for those of `names` that the file's .symtab defines (first one wins)."""
    wanted = set(names)
    found = {}
    with open(path, "rb") as f:
        endian, sections = _elf_sections(f)
        for sec in sections:
            if sec[0] != SHT_SYMTAB or sec[3] >= len(sections):
                continue
            symtab = _read_section(f, sec)
            strtab = _read_section(f, sections[sec[3]])
            for pos in range(0, len(symtab) - 23, 24):
                st_name, _info, _other, shndx, value, _size = struct.unpack_from(
                    endian + "IBBHQQ", symtab, pos)
                if shndx == 0 or st_name >= len(strtab):
                    continue
                end = strtab.find(b"\0", st_name)
                name = strtab[st_name:end if end >= 0 else len(strtab)].decode("ascii",
                                                                                "replace")
                if name in wanted and name not in found:
                    found[name] = value
    return found


def elf_build_id(path):
    """The GNU build ID of an ELF file as lowercase hex, or None."""
    with open(path, "rb") as f:
        endian, sections = _elf_sections(f)
        for sec in sections:
            if sec[0] != SHT_NOTE:
                continue
            for note in parse_notes(_read_section(f, sec), endian):
                if note.name == "GNU" and note.type == NT_GNU_BUILD_ID:
                    return note.desc.hex()
    return None


def parse_cpu_list(text):
    """'1' or '1,3' (CPU numbers, as analyze-vmcore.py --expect-missing-prstatus takes them)
    -> sorted list of distinct ints; '' -> []. Raises ValueError on anything else."""
    cpus = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit():
            raise ValueError(f"not a CPU number: {part!r}")
        cpus.add(int(part))
    return sorted(cpus)


def note_cpu_numbers(online, missing):
    """The CPU number of each NT_PRSTATUS note, in note order.

    Both capture paths write one note per online CPU in CPU order (the firmware's register
    save area for fadump; kexec-tools' elfcorehdr, one PT_NOTE per CPU's crash_notes, for
    kdump). A kdump CPU that never ran crash_save_cpu() left its crash_notes empty and the
    kdump kernel's /proc/vmcore drops it, so the notes are the online CPUs less `missing`."""
    gone = set(missing)
    return [c for c in online if c not in gone]
