"""Host-only tests of checks.py and the scenario tables (scenarios/*/checks.py): no emulator.

    python3 -m unittest discover -s integration-tests/nested/lib -p 'test_*.py'

Every scenario gets a console log written here as a passing run would print it; the test
asserts that every check passes on it, and that dropping or changing one line fails the check
that reads it (and only that one): a predicate that looked at the wrong line, or at none,
fails here.
"""

import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checks  # noqa: E402

NESTED = os.path.dirname(HERE)


def stamp(lines, step=1.0):
    return "".join(f"[{(i + 1) * step:8.3f}] {line}\n" for i, line in enumerate(lines))


L1_START = ["NESTED-PHASE l1-init uptime=1.0", "NESTED-PHASE kvm-hv-loaded uptime=2.0",
            "NESTED-PHASE payload-start"]


def vmm_start(cpus, extra=""):
    return (f"NESTED-PHASE l2-vmm-start uptime=3.0 args: --cpus {cpus} --memory 1G{extra} "
            "--cmdline 'console=hvc0 guest.action=commands'")


DRIVE = L1_START + [
    vmm_start(2),
    "Linux version 6.12.117 (ppc64le)",
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-READY",
    "NESTED-PHASE guest-ready-1 uptime=9.0",
    "GUEST-RUN: echo 0 > /sys/devices/system/cpu/cpu1/online && echo GUEST-CPU1-OFFLINE nproc=$(nproc)",
    "GUEST-CPU1-OFFLINE nproc=1",
    "GUEST-CPU1-ONLINE nproc=2",
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-READY",
    "NESTED-PHASE guest-ready-2 uptime=15.0",
    "NESTED-PHASE l2-vmm-exit status=0 uptime=16.0",
    "NESTED-PHASE peer-start uptime=17.0",
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-POWEROFF",
    "NESTED-PHASE peer-exit status=0 uptime=21.0",
    "NESTED-PHASE payload-end status=0",
    "NESTED-EXIT 0",
]

FADUMP = L1_START + [
    vmm_start(2, " --disk path=/dev/vda"),
    "Linux version 6.12.117",
    "fadump: Reserved 384MB of memory at 0x00000040000000 (System RAM: 1536MB)",
    "fadump: Registration is successful!",
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-READY",
    "NESTED-PHASE guest-ready-1 uptime=9.0",
    "GUEST-FADUMP-REGISTERED=1 GUEST-KEXEC-CRASH-LOADED=0",
    *[f"FADUMP-PATTERN seed=0x1234 page={i} vaddr=0x7fff0000 phys=0x3000{i}000"
      for i in range(4)],
    "GUEST-READY",
    "GUEST-CRASHING kind=sysrq",
    "sysrq: Trigger a crash",
    "fadump: dump written: status 0xc000, 2 CPUs saved",
    "fadump: phases: stop + registers 1.0 ms, dump 20.0 ms, reset 2.0 ms, "
    "capture boot set up 1.0 ms, total 24.0 ms",
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-VMCORE -r-------- 1 0 0 1207967744 /proc/vmcore",
    "GUEST-READY",
    "NESTED-PHASE guest-ready-2 uptime=30.0",
    "NESTED-PHASE crash-to-capture-init seconds=5.03",
    "GUEST-VMCORE-SAVED bytes=4096 t0=3.50 t1=44.75",
    "GUEST-READY",
    "GUEST-RELEASED",
    "GUEST-REREGISTERED registered=1 vmcore=gone",
    "GUEST-READY",
    "GUEST-PRODUCTION nproc=2 uptime=47.0",
    "GUEST-READY",
    "NESTED-PHASE l2-vmm-exit status=0 uptime=50.0",
]

UNREGISTERED = L1_START + [
    vmm_start(2, " --disk path=/dev/vda"),
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-READY",
    "GUEST-FADUMP-REGISTERED=absent GUEST-KEXEC-CRASH-LOADED=0",
    "GUEST-CRASHING kind=unregistered",
    "sysrq: Trigger a crash",
    "ppc-vmm: ibm,os-term with no dump registered: plain reboot",
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-READY",
    "GUEST-AFTER-REBOOT vmcore=none",
    "NESTED-PHASE l2-vmm-exit status=0 uptime=30.0",
]

# nmi-hung: the FADUMP run with every vCPU spinning and the VMM's NMI as the crash.
NMI_HUNG = [ln for ln in FADUMP if ln != "sysrq: Trigger a crash"]
NMI_HUNG = [ln.replace("kind=sysrq", "kind=nmi-hung") for ln in NMI_HUNG]
_i = NMI_HUNG.index("GUEST-CRASHING kind=nmi-hung") + 1
NMI_HUNG[_i:_i] = ["lkdtm: Performing direct entry HARDLOCKUP",
                   "lkdtm: Performing direct entry HARDLOCKUP",
                   "NESTED-NMI-SENT uptime=20.0 hardlockups=2",
                   "SIGUSR1: NMI requested",
                   "NMI: system reset delivered to vcpus [0, 1]"]

HOST_DUMP = L1_START + [
    vmm_start(2, " --on-crash host-dump=/dev/vda"),
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-READY",
    "GUEST-FADUMP-REGISTERED=absent GUEST-KEXEC-CRASH-LOADED=0",
    *[f"FADUMP-PATTERN seed=0x1234 page={i} vaddr=0x7fff0000 phys=0x3000{i}000"
      for i in range(4)],
    "GUEST-READY",
    "GUEST-CRASHING kind=host-dump",
    "lkdtm: Performing direct entry HARDLOCKUP",
    "lkdtm: Performing direct entry HARDLOCKUP",
    "SIGUSR1: NMI requested",
    "NMI: system reset delivered to vcpus [0, 1]",
    "vcpu 0: ibm,os-term with no dump registered: System Reset; rebooting without a guest dump",
    "host dump written: /dev/vda (4096 bytes, 65536 of 1610612736 RAM bytes non-zero, 2 vCPUs, "
    "vmcoreinfo 6.12.117; paused 900.0 ms)",
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-READY",
    "GUEST-AFTER-REBOOT vmcore=none",
    "NESTED-PHASE l2-vmm-exit status=0 uptime=30.0",
]

POWER_BUTTON = L1_START + [
    vmm_start(2),
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-READY",
    "GUEST-POWEROFF-HOOK -rwxr-xr-x 1 0 0 80 /sbin/poweroff",
    "NESTED-POWER-BUTTON uptime=12.0",
    "SIGUSR2: power button pressed",
    "power button pressed: EPOW shutdown event 1 queued for the guest",
    "Power off requested",
    "GUEST-ORDERLY-POWEROFF pid=77",
    "guest powered off",
    "NESTED-PHASE l2-vmm-exit status=0 uptime=20.0",
]

# analyze-vmcore.py's `cpu context` details for two CPUs, both through the spin.
DRGN_SPIN = """PASS: cpu context: 2/2 CPUs' saved registers agree with the dumped kernel
      cpu note 0: kernel mode, 9 frames, 9 named
        #0  crash_fadump (arch/powerpc/kernel/fadump.c:700:3)
        #5  lkdtm_HARDLOCKUP (drivers/misc/lkdtm/bugs.c:300:3)
      cpu note 1: kernel mode, 8 frames, 8 named
        #0  nmi_stop_this_cpu (arch/powerpc/kernel/smp.c:600:3)
        #4  lkdtm_HARDLOCKUP (drivers/misc/lkdtm/bugs.c:300:3)
PASS: pattern: 4 pages read back
"""

KDUMP = L1_START + [
    vmm_start(2, " --disk path=/dev/vda"),
    "Reserving 256MB of memory at 128MB for crashkernel (System RAM: 1536MB)",
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-KDUMP-LOADED crash_loaded=1 t0=1.0 t1=2.0 append='console=hvc0'",
    "GUEST-READY",
    "GUEST-FADUMP-REGISTERED=absent GUEST-KEXEC-CRASH-LOADED=1",
    *[f"FADUMP-PATTERN seed=0x1234 page={i} vaddr=0x7fff0000 phys=0x3000{i}000"
      for i in range(4)],
    "GUEST-CRASHING kind=kdump",
    "sysrq: Trigger a crash",
    "GUEST-INIT-REACHED nproc=1 kernel=6.12.117 uptime=1.0",
    "GUEST-VMCORE -r-------- 1 0 0 1207967744 /proc/vmcore",
    "GUEST-READY",
    "GUEST-VMCORE-SAVED bytes=4096 t0=3.50 t1=44.75",
    "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
    "GUEST-KDUMP-LOADED crash_loaded=1 t0=1.0 t1=2.0 append='console=hvc0'",
    "GUEST-READY",
    "GUEST-PRODUCTION nproc=2 uptime=9.0 kexec_crash_loaded=1 vmcore=none",
    "NESTED-PHASE l2-vmm-exit status=0 uptime=80.0",
]


def disk_log():
    d = sys.modules["scenario_disk"] if "scenario_disk" in sys.modules else checks.load_scenario("disk")
    s = d.SUM
    bench = "GUEST-DISKBENCH dev=/dev/vdc round={} bytes=67108864 write_s=1 read_s=1 " \
            "write_MBps={} read_MBps={}"
    return L1_START + [
        "NESTED-DISKS-CREATED ro-sum-before=abc123 uptime=2.5",
        vmm_start(2, " --disk path=/tmp/disk0.img"),
        "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
        "GUEST-READY",
        "GUEST-DEV brw------- 1 0 0 254, 0 /dev/vda",
        "GUEST-DEV brw------- 1 0 0 254, 16 /dev/vdb",
        "GUEST-RUN: ... echo GUEST-RO-WRITE-REFUSED: $(head -n1 /tmp/err); fi",
        f"GUEST-DATA size={d.SIZE} sum={s}",
        f"GUEST-VDA-WRITTEN sum={s}",
        "GUEST-VDB-MARKER RO-DISK-MARKER",
        "GUEST-RO-WRITE-REFUSED: dd: error writing '/dev/vdb': Operation not permitted",
        "GUEST-VDB-RO-ATTR 1",
        bench.format(1, 50.0, 80.0), bench.format(2, 40.0, 90.0), bench.format(3, 60.0, 70.0),
        "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
        f"GUEST-VDA-AFTER-REBOOT sum={s}",
        "NESTED-PHASE l2-vmm-exit status=0 uptime=40.0",
        f"NESTED-BACKING-FILE sum={s}",
        "NESTED-RO-BACKING ro-sum-after=abc123",
        "NESTED-PHASE peer-start uptime=45.0",
        "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
        bench.format(1, 100.0, 160.0), bench.format(2, 100.0, 160.0), bench.format(3, 100.0, 160.0),
        "NESTED-PHASE peer-exit status=0 uptime=55.0",
    ]


class ChecksTestBase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="nested-checks-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def run_dir(self, mode, crash="sysrq", cpus=2, cmdline="console=hvc0 guest.action=commands",
                extra_args="", files=None):
        d = tempfile.mkdtemp(dir=self.tmp)
        settings = {"vmm-mode": mode, "vmm-crash": crash, "vmm-which": "ours",
                    "vmm-args": f"--kernel /payload/guest/vmlinux --cpus {cpus} --memory 1G"
                                f"{extra_args}",
                    "vmm-cmdline": cmdline, "guest-kernel": os.path.join(d, "vmlinux")}
        for name, text in {**settings, **(files or {})}.items():
            mode_ = "wb" if isinstance(text, bytes) else "w"
            with open(os.path.join(d, name), mode_) as f:
                f.write(text)
        return d

    def evaluate(self, run_dir, lines):
        """[(name, passed)] and the printed text, with drgn stubbed (status 0)."""
        out = io.StringIO()
        run = checks.Run(run_dir, console=stamp(lines), out=lambda s="": out.write(s + "\n"))
        with mock.patch.object(checks, "analyze_vmcore", return_value=0):
            results = checks.check_run(run)
        return results, out.getvalue()

    def assert_all_pass(self, results):
        failed = [n for n, ok in results if not ok]
        self.assertEqual(failed, [], "checks failed on the passing log")
        self.assertTrue(results)

    def assert_only_failure(self, results, fragment):
        failed = [n for n, ok in results if not ok]
        self.assertEqual(len(failed), 1, f"expected only a failure about {fragment!r}: {failed}")
        self.assertIn(fragment, failed[0])


def without(lines, fragment):
    out = [ln for ln in lines if fragment not in ln]
    assert len(out) < len(lines), fragment
    return out


def replaced(lines, old, new):
    out = [ln.replace(old, new) for ln in lines]
    assert out != lines, old
    return out


class DriveChecksTest(ChecksTestBase):
    def test_passing_log(self):
        results, text = self.evaluate(self.run_dir("drive"), DRIVE)
        self.assert_all_pass(results)
        self.assertIn("PASS: nproc = 2", text)
        self.assertIn("PASS: VMM exited 0 on guest power-off", text)
        self.assertIn("ratio ours/QEMU", text)

    def test_each_line_is_read(self):
        d = self.run_dir("drive")
        cases = [
            (without(DRIVE, "GUEST-CPU1-OFFLINE nproc=1"), "cpu1 offline"),
            (without(DRIVE, "GUEST-CPU1-ONLINE"), "cpu1 offline"),
            (replaced(DRIVE, "l2-vmm-exit status=0", "l2-vmm-exit status=1"), "VMM exited 0"),
        ]
        for lines, fragment in cases:
            with self.subTest(fragment):
                self.assert_only_failure(self.evaluate(d, lines)[0], fragment)

    def test_nproc_follows_cpus(self):
        # Three vCPUs asked for, the guest saw two: nproc and the hotplug check both fail.
        results, _ = self.evaluate(self.run_dir("drive", cpus=3), DRIVE)
        failed = [n for n, ok in results if not ok]
        self.assertIn("nproc = 3", failed)
        self.assertEqual(len(failed), 2)

    def test_one_boot_is_not_two(self):
        lines = [ln for ln in DRIVE if "GUEST-INIT-REACHED" not in ln][:]
        lines.insert(5, "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0")
        results, _ = self.evaluate(self.run_dir("drive"), lines)
        self.assertIn(("guest reached init twice (boot + reboot)", False), results)


class FadumpChecksTest(ChecksTestBase):
    def crash_dir(self, crash="sysrq", core=b"\x7fELF\x02\x01\x01" + bytes(4089),
                  extra_args=" --disk path=/dev/vda"):
        return self.run_dir("crash", crash=crash,
                            cmdline="console=hvc0 guest.action=commands fadump=on crashkernel=384M",
                            extra_args=extra_args,
                            files={"export.img": core, "vmlinux.debug": b""})

    def test_passing_log_cuts_the_vmcore_and_runs_drgn(self):
        d = self.crash_dir()
        results, text = self.evaluate(d, FADUMP)
        self.assert_all_pass(results)
        names = [n for n, _ in results]
        self.assertIn("drgn analysis of the vmcore", names)
        self.assertIn("boot memory sized by crashkernel=384M (reserved 384 MB)", names)
        self.assertIn("VMM preserved the dump (status 0xc000, 2 CPUs)", names)
        with open(os.path.join(d, "vmcore"), "rb") as f:
            self.assertEqual(len(f.read()), 4096)
        # The lines fadump_matrix.py and a reader look for.
        self.assertIn("== fadump phases", text)
        self.assertIn("crash -> back in production: ", text)
        self.assertIn("NESTED-PHASE crash-to-capture-init seconds=5.03", text)
        self.assertNotIn("== kdump phases", text)

    def test_each_line_is_read(self):
        d = self.crash_dir()
        cases = [
            (without(FADUMP, "Registration is successful"), "registered fadump"),
            (replaced(FADUMP, "GUEST-FADUMP-REGISTERED=1", "GUEST-FADUMP-REGISTERED=0"),
             "registered fadump"),
            (without(FADUMP, "page=3 "), "pattern pages"),
            (replaced(FADUMP, "2 CPUs saved", "1 CPUs saved"), "VMM preserved the dump"),
            (without(FADUMP, "GUEST-VMCORE -r"), "capture kernel sees the dump"),
            (without(FADUMP, "GUEST-REREGISTERED"), "release_mem"),
            (without(FADUMP, "GUEST-PRODUCTION"), "back in production"),
            (replaced(FADUMP, "Reserved 384MB", "Reserved 256MB"), "boot memory sized"),
            (FADUMP[:8] + ["NESTED-UNEXPECTED-REBOOT before the sysrq crash"] + FADUMP[8:],
             "ran until the requested crash"),
        ]
        for lines, fragment in cases:
            with self.subTest(fragment):
                self.assert_only_failure(self.evaluate(d, lines)[0], fragment)

    def test_no_vmcore_saved(self):
        results, _ = self.evaluate(self.crash_dir(), without(FADUMP, "GUEST-VMCORE-SAVED"))
        failed = [n for n, ok in results if not ok]
        self.assertEqual(failed, ["capture kernel saved /proc/vmcore to the virtio-blk disk"])
        # No vmcore: neither the ELF check nor drgn ran.
        self.assertNotIn("drgn analysis of the vmcore", [n for n, _ in results])

    def test_not_an_elf_core(self):
        results, _ = self.evaluate(self.crash_dir(core=bytes(4096)), FADUMP)
        self.assert_only_failure(results, "ELF64 core")

    def test_drgn_failure_and_absence(self):
        d = self.crash_dir()
        run = checks.Run(d, console=stamp(FADUMP), out=lambda s="": None)
        with mock.patch.object(checks, "analyze_vmcore", return_value=1):
            self.assert_only_failure(checks.check_run(run), "drgn analysis of the vmcore")
        os.remove(os.path.join(d, "vmlinux.debug"))
        run = checks.Run(d, console=stamp(FADUMP), out=lambda s="": None)
        self.assert_only_failure(checks.check_run(run), "drgn analysis not available")

    def test_hash_guest_needs_the_hpte_line(self):
        d = self.crash_dir(extra_args=" --disk path=/dev/vda --mmu hash")
        self.assert_only_failure(self.evaluate(d, FADUMP)[0], "HPTE section")
        self.assert_all_pass(self.evaluate(d, FADUMP + ["fadump: HPTE section verified"])[0])

    def test_second_crash(self):
        d = self.crash_dir(crash="second")
        i = FADUMP.index("NESTED-PHASE guest-ready-2 uptime=30.0") + 1
        lines = FADUMP[:i] + [
            "GUEST-SECOND-CRASH", "sysrq: Trigger a crash",
            "ppc-vmm: ibm,os-term with no dump registered: plain reboot",
            "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
            "GUEST-VMCORE -r-------- 1 0 0 1207967744 /proc/vmcore", "GUEST-READY"] + FADUMP[i:]
        self.assert_all_pass(self.evaluate(d, lines)[0])
        # The same log without the second boot: the second-crash checks and "back in
        # production" (which counts 3 boots here) fail.
        results, _ = self.evaluate(d, FADUMP)
        failed = [n for n, ok in results if not ok]
        self.assertIn("second crash before release: the guest boots again", failed)
        self.assertIn("back in production without another reboot", failed)

    def test_passing_run_drops_the_export_image(self):
        d = self.crash_dir()
        run = checks.Run(d, console=stamp(FADUMP), out=lambda s="": None)
        scenario = checks.load_scenario("crash")
        with mock.patch.object(checks, "analyze_vmcore", return_value=0):
            results = checks.check_run(run, scenario)
        scenario.after(run, all(ok for _n, ok in results))
        self.assertFalse(os.path.exists(os.path.join(d, "export.img")))
        self.assertTrue(os.path.exists(os.path.join(d, "vmcore")))
        # --recheck afterwards reuses the vmcore.
        self.assert_all_pass(self.evaluate(d, FADUMP)[0])


class NmiHostDumpPowerButtonChecksTest(ChecksTestBase):
    def nmi_dir(self, crash, cmdline, extra_args, drgn=DRGN_SPIN):
        return self.run_dir("crash", crash=crash, cmdline=cmdline, extra_args=extra_args,
                            files={"export.img": b"\x7fELF\x02\x01\x01" + bytes(4089),
                                   "vmlinux.debug": b"", "drgn.txt": drgn})

    def test_nmi_hung(self):
        d = self.nmi_dir("nmi-hung", "console=hvc0 guest.action=commands fadump=on crashkernel=384M",
                         " --disk path=/dev/vda")
        results, _ = self.evaluate(d, NMI_HUNG)
        self.assert_all_pass(results)
        names = [n for n, _ in results]
        self.assertIn("drgn shows every CPU where it spun (lkdtm_HARDLOCKUP in the traces of 2 "
                      "of 2 CPU notes)", names)
        self.assert_only_failure(
            self.evaluate(d, replaced(NMI_HUNG, "vcpus [0, 1]", "vcpus [0]"))[0], "delivered the NMI")
        lines = list(NMI_HUNG)
        lines.remove("lkdtm: Performing direct entry HARDLOCKUP")
        self.assert_only_failure(self.evaluate(d, lines)[0], "spun with interrupts off")
        one = self.nmi_dir("nmi-hung", "console=hvc0 guest.action=commands fadump=on crashkernel=384M",
                           " --disk path=/dev/vda",
                           drgn=DRGN_SPIN.replace("#4  lkdtm_HARDLOCKUP", "#4  do_idle"))
        self.assert_only_failure(self.evaluate(one, NMI_HUNG)[0], "drgn shows every CPU")

    def test_host_dump(self):
        d = self.nmi_dir("host-dump", "console=hvc0 guest.action=commands",
                         " --on-crash host-dump=/dev/vda")
        results, _ = self.evaluate(d, HOST_DUMP)
        self.assert_all_pass(results)
        names = [n for n, _ in results]
        self.assertIn("drgn analysis of the vmcore", names)
        self.assertNotIn("capture kernel saved /proc/vmcore to the virtio-blk disk", names)
        with open(os.path.join(d, "vmcore"), "rb") as f:
            self.assertEqual(len(f.read()), 4096, "cut at the size the VMM wrote")
        self.assert_only_failure(
            self.evaluate(d, replaced(HOST_DUMP, "2 vCPUs, vmcoreinfo 6.12.117",
                                      "2 vCPUs, vmcoreinfo none"))[0], "VMCOREINFO")
        self.assert_only_failure(self.evaluate(d, without(HOST_DUMP, "GUEST-AFTER-REBOOT"))[0],
                                 "rebooted after the dump")

    def test_power_button(self):
        d = self.run_dir("crash", crash="power-button")
        results, text = self.evaluate(d, POWER_BUTTON)
        self.assert_all_pass(results)
        self.assertNotIn("drgn", text)
        for fragment, name in [("EPOW shutdown event", "EPOW shutdown event"),
                               ("Power off requested", "Power off requested"),
                               ("GUEST-ORDERLY-POWEROFF", "ran its poweroff"),
                               ("guest powered off", "RTAS power-off")]:
            with self.subTest(fragment):
                self.assert_only_failure(self.evaluate(d, without(POWER_BUTTON, fragment))[0], name)
        self.assert_only_failure(
            self.evaluate(d, replaced(POWER_BUTTON, "exit status=0", "exit status=1"))[0],
            "VMM exited 0 on guest power-off")


class UnregisteredAndKdumpChecksTest(ChecksTestBase):
    def test_unregistered(self):
        d = self.run_dir("crash", crash="unregistered")
        results, text = self.evaluate(d, UNREGISTERED)
        self.assert_all_pass(results)
        self.assertNotIn("drgn", text)
        self.assert_only_failure(
            self.evaluate(d, UNREGISTERED + ["fadump: dump written: status 0xc000, 2 CPUs saved"])[0],
            "VMM wrote no dump")
        self.assert_only_failure(self.evaluate(d, without(UNREGISTERED, "os-term"))[0],
                                 "plain reboot")
        self.assert_only_failure(
            self.evaluate(d, replaced(UNREGISTERED, "vmcore=none", "vmcore=/proc/vmcore"))[0],
            "no /proc/vmcore")

    def test_unregistered_under_qemu_skips_our_vmm_log(self):
        d = self.run_dir("crash", crash="unregistered", files={"vmm-which": "qemu-sid"})
        results, _ = self.evaluate(d, without(UNREGISTERED, "os-term"))
        self.assert_all_pass(results)

    def test_kdump(self):
        d = self.run_dir("crash", crash="kdump",
                         cmdline="console=hvc0 guest.action=commands crashkernel=256M guest.kdump=1",
                         files={"export.img": b"\x7fELF\x02" + bytes(4091), "vmlinux.debug": b""})
        results, text = self.evaluate(d, KDUMP)
        self.assert_all_pass(results)
        self.assertIn("== kdump phases", text)
        self.assertIn("crashkernel=256M reserved for the kdump kernel", [n for n, _ in results])
        cases = [
            (replaced(KDUMP, "Reserving 256MB", "Reserving 128MB"), "crashkernel=256M reserved"),
            (KDUMP + ["fadump: Registration is successful!"], "no fadump"),
            (replaced(KDUMP, "nproc=1 kernel", "nproc=2 kernel"), "kdump kernel booted"),
            (replaced(KDUMP, "kexec_crash_loaded=1", "kexec_crash_loaded=0"), "crash kernel loaded again"),
        ]
        for lines, fragment in cases:
            with self.subTest(fragment):
                self.assert_only_failure(self.evaluate(d, lines)[0], fragment)


class DiskChecksTest(ChecksTestBase):
    def disk_dir(self, image=None):
        d = checks.load_scenario("disk")
        return self.run_dir("disk", extra_args=" --disk path=/tmp/disk0.img",
                            files={"export.img": d.PATTERN + bytes(100) if image is None else image})

    def test_passing_log(self):
        results, text = self.evaluate(self.disk_dir(), disk_log())
        self.assert_all_pass(results)
        # Medians: ours write 50, read 80; QEMU 100 and 160.
        self.assertIn("write ours 50.0 QEMU 100.0, read ours 80.0 QEMU 160.0", text)
        self.assertIn("throughput ratio ours/QEMU: write 0.50, read 0.50", text)

    def test_each_line_is_read(self):
        d = self.disk_dir()
        log = disk_log()
        cases = [
            (without(log, "GUEST-DEV brw------- 1 0 0 254, 16"), "/dev/vdb"),
            (without(log, "GUEST-VDA-WRITTEN"), "written to /dev/vda"),
            (without(log, "GUEST-VDB-MARKER"), "shows its marker"),
            # The echoed command line holds the words too; only the real line counts.
            (without(log, "Operation not permitted"), "refuses the write"),
            (log + ["GUEST-RO-WRITE-ACCEPTED"], "refuses the write"),
            (without(log, "GUEST-VDA-AFTER-REBOOT"), "after a reboot"),
            (without(log, "NESTED-BACKING-FILE"), "L1 backing file"),
            (replaced(log, "ro-sum-after=abc123", "ro-sum-after=abc124"), "read-only backing file"),
            (log + ["GUEST-DISKBENCH-ERROR write"], "direct-I/O rounds"),
        ]
        for lines, fragment in cases:
            with self.subTest(fragment):
                self.assert_only_failure(self.evaluate(d, lines)[0], fragment)

    def test_host_copy_differs(self):
        results, _ = self.evaluate(self.disk_dir(image=b"nothing"), disk_log())
        self.assert_only_failure(results, "on the x86 host")

    def test_without_peer(self):
        log = disk_log()
        log = log[:log.index("NESTED-PHASE peer-start uptime=45.0")]
        results, text = self.evaluate(self.disk_dir(), log)
        self.assert_all_pass(results)
        self.assertNotIn("under QEMU 7.2", "".join(n for n, _ in results))
        self.assertNotIn("throughput ratio", text)


def disk_fault_log(kind):
    """FADUMP with the disk failing during the first save (disk-enospc / disk-eio), as run.sh
    prints it: the fault set up, armed (eio), the failed attempt, the VMM alive, the dump
    still there, the fault cleared, the retry, (enospc) the copy onto the export disk."""
    errno = {"enospc": "No space left on device (os error 28)",
             "eio": "Input/output error (os error 5)"}[kind]
    setup = {"enospc": "NESTED-FAULT-SETUP enospc tmpfs=256M file=/mnt/fault/disk.img "
                       "bytes=2147483648 free_kb=262144",
             "eio": 'NESTED-FAULT-SETUP eio dmsetup=1.02.185 table="0 8388608 linear 254:0 0" '
                    "node=block"}[kind]
    cleared = {"enospc": "NESTED-FAULT-CLEARED enospc free_kb=1310720",
               "eio": 'NESTED-FAULT-CLEARED eio table="0 8388608 linear 254:0 0"'}[kind]
    lines = [ln.replace("kind=sysrq", f"kind=disk-{kind}") for ln in FADUMP]
    lines.insert(len(L1_START), setup)
    i = lines.index("GUEST-VMCORE-SAVED bytes=4096 t0=3.50 t1=44.75")
    fault = ([] if kind == "enospc" else ["NESTED-FAULT-ARMED eio written_sectors=131072 uptime=70.1"])
    fault += [
        "GUEST-RUN: sz=$(stat -c %s /proc/vmcore); ... echo GUEST-SAVE-ATTEMPT n=1 rc=$rc bytes=$sz",
        "blk_print_req_error: 1 callbacks suppressed",
        "I/O error, dev vda, sector 524288 op 0x1:(WRITE) flags 0x4000 phys_seg 254 prio class 2",
        "Buffer I/O error on dev vda, logical block 65536, lost async page write",
        f"WARN ppc-vmm: virtio-blk: host I/O failed, request completed with IOERR (1 so far): "
        f"host I/O error: {errno}",
        f"WARN ppc-vmm: virtio-blk: host I/O failed, request completed with IOERR (37 so far): "
        f"host I/O error: {errno}",
        "GUEST-DD dd: fsync: Input/output error",
        "GUEST-SAVE-ATTEMPT n=1 rc=1 bytes=4096 t0=3.50 t1=30.25 ioerr_lines=12",
        "GUEST-READY",
    ]
    # (dmsetup prints a target without parameters with a trailing space.)
    fault += ([] if kind == "enospc" else ['NESTED-FAULT-TABLE during="0 8388608 error "'])
    fault += [
        "NESTED-FAULT-VMM-ALIVE pid=321 state=S threads=9 exited=no",
        "NESTED-API-DISK-ERRORS capture host_io_errors=0",
        "NESTED-API-DISK-ERRORS fault host_io_errors=912",
        "GUEST-VMCORE-AFTER-FAULT bytes=4096 registered=0",
        "GUEST-READY",
        cleared,
        "GUEST-SAVE-ATTEMPT n=2 rc=0 bytes=4096 t0=40.00 t1=80.25 ioerr_lines=12",
    ]
    lines[i:i + 1] = fault + ["GUEST-VMCORE-SAVED bytes=4096 t0=40.00 t1=80.25"]
    lines.append("NESTED-API-FADUMP fault state=dump-active")
    if kind == "enospc":
        lines.append("NESTED-FAULT-EXPORTED bytes=4096 status=0")
    return lines


class DiskFaultChecksTest(ChecksTestBase):
    """disk-enospc / disk-eio: every fault line is read, and a save that never failed, a VMM
    that died, a dump that went away or a retry that failed each fail their check."""

    def fault_dir(self, kind):
        return self.run_dir("crash", crash=f"disk-{kind}",
                            cmdline="console=hvc0 guest.action=commands fadump=on crashkernel=384M",
                            extra_args=" --disk path=/mnt/fault/disk.img",
                            files={"export.img": b"\x7fELF\x02\x01\x01" + bytes(4089),
                                   "vmlinux.debug": b""})

    def test_passing_logs(self):
        for kind in ("enospc", "eio"):
            with self.subTest(kind):
                results, text = self.evaluate(self.fault_dir(kind), disk_fault_log(kind))
                self.assert_all_pass(results)
                names = [n for n, _ in results]
                self.assertIn("the retry saved the whole vmcore (dd status 0, same size)", names)
                self.assertIn("drgn analysis of the vmcore", names)
                self.assertIn("ratio failed/retry 0.66", text)
                self.assertIn("the VMM counted 912 failed host requests", text)

    def test_each_line_is_read(self):
        common = [
            (lambda ls: without(ls, "NESTED-FAULT-SETUP"), "was set up in L1"),
            (lambda ls: replaced(ls, "n=1 rc=1", "n=1 rc=0"), "first save failed"),
            (lambda ls: without(ls, "I/O error, dev vda"), "saw I/O errors"),
            (lambda ls: replaced(ls, "ioerr_lines=12", "ioerr_lines=0"), "saw I/O errors"),
            (lambda ls: without(ls, "host I/O failed"), "completed requests with IOERR"),
            (lambda ls: without(ls, "DISK-ERRORS fault"), "completed requests with IOERR"),
            (lambda ls: replaced(ls, "fault host_io_errors=912", "fault host_io_errors=0"),
             "completed requests with IOERR"),
            (lambda ls: replaced(ls, "capture host_io_errors=0", "capture host_io_errors=3"),
             "completed requests with IOERR"),
            (lambda ls: without(ls, "NESTED-FAULT-VMM-ALIVE"), "kept running"),
            (lambda ls: replaced(ls, "exited=no", "exited=137"), "kept running"),
            (lambda ls: replaced(ls, "fault state=dump-active", "fault state="), "kept running"),
            (lambda ls: replaced(ls, "AFTER-FAULT bytes=4096", "AFTER-FAULT bytes=gone"),
             "stayed in guest memory"),
            (lambda ls: without(ls, "NESTED-FAULT-CLEARED"), "the fault cleared"),
        ]
        only = {"enospc": [(lambda ls: without(ls, "NESTED-FAULT-EXPORTED"), "copied from L1's tmpfs"),
                           (lambda ls: replaced(ls, "os error 28", "os error 5"),
                            "completed requests with IOERR")],
                "eio": [(lambda ls: without(ls, "NESTED-FAULT-ARMED"), "table was `error`"),
                        (lambda ls: without(ls, "NESTED-FAULT-TABLE"), "table was `error`"),
                        (lambda ls: replaced(ls, "os error 5", "os error 28"),
                         "completed requests with IOERR")]}
        for kind in ("enospc", "eio"):
            d = self.fault_dir(kind)
            for change, fragment in common + only[kind]:
                with self.subTest(kind=kind, fragment=fragment):
                    self.assert_only_failure(self.evaluate(d, change(disk_fault_log(kind)))[0],
                                             fragment)

    def test_a_failed_retry_saves_nothing(self):
        lines = [ln for ln in disk_fault_log("eio") if not ln.startswith("GUEST-VMCORE-SAVED")]
        lines = replaced(lines, "n=2 rc=0", "n=2 rc=1")
        results, _ = self.evaluate(self.fault_dir("eio"), lines)
        failed = [n for n, ok in results if not ok]
        self.assertEqual(failed, ["capture kernel saved /proc/vmcore to the virtio-blk disk",
                                  "the retry saved the whole vmcore (dd status 0, same size)"])


def soak_log(cycles=2, reboots=3, rss=None, fds=None, threads=None, header_corrupted=False,
             guest=None, maps=None):
    """A soak run as L1 prints it: CYCLES fadump cycles, then REBOOTS reboots, one NESTED-SOAK
    sample after each. RSS (outside guest RAM) / FDS / THREADS / GUEST (RSS of guest RAM) /
    MAPS ((count, kB) of guest RAM mappings): functions (kind, n) -> value."""
    rss = rss or (lambda kind, n: 32000)
    fds = fds or (lambda kind, n: 50)
    threads = threads or (lambda kind, n: 5)
    guest = guest or (lambda kind, n: 540000)
    maps = maps or (lambda kind, n: (1, 1572864))

    def sample(kind, n):
        host, g, (nmaps, map_kb) = rss(kind, n), guest(kind, n), maps(kind, n)
        return (f"NESTED-SOAK {kind} n={n} rss_kb={g + host} guest_rss_kb={g} "
                f"host_rss_kb={host} guest_maps={nmaps} guest_map_kb={map_kb} fds={fds(kind, n)} "
                f"threads={threads(kind, n)} uptime={100.0 + n * 5:.2f}")
    lines = L1_START + [
        vmm_start(2, " --disk path=/dev/vda"),
        "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0", "GUEST-READY",
        "NESTED-PHASE guest-ready-1 uptime=9.0", sample("start", 0),
        "NESTED-SOAK-THREADS start ppc-vmm*1,vcpu0*1,vcpu1*1"]
    for c in range(1, cycles + 1):
        seed = f"{0x1000 + c:x}"
        lines += [
            f"GUEST-RUN: echo GUEST-SOAK-CYCLE n={c} registered=$(cat /sys/kernel/fadump/registered)",
            f"GUEST-SOAK-CYCLE n={c} registered=1",
            *[f"FADUMP-PATTERN seed=0x{seed} page={i} vaddr=0x7fff0000 phys=0x3000{i}000 "
              "pagesize=4096" for i in range(4)],
            f"FADUMP-PATTERN-READY pages=4 seed=0x{seed}", "GUEST-READY",
            f"GUEST-CRASHING kind=soak cycle={c}", "sysrq: Trigger a crash",
            "fadump: dump written: status 0xc000, 2 CPUs saved, 402653184 bytes preserved",
            "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0",
            *(["fadump: Fadump header is corrupted."] if header_corrupted and c == cycles else []),
            "GUEST-VMCORE-NOTES prstatus=2 pid=0,0 nip=0xc00000000003bce0,0x1000c170",
            "GUEST-READY", f"NESTED-SOAK-CTC cycle={c} seconds={3 + c / 10:.2f}",
            f"GUEST-SOAK-HDRPAGE cycle={c} when=capture addr=0x30001000 flags=0x0000000100000000 reserved=1",
            "GUEST-READY",
            f"GUEST-SAVE cycle={c} VMCORE-SAVE-DONE read=4096 written=4096 blocks=1 zero_blocks=0 "
            f"offset={(c - 1) * 1600 << 20}",
            f"GUEST-VMCORE-SAVED cycle={c} bytes=4096 offset={(c - 1) * 1600 << 20} t0=2.0 t1={7 + c:.1f}",
            "GUEST-READY", f"GUEST-RELEASED cycle={c} rc=0",
            f"GUEST-REREGISTERED cycle={c} registered=1 vmcore=gone", "GUEST-READY",
            f"GUEST-PRODUCTION cycle={c} nproc=2 uptime=10.5 mem=1128264kB", "GUEST-READY",
            sample("crash", c)]
    for n in range(1, reboots + 1):
        lines += [f"GUEST-RUN: echo GUEST-SOAK-REBOOT n={n}; reboot -f",
                  "GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0", "GUEST-READY",
                  sample("reboot", n)]
    return lines + ["GUEST-SOAK-END registered=1 boots=done", "GUEST-READY",
                    "NESTED-SOAK-THREADS end ppc-vmm*1,vcpu0*1,vcpu1*1",
                    "NESTED-PHASE l2-vmm-exit status=0 uptime=200.0"]


def elf_core(tag):
    return b"\x7fELF\x02\x01\x01" + tag + bytes(4096 - 7 - len(tag))


def fake_drgn(crashtimes):
    """analyze_vmcore's stand-in: writes a report with a CRASHTIME per vmcore, returns 0."""
    def analyze(run, _vmlinux, _extra, console="console.log", vmcore="vmcore",
                report="drgn.txt", show=True):
        n = int(vmcore.rsplit("-", 1)[1])
        with open(run.path(report), "w") as f:
            f.write(f"PASS: core\n      CRASHTIME={crashtimes[n - 1]}\nPASS: pattern\n")
        return 0
    return analyze


class SoakChecksTest(ChecksTestBase):
    STRIDE = 1600 << 20

    def soak_dir(self, cycles=2, reboots=3, with_image=True):
        d = self.run_dir("soak", cmdline="console=hvc0 guest.action=commands fadump=on crashkernel=384M",
                         extra_args=" --disk path=/dev/vda",
                         files={"soak-settings": f"cycles={cycles} reboots={reboots} stride_mib=1600",
                                "vmlinux.debug": b""})
        if with_image:
            with open(os.path.join(d, "export.img"), "wb") as f:
                for c in range(cycles):
                    f.seek(c * self.STRIDE)
                    f.write(elf_core(bytes([c + 1])))
        return d

    def evaluate_soak(self, d, lines, crashtimes=(100, 200, 300)):
        out = io.StringIO()
        run = checks.Run(d, console=stamp(lines), out=lambda s="": out.write(s + "\n"))
        with mock.patch.object(checks, "analyze_vmcore", side_effect=fake_drgn(crashtimes)):
            results = checks.check_run(run)
        return results, out.getvalue()

    def test_passing_log_cuts_every_cycle_and_prints_the_table(self):
        d = self.soak_dir()
        results, text = self.evaluate_soak(d, soak_log())
        self.assert_all_pass(results)
        for c in (1, 2):
            with open(os.path.join(d, f"vmcore-cycle-{c}"), "rb") as f:
                self.assertEqual(f.read()[:8], b"\x7fELF\x02\x01\x01" + bytes([c]))
            with open(os.path.join(d, f"console-cycle-{c}.txt")) as f:
                text_c = f.read()
            self.assertIn(f"FADUMP-PATTERN-READY pages=4 seed=0x{0x1000 + c:x}", text_c)
            self.assertNotIn(f"seed=0x{0x1000 + 3 - c:x}", text_c)
        self.assertIn("drgn analysis of every vmcore passes (2 of 2)", [n for n, _ in results])
        self.assertIn("== soak: crash samples", text)
        self.assertIn("timing: crash -> capture /init: cycle 2 / cycle 1 = 1.03", text)
        self.assertIn("reboot -> prompt: mean of the last 1 / the first 1 = 1.00", text)

    def test_each_line_is_read(self):
        d = self.soak_dir()
        log = soak_log()
        cases = [
            (without(log, "GUEST-SOAK-CYCLE n=2 registered=1"), "registered before each"),
            (without(log, "GUEST-VMCORE-NOTES"), "NT_PRSTATUS"),
            (replaced(log, "GUEST-RELEASED cycle=2 rc=0", "GUEST-RELEASED cycle=2 rc=1"), "release_mem"),
            (without(log, "GUEST-PRODUCTION cycle=1"), "back in production"),
            (without(log, "GUEST-SAVE cycle=2 VMCORE-SAVE-DONE"), "own region"),
            (replaced(log, "GUEST-SOAK-END registered=1", "GUEST-SOAK-END registered=0"), "ran to the end"),
            (log[:-1] + ["NESTED-PHASE l2-vmm-exit status=1 uptime=200.0"], "VMM exited 0"),
            (log[:-5] + ["[    0.027110] Interrupt 0x2 (real) is invalid, disabling it."] + log[-5:],
             "stale IPI"),
        ]
        for lines, fragment in cases:
            with self.subTest(fragment):
                self.assert_only_failure(self.evaluate_soak(d, lines)[0], fragment)

    def test_a_lost_dump_fails_the_dump_checks(self):
        # The 6.12 guest's second capture: header overwritten, no /proc/vmcore, nothing saved.
        lines = soak_log(header_corrupted=True)
        lines = [ln for ln in lines if not ln.startswith(("GUEST-VMCORE-SAVED cycle=2",
                                                          "GUEST-SAVE cycle=2"))]
        results, _ = self.evaluate_soak(self.soak_dir(), lines)
        failed = [n for n, ok in results if not ok]
        self.assertIn("every capture kernel found the crashed kernel's fadump header intact "
                      "(no 'Fadump header is corrupted')", failed)
        self.assertIn("every vmcore on the host is an ELF64 core (2)", failed)

    def test_a_stale_dump_is_not_a_new_one(self):
        results, _ = self.evaluate_soak(self.soak_dir(), soak_log(), crashtimes=(100, 100))
        self.assert_only_failure(results, "each dump is a new one")

    def test_figures_must_be_flat(self):
        d = self.soak_dir()
        cases = [
            # One more fd per reboot: a leak.
            (dict(fds=lambda k, n: 50 + (n if k == "reboot" else 0)), "reboot: open fds flat"),
            (dict(threads=lambda k, n: 5 + (n if k == "crash" else 0)), "crash: threads flat"),
        ]
        for kwargs, fragment in cases:
            with self.subTest(fragment):
                self.assert_only_failure(self.evaluate_soak(d, soak_log(**kwargs))[0], fragment)
        # 3 MiB more RSS outside guest RAM per reboot: growth.
        grow = soak_log(rss=lambda k, n: 32000 + (3072 * (n - 1) if k == "reboot" else 0))
        self.assert_only_failure(self.evaluate_soak(d, grow)[0], "reboot: RSS outside guest RAM")
        # The guest touching more of its RAM each cycle is not the VMM's growth...
        touch = soak_log(guest=lambda k, n: 540000 + (70000 * n if k == "crash" else 210000))
        self.assert_all_pass(self.evaluate_soak(d, touch)[0])
        # ... a new big mapping per cycle is, and RSS beyond the mappings cannot be guest RAM.
        leak = soak_log(maps=lambda k, n: (1 + n, 1572864 * (1 + n)) if k == "crash" else (4, 6291456))
        failed = [n for n, ok in self.evaluate_soak(d, leak)[0] if not ok]
        self.assertEqual(len(failed), 1, failed)
        self.assertTrue(failed[0].startswith("crash: guest RAM mappings unchanged"), failed)
        over = soak_log(guest=lambda k, n: 1572865 if k == "reboot" and n == 2 else 540000)
        self.assert_only_failure(self.evaluate_soak(d, over)[0], "reboot: guest RAM mappings")
        # Within the bound (2 MiB): flat.
        small = soak_log(rss=lambda k, n: 32000 + (1000 if k == "reboot" and n == 3 else 0))
        self.assert_all_pass(self.evaluate_soak(d, small)[0])

    def test_a_missing_sample_or_boot(self):
        d = self.soak_dir()
        log = soak_log()
        i = max(i for i, ln in enumerate(log) if ln.startswith("NESTED-SOAK reboot n=3"))
        results, _ = self.evaluate_soak(d, log[:i] + log[i + 1:])
        failed = [n for n, ok in results if not ok]
        self.assertIn("reboot: a sample after each of the 3", failed)
        i = max(i for i, ln in enumerate(log) if ln.startswith("GUEST-INIT-REACHED"))
        self.assert_only_failure(self.evaluate_soak(d, log[:i] + log[i + 1:])[0], "guest boots")

    def test_recheck_after_the_image_was_dropped(self):
        d = self.soak_dir()
        run = checks.Run(d, console=stamp(soak_log()), out=lambda s="": None)
        scenario = checks.load_scenario("soak")
        with mock.patch.object(checks, "analyze_vmcore", side_effect=fake_drgn((1, 2))):
            results = checks.check_run(run, scenario)
        scenario.after(run, all(ok for _n, ok in results))
        self.assertFalse(os.path.exists(os.path.join(d, "export.img")))
        self.assert_all_pass(self.evaluate_soak(d, soak_log())[0])
        # Without the image or the cut vmcores, the dump checks fail.
        for c in (1, 2):
            os.remove(os.path.join(d, f"vmcore-cycle-{c}"))
        failed = [n for n, ok in self.evaluate_soak(d, soak_log())[0] if not ok]
        self.assertIn("every vmcore on the host is an ELF64 core (2)", failed)


class EngineTest(ChecksTestBase):
    def test_a_raising_predicate_is_a_failed_check(self):
        run = checks.Run(self.run_dir("drive"), console="", out=lambda s="": None)
        results = checks.evaluate(run, [checks.Check("boom", lambda r: 1 / 0),
                                        checks.Check("fine", lambda r: True)])
        self.assertEqual(results, [("boom", False), ("fine", True)])

    def test_every_scenario_folder_has_its_three_files(self):
        # "Adding a scenario touches one folder": run.sh (L1), scenario.sh and checks.py (host).
        root = os.path.join(NESTED, "scenarios")
        for mode in sorted(os.listdir(root)):
            with self.subTest(mode):
                for name in ("run.sh", "scenario.sh", "checks.py"):
                    self.assertTrue(os.path.isfile(os.path.join(root, mode, name)), name)
                self.assertTrue(checks.load_scenario(mode).CHECKS)

    def test_main_exit_status_and_prune(self):
        runs = os.path.join(self.tmp, "runs")
        os.makedirs(runs)
        old = os.path.join(runs, "old")
        os.makedirs(old)
        for name in ("vmm-mode", "vmcore", "console.log"):
            with open(os.path.join(old, name), "w") as f:
                f.write("drive\n")
        os.utime(old, (1, 1))
        d = os.path.join(runs, "new")
        os.rename(self.run_dir("drive"), d)
        with open(os.path.join(d, "console.log"), "w") as f:
            f.write(stamp(DRIVE))
        with mock.patch.dict(os.environ, {"NESTED_KEEP_RUNS": "1"}), \
                mock.patch("sys.stdout", new_callable=io.StringIO):
            self.assertEqual(checks.main(["checks.py", d]), 0)
        self.assertFalse(os.path.exists(os.path.join(old, "vmcore")))
        self.assertTrue(os.path.exists(os.path.join(old, "console.log")))
        with open(os.path.join(d, "console.log"), "w") as f:
            f.write(stamp(without(DRIVE, "GUEST-CPU1-ONLINE")))
        with mock.patch("sys.stdout", new_callable=io.StringIO) as out:
            self.assertEqual(checks.main(["checks.py", d]), 1)
        self.assertIn("FAIL: cpu1 offline", out.getvalue())

    def test_the_command_line_runs_the_same_tables(self):
        # As boot-our-vmm.sh runs it: `python3 lib/checks.py RUN_DIR` (checks.py is __main__
        # there, and the tables' Check/Step must still be the classes evaluate() knows).
        d = self.run_dir("drive")
        with open(os.path.join(d, "console.log"), "w") as f:
            f.write(stamp(DRIVE))
        p = subprocess.run([sys.executable, os.path.join(HERE, "checks.py"), d],
                           capture_output=True, text=True, env=dict(os.environ, NESTED_KEEP_RUNS="99"))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.count("PASS: "), 4, p.stdout)
        self.assertIn("PASS: cpu1 offline (stop-self) and back online (start-cpu)", p.stdout)
        with open(os.path.join(d, "console.log"), "w") as f:
            f.write(stamp(without(DRIVE, "GUEST-CPU1-OFFLINE nproc=1")))
        p = subprocess.run([sys.executable, os.path.join(HERE, "checks.py"), d],
                           capture_output=True, text=True, env=dict(os.environ, NESTED_KEEP_RUNS="99"))
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("FAIL: cpu1 offline", p.stdout)

    def test_a_table_with_steps_from_the_command_line(self):
        pattern = checks.load_scenario("disk").PATTERN
        d = self.run_dir("disk", extra_args=" --disk path=/tmp/disk0.img",
                         files={"export.img": pattern})
        with open(os.path.join(d, "console.log"), "w") as f:
            f.write(stamp(disk_log()))
        p = subprocess.run([sys.executable, os.path.join(HERE, "checks.py"), d],
                           capture_output=True, text=True, env=dict(os.environ, NESTED_KEEP_RUNS="99"))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_concurrent_emulator_warning_for_the_matrix(self):
        d = self.run_dir("drive", files={"result.json": '{"concurrent_emulators_at_start": [42]}'})
        _results, text = self.evaluate(d, DRIVE)
        self.assertIn("another emulator is running", text)


if __name__ == "__main__":
    unittest.main()
