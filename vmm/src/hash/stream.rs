//! The guest's hash page table as the fadump firmware needs it: one full pass of KVM's HPT save
//! stream (`KVM_PPC_GET_HTAB_FD`) turned into [`firmware::fadump::HptEntry`]s.
//!
//! Stream format (Linux `Documentation/virt/kvm/api.rst`, `KVM_PPC_GET_HTAB_FD`): records of an
//! 8-byte header `{ index: u32, n_valid: u16, n_invalid: u16 }` in host byte order, followed by
//! `n_valid` HPTEs of 16 bytes each (two big-endian doublewords, as stored in the HPT); the
//! `n_invalid` entries after them are implicit. A read stops at the end of the table; the next
//! read on the same fd starts a new pass reporting only changed entries, so with every vCPU
//! stopped, reading until a read returns 0 bytes yields exactly one full pass. A radix guest's
//! stream is empty.

use std::fs::File;
use std::io::Read;

use firmware::fadump::{hpte, HptEntry, HptSource, KernelDumpStructure, SectionType};
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const HEADER_SIZE: usize = 8;
const HPTE_SIZE: usize = 16;
/// Most one pass may hold: guards the reader against a stream that never ends. A pass streams at
/// most the HPT itself plus one header per run of entries; 2 GiB is far above the HPTs our guests
/// get (KVM's default order for 1 GiB of RAM is 2^24 bytes).
const MAX_PASS_BYTES: usize = 1 << 31;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HtabError {
    #[error("HPT stream record at byte {0} is truncated")]
    Truncated(usize),
    #[error("HPT stream record at byte {at}: entries {index}..+{count} overflow the index space")]
    IndexOverflow { at: usize, index: u32, count: u32 },
    #[error("HPT stream longer than the {0} bytes a pass of this table can have")]
    TooLong(usize),
    #[error("HPT stream record at byte {at}: entries {index}..+{count} lie beyond the {capacity}-entry table")]
    BeyondTable {
        at: usize,
        index: u32,
        count: u32,
        capacity: u64,
    },
    #[error("reading the HPT stream: {0}")]
    Read(String),
}

/// The most bytes one pass of a table of `capacity` entries can take: every entry valid
/// (16 bytes) under its own 8-byte header, which is more than any real pass (KVM groups runs
/// of entries under one header), plus one header. Capped at `MAX_PASS_BYTES`.
pub fn pass_limit(capacity: u64) -> usize {
    let bytes = capacity
        .saturating_mul((HPTE_SIZE + HEADER_SIZE) as u64)
        .saturating_add(HEADER_SIZE as u64);
    usize::try_from(bytes).map_or(MAX_PASS_BYTES, |b| b.min(MAX_PASS_BYTES))
}

/// Decodes one pass of the stream into the valid entries, with their HPT indexes.
pub fn parse_stream(bytes: &[u8]) -> Result<Vec<HptEntry>, HtabError> {
    parse_stream_within(bytes, u64::from(u32::MAX) + 1)
}

/// [`parse_stream`] for a table of `capacity` entries: a record reaching past the table is
/// refused, so the entries are at most the table's, whatever the stream says.
pub fn parse_stream_within(bytes: &[u8], capacity: u64) -> Result<Vec<HptEntry>, HtabError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes
            .get(at..at + HEADER_SIZE)
            .ok_or(HtabError::Truncated(at))?;
        let index = u32::from_ne_bytes(head[0..4].try_into().expect("4 bytes"));
        let n_valid = u16::from_ne_bytes(head[4..6].try_into().expect("2 bytes"));
        let n_invalid = u16::from_ne_bytes(head[6..8].try_into().expect("2 bytes"));
        let count = u32::from(n_valid) + u32::from(n_invalid);
        if index.checked_add(count).is_none() {
            return Err(HtabError::IndexOverflow { at, index, count });
        }
        if u64::from(index) + u64::from(count) > capacity {
            return Err(HtabError::BeyondTable {
                at,
                index,
                count,
                capacity,
            });
        }
        let body_len = usize::from(n_valid) * HPTE_SIZE;
        let body = bytes
            .get(at + HEADER_SIZE..at + HEADER_SIZE + body_len)
            .ok_or(HtabError::Truncated(at))?;
        for (i, e) in body.chunks_exact(HPTE_SIZE).enumerate() {
            out.push(HptEntry {
                index: u64::from(index) + i as u64,
                dword0: u64::from_be_bytes(e[0..8].try_into().expect("8 bytes")),
                dword1: u64::from_be_bytes(e[8..16].try_into().expect("8 bytes")),
            });
        }
        at += HEADER_SIZE + body_len;
    }
    Ok(out)
}

/// Reads `r` until a read returns 0 bytes: one full pass when every vCPU is stopped.
pub fn read_pass(r: &mut impl Read) -> Result<Vec<u8>, HtabError> {
    read_pass_within(r, MAX_PASS_BYTES)
}

/// [`read_pass`], refusing a pass longer than `limit` bytes ([`pass_limit`] of the table).
pub fn read_pass_within(r: &mut impl Read, limit: usize) -> Result<Vec<u8>, HtabError> {
    let mut pass = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| HtabError::Read(e.to_string()))?;
        if n == 0 {
            return Ok(pass);
        }
        if pass.len() + n > limit {
            return Err(HtabError::TooLong(limit));
        }
        pass.extend_from_slice(&buf[..n]);
    }
}

/// The firmware's view of a hash guest's HPT, over a fresh `KVM_PPC_GET_HTAB_FD` fd opened
/// after every vCPU stopped (`VmFd::get_htab_fd` with flags 0, start index 0).
pub struct KvmHpt {
    fd: File,
}

impl KvmHpt {
    pub fn new(fd: File) -> Self {
        Self { fd }
    }
}

impl HptSource for KvmHpt {
    fn valid_entries(&mut self) -> Result<Vec<HptEntry>, String> {
        let pass = read_pass(&mut self.fd).map_err(|e| e.to_string())?;
        parse_stream(&pass).map_err(|e| e.to_string())
    }
}

/// FNV-1a, 64 bits: a checksum for log lines (not a security measure).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The HPT as read from KVM at crash time: what the dump's HPTE section must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HptSnapshot {
    /// Bytes of the `KVM_PPC_GET_HTAB_FD` pass.
    pub stream_len: usize,
    /// Checksum of those bytes.
    pub stream_sum: u64,
    /// The valid entries, in stream order.
    pub entries: Vec<HptEntry>,
}

impl HptSnapshot {
    /// Decodes one pass of the stream.
    pub fn from_stream(pass: &[u8]) -> Result<Self, HtabError> {
        Ok(Self {
            stream_len: pass.len(),
            stream_sum: fnv1a64(pass),
            entries: parse_stream(pass)?,
        })
    }

    /// Reads one full pass from a fresh `KVM_PPC_GET_HTAB_FD` fd (every vCPU stopped).
    pub fn read(r: &mut impl Read) -> Result<Self, HtabError> {
        Self::from_stream(&read_pass(r)?)
    }

    /// [`HptSnapshot::read`] of a table of `capacity` entries: the host holds at most one
    /// pass of that table ([`pass_limit`]) and its entries, whatever the stream says.
    pub fn read_within(r: &mut impl Read, capacity: u64) -> Result<Self, HtabError> {
        let pass = read_pass_within(r, pass_limit(capacity))?;
        Ok(Self {
            stream_len: pass.len(),
            stream_sum: fnv1a64(&pass),
            entries: parse_stream_within(&pass, capacity)?,
        })
    }

    /// The HPTE save area these entries make (header + entries); the section's remaining
    /// bytes are zero.
    pub fn save_area(&self) -> Vec<u8> {
        let needed = hpte::HEADER_SIZE + self.entries.len() as u64 * hpte::ENTRY_SIZE;
        hpte::build(&self.entries, needed).unwrap_or_default()
    }
}

/// Where the HPTE section went and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpteCheck {
    pub destination: u64,
    pub section_len: u64,
    /// Bytes of save area (header + entries) at the start of the section.
    pub area_len: u64,
    /// Checksum of the save area as read back from guest memory.
    pub area_sum: u64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HpteCheckError {
    #[error("the dump structure does not decode")]
    BadStructure,
    #[error("the dump has no HPTE section")]
    NoSection,
    #[error(
        "the HPTE section ({section_len:#x} bytes) cannot hold {area_len:#x} bytes of entries"
    )]
    TooSmall { section_len: u64, area_len: u64 },
    #[error("cannot read the HPTE section at {0:#x}: {1}")]
    Read(u64, String),
    #[error("the HPTE section at {destination:#x} differs from the HPT read at byte {offset:#x}")]
    Mismatch { destination: u64, offset: u64 },
}

/// Checks that the HPTE section of the performed dump (`kernel_dump`, the structure the
/// firmware reports) holds exactly `snap`'s save area followed by zeros.
pub fn verify_hpte_section<M: GuestMemoryBackend>(
    mem: &M,
    kernel_dump: &[u8],
    snap: &HptSnapshot,
) -> Result<HpteCheck, HpteCheckError> {
    let structure =
        KernelDumpStructure::decode(kernel_dump).map_err(|_| HpteCheckError::BadStructure)?;
    let s = structure
        .sections()
        .iter()
        .find(|s| s.data_type == SectionType::HPTE)
        .ok_or(HpteCheckError::NoSection)?;
    let want = snap.save_area();
    let area_len = want.len() as u64;
    if s.source_len < area_len {
        return Err(HpteCheckError::TooSmall {
            section_len: s.source_len,
            area_len,
        });
    }
    let destination = s.destination_address;
    // Read in chunks: a section can be tens of MiB.
    let mut buf = vec![0u8; 1 << 20];
    let mut sum = 0xcbf2_9ce4_8422_2325u64;
    let mut off = 0u64;
    while off < s.source_len {
        let n = (s.source_len - off).min(buf.len() as u64) as usize;
        let addr = destination
            .checked_add(off)
            .ok_or_else(|| HpteCheckError::Read(destination, "address overflow".into()))?;
        mem.read_slice(&mut buf[..n], GuestAddress(addr))
            .map_err(|e| HpteCheckError::Read(addr, e.to_string()))?;
        for (i, b) in buf[..n].iter().enumerate() {
            let at = off + i as u64;
            let expected = want.get(at as usize).copied().unwrap_or(0);
            if *b != expected {
                return Err(HpteCheckError::Mismatch {
                    destination,
                    offset: at,
                });
            }
            if at < area_len {
                sum = (sum ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        off += n as u64;
    }
    Ok(HpteCheck {
        destination,
        section_len: s.source_len,
        area_len,
        area_sum: sum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u32, valid: &[(u64, u64)], n_invalid: u16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&(valid.len() as u16).to_ne_bytes());
        b.extend_from_slice(&n_invalid.to_ne_bytes());
        for (v, r) in valid {
            b.extend_from_slice(&v.to_be_bytes());
            b.extend_from_slice(&r.to_be_bytes());
        }
        b
    }

    #[test]
    fn records_become_indexed_entries() {
        let mut s = record(0, &[(0x4000_0000_0000_0001, 0x190)], 7);
        s.extend(record(8, &[(0x11, 0x22), (0x33, 0x44)], 0));
        s.extend(record(0x1_0000, &[], 0xffff));
        let e = parse_stream(&s).unwrap();
        assert_eq!(
            e,
            vec![
                HptEntry {
                    index: 0,
                    dword0: 0x4000_0000_0000_0001,
                    dword1: 0x190
                },
                HptEntry {
                    index: 8,
                    dword0: 0x11,
                    dword1: 0x22
                },
                HptEntry {
                    index: 9,
                    dword0: 0x33,
                    dword1: 0x44
                },
            ]
        );
        assert_eq!(
            parse_stream(&[]).unwrap(),
            vec![],
            "radix guests: empty stream"
        );
    }

    #[test]
    fn truncation_and_overflow_are_errors_not_panics() {
        let s = record(4, &[(1, 2), (3, 4)], 0);
        for cut in 1..s.len() {
            assert!(parse_stream(&s[..cut]).is_err(), "cut at {cut}");
        }
        let bad = record(u32::MAX - 1, &[(1, 2), (3, 4)], 0);
        assert!(matches!(
            parse_stream(&bad),
            Err(HtabError::IndexOverflow { .. })
        ));
    }

    #[test]
    fn a_pass_ends_at_the_first_empty_read() {
        // A reader that hands out the pass in small pieces, then 0, then (a second pass) more.
        struct Pieces(Vec<Vec<u8>>);
        impl Read for Pieces {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                let p = self.0.remove(0);
                buf[..p.len()].copy_from_slice(&p);
                Ok(p.len())
            }
        }
        let r1 = record(0, &[(5, 6)], 0);
        let r2 = record(1, &[(7, 8)], 3);
        let mut src = Pieces(vec![
            r1.clone(),
            r2.clone(),
            vec![],
            record(9, &[(1, 1)], 0),
        ]);
        let pass = read_pass(&mut src).unwrap();
        assert_eq!(pass, [r1, r2].concat());
        assert_eq!(parse_stream(&pass).unwrap().len(), 2);
    }

    /// End to end through the firmware: a registration with an HPTE section, a dump fed from a
    /// KVM-format stream, and the check of what landed in guest memory.
    #[test]
    fn the_dumped_hpte_section_holds_exactly_the_stream_entries() {
        use firmware::fadump::{DumpSection, Fadump, FadumpConfig};
        use firmware::CpuState;
        use vm_memory::GuestMemoryMmap;

        let ram = 16u64 << 20;
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), ram as usize)]).unwrap();
        let capacity = 1u64 << 10;
        let cfg = FadumpConfig {
            max_cpus: 1,
            hpte_capacity: capacity,
            rma_size: ram,
            firmware_reserved: vec![],
        };
        // Garbage where the section goes: the dump must overwrite all of it.
        let hpte_dest = 0x40_0000u64;
        mem.write_slice(&vec![0xa5; 0x10_0000], GuestAddress(hpte_dest))
            .unwrap();
        let sections = [
            DumpSection::request(SectionType::CPU_STATE, 0, cfg.cpu_state_size(), 0x30_0000),
            DumpSection::request(SectionType::HPTE, 0, cfg.hpte_size(), hpte_dest),
            DumpSection::request(SectionType::REAL_MODE_REGION, 0, 0x10_0000, 0x80_0000),
        ];
        let reg = KernelDumpStructure::registration_bytes(&sections);
        mem.write_slice(&reg, GuestAddress(0x1000)).unwrap();
        let mut f = Fadump::new(cfg.clone());
        let st = f.configure_kernel_dump(&mem, 1, 0x1000, reg.len() as u32);
        assert_eq!(st, Ok(()));

        let mut stream = record(3, &[(0x4000_0000_0000_0005, 0x1_0190)], 4);
        stream.extend(record(0x3ff, &[(0x4000_0000_0000_0001, 0xdead_0000)], 0));
        let snap = HptSnapshot::from_stream(&stream).unwrap();
        assert_eq!(snap.stream_len, stream.len());
        assert_eq!(snap.entries.len(), 2);
        let mut cpus = vec![CpuState::new(0)];
        let mut src = snap.entries.clone();
        let report = f.perform_dump(&mem, &mut cpus, Some(&mut src)).unwrap();
        assert!(!report.has_errors(), "{report:?}");

        let check = verify_hpte_section(&mem, &report.kernel_dump, &snap).unwrap();
        assert_eq!(check.destination, hpte_dest);
        assert_eq!(check.section_len, cfg.hpte_size());
        assert_eq!(check.area_len, 0x20 + 2 * 24);
        assert_eq!(check.area_sum, fnv1a64(&snap.save_area()));
        // Entry 1's index, read straight from memory.
        let mut idx = [0u8; 8];
        mem.read_slice(&mut idx, GuestAddress(hpte_dest + 0x20 + 24))
            .unwrap();
        assert_eq!(u64::from_be_bytes(idx), 0x3ff);

        // A different HPT, a flipped byte or a non-zero tail are all caught.
        let other = HptSnapshot::from_stream(&record(3, &[(1, 2)], 0)).unwrap();
        assert!(matches!(
            verify_hpte_section(&mem, &report.kernel_dump, &other),
            Err(HpteCheckError::Mismatch { .. })
        ));
        let tail = hpte_dest + cfg.hpte_size() - 1;
        mem.write_slice(&[1], GuestAddress(tail)).unwrap();
        assert_eq!(
            verify_hpte_section(&mem, &report.kernel_dump, &snap),
            Err(HpteCheckError::Mismatch {
                destination: hpte_dest,
                offset: cfg.hpte_size() - 1
            })
        );
        assert_eq!(
            verify_hpte_section(&mem, &[0u8; 4], &snap),
            Err(HpteCheckError::BadStructure)
        );
    }

    #[test]
    fn fnv_checksum_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_pass_is_bounded_by_its_table() {
        // 4 entries: at most 4 x (8 + 16) + 8 bytes, and no record past entry 3.
        assert_eq!(pass_limit(4), 104);
        assert_eq!(pass_limit(u64::MAX), MAX_PASS_BYTES);
        let ok = record(2, &[(1, 2), (3, 4)], 0);
        let snap = HptSnapshot::read_within(&mut &ok[..], 4).unwrap();
        assert_eq!(snap.entries.len(), 2);
        let beyond = record(3, &[(1, 2), (3, 4)], 0);
        assert_eq!(
            HptSnapshot::read_within(&mut &beyond[..], 4),
            Err(HtabError::BeyondTable {
                at: 0,
                index: 3,
                count: 2,
                capacity: 4
            })
        );
        let invalid_tail = record(0, &[], 5);
        assert!(matches!(
            parse_stream_within(&invalid_tail, 4),
            Err(HtabError::BeyondTable { .. })
        ));
        // A stream that never ends is cut at the table's limit, not at 2 GiB.
        let mut endless = std::io::repeat(0);
        assert_eq!(
            read_pass_within(&mut endless, pass_limit(4)),
            Err(HtabError::TooLong(104))
        );
    }
}
