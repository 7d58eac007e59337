//! Kernel-owned structures of Linux's powernv fadump. The firmware never reads them; both kernels
//! of a pair must agree on them. `opal_fadump_mem_struct` is big-endian (Linux declares its
//! fields `__be16`/`__be64`, as the metadata captured from a real 6.12 under QEMU shows); the
//! crash info header is in the kernel's native byte order (little-endian: a ppc64le kernel).

use crate::linux::pt_regs::{PtRegs, PT_REGS_SIZE};
use crate::linux::{CPU_MASK_SIZE, MAGIC_FADMPSIG};

/// `OPAL_FADUMP_VERSION`.
pub const METADATA_VERSION: u8 = 1;
/// `FADUMP_MAX_MEM_REGS`.
pub const MAX_MEM_REGS: usize = 128;
/// `sizeof(struct opal_fadump_mem_struct)`: packed 16-byte header + 128 regions of 24 bytes.
pub const METADATA_SIZE: usize = 16 + MAX_MEM_REGS * 24;
/// `crashing_cpu` before a crash (`FADUMP_CPU_UNKNOWN`).
pub const CPU_UNKNOWN: u32 = 0xffff_ffff;
/// Size of the ≥6.10 crash-info header: fixed part, `pt_regs`, `cpumask`.
pub const CRASH_INFO_SIZE: usize = 0x28 + PT_REGS_SIZE + CPU_MASK_SIZE;

/// One boot-memory region: source, destination of its copy, size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub src: u64,
    pub dest: u64,
    pub size: u64,
}

/// `struct opal_fadump_mem_struct`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelMetadata {
    pub version: u8,
    pub region_cnt: u16,
    pub registered_regions: u16,
    pub fadumphdr_addr: u64,
    pub rgn: Vec<Region>,
}

impl KernelMetadata {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; METADATA_SIZE];
        b[0] = self.version;
        b[4..6].copy_from_slice(&self.region_cnt.to_be_bytes());
        b[6..8].copy_from_slice(&self.registered_regions.to_be_bytes());
        b[8..16].copy_from_slice(&self.fadumphdr_addr.to_be_bytes());
        for (i, r) in self.rgn.iter().take(MAX_MEM_REGS).enumerate() {
            let o = 16 + 24 * i;
            b[o..o + 8].copy_from_slice(&r.src.to_be_bytes());
            b[o + 8..o + 16].copy_from_slice(&r.dest.to_be_bytes());
            b[o + 16..o + 24].copy_from_slice(&r.size.to_be_bytes());
        }
        b
    }

    /// Reads it back as the capture kernel does (`region_cnt` capped at the array size, as a
    /// sane reader must).
    pub fn from_bytes(b: &[u8]) -> Self {
        let be64 = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap());
        let region_cnt = u16::from_be_bytes([b[4], b[5]]);
        let n = (region_cnt as usize).min(MAX_MEM_REGS);
        Self {
            version: b[0],
            region_cnt,
            registered_regions: u16::from_be_bytes([b[6], b[7]]),
            fadumphdr_addr: be64(8),
            rgn: (0..n)
                .map(|i| {
                    let o = 16 + 24 * i;
                    Region {
                        src: be64(o),
                        dest: be64(o + 8),
                        size: be64(o + 16),
                    }
                })
                .collect(),
        }
    }
}

/// The ≥6.10 crash-info header (`FADMPSIG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashInfo {
    pub magic: u64,
    pub version: u32,
    pub crashing_cpu: u32,
    pub pt_regs_sz: u32,
    pub cpu_mask_sz: u32,
    pub regs: PtRegs,
    pub cpu_mask: Vec<u8>,
}

impl CrashInfo {
    /// As `init_fadump_header()` leaves it at registration.
    pub fn at_registration() -> Self {
        Self {
            magic: MAGIC_FADMPSIG,
            version: 1,
            crashing_cpu: CPU_UNKNOWN,
            pt_regs_sz: PT_REGS_SIZE as u32,
            cpu_mask_sz: CPU_MASK_SIZE as u32,
            regs: PtRegs::default(),
            cpu_mask: vec![0; CPU_MASK_SIZE],
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 0x28];
        b[0..8].copy_from_slice(&self.magic.to_le_bytes());
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.crashing_cpu.to_le_bytes());
        b[0x20..0x24].copy_from_slice(&self.pt_regs_sz.to_le_bytes());
        b[0x24..0x28].copy_from_slice(&self.cpu_mask_sz.to_le_bytes());
        b.extend_from_slice(&self.regs.to_le_bytes());
        let mut mask = self.cpu_mask.clone();
        mask.resize(CPU_MASK_SIZE, 0);
        b.extend_from_slice(&mask);
        b
    }

    pub fn from_bytes(b: &[u8]) -> Self {
        let le32 = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        Self {
            magic: u64::from_le_bytes(b[0..8].try_into().unwrap()),
            version: le32(8),
            crashing_cpu: le32(12),
            pt_regs_sz: le32(0x20),
            cpu_mask_sz: le32(0x24),
            regs: PtRegs::from_le_bytes(&b[0x28..0x28 + PT_REGS_SIZE]),
            cpu_mask: b[0x28 + PT_REGS_SIZE..CRASH_INFO_SIZE].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_3088_bytes_and_round_trips() {
        assert_eq!(METADATA_SIZE, 3088);
        let m = KernelMetadata {
            version: 1,
            region_cnt: 2,
            registered_regions: 1,
            fadumphdr_addr: 0x6000_0000,
            rgn: vec![
                Region {
                    src: 0,
                    dest: 0x3000_0000,
                    size: 0x1000_0000,
                },
                Region {
                    src: 0x1800_0000,
                    dest: 0x4000_0000,
                    size: 0x2000_0000,
                },
            ],
        };
        assert_eq!(KernelMetadata::from_bytes(&m.to_bytes()), m);
        let mut h = CrashInfo::at_registration();
        h.crashing_cpu = 0x11;
        h.regs.nip = 0xc000_0000_0012_3456;
        assert_eq!(h.to_bytes().len(), CRASH_INFO_SIZE);
        assert_eq!(CrashInfo::from_bytes(&h.to_bytes()), h);
    }

    /// The `opal_fadump_mem_struct` a real Linux 6.12 registered under QEMU 11.1 powernv +
    /// skiboot (read out of guest memory by integration-tests/nested/opal-conformance.sh):
    /// boot memory [0, 1 GiB) copied to 1 GiB. Linux declares the counts and addresses
    /// `__be16`/`__be64` (opal-fadump.h:36-43), unlike the native-endian crash info header.
    #[test]
    fn decodes_the_metadata_linux_wrote() {
        let raw = include_bytes!("../../fixtures/opal-conformance/first-kernel-metadata.bin");
        let md = KernelMetadata::from_bytes(raw);
        assert_eq!(md.version, METADATA_VERSION);
        assert_eq!((md.region_cnt, md.registered_regions), (1, 1));
        assert_eq!(
            md.rgn,
            vec![Region {
                src: 0,
                dest: 0x4000_0000,
                size: 0x4000_0000
            }]
        );
        assert_ne!(md.fadumphdr_addr, 0);
        assert_eq!(md.to_bytes(), raw.to_vec(), "byte for byte");
    }
}
