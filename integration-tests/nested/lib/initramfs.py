"""Deterministic newc cpio writer and kernel-module staging for the nested initramfs images.

Written in Python rather than with cpio(1) so that archives are root-owned, carry device nodes
(/dev/console) without mknod, and are byte-identical for identical inputs (fixed mtimes,
sorted entries, sequential inode numbers).
"""
import gzip
import lzma
import os
import stat

MTIME = 1767225600  # fixed timestamp (2026-01-01) for reproducible archives


class Cpio:
    """Accumulates newc entries; write() emits them sorted by path with a trailer."""

    def __init__(self):
        self.entries = {}

    def _dirs(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.entries:
                self.entries[d] = (stat.S_IFDIR | 0o755, b"", 0, 0)

    def add_dir(self, path, mode=0o755):
        path = path.strip("/")
        self._dirs(path)
        self.entries[path] = (stat.S_IFDIR | mode, b"", 0, 0)

    def add_file(self, path, data, mode=0o644):
        path = path.strip("/")
        self._dirs(path)
        self.entries[path] = (stat.S_IFREG | mode, data, 0, 0)

    def add_symlink(self, path, target):
        path = path.strip("/")
        self._dirs(path)
        self.entries[path] = (stat.S_IFLNK | 0o777, target.encode(), 0, 0)

    def add_chardev(self, path, major, minor, mode=0o600):
        path = path.strip("/")
        self._dirs(path)
        self.entries[path] = (stat.S_IFCHR | mode, b"", major, minor)

    def add_tree(self, src, dest):
        """Copy a host directory tree to dest, dereferencing symlinks (payloads may link
        into the cache), keeping the executable bit."""
        dest = dest.strip("/")
        self.add_dir(dest)
        for root, dirs, files in os.walk(src, followlinks=True):
            rel = os.path.relpath(root, src)
            base = dest if rel == "." else f"{dest}/{rel}"
            for d in dirs:
                self.add_dir(f"{base}/{d}")
            for f in files:
                full = os.path.join(root, f)
                mode = 0o755 if os.access(full, os.X_OK) else 0o644
                with open(full, "rb") as fh:
                    self.add_file(f"{base}/{f}", fh.read(), mode)

    def bytes(self):
        out = bytearray()
        ino = 1
        for path in sorted(self.entries) + ["TRAILER!!!"]:
            if path == "TRAILER!!!":
                mode, data, rmaj, rmin = 0, b"", 0, 0
            else:
                mode, data, rmaj, rmin = self.entries[path]
            name = path.encode() + b"\0"
            fields = [ino, mode, 0, 0, 1, MTIME, len(data), 0, 0, rmaj, rmin, len(name), 0]
            if path == "TRAILER!!!":
                fields[0] = 0
                fields[5] = 0
            out += b"070701" + b"".join(b"%08X" % v for v in fields)
            out += name
            out += b"\0" * (-len(out) % 4)
            out += data
            out += b"\0" * (-len(out) % 4)
            ino += 1
        return bytes(out)

    def write(self, path, compress):
        data = self.bytes()
        if compress:
            data = gzip.compress(data, compresslevel=6, mtime=0)
        tmp = path + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return len(data)


def add_busybox(cpio, busybox_path):
    with open(busybox_path, "rb") as fh:
        cpio.add_file("bin/busybox", fh.read(), 0o755)
    cpio.add_symlink("bin/sh", "busybox")
    for d in ("dev", "proc", "sys", "tmp", "sbin", "usr/bin", "usr/sbin", "mnt", "out"):
        cpio.add_dir(d)
    cpio.add_chardev("dev/console", 5, 1)
    cpio.add_chardev("dev/null", 1, 3, 0o666)


def _modinfo_field(data, field):
    key = b"\0" + field.encode() + b"="
    i = data.find(key)
    if i < 0:
        return None
    end = data.index(b"\0", i + len(key))
    return data[i + len(key):end].decode()


def stage_modules(kernel_root, names):
    """Resolve NAMES (and their `depends=`) in the unpacked kernel package, decompress them.

    Returns [(module name, .ko bytes)] in load order (dependencies first). Modules that are
    built in (modules.builtin) are skipped; unknown modules raise.
    """
    moddir = os.path.join(kernel_root, "lib/modules")
    (kver,) = os.listdir(moddir)
    moddir = os.path.join(moddir, kver)
    index = {}
    for root, _dirs, files in os.walk(os.path.join(moddir, "kernel")):
        for f in files:
            if f.endswith(".ko") or f.endswith(".ko.xz"):
                index[f.split(".ko")[0].replace("-", "_")] = os.path.join(root, f)
    builtin = set()
    with open(os.path.join(moddir, "modules.builtin")) as fh:
        for line in fh:
            builtin.add(os.path.basename(line.strip()).split(".ko")[0].replace("-", "_"))
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in index:
            raise KeyError(f"module {name} not found under {moddir}")
        with open(index[name], "rb") as fh:
            data = fh.read()
        if index[name].endswith(".xz"):
            data = lzma.decompress(data)
        for dep in filter(None, (_modinfo_field(data, "depends") or "").split(",")):
            visit(dep)
        order.append((name, data))

    for n in names:
        visit(n)
    return order


def stage_modules_to_dir(kernel_root, names, out_dir):
    """stage_modules() into OUT_DIR: NAME.ko per module and `order` (load order, one a line),
    for a payload that loads modules itself (L1's base archive has only kvm-hv and virtio)."""
    os.makedirs(out_dir, exist_ok=True)
    order = []
    for name, data in stage_modules(kernel_root, names):
        with open(os.path.join(out_dir, name + ".ko"), "wb") as fh:
            fh.write(data)
        order.append(name)
    with open(os.path.join(out_dir, "order"), "w") as fh:
        fh.write("".join(n + "\n" for n in order))
    return order


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 5 or sys.argv[1] != "stage-modules":
        sys.exit("usage: initramfs.py stage-modules KERNEL_ROOT OUT_DIR MODULE...")
    stage_modules_to_dir(sys.argv[2], sys.argv[4:], sys.argv[3])
