//! Registration checks for `ibm,configure-kernel-dump` REGISTER.
//!
//! PAPR leaves most validation to the platform; these rules come from PAPR (error flags, the
//! RMA-buffer rule, the 512-byte limit), from the -3 diagnostics Linux prints ("Can't have holes
//! in boot memory area"), and from what would make a dump unusable or dangerous. Everything is
//! checked at registration, so the dump itself never meets a surprise it could have refused.

use thiserror::Error;
use vm_memory::GuestMemoryBackend;

use crate::fadump::layout::{
    DumpHeader, DumpSection, KernelDumpStructure, SectionKind, SectionType, FORMAT_VERSION,
    HEADER_SIZE, MAX_SECTIONS, MAX_STRUCT_SIZE, REQUEST_FLAG_COPY,
};
use crate::fadump::FadumpConfig;
use crate::memory;
use crate::range::GuestRange;

/// Why a registration was refused.
///
/// Every reason becomes RTAS status -3 (parameter error) except [`BufferUnreadable`], which is
/// -1 (hardware error). Section indices count from 0 in registration order. The buffer and the
/// header are checked first, then each section in turn, then the overlaps between sections; the
/// first failure is reported.
///
/// [`BufferUnreadable`]: RegistrationError::BufferUnreadable
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RegistrationError {
    /// The buffer address (`args[1]`) is 0.
    #[error("buffer address is 0")]
    NullBuffer,
    /// The length (`args[2]`, carried here) is below the 40-byte header or above PAPR's 512
    /// bytes.
    #[error("buffer length {0} outside [{HEADER_SIZE}, {MAX_STRUCT_SIZE}]")]
    BufferLength(u32),
    /// The buffer (the range carried here) ends above the RMA size (the second value; PAPR R1-2)
    /// or is not entirely RAM.
    #[error("buffer {0} is not inside RAM below the RMA limit {1:#x}")]
    BufferOutsideRma(GuestRange, u64),
    /// Reading the buffer failed although it lies in RAM.
    #[error("buffer unreadable: {0}")]
    BufferUnreadable(memory::MemoryError),
    /// `dump_format_version` (carried here) is not 1.
    #[error("dump format version {0} (only 1 exists)")]
    FormatVersion(u32),
    /// `dump_num_sections` (carried here) is 0 or above 10.
    #[error("{0} sections (must be 1..={MAX_SECTIONS})")]
    SectionCount(u16),
    /// `offset_first_dump_section` is below 40, or the sections it places run past the length.
    #[error("first section at {offset:#x} with {count} sections does not fit a {len}-byte buffer")]
    SectionsOutsideBuffer {
        /// `offset_first_dump_section` as registered.
        offset: u32,
        /// `dump_num_sections` as registered.
        count: u16,
        /// The registered length in bytes.
        len: u32,
    },
    /// A `dd_*` disk-dump field is nonzero: this platform has no disk dump.
    #[error("disk dump requested (dd_* fields nonzero): not supported")]
    DiskDump,
    /// Section `.0` has `request_flag` `.1` without bit 0: it asks for no copy, which only makes
    /// sense with a disk dump.
    #[error("section {0}: request flag {1:#x} without the copy bit (disk dump only)")]
    NoCopyRequest(usize, u32),
    /// Section `.0` has a type PAPR reserves (0x0000, 0x0003 to 0x0010, 0x0013 to 0x00FF).
    #[error("section {0}: reserved data type {1:?}")]
    ReservedType(usize, SectionType),
    /// Section `.0` is a second CPU state (0x0001) or second HPTE (0x0002) section.
    #[error("section {0}: second section of type {1:?}")]
    DuplicateType(usize, SectionType),
    /// A CPU state or HPTE section asks for fewer bytes than `ibm,configure-kernel-dump-sizes`
    /// advertises.
    #[error("section {index}: length {len:#x} below the advertised {needed:#x}")]
    TooSmall {
        /// The section's index.
        index: usize,
        /// Its `source_len`.
        len: u64,
        /// The advertised size ([`FadumpConfig::cpu_state_size`] or
        /// [`FadumpConfig::hpte_size`]).
        needed: u64,
    },
    /// Copy section `.0` has `source_len` 0.
    #[error("section {0}: zero-length copy")]
    EmptyCopy(usize),
    /// In section `.0`, source or destination address + `source_len` overflows 64 bits.
    #[error("section {0}: address + length overflows 64 bits")]
    Overflow(usize),
    /// The source range of copy section `.0` is not entirely RAM: beyond RAM or across a hole
    /// (PowerVM's "Can't have holes in boot memory area").
    #[error("section {0}: source {1} is outside RAM or crosses a hole")]
    SourceNotRam(usize, GuestRange),
    /// The destination range of section `.0` is not entirely RAM ("Can't have holes in reserved
    /// memory area").
    #[error("section {0}: destination {1} is outside RAM or crosses a hole")]
    DestinationNotRam(usize, GuestRange),
    /// The destinations of sections `.0` and `.1` share a byte.
    #[error("sections {0} and {1}: destinations overlap")]
    DestinationsOverlap(usize, usize),
    /// A destination overlaps the source of a copy section (its own included). An in-place
    /// section (source == destination, Linux's parameter area) writes nothing and is exempt.
    #[error("section {dst}: destination overlaps the source of section {src}")]
    DestinationOverlapsSource {
        /// Index of the section whose destination overlaps.
        dst: usize,
        /// Index of the copy section whose source it overlaps.
        src: usize,
    },
    /// The destination of section `.0` (`.1`) overlaps memory the firmware owns (`.2`, from
    /// [`FadumpConfig::firmware_reserved`]). In-place sections are exempt.
    #[error("section {0}: destination {1} overlaps firmware memory {2}")]
    DestinationOverlapsFirmware(usize, GuestRange, GuestRange),
}

/// Reads and checks the structure at `addr`/`len`; on success returns the private copy.
///
/// `addr` is the 32-bit real address Linux passes (zero-extended); `len` must cover the header
/// and every section. Only the bytes up to the end of the last section are kept. Nothing in
/// guest memory is written.
pub fn validate<M: GuestMemoryBackend>(
    mem: &M,
    config: &FadumpConfig,
    addr: u32,
    len: u32,
) -> Result<KernelDumpStructure, RegistrationError> {
    use RegistrationError as E;
    if addr == 0 {
        return Err(E::NullBuffer);
    }
    if (len as usize) < HEADER_SIZE || len as usize > MAX_STRUCT_SIZE {
        return Err(E::BufferLength(len));
    }
    // u32 + u32 cannot overflow u64.
    let buffer = GuestRange::new(u64::from(addr), u64::from(len)).expect("32-bit fits");
    if buffer.end() > config.rma_size || !memory::is_backed(mem, &buffer) {
        return Err(E::BufferOutsideRma(buffer, config.rma_size));
    }
    let bytes =
        memory::read_bytes(mem, buffer.start(), len as usize).map_err(E::BufferUnreadable)?;

    let header = DumpHeader::from_be_bytes(bytes[..HEADER_SIZE].try_into().expect("checked"));
    check_header(&header)?;
    let structure = KernelDumpStructure::decode(&bytes).map_err(|_| E::SectionsOutsideBuffer {
        offset: header.offset_first_section,
        count: header.num_sections,
        len,
    })?;
    if !disk_dump_fields_zero(&header) {
        return Err(E::DiskDump);
    }
    check_sections(mem, config, structure.sections())?;
    Ok(structure)
}

/// The checks REGISTER makes of the structure alone (no memory, no configuration): format
/// version 1, 1 to [`MAX_SECTIONS`] sections, no disk dump, at most [`MAX_STRUCT_SIZE`] bytes
/// (as [`RegistrationError::BufferLength`]). [`Fadump::restore`](crate::fadump::Fadump::restore)
/// applies them to a saved structure.
pub fn check_structure(structure: &KernelDumpStructure) -> Result<(), RegistrationError> {
    let len = structure.encode().len();
    if len > MAX_STRUCT_SIZE {
        return Err(RegistrationError::BufferLength(
            u32::try_from(len).unwrap_or(u32::MAX),
        ));
    }
    check_header(structure.header())?;
    if !disk_dump_fields_zero(structure.header()) {
        return Err(RegistrationError::DiskDump);
    }
    Ok(())
}

/// Format version and section count, in REGISTER's order of checks.
fn check_header(header: &DumpHeader) -> Result<(), RegistrationError> {
    if header.format_version != FORMAT_VERSION {
        return Err(RegistrationError::FormatVersion(header.format_version));
    }
    let n = header.num_sections;
    if n == 0 || n as usize > MAX_SECTIONS {
        return Err(RegistrationError::SectionCount(n));
    }
    Ok(())
}

fn disk_dump_fields_zero(header: &DumpHeader) -> bool {
    header.dd_block_size == 0
        && header.dd_block_offset == 0
        && header.dd_num_blocks == 0
        && header.dd_offset_disk_path == 0
}

fn check_sections<M: GuestMemoryBackend>(
    mem: &M,
    config: &FadumpConfig,
    sections: &[DumpSection],
) -> Result<(), RegistrationError> {
    use RegistrationError as E;
    let mut seen_cpu = false;
    let mut seen_hpte = false;
    // (index, destination, in place) of every section that owns memory; (index, source) of
    // every copy that reads memory somewhere else.
    let mut destinations: Vec<(usize, GuestRange, bool)> = Vec::new();
    let mut sources: Vec<(usize, GuestRange)> = Vec::new();

    for (i, s) in sections.iter().enumerate() {
        if s.request_flag & REQUEST_FLAG_COPY == 0 {
            return Err(E::NoCopyRequest(i, s.request_flag));
        }
        let dst = s.destination_range().ok_or(E::Overflow(i))?;
        match s.data_type.kind() {
            SectionKind::Reserved => return Err(E::ReservedType(i, s.data_type)),
            SectionKind::CpuState | SectionKind::Hpte => {
                let (seen, needed) = if s.data_type == SectionType::CPU_STATE {
                    (&mut seen_cpu, config.cpu_state_size())
                } else {
                    (&mut seen_hpte, config.hpte_size())
                };
                if std::mem::replace(seen, true) {
                    return Err(E::DuplicateType(i, s.data_type));
                }
                if s.source_len < needed {
                    return Err(E::TooSmall {
                        index: i,
                        len: s.source_len,
                        needed,
                    });
                }
            }
            SectionKind::Copy => {
                if s.source_len == 0 {
                    return Err(E::EmptyCopy(i));
                }
                let src = s.source_range().ok_or(E::Overflow(i))?;
                if !memory::is_backed(mem, &src) {
                    return Err(E::SourceNotRam(i, src));
                }
                if !s.is_in_place() {
                    sources.push((i, src));
                }
            }
            // PAPR-defined but not provided here: accepted and flagged at dump time; its
            // destination is still checked like any other (fuzzing found it was not).
            SectionKind::Unsupported => {}
        }
        if !dst.is_empty() {
            if !memory::is_backed(mem, &dst) {
                return Err(E::DestinationNotRam(i, dst));
            }
            let in_place = s.data_type.kind() == SectionKind::Copy && s.is_in_place();
            destinations.push((i, dst, in_place));
        }
    }

    for (a, (i, di, in_place)) in destinations.iter().enumerate() {
        if let Some((j, _, _)) = destinations[a + 1..]
            .iter()
            .find(|(_, dj, _)| di.overlaps(dj))
        {
            return Err(E::DestinationsOverlap(*i, *j));
        }
        // An in-place section (Linux's parameter area) writes nothing, so it may sit inside a
        // copy source: Linux puts it below boot_mem_top on hash guests.
        if let Some((j, _)) = sources.iter().find(|(_, sj)| !in_place && di.overlaps(sj)) {
            return Err(E::DestinationOverlapsSource { dst: *i, src: *j });
        }
        if let Some(fw) = config
            .firmware_reserved
            .iter()
            .find(|fw| !in_place && di.overlaps(fw))
        {
            return Err(E::DestinationOverlapsFirmware(*i, *di, *fw));
        }
    }
    Ok(())
}
