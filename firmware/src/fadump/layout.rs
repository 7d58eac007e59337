//! The PAPR Kernel Assisted Dump Memory Structure: header + sections, big-endian.
//!
//! The firmware keeps a private copy of the bytes the guest registered and patches only the
//! fields the platform owns (status, per-section error flags and bytes dumped), so everything
//! else in `ibm,kernel-dump` is byte-identical to the registration, as the second kernel needs.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::be::{BeReader, BeWriter};
use crate::range::GuestRange;

/// Bytes of the header (`struct rtas_fadump_section_header` in Linux's
/// `arch/powerpc/platforms/pseries/rtas-fadump.h`): 40. Also the smallest buffer REGISTER takes.
pub const HEADER_SIZE: usize = 0x28;
/// Bytes of one section (`struct rtas_fadump_section`): 40. Section *i* sits at
/// `offset_first_section + i * 40`.
pub const SECTION_SIZE: usize = 0x28;
/// PAPR: at most 10 sections ...
pub const MAX_SECTIONS: usize = 10;
/// ... and at most 512 bytes for format version 1.
pub const MAX_STRUCT_SIZE: usize = 0x200;
/// `dump_format_version`: the only version PAPR defines; REGISTER refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// `dump_status_flag` bits. The OS registers 0; the platform sets them when it performs the dump.
pub mod status {
    /// 0x8000: the dump was performed.
    pub const DUMP_PERFORMED: u16 = 0x8000;
    /// 0x4000: the dump was triggered by the previous boot.
    pub const DUMP_TRIGGERED: u16 = 0x4000;
    /// 0x2000: some section failed (Linux `RTAS_FADUMP_ERROR_FLAG`). Kernels before 6.10 reject
    /// a dump whose status is exactly this value; later ones look at the sections instead.
    pub const DUMP_ERROR: u16 = 0x2000;
}

/// Per-section `error_flags` bits (set by the platform at dump time; the OS registers 0). A
/// section with any bit set has `bytes_dumped` 0, and the header gets [`status::DUMP_ERROR`].
pub mod section_error {
    /// 0x8000: the platform does not provide this data type (here: PAPR type 0x0012, and any
    /// reserved type found in a restored state).
    pub const INVALID_DATA_TYPE: u16 = 0x8000;
    /// 0x4000: the source could not be read (for the HPTE section: the hash page table could not
    /// be read).
    pub const INVALID_SOURCE_ADDR: u16 = 0x4000;
    /// 0x2000: the requested length runs past the source (here: `source_address + source_len`
    /// overflows 64 bits).
    pub const LENGTH_EXCEEDS_SOURCE: u16 = 0x2000;
    /// 0x1000: the partition destination could not be written.
    pub const INVALID_DEST_ADDR: u16 = 0x1000;
    /// 0x0800: the destination (`source_len` bytes) is too small for the data, e.g. more vCPUs
    /// online than the Register Save Area was sized for.
    pub const DEST_TOO_SMALL: u16 = 0x0800;
}

/// `request_flag` bit 0: the firmware copies the data into partition memory.
pub const REQUEST_FLAG_COPY: u32 = 0x1;

/// A section's `source_data_type` (PAPR; the raw big-endian 16-bit value). Any value can be
/// held; [`SectionType::kind`] says what the firmware makes of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SectionType(pub u16);

impl SectionType {
    /// 0x0001, CPU state data (Linux `RTAS_FADUMP_CPU_STATE_DATA`): the firmware writes the
    /// Register Save Area ([`regsave`](crate::fadump::regsave)) at the destination.
    pub const CPU_STATE: SectionType = SectionType(0x0001);
    /// 0x0002, hardware page table for the real mode region (Linux `RTAS_FADUMP_HPTE_REGION`):
    /// the firmware writes the HPTE save area ([`hpte`](crate::fadump::hpte)).
    pub const HPTE: SectionType = SectionType(0x0002);
    /// 0x0011, real mode region (Linux `RTAS_FADUMP_REAL_MODE_REGION`), Linux's "boot memory":
    /// the firmware copies `source_len` bytes from the source to the destination.
    pub const REAL_MODE_REGION: SectionType = SectionType(0x0011);
    /// 0x0012, dump OS identified string (PAPR only; Linux never registers it): accepted at
    /// REGISTER and flagged [`section_error::INVALID_DATA_TYPE`] at dump time.
    pub const OS_IDENT_STRING: SectionType = SectionType(0x0012);
    /// 0x0100, the first OS-defined type; Linux 6.10 and later use it for the parameter area
    /// (`RTAS_FADUMP_PARAM_AREA`, source == destination, extra command line for the capture
    /// kernel). Copied like every OS-defined type (0x0100 to 0xFFFF).
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

/// How the firmware treats a section type, from [`SectionType::kind`].
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

/// The 40-byte header, Linux's `struct rtas_fadump_section_header`. Every field is big-endian in
/// guest memory; the values here are native.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpHeader {
    /// 0x00, `dump_format_version`: must be [`FORMAT_VERSION`] (1).
    pub format_version: u32,
    /// 0x04, `dump_num_sections`: how many sections follow, 1 to [`MAX_SECTIONS`] (Linux sends
    /// 3 before 6.10, 3 to 10 since).
    pub num_sections: u16,
    /// 0x06, `dump_status_flag`: [`status`] bits. The OS registers 0; after a dump it reads
    /// 0xC000, plus 0x2000 when a section failed.
    pub status: u16,
    /// 0x08, `offset_first_dump_section`: byte offset of section 0 from the start of the
    /// structure, at least 0x28 (Linux always sends 0x28).
    pub offset_first_section: u32,
    /// 0x0C, `dd_block_size`: disk-dump block size in bytes; 0 = no disk dump. This firmware
    /// supports no disk dump, so REGISTER requires every `dd_*` field to be 0.
    pub dd_block_size: u32,
    /// 0x10, `dd_block_offset`: first disk block of the disk dump.
    pub dd_block_offset: u64,
    /// 0x18, `dd_num_blocks`: number of disk blocks for the disk dump.
    pub dd_num_blocks: u64,
    /// 0x20, `dd_offset_disk_path`: offset of the NUL-terminated disk path string in the
    /// structure; 0 = none.
    pub dd_offset_disk_path: u32,
    /// 0x24, `max_time_auto`: milliseconds after an NMI within which the OS must UNREGISTER to
    /// prevent an automatic dump-reboot; 0 disables it. Accepted and ignored here.
    pub max_time_auto: u32,
}

impl DumpHeader {
    /// Decodes the big-endian header at the PAPR offsets. Any value is accepted; checking is
    /// [`validate`](crate::fadump::validate::validate)'s job.
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

    /// Encodes the header big-endian at the PAPR offsets (the inverse of
    /// [`DumpHeader::from_be_bytes`]).
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

/// One 40-byte section, Linux's `struct rtas_fadump_section`. Every field is big-endian in guest
/// memory; the values here are native. Addresses are guest real (logical) addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSection {
    /// +0x00, `request_flag`: bit 0 ([`REQUEST_FLAG_COPY`]) asks the firmware to copy the data
    /// into partition memory. Linux always sends 1; REGISTER refuses a section without it.
    pub request_flag: u32,
    /// +0x04, `source_data_type`.
    pub data_type: SectionType,
    /// +0x06, `error_flags`: [`section_error`] bits, set by the platform at dump time (0 at
    /// registration).
    pub error_flags: u16,
    /// +0x08, `source_address`: where the data to copy starts. For the firmware-filled CPU and
    /// HPTE sections it is unused (Linux sends 0).
    pub source_address: u64,
    /// +0x10, `source_len`: bytes requested, which is also the size of the destination. For the
    /// CPU and HPTE sections it must be at least the size `ibm,configure-kernel-dump-sizes`
    /// advertises.
    pub source_len: u64,
    /// +0x18, `bytes_dumped`: bytes the platform actually dumped (set at dump time: equal to
    /// `source_len` on success, 0 on failure).
    pub bytes_dumped: u64,
    /// +0x20, `destination_address`: where in partition memory the firmware puts the data.
    pub destination_address: u64,
}

impl DumpSection {
    /// Decodes a big-endian section at the PAPR offsets; any value is accepted.
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

    /// Encodes the section big-endian at the PAPR offsets (the inverse of
    /// [`DumpSection::from_be_bytes`]).
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

/// Why [`KernelDumpStructure::decode`] (or deserializing a saved structure) refused the bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes (the count carried here) than the 40-byte header.
    #[error("{0} bytes is shorter than the {HEADER_SIZE}-byte header")]
    ShortHeader(usize),
    /// `dump_num_sections` is 0: there is nothing to dump.
    #[error("no sections")]
    NoSections,
    /// `offset_first_dump_section` (carried here) is below 0x28: the sections would overlap the
    /// header.
    #[error("first section at {0:#x}, inside the {HEADER_SIZE}-byte header")]
    SectionsInHeader(u32),
    /// The sections run past the end of the bytes.
    #[error("{count} sections at {offset:#x} run past the {len} bytes")]
    SectionsOutside {
        /// `offset_first_dump_section`.
        offset: u32,
        /// `dump_num_sections`.
        count: u16,
        /// Bytes available.
        len: usize,
    },
    /// A saved structure holds a different number of decoded sections (the second value) than
    /// its header's `dump_num_sections` (the first).
    #[error("header announces {0} sections, {1} are held")]
    SectionCountMismatch(u16, usize),
}

/// Checks that `header` places `sections` sections inside `len` bytes without touching the header:
/// the invariant [`KernelDumpStructure::encode`] relies on. Returns the end of the last section.
fn check_shape(header: &DumpHeader, sections: usize, len: usize) -> Result<usize, DecodeError> {
    if len < HEADER_SIZE {
        return Err(DecodeError::ShortHeader(len));
    }
    let (offset, count) = (header.offset_first_section, header.num_sections);
    if count == 0 {
        return Err(DecodeError::NoSections);
    }
    if (offset as usize) < HEADER_SIZE {
        return Err(DecodeError::SectionsInHeader(offset));
    }
    if sections != count as usize {
        return Err(DecodeError::SectionCountMismatch(count, sections));
    }
    (offset as usize)
        .checked_add(count as usize * SECTION_SIZE)
        .filter(|&end| end <= len)
        .ok_or(DecodeError::SectionsOutside { offset, count, len })
}

/// A registered structure: the guest's bytes (up to the end of the last section) plus the
/// decoded header and sections.
///
/// Every value places its sections after the header and inside the kept bytes ([`decode`]
/// refuses anything else, and so does deserializing a saved structure), and only the fields the
/// platform owns can change afterwards, so [`encode`] always writes where the guest registered.
///
/// [`decode`]: KernelDumpStructure::decode
/// [`encode`]: KernelDumpStructure::encode
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SavedStructure", into = "SavedStructure")]
pub struct KernelDumpStructure {
    raw: Vec<u8>,
    header: DumpHeader,
    sections: Vec<DumpSection>,
}

/// The serialized form of [`KernelDumpStructure`] (the same fields), checked on the way in.
#[derive(Serialize, Deserialize)]
struct SavedStructure {
    raw: Vec<u8>,
    header: DumpHeader,
    sections: Vec<DumpSection>,
}

impl TryFrom<SavedStructure> for KernelDumpStructure {
    type Error = DecodeError;

    fn try_from(s: SavedStructure) -> Result<Self, DecodeError> {
        check_shape(&s.header, s.sections.len(), s.raw.len())?;
        Ok(Self {
            raw: s.raw,
            header: s.header,
            sections: s.sections,
        })
    }
}

impl From<KernelDumpStructure> for SavedStructure {
    fn from(k: KernelDumpStructure) -> Self {
        Self {
            raw: k.raw,
            header: k.header,
            sections: k.sections,
        }
    }
}

impl KernelDumpStructure {
    /// Decodes `bytes`, which must hold the header and `num_sections` (at least one) sections
    /// from `offset_first_section` (at least 0x28) on. The header's other fields are not checked
    /// here: that is [`validate`](crate::fadump::validate::validate)'s job.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let head: &[u8; HEADER_SIZE] = bytes
            .get(..HEADER_SIZE)
            .and_then(|h| h.try_into().ok())
            .ok_or(DecodeError::ShortHeader(bytes.len()))?;
        let header = DumpHeader::from_be_bytes(head);
        let end = check_shape(&header, header.num_sections as usize, bytes.len())?;
        let raw = bytes[..end].to_vec();
        let sections = raw[header.offset_first_section as usize..]
            .chunks_exact(SECTION_SIZE)
            .map(|c| DumpSection::from_be_bytes(c.try_into().expect("exact chunk")))
            .collect();
        Ok(Self {
            raw,
            header,
            sections,
        })
    }

    /// The decoded header, with the status the platform set.
    pub fn header(&self) -> &DumpHeader {
        &self.header
    }

    /// The decoded sections, in registration order (the order `ibm,kernel-dump` keeps: kernels
    /// before 6.10 read CPU, HPTE and boot memory at fixed offsets), with the error flags and
    /// bytes dumped the platform set.
    pub fn sections(&self) -> &[DumpSection] {
        &self.sections
    }

    /// Sets `dump_status_flag` (platform-owned).
    pub(crate) fn set_status(&mut self, status: u16) {
        self.header.status = status;
    }

    /// The sections, to record their results (their number cannot change).
    pub(crate) fn sections_mut(&mut self) -> &mut [DumpSection] {
        &mut self.sections
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
        // The shape was checked when the value was made: every slot below exists.
        if let Some(h) = out.get_mut(..HEADER_SIZE) {
            h.copy_from_slice(&self.header.to_be_bytes());
        }
        let first = self.header.offset_first_section as usize;
        let slots = out.get_mut(first..).unwrap_or_default();
        for (slot, s) in slots.chunks_exact_mut(SECTION_SIZE).zip(&self.sections) {
            slot.copy_from_slice(&s.to_be_bytes());
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
        k.set_status(status::DUMP_PERFORMED);
        let out = k.encode();
        assert_eq!(&out[0x28..0x38], b"guest-owned-gap!");
        assert_eq!(&out[6..8], &[0x80, 0]);
        assert_eq!(
            KernelDumpStructure::decode(&bytes[..0x40]),
            Err(DecodeError::SectionsOutside {
                offset: 0x38,
                count: 1,
                len: 0x40
            })
        );
        h.offset_first_section = 0x10;
        bytes[..0x28].copy_from_slice(&h.to_be_bytes());
        assert_eq!(
            KernelDumpStructure::decode(&bytes),
            Err(DecodeError::SectionsInHeader(0x10))
        );
        h.offset_first_section = 0x28;
        h.num_sections = 0;
        bytes[..0x28].copy_from_slice(&h.to_be_bytes());
        assert_eq!(
            KernelDumpStructure::decode(&bytes),
            Err(DecodeError::NoSections)
        );
        assert_eq!(
            KernelDumpStructure::decode(&bytes[..0x27]),
            Err(DecodeError::ShortHeader(0x27))
        );
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
        assert_eq!(k.header().format_version, 1);
        assert_eq!(k.header().offset_first_section, 0x28);
        assert_eq!(k.sections(), secs);
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
