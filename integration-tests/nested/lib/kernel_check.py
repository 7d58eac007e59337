#!/usr/bin/env python3
"""Up-front checks of a guest kernel a user brings to the fadump matrix.

    python3 lib/kernel_check.py --vmlinux VMLINUX [--config FILE] [--debuginfo FILE] \\
        [--cases sysrq-2cpu,lkdtm-bug,...]

Before any nested run (minutes each), this says whether the kernel can pass the chosen cases
and, if not, exactly what is missing and why:

  image      VMLINUX is a 64-bit little-endian ppc64 ELF executable (what our VMM loads) and
             carries a "Linux version" banner
  config     how the kernel was configured: --config FILE, else the configuration embedded
             in the image (CONFIG_IKCONFIG=y: the gzip'd text between IKCFG_ST and IKCFG_ED),
             else a `config`, `.config` or `config-<release>` file beside the image (a build
             tree, our kernel cache, Debian's /boot layout); none of these: refused
  options    each option the chosen cases need (table REQUIREMENTS: option, accepted values,
             why, which cases), e.g. CONFIG_FA_DUMP for every fadump case, CONFIG_LKDTM for
             the LKDTM crashes; CONFIG_NR_CPUS must cover the vCPUs
  debuginfo  drgn needs the kernel's DWARF: --debuginfo FILE, else VMLINUX itself if it has
             .debug_info, else a sibling `vmlinux.debug`; its GNU build ID must equal the
             image's

Prints `ok: ...` / `MISSING: ...` lines and exits 0 when everything the cases need is there,
1 otherwise (2 on bad arguments). With --json FILE it also writes the findings as JSON
(used by fadump_matrix.py, which refuses to run a kernel that fails here).
"""

import argparse
import gzip
import json
import os
import re
import struct
import sys
import zlib

# Every case of the matrix, with what it exercises (the keys of REQUIREMENTS' `cases`).
#   fadump: the guest registers fadump (fadump=on) and its capture kernel exports /proc/vmcore
#   sysrq / lkdtm: how the crash is caused; smp: more than one vCPU; hash: the hash MMU
CASE_TRAITS = {
    "sysrq-2cpu": {"fadump", "sysrq", "smp", "radix"},
    "sysrq-1cpu": {"fadump", "sysrq", "radix"},
    "sysrq-1g": {"fadump", "sysrq", "smp", "radix"},
    "lkdtm-bug": {"fadump", "lkdtm", "smp", "radix"},
    "lkdtm-panic": {"fadump", "lkdtm", "smp", "radix"},
    "hardlockup": {"fadump", "lkdtm", "sysrq", "smp", "radix"},
    "second-crash": {"fadump", "sysrq", "smp", "radix"},
    "unregistered": {"sysrq", "smp", "radix"},
    "nmi-hung": {"fadump", "lkdtm", "smp", "radix"},
    "host-dump": {"lkdtm", "smp", "radix"},
    "power-button": {"smp", "radix"},
    "hosting-8g": {"fadump", "sysrq", "smp", "radix"},
    "disk-enospc": {"fadump", "sysrq", "smp", "radix"},
    "disk-eio": {"fadump", "sysrq", "smp", "radix"},
    "linux-6.1": {"fadump", "sysrq", "smp", "radix"},
    "hash-powernv": {"fadump", "sysrq", "smp", "hash"},
    "kdump-sysrq": {"kdump", "sysrq", "smp", "radix"},
    "kdump-hardlockup": {"kdump", "lkdtm", "sysrq", "smp", "radix"},
    "hotplug-add-6.12": {"fadump", "sysrq", "smp", "radix", "hotplug"},
    "hotplug-remove-6.12": {"fadump", "sysrq", "smp", "radix", "hotplug"},
    "hotplug-host-add-6.12": {"fadump", "sysrq", "smp", "radix", "hotplug"},
    "hotplug-add-6.1": {"fadump", "sysrq", "smp", "radix", "hotplug"},
    "hotplug-add-rereg-6.1": {"fadump", "sysrq", "smp", "radix", "hotplug"},
    "hotplug-remove-stale-6.1": {"fadump", "sysrq", "smp", "radix", "hotplug"},
    "hotplug-remove-rereg-6.1": {"fadump", "sysrq", "smp", "radix", "hotplug"},
}

# (option, accepted values, why, traits that need it: None = every case)
REQUIREMENTS = [
    ("CONFIG_PPC64", {"y"}, "a 64-bit POWER kernel", None),
    ("CONFIG_PPC_BOOK3S_64", {"y"}, "Book3S-64 CPUs (POWER9 under KVM-HV)", None),
    ("CONFIG_CPU_LITTLE_ENDIAN", {"y"}, "our VMM boots little-endian (ELFv2) kernels", None),
    ("CONFIG_PPC_PSERIES", {"y"}, "the guest is a PAPR (pseries) partition", None),
    ("CONFIG_PPC_RADIX_MMU", {"y"}, "a nested pseries KVM-HV host runs radix guests only",
     {"radix"}),
    ("CONFIG_PPC_64S_HASH_MMU", {"y"}, "the hash-MMU case boots with disable_radix", {"hash"}),
    ("CONFIG_HVC_CONSOLE", {"y"}, "the console is hvc0 (H_PUT_TERM_CHAR); the runner drives "
     "the guest through it", None),
    ("CONFIG_BLK_DEV_INITRD", {"y"}, "the test init comes in an initramfs", None),
    ("CONFIG_RD_GZIP", {"y"}, "the initramfs is gzip-compressed", None),
    ("CONFIG_DEVTMPFS", {"y"}, "the init finds /dev/vda through devtmpfs", None),
    ("CONFIG_PROC_FS", {"y"}, "/proc/vmcore, /proc/sysrq-trigger", None),
    ("CONFIG_SYSFS", {"y"}, "/sys/kernel/fadump", None),
    ("CONFIG_BINFMT_ELF", {"y"}, "busybox and fadump-pattern are ELF programs", None),
    ("CONFIG_BINFMT_SCRIPT", {"y"}, "the init is a shell script", None),
    ("CONFIG_PCI", {"y"}, "the vmcore disk is virtio-blk behind our PAPR PCI host bridge", None),
    ("CONFIG_VIRTIO_PCI", {"y"}, "built in: the test initramfs loads no modules", None),
    ("CONFIG_VIRTIO_BLK", {"y"}, "built in: the capture kernel saves the vmcore to /dev/vda",
     None),
    ("CONFIG_FA_DUMP", {"y"}, "firmware-assisted dump (ibm,configure-kernel-dump)", {"fadump"}),
    ("CONFIG_MEMORY_HOTPLUG", {"y"}, "pseries DLPAR of LMBs (hotplug-memory.o)", {"hotplug"}),
    ("CONFIG_MEMORY_HOTREMOVE", {"y"}, "the remove cases give an LMB back", {"hotplug"}),
    ("CONFIG_CRASH_DUMP", {"y"}, "the capture kernel's /proc/vmcore needs it", {"fadump", "kdump"}),
    ("CONFIG_PROC_VMCORE", {"y"}, "the capture kernel exports the dump as /proc/vmcore",
     {"fadump", "kdump"}),
    ("CONFIG_KEXEC", {"y"}, "kdump loads its crash kernel with kexec_load", {"kdump"}),
    ("CONFIG_MAGIC_SYSRQ", {"y"}, "the crash is `echo c > /proc/sysrq-trigger`", {"sysrq"}),
    ("CONFIG_LKDTM", {"y"}, "LKDTM BUG / PANIC / HARDLOCKUP crashes (built in)", {"lkdtm"}),
    ("CONFIG_DEBUG_FS", {"y"}, "LKDTM's provoke-crash/DIRECT lives in debugfs", {"lkdtm"}),
    ("CONFIG_SMP", {"y"}, "the case runs 2 vCPUs", {"smp"}),
]
# CONFIG_NR_CPUS must be at least this for cases with the "smp" trait (2 vCPUs).
SMP_CPUS = 2

EM_PPC64 = 21
ET_EXEC = 2
IKCFG_ST = b"IKCFG_ST"
IKCFG_ED = b"IKCFG_ED"


class KernelCheckError(Exception):
    """The image cannot be read at all (not a file, not ELF)."""


def read_elf_header(data):
    """(class, data encoding, machine, type) of an ELF header, or None if not ELF."""
    if len(data) < 64 or data[:4] != b"\x7fELF":
        return None
    ei_class, ei_data = data[4], data[5]
    endian = "<" if ei_data == 1 else ">"
    etype, machine = struct.unpack_from(endian + "HH", data, 16)
    return ei_class, ei_data, machine, etype


def elf_sections(data):
    """{name: (offset, size, type)} of an ELF64 image held in `data` ({} if none)."""
    hdr = read_elf_header(data)
    if hdr is None or hdr[0] != 2:
        return {}
    endian = "<" if hdr[1] == 1 else ">"
    shoff, = struct.unpack_from(endian + "Q", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", data, 58)
    if shentsize != 64 or shnum == 0 or shstrndx >= shnum or shoff + shnum * 64 > len(data):
        return {}
    raw = []
    for i in range(shnum):
        name, stype, _flags, _addr, offset, size = struct.unpack_from(
            endian + "IIQQQQ", data, shoff + i * 64)
        raw.append((name, stype, offset, size))
    stroff, strsize = raw[shstrndx][2], raw[shstrndx][3]
    strtab = data[stroff:stroff + strsize]
    out = {}
    for name, stype, offset, size in raw:
        end = strtab.find(b"\0", name)
        label = strtab[name:end if end >= 0 else len(strtab)].decode("ascii", "replace")
        out.setdefault(label, (offset, size, stype))
    return out


def build_id(data):
    """The GNU build ID (hex) from an ELF image's .note.gnu.build-id (or any note section)."""
    hdr = read_elf_header(data)
    if hdr is None:
        return None
    endian = "<" if hdr[1] == 1 else ">"
    for name, (offset, size, stype) in elf_sections(data).items():
        if stype != 7:  # SHT_NOTE
            continue
        pos, end = offset, min(offset + size, len(data))
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from(endian + "III", data, pos)
            nstart = pos + 12
            dstart = nstart + ((namesz + 3) & ~3)
            if data[nstart:nstart + namesz].rstrip(b"\0") == b"GNU" and ntype == 3:
                return data[dstart:dstart + descsz].hex()
            pos = dstart + ((descsz + 3) & ~3)
    return None


def linux_banner(data):
    """The release from the image's "Linux version X ..." banner, or None."""
    m = re.search(rb"Linux version (\d+\.\d+[^\s\x00]*)", data)
    return m.group(1).decode("ascii", "replace") if m else None


def embedded_config(data):
    """The .config text embedded by CONFIG_IKCONFIG=y, or None."""
    start = data.find(IKCFG_ST)
    if start < 0:
        return None
    blob = data[start + len(IKCFG_ST):]
    end = blob.find(IKCFG_ED)
    if end >= 0:
        blob = blob[:end]
    try:
        # The marker is followed directly by one gzip member.
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob).decode("utf-8",
                                                                                 "replace")
    except zlib.error:
        try:
            return gzip.decompress(blob).decode("utf-8", "replace")
        except (OSError, EOFError):
            return None


def parse_config(text):
    """{CONFIG_X: value} from .config text; `# CONFIG_X is not set` gives 'n'."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$", line)
        if m:
            values[m.group(1)] = m.group(2).strip('"')
            continue
        m = re.match(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$", line)
        if m:
            values[m.group(1)] = "n"
    return values


def find_config(vmlinux, data, given=None, release=None):
    """(text, where) of the kernel's configuration, or (None, why-not)."""
    if given:
        with open(given, encoding="utf-8", errors="replace") as f:
            return f.read(), given
    text = embedded_config(data)
    if text is not None:
        return text, "embedded in the image (CONFIG_IKCONFIG)"
    d = os.path.dirname(os.path.abspath(vmlinux))
    names = ["config", ".config"]
    if release:
        names += [f"config-{release}", os.path.join("..", "boot", f"config-{release}")]
    base = os.path.basename(vmlinux)
    if base.startswith("vmlinux-"):  # Debian's /boot/vmlinux-<release> next to config-<release>
        names.append("config-" + base[len("vmlinux-"):])
    for name in names:
        path = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read(), path
    return None, ("no configuration found: the image embeds none (CONFIG_IKCONFIG) and no "
                  f"{' / '.join(names)} lies beside it; pass --config FILE")


def find_debuginfo(vmlinux, data, given=None):
    """(path, why) of the DWARF drgn will use, or (None, why-not)."""
    if given:
        return given, "given (--debuginfo)"
    if ".debug_info" in elf_sections(data):
        return vmlinux, "the image itself has .debug_info"
    sibling = os.path.join(os.path.dirname(os.path.abspath(vmlinux)), "vmlinux.debug")
    if os.path.isfile(sibling):
        return sibling, "vmlinux.debug beside the image"
    return None, ("no debug info: the image has no .debug_info and no vmlinux.debug lies "
                  "beside it (drgn needs the DWARF: build with CONFIG_DEBUG_INFO_DWARF5 or "
                  "pass --debuginfo FILE)")


def traits_of(cases):
    traits = set()
    for case in cases:
        if case not in CASE_TRAITS:
            raise KeyError(case)
        traits |= CASE_TRAITS[case]
    return traits


def check_options(config, cases):
    """[(ok, option, have, want, why, needed_by)] for every requirement the cases have."""
    traits = traits_of(cases)
    rows = []
    for option, accepted, why, needed in REQUIREMENTS:
        if needed is not None and not (needed & traits):
            continue
        have = config.get(option, "n")
        users = sorted(c for c in cases if needed is None or needed & CASE_TRAITS[c])
        rows.append((have in accepted, option, have, "|".join(sorted(accepted)), why, users))
    if "smp" in traits:
        have = config.get("CONFIG_NR_CPUS", "1")
        ok = have.isdigit() and int(have) >= SMP_CPUS
        users = sorted(c for c in cases if "smp" in CASE_TRAITS[c])
        rows.append((ok, "CONFIG_NR_CPUS", have, f">={SMP_CPUS}", "the case runs 2 vCPUs", users))
    return rows


def check_kernel(vmlinux, cases, config_path=None, debuginfo=None):
    """All findings as a dict: {'ok': bool, 'problems': [...], 'info': {...}, 'options': [...]}."""
    problems, info = [], {"vmlinux": os.path.abspath(vmlinux), "cases": list(cases)}
    try:
        with open(vmlinux, "rb") as f:
            data = f.read()
    except OSError as e:
        raise KernelCheckError(f"cannot read {vmlinux}: {e.strerror}") from e
    hdr = read_elf_header(data)
    if hdr is None:
        problems.append(f"{vmlinux} is not an ELF file (our VMM loads a vmlinux ELF, not a "
                        "zImage or a compressed image)")
    elif hdr[:3] != (2, 1, EM_PPC64) or hdr[3] != ET_EXEC:
        problems.append(f"{vmlinux} is not a 64-bit little-endian ppc64 executable (ELF class "
                        f"{hdr[0]}, data {hdr[1]}, machine {hdr[2]}, type {hdr[3]})")
    release = linux_banner(data)
    info["release"] = release
    if release is None:
        problems.append(f"{vmlinux} has no 'Linux version' banner: not a Linux kernel image")
    info["build_id"] = build_id(data)

    text, where = find_config(vmlinux, data, config_path, release)
    info["config"] = where if text is not None else None
    options = []
    if text is None:
        problems.append(where)
    else:
        config = parse_config(text)
        for ok, option, have, want, why, users in check_options(config, cases):
            options.append({"option": option, "ok": ok, "have": have, "want": want, "why": why,
                            "cases": users})
            if not ok:
                problems.append(f"{option}={have}, needs {want}: {why} (cases: "
                                f"{', '.join(users)})")
    info["options"] = options

    dbg, why = find_debuginfo(vmlinux, data, debuginfo)
    info["debuginfo"] = dbg
    if dbg is None:
        problems.append(why)
    else:
        info["debuginfo_source"] = why
        with open(dbg, "rb") as f:
            dbg_data = f.read() if dbg != vmlinux else data
        if ".debug_info" not in elf_sections(dbg_data):
            problems.append(f"{dbg} has no .debug_info section (drgn needs the DWARF)")
        dbg_id = build_id(dbg_data)
        if info["build_id"] and dbg_id and dbg_id != info["build_id"]:
            problems.append(f"{dbg} belongs to another build (build ID {dbg_id}, the image has "
                            f"{info['build_id']})")
    info["has_debug_in_image"] = ".debug_info" in elf_sections(data)
    return {"ok": not problems, "problems": problems, "info": info}


def report(result, out=None):
    out = out or sys.stdout
    info = result["info"]
    print(f"kernel: {info['vmlinux']}", file=out)
    print(f"  release {info.get('release') or '?'}, build ID {info.get('build_id') or '?'}",
          file=out)
    print(f"  config: {info.get('config') or 'not found'}", file=out)
    print(f"  debug info: {info.get('debuginfo') or 'not found'}", file=out)
    for row in info.get("options", []):
        if row["ok"]:
            print(f"ok: {row['option']}={row['have']}", file=out)
    for problem in result["problems"]:
        print(f"MISSING: {problem}", file=out)
    verdict = "can run" if result["ok"] else "CANNOT run"
    print(f"kernel check: {verdict} {', '.join(info['cases'])}", file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmlinux", required=True)
    ap.add_argument("--config")
    ap.add_argument("--debuginfo")
    ap.add_argument("--cases", default="sysrq-2cpu")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASE_TRAITS]
    if unknown:
        print(f"kernel_check: unknown case(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        result = check_kernel(args.vmlinux, cases, args.config, args.debuginfo)
    except KernelCheckError as e:
        print(f"MISSING: {e}")
        return 1
    report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
