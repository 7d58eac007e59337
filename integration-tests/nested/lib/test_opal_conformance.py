"""Host-only tests of opal_conformance.py's decoders and the PNOR image (no emulator)."""
import os
import struct
import tempfile
import unittest

import opal_conformance as oc


class PnorTest(unittest.TestCase):
    def test_ffs_table_checksums_and_size(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "pnor.img")
            oc.make_pnor(p)
            self.assertEqual(os.path.getsize(p), oc.PNOR_SIZE)
            with open(p, "rb") as f:
                b = f.read(176)
        magic, version, size, esize, ecount, bsize, bcount = struct.unpack_from(">7I", b, 0)
        self.assertEqual((magic, version, size, esize, ecount), (0x50415254, 1, 1, 128, 1))
        self.assertEqual(bsize * bcount, oc.PNOR_SIZE)
        # libffs: the XOR of all words of the header, and of the entry, is 0.
        self.assertEqual(oc.ffs_checksum(b[:48]), 0)
        self.assertEqual(oc.ffs_checksum(b[48:176]), 0)
        self.assertEqual(b[48:52], b"part")


class DecodeTest(unittest.TestCase):
    def test_tables(self):
        mdst = struct.pack(">QBBHI", oc.HRMOR_BIT | 0x3000_0000, 3, 0, 0, 0x1C38000)
        mdst += struct.pack(">QBBHI", oc.HRMOR_BIT, 0x80, 0, 0, 0x4000_0000) + bytes(32)
        t = oc.table16(mdst)
        self.assertEqual([(e["addr_stripped"], e["data_region"]) for e in t],
                         [(0x3000_0000, 3), (0, 0x80)])
        mdrt = bytes(32) + struct.pack(">QQBBHIQ", 1, 2, 0x80, 0, 0, 0x1000, 0)
        self.assertEqual(oc.mdrt_entries(mdrt),
                         [{"index": 1, "src": 1, "dest": 2, "data_region": 0x80,
                           "dump_type": 0, "size": 0x1000}])
        pda = bytearray(0x30)
        struct.pack_into(">I", pda, 0, 0x438)
        pda[4] = 1
        struct.pack_into(">Q", pda, 0x20, oc.HRMOR_BIT | 0x3387_0000)
        struct.pack_into(">I", pda, 0x2C, 0x870)
        d = oc.proc_dump_area(bytes(pda))
        self.assertEqual((d["thread_size"], d["version"], d["act_size"]), (0x438, 1, 0x870))

    def test_vmcore_notes(self):
        # ELF64 LE header with one PT_NOTE holding one CORE/PRSTATUS note.
        desc = bytearray(112 + 48 * 8)
        struct.pack_into("<i", desc, 32, 7)
        regs = list(range(48))
        regs[32], regs[38] = 0xC000_0000_0000_1234, 0x2200_0000
        struct.pack_into("<48Q", desc, 112, *regs)
        note = struct.pack("<III", 5, len(desc), 1) + b"CORE\0\0\0\0" + bytes(desc)
        ehdr = bytearray(64)
        ehdr[0:6] = b"\x7fELF\x02\x01"
        struct.pack_into("<Q", ehdr, 0x20, 64)
        struct.pack_into("<HH", ehdr, 0x36, 56, 1)
        phdr = struct.pack("<IIQQQQQQ", 4, 0, 120, 0, 0, len(note), len(note), 0)
        out = oc.vmcore_notes(bytes(ehdr) + phdr + note)
        self.assertEqual(len(out["prstatus"]), 1)
        n = out["prstatus"][0]
        self.assertEqual((n["pid"], n["nip"], n["ccr"], n["gpr1"]),
                         (7, 0xC000_0000_0000_1234, 0x2200_0000, 1))

    def test_console(self):
        lines = [
            "[    0.0] opal fadump: Kernel metadata addr: 800001b0",
            "OPALCONF-FIRST registered=1 enabled=1",
            "OPALCONF-DT first mpipl-boot 0000000000000001",
            "[    1.2] opal fadump: \tOffset: 8, Entry size: 16, Cnt: 66",
            "[    1.2] opal fadump: CPU PIR: 0x4 - R1 : 0xc0000000ff79fd50, NIP : 0x300037c4",
            "OPALCONF-CAPTURE vmcore=3221233664 enabled=1",
            "[    0.1] OPAL v7.1-106-g785a5e30 starting...",
        ]
        c = oc.parse_console(lines)
        self.assertEqual(c["kernel_metadata_addr"], 0x800001B0)
        self.assertEqual(c["first"]["registered"], "1")
        self.assertEqual(c["capture"]["vmcore"], "3221233664")
        self.assertEqual(c["dt"]["first"]["mpipl-boot"], "0000000000000001")
        self.assertEqual(c["linux_hdr"], {"regs_offset": 8, "esize": 16, "ecnt": 66})
        self.assertEqual(c["linux_threads"][0]["nip"], 0x300037C4)
        self.assertEqual(c["skiboot_version"], "v7.1-106-g785a5e30")


if __name__ == "__main__":
    unittest.main()
