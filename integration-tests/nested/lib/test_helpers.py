"""Host-only tests of the nested helpers (no emulator, no cache needed).

    python3 -m unittest discover -s integration-tests/nested/lib -p 'test_*.py'

Needs cpio(1) and xz (python's lzma) on the host; runs on x86_64 by reading the host's own
ELF binaries.
"""
import gzip
import importlib.util
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import initramfs  # noqa: E402
import run_l1  # noqa: E402
import testenv  # noqa: E402

_spec = importlib.util.spec_from_file_location("minimal_rootfs",
                                               os.path.join(HERE, "minimal-rootfs.py"))
minimal_rootfs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(minimal_rootfs)


def cpio_listing(data):
    """`cpio -itv` of an archive as {path: first field (type+permissions)}, plus link targets."""
    out = subprocess.run(["cpio", "-itv", "--quiet"], input=data, capture_output=True,
                         check=True).stdout.decode()
    entries = {}
    for line in out.splitlines():
        fields = line.split()
        if "->" in fields:
            i = fields.index("->")
            entries[fields[i - 1]] = (fields[0], fields[i + 1])
        else:
            entries[fields[-1]] = (fields[0], None)
    return entries


class CpioTest(unittest.TestCase):
    def setUp(self):
        if not shutil.which("cpio"):
            testenv.skip_or_fail(self, "cpio(1) not installed")

    def build(self):
        c = initramfs.Cpio()
        c.add_file("init", b"#!/bin/sh\necho hi\n", 0o755)
        c.add_file("a/b/c.txt", b"x" * 5)  # odd length: exercises the 4-byte padding
        c.add_symlink("bin/sh", "busybox")
        c.add_chardev("dev/console", 5, 1)
        return c

    def test_entries_types_and_parents(self):
        listing = cpio_listing(self.build().bytes())
        self.assertEqual(listing["init"][0], "-rwxr-xr-x")
        self.assertEqual(listing["a/b/c.txt"][0], "-rw-r--r--")
        self.assertEqual(listing["a"][0], "drwxr-xr-x")
        self.assertEqual(listing["a/b"][0], "drwxr-xr-x")
        self.assertEqual(listing["bin/sh"], ("lrwxrwxrwx", "busybox"))
        self.assertEqual(listing["dev/console"][0], "crw-------")

    def test_contents_extract(self):
        with tempfile.TemporaryDirectory() as d:
            data = self.build().bytes()
            subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames", "a/b/c.txt",
                            "init"], input=data, cwd=d, check=True)
            with open(os.path.join(d, "a/b/c.txt"), "rb") as fh:
                self.assertEqual(fh.read(), b"xxxxx")
            with open(os.path.join(d, "init"), "rb") as fh:
                self.assertEqual(fh.read(), b"#!/bin/sh\necho hi\n")

    def test_reproducible_gzip(self):
        with tempfile.TemporaryDirectory() as d:
            a, b = os.path.join(d, "a.gz"), os.path.join(d, "b.gz")
            self.build().write(a, compress=True)
            self.build().write(b, compress=True)
            with open(a, "rb") as fa, open(b, "rb") as fb:
                da, db = fa.read(), fb.read()
            self.assertEqual(da, db)
            self.assertEqual(gzip.decompress(da), self.build().bytes())

    def test_add_tree_dereferences_symlinks(self):
        with tempfile.TemporaryDirectory() as d:
            src, ext = os.path.join(d, "payload"), os.path.join(d, "elsewhere")
            os.makedirs(src)
            os.makedirs(ext)
            with open(os.path.join(ext, "big.bin"), "wb") as fh:
                fh.write(b"\1\2\3")
            os.symlink(os.path.join(ext, "big.bin"), os.path.join(src, "linked.bin"))
            os.symlink(ext, os.path.join(src, "dir"))
            with open(os.path.join(src, "run.sh"), "w") as fh:
                fh.write("exit 0\n")
            os.chmod(os.path.join(src, "run.sh"), 0o755)
            c = initramfs.Cpio()
            c.add_tree(src, "payload")
            listing = cpio_listing(c.bytes())
            self.assertEqual(listing["payload/linked.bin"][0], "-rw-r--r--")
            self.assertEqual(listing["payload/dir/big.bin"][0], "-rw-r--r--")
            self.assertEqual(listing["payload/run.sh"][0], "-rwxr-xr-x")


class ModulesTest(unittest.TestCase):
    """stage_modules over a synthetic kernel package tree."""

    def make_tree(self, d, modules, builtin=()):
        kdir = os.path.join(d, "lib/modules/6.0.0-test")
        os.makedirs(os.path.join(kdir, "kernel/x"))
        for name, depends in modules.items():
            body = b"\x7fELF...\0license=GPL\0depends=" + depends.encode() + b"\0name=" + \
                name.encode() + b"\0"
            fname = name.replace("_", "-") + ".ko.xz"
            with open(os.path.join(kdir, "kernel/x", fname), "wb") as fh:
                fh.write(lzma.compress(body))
        with open(os.path.join(kdir, "modules.builtin"), "w") as fh:
            for b in builtin:
                fh.write(f"kernel/y/{b}.ko\n")
        return d

    def test_dependencies_first_builtin_skipped(self):
        with tempfile.TemporaryDirectory() as d:
            self.make_tree(d, {"kvm_hv": "kvm", "kvm": "", "virtio_blk": "virtio"},
                           builtin=["virtio"])
            order = initramfs.stage_modules(d, ["kvm-hv", "virtio_blk"])
            self.assertEqual([n for n, _ in order], ["kvm", "kvm_hv", "virtio_blk"])
            self.assertIn(b"depends=kvm\0", order[1][1])  # decompressed

    def test_unknown_module_raises(self):
        with tempfile.TemporaryDirectory() as d:
            self.make_tree(d, {"a": "missing_dep"})
            with self.assertRaises(KeyError):
                initramfs.stage_modules(d, ["a"])


class MinimalRootfsTest(unittest.TestCase):
    def test_elf_deps_of_host_binary(self):
        ls = shutil.which("ls")
        interp, needed = minimal_rootfs.elf_deps(os.path.realpath(ls))
        self.assertTrue(interp and interp.startswith("/lib"), interp)
        self.assertIn("libc.so.6", needed)

    def test_non_elf_is_none(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"#!/bin/sh\n")
            f.flush()
            self.assertIsNone(minimal_rootfs.elf_deps(f.name))

    def test_resolve_absolute_symlink_stays_in_tree(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "lib/arch"))
            os.makedirs(os.path.join(d, "lib64"))
            with open(os.path.join(d, "lib/arch/ld.so.2"), "w") as fh:
                fh.write("loader")
            # Absolute target: must be read against the tree, never the host's /lib.
            os.symlink("/lib/arch/ld.so.2", os.path.join(d, "lib64/ld64.so.2"))
            os.symlink("arch", os.path.join(d, "lib/alias"))
            self.assertEqual(minimal_rootfs.resolve(d, "lib64/ld64.so.2"), "lib/arch/ld.so.2")
            self.assertEqual(minimal_rootfs.resolve(d, "lib/alias/ld.so.2"), "lib/arch/ld.so.2")

    def test_copies_closure_from_tree(self):
        """Copy the host's own `ls` with its libraries out of / as if it were a package tree."""
        with tempfile.TemporaryDirectory() as d:
            ls = os.path.relpath(os.path.realpath(shutil.which("ls")), "/")
            multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                                       text=True).stdout.strip() if shutil.which("gcc") else ""
            multiarch = multiarch or f"{os.uname().machine}-linux-gnu"
            dirs = [f"lib/{multiarch}", f"usr/lib/{multiarch}", "lib64", "lib", "usr/lib"]
            opts = [a for d_ in dirs for a in ("--lib-dir", d_)]
            r = subprocess.run([sys.executable, os.path.join(HERE, "minimal-rootfs.py"), *opts,
                                "/", d, ls], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.isfile(os.path.join(d, ls)))
            found = [f for _r, _d, fs in os.walk(d) for f in fs]
            self.assertIn("libc.so.6", found)


class ExtractOutTest(unittest.TestCase):
    """The output disk image: a tar followed by zeros up to the disk size."""

    def disk(self, d, entries):
        import io
        import tarfile
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, kind, data in entries:
                info = tarfile.TarInfo(name)
                if kind == "file":
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                elif kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.type = tarfile.SYMTYPE
                    info.linkname = data
                    tar.addfile(info)
        img = os.path.join(d, "out.img")
        with open(img, "wb") as fh:
            fh.write(buf.getvalue())
            fh.truncate(4 << 20)  # the rest of the disk reads as zeros
        return img

    def test_files_come_back(self):
        with tempfile.TemporaryDirectory() as d:
            img = self.disk(d, [("./", "dir", None), ("./vmcore", "file", b"ELF" * 1000),
                                ("./logs", "dir", None), ("./logs/c.txt", "file", b"hi")])
            n = run_l1.extract_out(img, os.path.join(d, "o"))
            self.assertEqual(n, 4)
            with open(os.path.join(d, "o/vmcore"), "rb") as fh:
                self.assertEqual(fh.read(), b"ELF" * 1000)

    def test_escaping_names_and_links_refused(self):
        import tarfile
        for bad in [("../evil", "file", b"x"), ("/etc/evil", "file", b"x"),
                    ("./link", "sym", "/etc/passwd")]:
            with tempfile.TemporaryDirectory() as d:
                img = self.disk(d, [bad])
                with self.assertRaises(tarfile.ReadError):
                    run_l1.extract_out(img, os.path.join(d, "o"))
                self.assertFalse(os.path.exists(os.path.join(d, "evil")))


class QemuCommandTest(unittest.TestCase):
    """The L0 command line run_l1.py builds (boot-our-vmm.sh's runs depend on these)."""

    def args(self, **kw):
        import argparse
        base = dict(machine="pseries", smp=1, mem="4G", verbose=False, append="")
        base.update(kw)
        return argparse.Namespace(**base)

    def test_smp_mem_and_the_output_disk(self):
        cmd = run_l1.qemu_command(self.args(smp=2, mem="3G", append="nmi_watchdog=0"),
                                  "vmlinux", "initrd", "/r/export.img")
        self.assertEqual(cmd[cmd.index("-smp") + 1], "2")
        self.assertEqual(cmd[cmd.index("-m") + 1], "3G")
        self.assertIn("file=/r/export.img,format=raw,if=none,id=out,cache=unsafe", cmd)
        append = cmd[cmd.index("-append") + 1]
        self.assertEqual(append, "console=hvc0 panic=1 quiet nested.out=1 nmi_watchdog=0")

    def test_no_disk_no_out_flag(self):
        cmd = run_l1.qemu_command(self.args(machine="powernv"), "vmlinux", "initrd", None)
        self.assertNotIn("-drive", cmd)
        self.assertNotIn("nested.out=1", cmd[cmd.index("-append") + 1])
        self.assertEqual(cmd[cmd.index("-M") + 1], "powernv9")


if __name__ == "__main__":
    unittest.main()
