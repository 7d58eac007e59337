#!/usr/bin/env python3
"""Copy files out of an unpacked package tree together with the shared objects they need.

    minimal-rootfs.py [--lib-dir DIR]... SRC_TREE DEST_TREE PATH...

PATH is relative to SRC_TREE; missing non-ELF paths are skipped with a note (firmware files
differ between QEMU versions). For every ELF file, the program interpreter and the DT_NEEDED
closure are looked up by soname in the standard library directories of SRC_TREE and copied
as regular files (symlinks inside the tree are resolved against SRC_TREE, not the host).
Exits non-zero when a needed library cannot be found, naming it. --lib-dir (relative to
SRC_TREE, repeatable) replaces the default ppc64le search list.
"""
import os
import shutil
import struct
import sys

LIB_DIRS = [
    "lib/powerpc64le-linux-gnu",
    "usr/lib/powerpc64le-linux-gnu",
    "lib64",
    "lib",
    "usr/lib",
]


def resolve(root, rel, depth=0):
    """Path inside root that rel (relative to root) points to, following symlinks in-tree."""
    if depth > 40:
        raise RuntimeError(f"symlink loop at {rel}")
    parts = rel.strip("/").split("/")
    cur = ""
    for i, part in enumerate(parts):
        nxt = f"{cur}/{part}" if cur else part
        full = os.path.join(root, nxt)
        if os.path.islink(full):
            target = os.readlink(full)
            base = target.lstrip("/") if target.startswith("/") else os.path.normpath(
                os.path.join(cur, target))
            rest = "/".join(parts[i + 1:])
            return resolve(root, f"{base}/{rest}" if rest else base, depth + 1)
        cur = nxt
    return cur


def elf_deps(path):
    """(interpreter or None, [needed sonames]) of an ELF64 little-endian file, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dyn, interp = [], None, None
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dyn = (p_offset, p_filesz)
        elif p_type == 3:
            interp = data[p_offset:p_offset + p_filesz].split(b"\0")[0].decode()
    if dyn is None:
        return interp, []

    def off(vaddr):
        for va, fo, sz in loads:
            if va <= vaddr < va + sz:
                return fo + vaddr - va
        raise RuntimeError(f"{path}: address {vaddr:#x} not in a PT_LOAD")

    needed, strtab = [], None
    for i in range(dyn[1] // 16):
        tag, val = struct.unpack_from("<qQ", data, dyn[0] + i * 16)
        if tag == 0:
            break
        if tag == 1:
            needed.append(val)
        elif tag == 5:
            strtab = off(val)
    names = []
    for n in needed:
        end = data.index(b"\0", strtab + n)
        names.append(data[strtab + n:end].decode())
    return interp, names


def main():
    args = sys.argv[1:]
    lib_dirs = []
    while args and args[0] == "--lib-dir":
        lib_dirs.append(args[1].strip("/"))
        args = args[2:]
    lib_dirs = lib_dirs or LIB_DIRS
    src, dst, paths = args[0], args[1], args[2:]
    todo = list(paths)
    done = set()
    missing = []
    while todo:
        rel = todo.pop()
        if rel in done:
            continue
        done.add(rel)
        real = resolve(src, rel)
        full = os.path.join(src, real)
        if not os.path.isfile(full):
            print(f"minimal-rootfs: skipping missing {rel}", file=sys.stderr)
            continue
        out = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copy2(full, out)
        deps = elf_deps(full)
        if deps is None:
            continue
        interp, needed = deps
        if interp:
            todo.append(interp.lstrip("/"))
        for so in needed:
            for d in lib_dirs:
                cand = f"{d}/{so}"
                if os.path.isfile(os.path.join(src, resolve(src, cand))):
                    todo.append(cand)
                    break
            else:
                missing.append(f"{so} (needed by {rel})")
    if missing:
        print("minimal-rootfs: not found: " + ", ".join(sorted(set(missing))), file=sys.stderr)
        sys.exit(1)
    print(f"minimal-rootfs: {len(done)} paths", file=sys.stderr)


if __name__ == "__main__":
    main()
