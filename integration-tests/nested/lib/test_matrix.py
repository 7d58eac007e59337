"""Host-only tests of the fadump matrix driver and the up-front kernel check (no emulator).

    python3 -m unittest discover -s integration-tests/nested/lib -p 'test_*.py'
"""

import contextlib
import gzip
import io
import json
import os
import shutil
import stat
import struct
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fadump_matrix as fm  # noqa: E402
import kernel_check as kc  # noqa: E402

GOOD_CONFIG = "\n".join(
    [f"{opt}=y" for opt, _acc, _why, _cases in kc.REQUIREMENTS] + ["CONFIG_NR_CPUS=16"]) + "\n"


def make_elf(sections, banner=b"Linux version 6.12.117 (ppc-vmm@ppc-vmm) #1 SMP\0",
             machine=kc.EM_PPC64, etype=kc.ET_EXEC, data_enc=1, extra=b""):
    """A minimal ELF64 image: a header, a blob (banner + extra), and the given sections
    ({name: (sh_type, bytes)}) plus .shstrtab."""
    endian = "<" if data_enc == 1 else ">"
    names = list(sections) + [".shstrtab"]
    shstrtab = b"\0" + b"".join(n.encode() + b"\0" for n in names)
    name_off = {}
    pos = 1
    for n in names:
        name_off[n] = pos
        pos += len(n) + 1
    body = bytearray(banner + extra)
    offsets = {}
    for n, (_t, content) in sections.items():
        offsets[n] = 64 + len(body)
        body += content
    offsets[".shstrtab"] = 64 + len(body)
    body += shstrtab
    while len(body) % 8:
        body += b"\0"
    shoff = 64 + len(body)
    shdrs = bytearray(64)  # the null section
    for n in names:
        stype, content = sections.get(n, (3, shstrtab))
        shdrs += struct.pack(endian + "IIQQQQIIQQ", name_off[n], stype, 0, 0, offsets[n],
                             len(content), 0, 0, 1, 0)
    ident = b"\x7fELF" + bytes([2, data_enc, 1]) + bytes(9)
    hdr = ident + struct.pack(endian + "HHIQQQIHHHHHH", etype, machine, 1, 0, 0, shoff, 0, 64,
                              56, 0, 64, len(names) + 1, len(names))
    return bytes(hdr) + bytes(body) + bytes(shdrs)


def build_id_note(hex_id):
    desc = bytes.fromhex(hex_id)
    return struct.pack("<III", 4, len(desc), 3) + b"GNU\0" + desc


def ikconfig(text):
    return b"IKCFG_ST" + gzip.compress(text.encode()) + b"IKCFG_ED"


class Tmp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="matrix-test-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return path


class ConfigTest(unittest.TestCase):
    def test_embedded_config_is_found_between_the_markers(self):
        blob = b"junk" + ikconfig("CONFIG_FA_DUMP=y\n# CONFIG_LKDTM is not set\n") + b"tail"
        text = kc.embedded_config(blob)
        self.assertEqual(kc.parse_config(text), {"CONFIG_FA_DUMP": "y", "CONFIG_LKDTM": "n"})

    def test_no_marker_no_config(self):
        self.assertIsNone(kc.embedded_config(b"no config here"))

    def test_fadump_cases_need_fa_dump_and_unregistered_does_not(self):
        config = kc.parse_config(GOOD_CONFIG.replace("CONFIG_FA_DUMP=y", "# CONFIG_FA_DUMP is not set"))
        bad = [r for r in kc.check_options(config, ["sysrq-2cpu", "unregistered"]) if not r[0]]
        self.assertEqual([(r[1], r[2], r[5]) for r in bad], [("CONFIG_FA_DUMP", "n", ["sysrq-2cpu"])])
        self.assertTrue(all(r[0] for r in kc.check_options(config, ["unregistered"])))

    def test_lkdtm_needed_only_by_lkdtm_cases(self):
        config = kc.parse_config(GOOD_CONFIG.replace("CONFIG_LKDTM=y", ""))
        self.assertTrue(all(r[0] for r in kc.check_options(config, ["sysrq-1cpu"])))
        bad = [r[1] for r in kc.check_options(config, ["lkdtm-bug", "hardlockup"]) if not r[0]]
        self.assertEqual(bad, ["CONFIG_LKDTM"])

    def test_a_module_is_not_built_in(self):
        config = kc.parse_config(GOOD_CONFIG.replace("CONFIG_VIRTIO_BLK=y", "CONFIG_VIRTIO_BLK=m"))
        bad = [(r[1], r[2]) for r in kc.check_options(config, ["sysrq-1cpu"]) if not r[0]]
        self.assertEqual(bad, [("CONFIG_VIRTIO_BLK", "m")])

    def test_nr_cpus_must_cover_two_vcpus(self):
        config = kc.parse_config(GOOD_CONFIG.replace("CONFIG_NR_CPUS=16", "CONFIG_NR_CPUS=1"))
        self.assertTrue(all(r[0] for r in kc.check_options(config, ["sysrq-1cpu"])))
        bad = [r[1] for r in kc.check_options(config, ["sysrq-2cpu"]) if not r[0]]
        self.assertEqual(bad, ["CONFIG_NR_CPUS"])

    def test_every_matrix_case_has_traits(self):
        self.assertEqual(set(fm.CASES) - set(kc.CASE_TRAITS), set())


class KernelTest(Tmp):
    BID = "0123456789abcdef0123456789abcdef01234567"

    def kernel(self, config=GOOD_CONFIG, debug=False, embed=True, bid=BID, **kw):
        sections = {".note.gnu.build-id": (7, build_id_note(bid))}
        if debug:
            sections[".debug_info"] = (1, b"\0" * 32)
        return make_elf(sections, extra=ikconfig(config) if embed else b"", **kw)

    def test_good_kernel_with_debug_info_passes(self):
        path = self.write("vmlinux", self.kernel(debug=True))
        result = kc.check_kernel(path, ["sysrq-2cpu", "lkdtm-bug"])
        self.assertEqual(result["problems"], [])
        self.assertEqual(result["info"]["release"], "6.12.117")
        self.assertEqual(result["info"]["build_id"], self.BID)
        self.assertEqual(result["info"]["debuginfo"], path)
        self.assertIn("CONFIG_IKCONFIG", result["info"]["config"])

    def test_missing_fa_dump_is_refused_with_the_reason(self):
        cfg = GOOD_CONFIG.replace("CONFIG_FA_DUMP=y", "# CONFIG_FA_DUMP is not set")
        path = self.write("vmlinux", self.kernel(config=cfg, debug=True))
        result = kc.check_kernel(path, ["sysrq-2cpu"])
        self.assertFalse(result["ok"])
        self.assertEqual(len(result["problems"]), 1)
        self.assertIn("CONFIG_FA_DUMP=n, needs y: firmware-assisted dump", result["problems"][0])

    def test_config_beside_the_image_and_sibling_debug_file(self):
        path = self.write("build/vmlinux", self.kernel(embed=False))
        self.write("build/.config", GOOD_CONFIG)
        self.write("build/vmlinux.debug", make_elf({
            ".note.gnu.build-id": (7, build_id_note(self.BID)), ".debug_info": (1, b"\0" * 8)}))
        result = kc.check_kernel(path, ["sysrq-2cpu"])
        self.assertEqual(result["problems"], [])
        self.assertTrue(result["info"]["config"].endswith("build/.config"))
        self.assertTrue(result["info"]["debuginfo"].endswith("build/vmlinux.debug"))

    def test_no_config_anywhere_is_refused(self):
        path = self.write("vmlinux", self.kernel(embed=False, debug=True))
        result = kc.check_kernel(path, ["sysrq-2cpu"])
        self.assertFalse(result["ok"])
        self.assertIn("no configuration found", result["problems"][0])
        self.assertIn("pass --config FILE", result["problems"][0])

    def test_debuginfo_of_another_build_is_refused(self):
        path = self.write("vmlinux", self.kernel())
        other = self.write("other.debug", make_elf({
            ".note.gnu.build-id": (7, build_id_note("ff" * 20)), ".debug_info": (1, b"\0" * 8)}))
        result = kc.check_kernel(path, ["sysrq-2cpu"], debuginfo=other)
        self.assertFalse(result["ok"])
        self.assertIn("belongs to another build", " ".join(result["problems"]))

    def test_no_debug_info_is_refused(self):
        path = self.write("vmlinux", self.kernel())
        result = kc.check_kernel(path, ["sysrq-2cpu"])
        self.assertIn("no debug info", " ".join(result["problems"]))

    def test_big_endian_or_x86_images_are_refused(self):
        be = self.write("be", self.kernel(debug=True, data_enc=2))
        x86 = self.write("x86", self.kernel(debug=True, machine=62))
        for path in (be, x86):
            result = kc.check_kernel(path, ["sysrq-1cpu"])
            self.assertIn("not a 64-bit little-endian ppc64 executable", result["problems"][0])

    def test_not_elf_is_refused(self):
        path = self.write("zImage", b"\x1f\x8b" + b"\0" * 100)
        result = kc.check_kernel(path, ["sysrq-1cpu"])
        self.assertIn("is not an ELF file", result["problems"][0])

    def test_cli_exit_codes(self):
        good = self.write("vmlinux", self.kernel(debug=True))
        cfg = GOOD_CONFIG.replace("CONFIG_PPC_PSERIES=y", "")
        bad = self.write("bad", self.kernel(config=cfg, debug=True))
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(kc.main(["--vmlinux", good, "--cases", "sysrq-2cpu"]), 0)
            self.assertEqual(kc.main(["--vmlinux", good, "--cases", "no-such-case"]), 2)
            self.assertEqual(kc.main(["--vmlinux", bad, "--cases", "sysrq-2cpu"]), 1)
        self.assertIn("MISSING: CONFIG_PPC_PSERIES=n", out.getvalue())


CONSOLE = textwrap.dedent("""\
    [   10.00] GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0
    [   30.50] [   20.1] sysrq: Trigger a crash
    [   31.00] [    1.2] fadump: phases: stop + registers 6.5 ms, dump 250.1 ms, reset 5.0 ms, capture boot set up 180.0 ms (total 441.6 ms)
    [   36.00] GUEST-INIT-REACHED nproc=2 kernel=6.12.117 uptime=1.0
    [   36.20] NESTED-PHASE crash-to-capture-init seconds=5.03
    [   80.00] GUEST-VMCORE-SAVED bytes=1207967744 t0=3.50 t1=44.75
    [   82.40] GUEST-PRODUCTION nproc=2 uptime=47.0
    """)
RUNNER = "PASS: guest registered fadump\nFAIL: drgn analysis of the vmcore\nPASS: x\n"


class ParseTest(unittest.TestCase):
    def test_numbers_from_a_console_log(self):
        r = fm.parse_run(CONSOLE, RUNNER)
        self.assertEqual(r["vmcore_bytes"], 1207967744)
        self.assertEqual(r["crash_to_capture_init_s"], 5.03)
        self.assertEqual(r["vmcore_save_s"], 41.25)
        self.assertEqual(r["back_in_production_s"], 51.9)
        self.assertEqual([r[k] for _l, k in fm.VMM_PHASES], [6.5, 250.1, 5.0, 180.0, 441.6])
        self.assertEqual(r["passed_checks"], 2)
        self.assertEqual(r["failed_checks"], ["drgn analysis of the vmcore"])

    def test_run_directories_from_before_the_one_runner_still_parse(self):
        # Run directories written before boot-our-vmm.sh ran on run-l1.sh say L1-PHASE.
        old = CONSOLE.replace("NESTED-PHASE crash-to", "L1-PHASE crash-to")
        self.assertEqual(fm.parse_run(old, RUNNER)["crash_to_capture_init_s"], 5.03)

    def test_a_run_that_never_crashed_has_no_numbers(self):
        r = fm.parse_run("[ 1.00] GUEST-INIT-REACHED nproc=2\n", "")
        self.assertEqual([r[k] for k, _ in fm.PHASES], [None, None, None])
        self.assertIsNone(r["vmcore_bytes"])

    def test_the_command_echo_is_not_the_result(self):
        # L1 types the save command into the guest, which echoes it (GUEST-RUN: ...).
        text = "[ 5.00] GUEST-RUN: ...; echo GUEST-VMCORE-SAVED bytes=$sz t0=$t0 t1=$t1\n"
        self.assertIsNone(fm.parse_run(text)["vmcore_bytes"])

    def test_lkdtm_crash_line_starts_the_clock(self):
        text = ("[ 10.00] lkdtm: Performing direct entry BUG\n"
                "[ 25.00] GUEST-PRODUCTION nproc=2 uptime=1\n")
        self.assertEqual(fm.parse_run(text)["back_in_production_s"], 15.0)


def record(case, vmm, passed=True, init=5.0, save=40.0, prod=50.0, failed=()):
    return {"case": case, "vmm": vmm, "passed": passed, "run_dir": f"/runs/{case}-{vmm}",
            "vmcore_bytes": 100, "crash_to_capture_init_s": init, "vmcore_save_s": save,
            "back_in_production_s": prod, "failed_checks": list(failed)}


class SummaryTest(unittest.TestCase):
    def test_conformance_ratios_and_failing_checks(self):
        runs = [record("sysrq-2cpu", "ours", init=4.0, save=30.0, prod=40.0),
                record("sysrq-2cpu", "qemu-sid", init=8.0, save=40.0, prod=50.0),
                record("unregistered", "ours", init=None, save=None, prod=None),
                record("unregistered", "qemu-sid", passed=False, init=None, save=None,
                       prod=None, failed=["guest booted again, with no /proc/vmcore"])]
        entries = fm.conformance(runs)
        self.assertEqual(entries[0]["ratio_crash_to_capture_init_s"], 0.5)
        self.assertEqual(entries[0]["ratio_vmcore_save_s"], 0.75)
        self.assertEqual(entries[0]["ratio_back_in_production_s"], 0.8)
        self.assertIsNone(entries[1]["ratio_vmcore_save_s"])
        text = fm.conformance_table(entries)
        self.assertIn("4.00/8.00 = 0.50", text)
        self.assertIn("unregistered under QEMU 11.1: FAIL: guest booted again", text)

    def test_kdump_beside_fadump(self):
        runs = [record("sysrq-2cpu", "ours", init=8.0, save=40.0, prod=48.0),
                record("kdump-sysrq", "ours", init=10.0, save=44.0, prod=72.0),
                record("hardlockup", "ours", init=6.0), record("unregistered", "ours")]
        entries = fm.kdump_vs_fadump(runs)
        self.assertEqual(len(entries), 1)  # kdump-hardlockup did not run
        self.assertEqual(entries[0]["ratio_crash_to_capture_init_s"], 1.25)
        self.assertEqual(entries[0]["ratio_back_in_production_s"], 1.5)
        self.assertIn("kdump-sysrq / sysrq-2cpu", fm.kdump_table(entries))
        self.assertIn("10.00/8.00 = 1.25", fm.kdump_table(entries))

    def test_spread_counts_passes_and_ranges(self):
        runs = [record("sysrq-2cpu", "ours", init=v) for v in (5.0, 6.0, 9.0)]
        runs.append(record("sysrq-2cpu", "ours", passed=False, init=None))
        entry = fm.spread(runs)[0]
        self.assertEqual((entry["runs"], entry["passed"]), (4, 3))
        self.assertEqual(entry["crash_to_capture_init_s"],
                         {"min": 5.0, "median": 6.0, "max": 9.0, "n": 3})
        self.assertIn("5.00 / 6.00 / 9.00 s (x1.80)", fm.spread_table([entry]))


FAKE_RUNNER = """#!/bin/sh
# Stands in for boot-our-vmm.sh: writes a console log into --run-dir, prints checks.
while [ $# -gt 0 ]; do case "$1" in --run-dir) dir="$2"; shift 2 ;; --vmm) vmm="$2"; shift 2 ;; *) shift ;; esac; done
cp "$FAKE_CONSOLE" "$dir/console.log"
echo "PASS: one"
if [ "$vmm" = qemu-sid ]; then echo "FAIL: two"; exit 1; fi
exit 0
"""


class RunCaseTest(Tmp):
    def test_runs_are_recorded_with_their_checks(self):
        runner = self.write("runner.sh", FAKE_RUNNER)
        os.chmod(runner, os.stat(runner).st_mode | stat.S_IEXEC)
        console = self.write("console.txt", CONSOLE)
        env = {"FAKE_CONSOLE": console}
        ours = fm.run_case("sysrq-2cpu", "ours", os.path.join(self.dir, "a"), [], runner, env)
        qemu = fm.run_case("sysrq-2cpu", "qemu-sid", os.path.join(self.dir, "b"), [], runner, env)
        self.assertTrue(ours["passed"])
        self.assertEqual(ours["crash_to_capture_init_s"], 5.03)
        self.assertFalse(qemu["passed"])
        self.assertEqual(qemu["failed_checks"], ["two"])
        self.assertIn("--run-dir", ours["command"])
        json.dumps([ours, qemu])  # the JSON output takes the records as they are

    def test_a_runner_that_dies_early_is_a_failure_with_a_reason(self):
        runner = self.write("die.sh", "#!/bin/sh\nexit 7\n")
        os.chmod(runner, 0o755)
        r = fm.run_case("sysrq-1cpu", "ours", os.path.join(self.dir, "c"), [], runner)
        self.assertFalse(r["passed"])
        self.assertIn("runner exited 7 before its checks", r["failed_checks"][0])


class ReportTest(Tmp):
    def test_record_from_a_run_directory(self):
        d = os.path.join(self.dir, "20261203T093712-sysrq-2cpu-qemu-sid-3")
        os.makedirs(d)
        self.write(os.path.join(d, "console.log"), CONSOLE)
        self.write(os.path.join(d, "runner.log"),
                   "nested/boot-our-vmm: warning: another emulator is running; timings will "
                   "suffer\nPASS: a\nPASS: b\n")
        r = fm.record_from_dir(d)
        self.assertEqual((r["case"], r["vmm"], r["passed"]), ("sysrq-2cpu", "qemu-sid", True))
        self.assertTrue(r["concurrent_emulator"])
        self.assertEqual(r["vmcore_bytes"], 1207967744)

    def test_a_run_with_a_failed_check_or_no_checks_did_not_pass(self):
        d = os.path.join(self.dir, "20261203T093712-hardlockup-ours")
        os.makedirs(d)
        self.write(os.path.join(d, "runner.log"), "PASS: a\nFAIL: b\n")
        self.assertFalse(fm.record_from_dir(d)["passed"])
        e = os.path.join(self.dir, "20261203T093712-unregistered-ours")
        os.makedirs(e)
        self.assertFalse(fm.record_from_dir(e)["passed"])


class CliTest(Tmp):
    def test_refused_kernel_runs_nothing_and_writes_json(self):
        cfg = GOOD_CONFIG.replace("CONFIG_FA_DUMP=y", "")
        path = self.write("vmlinux", make_elf({".debug_info": (1, b"\0" * 8)},
                                              extra=ikconfig(cfg)))
        out = os.path.join(self.dir, "m.json")
        with contextlib.redirect_stdout(io.StringIO()):
            rc = fm.main(["--guest-kernel", path, "--json", out, "sysrq-2cpu"])
        self.assertEqual(rc, 3)
        with open(out) as f:
            data = json.load(f)
        self.assertEqual(data["runs"], [])
        self.assertIn("CONFIG_FA_DUMP", " ".join(data["kernel_check"]["problems"]))

    def test_bad_arguments(self):
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(fm.main(["no-such-case"]), 2)
            self.assertEqual(fm.main(["--runs", "0", "sysrq-1cpu"]), 2)
            self.assertEqual(fm.main(["--guest-kernel", "/nonexistent", "linux-6.1"]), 2)


if __name__ == "__main__":
    unittest.main()
