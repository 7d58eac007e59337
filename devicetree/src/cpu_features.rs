//! Per-CPU feature properties whose values are fixed by the architecture level rather than by
//! the machine: `ibm,pa-features`, `ibm,processor-segment-sizes` and
//! `ibm,processor-radix-AP-encodings`.

use crate::description::Mmu;

/// `ibm,pa-features` feature bytes for an ISA 3.00 processor (66 bytes), with the values QEMU
/// advertises for POWER9 (see the reference device tree). Linux's `scan_features()` /
/// `check_cpu_pa_features()` (arch/powerpc/kernel/prom.c) reads them from the boot CPU's node
/// early in boot; the bits Linux acts on include byte 0 (MMU, FPU, SLB, RUN latch, DABR,
/// no-execute), byte 5 bit 0 (true little-endian), byte 40 bit 0 (radix MMU) and several
/// ISA 3.0 facility bits in the even bytes 16..=62.
const ISA300_PA_FEATURES: [u8; 66] = [
    0xf6, 0x3f, 0xc7, 0xc0, 0x00, 0xf0, 0x80, 0x00, // 0..=7
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 8..=15
    0x80, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, // 16..=23
    0x80, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, // 24..=31
    0x80, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, // 32..=39
    0x80, 0x00, 0x80, 0x00, 0x80, 0x00, 0x80, 0x00, // 40..=47
    0x80, 0x00, 0x80, 0x00, 0x80, 0x00, 0x80, 0x00, // 48..=55
    0x80, 0x00, 0x80, 0x00, 0x80, 0x00, 0x80, 0x00, // 56..=63
    0x00, 0x00, // 64..=65
];

/// Feature byte (0-based, after the two header bytes) holding the radix bit.
pub const PA_RADIX_BYTE: usize = 40;
/// The radix bit: "bit 0" in IBM numbering is the most significant bit.
pub const PA_RADIX_BIT: u8 = 0x80;

/// The property: byte 0 = number of feature bytes, byte 1 = descriptor type (0), then the
/// feature bytes. A hash machine clears the radix bit so Linux does not pick radix on a
/// "hash or radix" vector 5.
pub fn pa_features(mmu: Mmu) -> Vec<u8> {
    let mut feats = ISA300_PA_FEATURES;
    if matches!(mmu, Mmu::Hash { .. }) {
        feats[PA_RADIX_BYTE] &= !PA_RADIX_BIT;
    }
    let mut v = Vec::with_capacity(2 + feats.len());
    v.push(feats.len() as u8);
    v.push(0);
    v.extend_from_slice(&feats);
    v
}

/// `ibm,processor-segment-sizes`: log2 of the supported segment sizes, 256 MiB and 1 TiB,
/// padded with -1 like QEMU. Read by `htab_dt_scan_seg_sizes()` (hash only): 1 TiB segments
/// are used only when 40 is listed.
pub const SEGMENT_SIZES: [u32; 4] = [28, 40, u32::MAX, u32::MAX];

/// `ibm,processor-radix-AP-encodings`: one cell per radix page size, the actual-page-size
/// (AP) code in the top 3 bits and log2 of the size below: 4 KiB (AP 0), 64 KiB (AP 5),
/// 2 MiB (AP 1), 1 GiB (AP 2), the POWER9/10 set. Read by `radix__early_init_devtree()`; the
/// page sizes it finds are the only ones Linux uses for radix mappings (it falls back to 4K
/// and 64K defaults without the property).
pub const RADIX_AP_ENCODINGS: [u32; 4] = [12, (5 << 29) | 16, (1 << 29) | 21, (2 << 29) | 30];
