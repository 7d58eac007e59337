//! The PAPR Kernel Assisted Dump Memory Structure: header + sections, big-endian.
//!
//! The firmware keeps a private copy of the bytes the guest registered and patches only the
//! fields the platform owns (status, per-section error flags and bytes dumped), so everything
//! else in `ibm,kernel-dump` is byte-identical to the registration, as the second kernel needs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::be::{BeReader, BeWriter};
use crate::range::GuestRange;

pub const HEADER_SIZE: usize = 0x28;
pub const SECTION_SIZE: usize = 0x28;
/// PAPR: at most 10 sections ...
pub const MAX_SECTIONS: usize = 10;
/// ... and at most 512 bytes for format version 1.
pub const MAX_STRUCT_SIZE: usize = 0x200;
pub const FORMAT_VERSION: u32 = 1;

/// `dump_status_flag` bits.
pub mod status {
    pub const DUMP_PERFORMED: u16 = 0x8000;
    pub const DUMP_TRIGGERED: u16 = 0x4000;
    pub const DUMP_ERROR: u16 = 0x2000;
}

/// Per-section `error_flags` bits (set by the platform).
pub mod section_error {
    pub const INVALID_DATA_TYPE: u16 = 0x8000;
    pub const INVALID_SOURCE_ADDR: u16 = 0x4000;
    pub const LENGTH_EXCEEDS_SOURCE: u16 = 0x2000;
    pub const INVALID_DEST_ADDR: u16 = 0x1000;
    pub const DEST_TOO_SMALL: u16 = 0x0800;
}

/// `request_flag` bit 0: the firmware copies the data into partition memory.
pub const REQUEST_FLAG_COPY: u32 = 0x1;

/// A section's `source_data_type`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SectionType(pub u16);

impl SectionType {
    pub const CPU_STATE: SectionType = SectionType(0x0001);
    pub const HPTE: SectionType = SectionType(0x0002);
    pub const REAL_MODE_REGION: SectionType = SectionType(0x0011);
    pub const OS_IDENT_STRING: SectionType = SectionType(0x0012);
    pub const PARAM_AREA: SectionType = SectionType(0x0100);

    /// What the firmware does with a section of this type.
    pub fn kind(self) -> SectionKind {
        match self.0 {
            0x0001 => SectionKind::CpuState,
            0x0002 => SectionKind::Hpte,
            0x0011 | 0x0100..=0xffff => SectionKind::Copy,
            0x0012 => SectionKind::Unsupported,
            _ => SectionKind::Reserved,
        }
    }
}

impl fmt::Debug for SectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// The firmware writes the Register Save Area.
    CpuState,
    /// The firmware writes the HPTE save area.
    Hpte,
    /// The firmware copies source to destination (real mode region, OS-defined types).
    Copy,
    /// Defined by PAPR but not provided by this platform: flagged at dump time.
    Unsupported,
    /// Reserved by PAPR: refused at registration.
    Reserved,
}

/// The 40-byte header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpHeader {
    pub format_version: u32,
    pub num_sections: u16,
    pub status: u16,
    pub offset_first_section: u32,
    pub dd_block_size: u32,
    pub dd_block_offset: u64,
    pub dd_num_blocks: u64,
    pub dd_offset_disk_path: u32,
    pub max_time_auto: u32,
}

impl DumpHeader {
    pub fn from_be_bytes(b: &[u8; HEADER_SIZE]) -> Self {
        let r = BeReader::new(b);
        Self {
            format_version: r.u32(0x00),
            num_sections: r.u16(0x04),
            status: r.u16(0x06),
            offset_first_section: r.u32(0x08),
            dd_block_size: r.u32(0x0c),
            dd_block_offset: r.u64(0x10),
            dd_num_blocks: r.u64(0x18),
            dd_offset_disk_path: r.u32(0x20),
            max_time_auto: r.u32(0x24),
        }
    }

    pub fn to_be_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        let mut w = BeWriter::new(&mut b);
        w.u32(0x00, self.format_version);
        w.u16(0x04, self.num_sections);
        w.u16(0x06, self.status);
        w.u32(0x08, self.offset_first_section);
        w.u32(0x0c, self.dd_block_size);
        w.u64(0x10, self.dd_block_offset);
        w.u64(0x18, self.dd_num_blocks);
        w.u32(0x20, self.dd_offset_disk_path);
        w.u32(0x24, self.max_time_auto);
        b
    }
}

/// One 40-byte section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSection {
    pub request_flag: u32,
    pub data_type: SectionType,
    pub error_flags: u16,
    pub source_address: u64,
    pub source_len: u64,
    pub bytes_dumped: u64,
    pub destination_address: u64,
}

impl DumpSection {
    pub fn from_be_bytes(b: &[u8; SECTION_SIZE]) -> Self {
        let r = BeReader::new(b);
        Self {
            request_flag: r.u32(0x00),
            data_type: SectionType(r.u16(0x04)),
            error_flags: r.u16(0x06),
            source_address: r.u64(0x08),
            source_len: r.u64(0x10),
            bytes_dumped: r.u64(0x18),
            destination_address: r.u64(0x20),
        }
    }

    pub fn to_be_bytes(&self) -> [u8; SECTION_SIZE] {
        let mut b = [0u8; SECTION_SIZE];
        let mut w = BeWriter::new(&mut b);
        w.u32(0x00, self.request_flag);
        w.u16(0x04, self.data_type.0);
        w.u16(0x06, self.error_flags);
        w.u64(0x08, self.source_address);
        w.u64(0x10, self.source_len);
        w.u64(0x18, self.bytes_dumped);
        w.u64(0x20, self.destination_address);
        b
    }

    /// A section as an OS registers it: copy requested, no error, nothing dumped yet.
    pub fn request(data_type: SectionType, source: u64, len: u64, destination: u64) -> Self {
        Self {
            request_flag: REQUEST_FLAG_COPY,
            data_type,
            error_flags: 0,
            source_address: source,
            source_len: len,
            bytes_dumped: 0,
            destination_address: destination,
        }
    }

    /// `[source, source + len)`, or `None` on 64-bit overflow.
    pub fn source_range(&self) -> Option<GuestRange> {
        GuestRange::new(self.source_address, self.source_len)
    }

    /// `[destination, destination + len)`, or `None` on 64-bit overflow.
    pub fn destination_range(&self) -> Option<GuestRange> {
        GuestRange::new(self.destination_address, self.source_len)
    }

    /// A copy section whose data stays where it is (Linux's parameter area: source == destination).
    pub fn is_in_place(&self) -> bool {
        self.source_address == self.destination_address
    }
}

/// A registered structure: the guest's bytes (up to the end of the last section) plus the
/// decoded header and sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelDumpStructure {
    raw: Vec<u8>,
    pub header: DumpHeader,
    pub sections: Vec<DumpSection>,
}

impl KernelDumpStructure {
    /// Decodes `bytes`, which must hold the header and `num_sections` sections at
    /// `offset_first_section` (the caller validated the counts; this only refuses short input).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let header = DumpHeader::from_be_bytes(bytes.get(..HEADER_SIZE)?.try_into().ok()?);
        let first = header.offset_first_section as usize;
        let n = header.num_sections as usize;
        let end = first.checked_add(n.checked_mul(SECTION_SIZE)?)?;
        let raw = bytes.get(..end)?.to_vec();
        let sections = (0..n)
            .map(|i| {
                let off = first + i * SECTION_SIZE;
                DumpSection::from_be_bytes(raw[off..off + SECTION_SIZE].try_into().unwrap())
            })
            .collect();
        Some(Self {
            raw,
            header,
            sections,
        })
    }

    /// The bytes of a format-1 registration of `sections` (header, then the sections from
    /// offset 0x28), as a VMM tool, a fuzzer or a benchmark hands it to REGISTER.
    pub fn registration_bytes(sections: &[DumpSection]) -> Vec<u8> {
        let header = DumpHeader {
            format_version: FORMAT_VERSION,
            num_sections: sections.len() as u16,
            status: 0,
            offset_first_section: HEADER_SIZE as u32,
            dd_block_size: 0,
            dd_block_offset: 0,
            dd_num_blocks: 0,
            dd_offset_disk_path: 0,
            max_time_auto: 0,
        };
        let mut out = header.to_be_bytes().to_vec();
        for s in sections {
            out.extend_from_slice(&s.to_be_bytes());
        }
        out
    }

    /// The bytes as `ibm,kernel-dump` presents them: the registered bytes with the current
    /// header and sections written over them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.raw.clone();
        out[..HEADER_SIZE].copy_from_slice(&self.header.to_be_bytes());
        let first = self.header.offset_first_section as usize;
        for (i, s) in self.sections.iter().enumerate() {
            let off = first + i * SECTION_SIZE;
            out[off..off + SECTION_SIZE].copy_from_slice(&s.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_round_trips_at_papr_offsets() {
        let s = DumpSection {
            request_flag: 1,
            data_type: SectionType::REAL_MODE_REGION,
            error_flags: 0x4000,
            source_address: 0x1122334455667788,
            source_len: 0x2000_0000,
            bytes_dumped: 0x10,
            destination_address: 0x2001_0000,
        };
        let b = s.to_be_bytes();
        assert_eq!(&b[0..4], &[0, 0, 0, 1]);
        assert_eq!(&b[4..8], &[0x00, 0x11, 0x40, 0x00]);
        assert_eq!(&b[8..16], &0x1122334455667788u64.to_be_bytes());
        assert_eq!(&b[0x20..0x28], &0x2001_0000u64.to_be_bytes());
        assert_eq!(DumpSection::from_be_bytes(&b), s);
    }

    #[test]
    fn encode_keeps_bytes_the_platform_does_not_own() {
        let mut bytes = vec![0u8; 0x28 + 0x10 + 0x28];
        let mut h = DumpHeader {
            format_version: 1,
            num_sections: 1,
            status: 0,
            offset_first_section: 0x38,
            dd_block_size: 0,
            dd_block_offset: 0,
            dd_num_blocks: 0,
            dd_offset_disk_path: 0,
            max_time_auto: 0,
        };
        bytes[..0x28].copy_from_slice(&h.to_be_bytes());
        bytes[0x28..0x38].copy_from_slice(b"guest-owned-gap!");
        let mut k = KernelDumpStructure::decode(&bytes).unwrap();
        h.status = status::DUMP_PERFORMED;
        k.header = h;
        let out = k.encode();
        assert_eq!(&out[0x28..0x38], b"guest-owned-gap!");
        assert_eq!(&out[6..8], &[0x80, 0]);
        assert!(KernelDumpStructure::decode(&bytes[..0x40]).is_none());
    }

    #[test]
    fn registration_bytes_decode_back() {
        let secs = [
            DumpSection::request(SectionType::CPU_STATE, 0, 0xa00, 0x2000_0000),
            DumpSection::request(SectionType::REAL_MODE_REGION, 0, 0x100, 0x2001_0000),
        ];
        let b = KernelDumpStructure::registration_bytes(&secs);
        assert_eq!(b.len(), 0x28 + 2 * 0x28);
        let k = KernelDumpStructure::decode(&b).unwrap();
        assert_eq!(k.header.format_version, 1);
        assert_eq!(k.header.offset_first_section, 0x28);
        assert_eq!(k.sections, secs);
        assert_eq!(k.encode(), b);
    }

    #[test]
    fn type_kinds() {
        assert_eq!(SectionType(0x0011).kind(), SectionKind::Copy);
        assert_eq!(SectionType(0x0100).kind(), SectionKind::Copy);
        assert_eq!(SectionType(0xffff).kind(), SectionKind::Copy);
        assert_eq!(SectionType(0x0012).kind(), SectionKind::Unsupported);
        for reserved in [0x0000, 0x0003, 0x0010, 0x0013, 0x00ff] {
            assert_eq!(SectionType(reserved).kind(), SectionKind::Reserved);
        }
    }
}
