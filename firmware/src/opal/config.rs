//! Where the MPIPL firmware keeps its things in guest memory, chosen by the machine.
//!
//! skiboot keeps its image at `SKIBOOT_BASE` (and preserves it with its own table entry into
//! `ibm,firmware-dump`), and the register data in `ibm,firmware-arch-registers`. Our firmware runs
//! outside the guest, but the capture kernel still needs the register data and the metadata
//! *in guest memory* (`QUERY_TAG` returns addresses the kernel maps), so the machine sets aside a
//! dump area, reserves it in the device tree, and passes it here.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use vm_memory::GuestMemoryBackend;

use crate::memory;
use crate::opal::metadata;
use crate::opal::regdata::THREAD_SIZE;
use crate::opal::table::MAX_RANGE_SIZE;
use crate::range::GuestRange;

/// Linux refuses a `fw-load-area` that ends above this (`OPAL_FADUMP_MIN_BOOT_MEM`).
pub const LINUX_FW_LOAD_LIMIT: u64 = 0x3000_0000;
/// skiboot's load areas: kernel at 512 MiB and initramfs at 640 MiB, 128 MiB each.
pub const SKIBOOT_FW_LOAD_AREA: [(u64, u64); 2] =
    [(0x2000_0000, 0x0800_0000), (0x2800_0000, 0x0800_0000)];

/// Offset in the dump area of the CPU metadata (`struct opal_mpipl_fadump`, one region) that
/// `TAG_CPU` points at.
pub const CPU_METADATA_OFFSET: u64 = 0;
/// Offset in the dump area of the OPAL metadata (`struct opal_mpipl_fadump` with the OPAL memory
/// region and the crashing PIR) that `TAG_OPAL` points at.
pub const OPAL_METADATA_OFFSET: u64 = 0x100;
/// Offset in the dump area of the register data: one
/// [`THREAD_SIZE`]-byte record per thread, back to back.
pub const REGDATA_OFFSET: u64 = 0x1000;

/// Memory OPAL preserves for itself on every MPIPL (the one table entry it keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpalMemory {
    /// What is preserved (skiboot: its own image).
    pub src: GuestRange,
    /// Where the copy goes (skiboot: `ibm,firmware-dump`), same length.
    pub dest: u64,
}

/// What the machine tells the MPIPL engine: where the firmware's areas are in guest memory.
/// [`MpiplConfig::validate`] checks it when the engine is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpiplConfig {
    /// OPAL state kept in guest memory, if the machine has any.
    pub opal_memory: Option<OpalMemory>,
    /// Firmware-owned memory for the metadata and the register data. It must survive the
    /// MPIPL reboot (reserve it in the device tree) and hold `max_threads` records.
    pub dump_area: GuestRange,
    /// Threads the dump area has room for.
    pub max_threads: usize,
    /// What the firmware overwrites while rebooting (`fw-load-area`).
    pub fw_load_area: Vec<GuestRange>,
}

/// Why [`MpiplConfig::validate`] refused a configuration.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A firmware-owned area is not entirely RAM (beyond RAM or across a hole).
    #[error("{what} {range} is not RAM")]
    NotBacked {
        /// The area's reservation name: `ibm,opal`, `ibm,firmware-dump` or
        /// `ibm,firmware-arch-registers`.
        what: &'static str,
        /// The area.
        range: GuestRange,
    },
    /// The OPAL memory copy, `dest + src.len()`, overflows 64 bits.
    #[error("OPAL memory copy destination overflows")]
    OpalDestOverflow,
    /// OPAL memory (the size carried here) is larger than a table entry's 32-bit size field.
    #[error("OPAL memory of {0:#x} bytes does not fit a 32-bit table entry")]
    OpalTooLarge(u64),
    /// Two firmware-owned areas share a byte.
    #[error("firmware areas {0} and {1} overlap")]
    Overlap(GuestRange, GuestRange),
    /// The dump area cannot hold the metadata and `max_threads` register records.
    #[error(
        "dump area of {have:#x} bytes is smaller than the {need:#x} bytes {threads} threads need"
    )]
    DumpAreaTooSmall {
        /// The dump area's size in bytes.
        have: u64,
        /// The bytes needed ([`MpiplConfig::dump_area_size`], at least room for the OPAL
        /// metadata).
        need: u64,
        /// `max_threads` as configured.
        threads: usize,
    },
    /// The register records of `max_threads` (carried here) threads would not fit in 64 bits
    /// of address space.
    #[error("{0} threads: their register records overflow 64 bits")]
    TooManyThreads(usize),
    /// A `fw-load-area` range ends above [`LINUX_FW_LOAD_LIMIT`]: Linux would print "F/W version
    /// not supported!" and disable fadump.
    #[error("fw-load-area {0} ends above {LINUX_FW_LOAD_LIMIT:#x}: Linux would disable fadump")]
    LoadAreaTooHigh(GuestRange),
}

impl MpiplConfig {
    /// Bytes of dump area `threads` threads need; `None` when that does not fit in 64 bits.
    pub fn dump_area_size(threads: usize) -> Option<u64> {
        u64::try_from(threads)
            .ok()?
            .checked_mul(THREAD_SIZE as u64)?
            .checked_add(REGDATA_OFFSET)
    }

    /// skiboot's `fw-load-area`.
    pub fn skiboot_fw_load_area() -> Vec<GuestRange> {
        SKIBOOT_FW_LOAD_AREA
            .iter()
            .filter_map(|&(b, s)| GuestRange::new(b, s))
            .collect()
    }

    /// Where OPAL memory's copy goes, `[dest, dest + src.len())`; `None` without OPAL memory or
    /// when the end overflows 64 bits.
    pub fn opal_dest_range(&self) -> Option<GuestRange> {
        self.opal_memory
            .and_then(|o| GuestRange::new(o.dest, o.src.len()))
    }

    /// Memory the firmware owns (the guest must not be given it, and no kernel range may copy
    /// into it), with the names skiboot uses for its reservations.
    pub fn firmware_owned(&self) -> Vec<(&'static str, GuestRange)> {
        let mut v = Vec::new();
        if let Some(o) = self.opal_memory {
            v.push(("ibm,opal", o.src));
        }
        if let Some(d) = self.opal_dest_range() {
            v.push(("ibm,firmware-dump", d));
        }
        v.push(("ibm,firmware-arch-registers", self.dump_area));
        v
    }

    /// Checks the configuration against the RAM map of `mem`, in this order: OPAL memory fits a
    /// 32-bit table entry and its copy does not overflow; every firmware-owned area is RAM; those
    /// areas are pairwise disjoint; the size of `max_threads` records fits in 64 bits and the dump
    /// area holds them; no `fw-load-area` range ends above [`LINUX_FW_LOAD_LIMIT`]. The
    /// `fw-load-area` ranges themselves need not be RAM.
    pub fn validate<M: GuestMemoryBackend>(&self, mem: &M) -> Result<(), ConfigError> {
        if let Some(o) = self.opal_memory {
            if o.src.len() > MAX_RANGE_SIZE {
                return Err(ConfigError::OpalTooLarge(o.src.len()));
            }
            if self.opal_dest_range().is_none() {
                return Err(ConfigError::OpalDestOverflow);
            }
        }
        let owned = self.firmware_owned();
        for (what, range) in &owned {
            if !memory::is_backed(mem, range) {
                return Err(ConfigError::NotBacked {
                    what,
                    range: *range,
                });
            }
        }
        for (i, (_, a)) in owned.iter().enumerate() {
            for (_, b) in &owned[i + 1..] {
                if a.overlaps(b) {
                    return Err(ConfigError::Overlap(*a, *b));
                }
            }
        }
        let need = Self::dump_area_size(self.max_threads)
            .ok_or(ConfigError::TooManyThreads(self.max_threads))?
            .max(OPAL_METADATA_OFFSET + (metadata::HEADER_SIZE + metadata::REGION_SIZE) as u64);
        if self.dump_area.len() < need {
            return Err(ConfigError::DumpAreaTooSmall {
                have: self.dump_area.len(),
                need,
                threads: self.max_threads,
            });
        }
        if let Some(r) = self
            .fw_load_area
            .iter()
            .find(|r| r.end() > LINUX_FW_LOAD_LIMIT)
        {
            return Err(ConfigError::LoadAreaTooHigh(*r));
        }
        Ok(())
    }
}
