//! How boot memory reaches its dump destination: the firmware decides *what* moves where (a
//! [`Move`] per copy section, plus the ranges that must stay as they are), and a [`Preserver`]
//! decides *how*. [`CopyPreserver`] copies (`memory::copy_within`), which is all pure firmware
//! can do; a VMM may instead move the host pages under its fixed guest mapping (ppc-vmm's
//! `memory::remap`), which leaves the source's content unspecified. [`PoisonPreserver`] makes
//! that explicit for tests: it copies and then overwrites the source, so a capture path that
//! still read the source would see the poison.
//!
//! # Destination alignment
//!
//! Moving pages only pays when whole host huge pages move, so the destination should be
//! congruent to the source modulo the host's huge-page size `G`. Linux (pseries,
//! `rtas_fadump_init_mem_struct`) places the CPU state section at the reservation start, the
//! HPTE section right after it, and the first boot-memory destination at
//! `PAGE_ALIGN(start + cpu_state_size + hpte_size)`, taking both sizes verbatim from
//! `ibm,configure-kernel-dump-sizes`. The reservation starts at `boot_mem_top`, which is
//! G-aligned for any even-MiB `crashkernel=` when G = 2 MiB. Advertising
//! [`padded_cpu_state_size`] (so that `cpu + hpte` is a multiple of `G`) therefore puts the
//! destination at `start + k·G`: G-aligned, for any guest page size, at a cost below `G` of
//! reserved guest RAM.

use vm_memory::GuestMemoryBackend;

use crate::memory::{self, CopyError};
use crate::range::GuestRange;

/// One copy section to preserve: `[dst, dst + src.len())` must end up holding what `src` held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// The section's index in registration order.
    pub section: usize,
    /// What to preserve (checked as RAM before the preserver sees it).
    pub src: GuestRange,
    /// Where (the whole destination range was checked as RAM too).
    pub dst: u64,
}

impl Move {
    /// The destination range.
    pub fn dst_range(&self) -> GuestRange {
        GuestRange::new(self.dst, self.src.len()).expect("checked when the move was planned")
    }
}

/// How a move was carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes that reached the destination by remapping host pages.
    pub remapped: u64,
    /// Bytes that were copied (unaligned heads and tails, fallbacks, restored kept ranges).
    pub copied: u64,
}

impl Outcome {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Outcome) {
        self.remapped += other.remapped;
        self.copied += other.copied;
    }
}

/// Carries out the firmware's moves. Called with every vCPU stopped and no device running.
pub trait Preserver<M: GuestMemoryBackend> {
    /// On return `[mv.dst, mv.dst + len)` holds what `mv.src` held. The source's content is
    /// unspecified afterwards, except the bytes inside `keep` (in-place sections and the
    /// sources of later moves), which must be unchanged. Bytes outside both ranges must not
    /// change. An error means the destination holds no usable copy.
    fn preserve(&mut self, mem: &M, mv: &Move, keep: &[GuestRange]) -> Result<Outcome, CopyError>;

    /// Zeroes `r` (checked as RAM by the caller): the rest of a firmware-written area, which
    /// the destination padding makes up to a huge page long. A VMM may drop whole host pages
    /// instead of writing them.
    fn zero(&mut self, mem: &M, r: GuestRange) -> Result<(), memory::MemoryError> {
        memory::zero_fill(mem, r.start(), r.len())
    }
}

/// Copies: the source stays intact. The default, and what pure firmware can do.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyPreserver;

impl<M: GuestMemoryBackend> Preserver<M> for CopyPreserver {
    fn preserve(&mut self, mem: &M, mv: &Move, _keep: &[GuestRange]) -> Result<Outcome, CopyError> {
        let n = memory::copy_within(mem, mv.src, mv.dst)?;
        Ok(Outcome {
            remapped: 0,
            copied: n,
        })
    }
}

/// Copies, then fills the source outside `keep` with [`PoisonPreserver::pattern`]: the
/// strictest reading of the [`Preserver`] contract. A test that runs the whole capture path
/// over it proves nothing reads boot memory after the dump.
#[derive(Debug, Clone, Copy)]
pub struct PoisonPreserver {
    /// The byte written over the source.
    pub pattern: u8,
    /// Bytes poisoned so far.
    pub poisoned: u64,
}

impl PoisonPreserver {
    /// A poisoner writing `pattern`.
    pub fn new(pattern: u8) -> Self {
        Self {
            pattern,
            poisoned: 0,
        }
    }
}

impl<M: GuestMemoryBackend> Preserver<M> for PoisonPreserver {
    fn preserve(&mut self, mem: &M, mv: &Move, keep: &[GuestRange]) -> Result<Outcome, CopyError> {
        let out = CopyPreserver.preserve(mem, mv, keep)?;
        for piece in mv.src.subtract(keep) {
            let mut at = piece.start();
            while at < piece.end() {
                let n = (piece.end() - at).min(memory::COPY_CHUNK);
                let poison = vec![self.pattern; n as usize];
                memory::write_bytes(mem, at, &poison).map_err(CopyError::Source)?;
                at += n;
            }
            self.poisoned += piece.len();
        }
        Ok(out)
    }
}

/// The CPU state size to advertise so that `cpu + hpte` is a multiple of `alignment` (see the
/// module documentation): `needed` rounded up, less the HPTE size. `alignment` 0 or 1, or a
/// size that does not fit, leaves `needed` as it is.
pub fn padded_cpu_state_size(needed: u64, hpte: u64, alignment: u64) -> u64 {
    if alignment <= 1 {
        return needed;
    }
    needed
        .checked_add(hpte)
        .and_then(|total| total.checked_next_multiple_of(alignment))
        .map_or(needed, |top| top - hpte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    #[test]
    fn padding_makes_cpu_plus_hpte_a_multiple_of_the_alignment() {
        const G: u64 = 2 << 20;
        assert_eq!(padded_cpu_state_size(2560, 0, G), G);
        assert_eq!(padded_cpu_state_size(2560, 0x1000, G), G - 0x1000);
        assert_eq!(padded_cpu_state_size(2560, G, G), G);
        assert_eq!(padded_cpu_state_size(2560, G + 1, G), 2 * G - 1 - G);
        assert_eq!(padded_cpu_state_size(G, 0, G), G, "already aligned");
        assert_eq!(padded_cpu_state_size(2560, 0, 0), 2560, "off");
        assert_eq!(padded_cpu_state_size(u64::MAX - 5, 0, G), u64::MAX - 5);
        for hpte in [0, 48, 0x20 + 48 * 1000, 3 << 20] {
            let cpu = padded_cpu_state_size(2560, hpte, G);
            assert!(cpu >= 2560);
            assert_eq!((cpu + hpte) % G, 0, "hpte {hpte}");
            assert!(cpu + hpte - (2560 + hpte) < G, "pads less than G");
        }
    }

    #[test]
    fn poison_keeps_what_it_must_and_poisons_the_rest_of_the_source() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x40000)]).unwrap();
        let data: Vec<u8> = (0..0x10000u32).map(|i| (i % 253) as u8).collect();
        memory::write_bytes(&m, 0, &data).unwrap();
        memory::write_bytes(&m, 0x30000, b"after").unwrap();
        let mv = Move {
            section: 2,
            src: GuestRange::new(0, 0x10000).unwrap(),
            dst: 0x20000,
        };
        let keep = [GuestRange::new(0x800, 0x100).unwrap()];
        let mut p = PoisonPreserver::new(0xa5);
        let out = p.preserve(&m, &mv, &keep).unwrap();
        assert_eq!(out.copied, 0x10000);
        assert_eq!(memory::read_bytes(&m, 0x20000, 0x10000).unwrap(), data);
        let src = memory::read_bytes(&m, 0, 0x10000).unwrap();
        assert_eq!(&src[0x800..0x900], &data[0x800..0x900]);
        assert!(src[..0x800].iter().chain(&src[0x900..]).all(|&b| b == 0xa5));
        assert_eq!(p.poisoned, 0x10000 - 0x100);
        assert_eq!(memory::read_bytes(&m, 0x30000, 5).unwrap(), b"after");
    }
}
