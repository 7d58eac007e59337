//! The PAPR firmware-assisted dump engine behind `ibm,configure-kernel-dump`.
//!
//! State machine (PAPR, per partition):
//!
//! ```text
//!   Idle ──REGISTER ok──▶ Registered ──ibm,os-term──▶ (dump performed) ──▶ DumpActive
//!    ▲                        │                                              │
//!    └──────UNREGISTER────────┘◀───────────────INVALIDATE────────────────────┘
//! ```
//!
//! * REGISTER takes a private copy of the structure after [`validate`](validate::validate);
//!   later guest writes to the buffer change nothing.
//! * The dump ([`Fadump::perform_dump_with`]) hands every copy section to a [`Preserver`] (copy,
//!   or a VMM's page remapping; [`preserve`]), then writes the HPTE area and the Register Save
//!   Area (firmware sections last, so no copy can overwrite them), sets the status and
//!   per-section results, and moves to `DumpActive`.
//! * While a dump is active `ibm,kernel-dump` is presented under `/rtas` on every boot until
//!   INVALIDATE (PAPR R1-3).

pub mod hpte;
pub mod layout;
pub mod preserve;
pub mod regsave;
pub mod validate;

use log::{error, info, warn};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use vm_memory::GuestMemoryBackend;

pub use hpte::{HptEntry, HptSource};
pub use layout::{DumpHeader, DumpSection, KernelDumpStructure, SectionKind, SectionType};
pub use preserve::{CopyPreserver, Move, Outcome, PoisonPreserver, Preserver};
pub use validate::RegistrationError;

#[cfg(test)]
use crate::cpu::CpuState;
use crate::cpu::CpuStateSource;
use crate::memory::{self, CopyError};
use crate::properties::{PropValue, Property};
use crate::range::GuestRange;
use layout::{section_error, status};

/// `ibm,configure-kernel-dump` command 1 (`args[0]`; Linux `FADUMP_REGISTER`): register the
/// structure at `args[1]`, `args[2]` bytes long.
pub const CMD_REGISTER: u32 = 1;
/// Command 2 (Linux `FADUMP_UNREGISTER`): drop the registration.
pub const CMD_UNREGISTER: u32 = 2;
/// Command 3 (Linux `FADUMP_INVALIDATE`): the capture kernel is done with the active dump;
/// withdraw `ibm,kernel-dump`.
pub const CMD_INVALIDATE: u32 = 3;

/// `ibm,configure-kernel-dump-sizes` section types.
const SIZES_TYPE_CPU: u32 = 0x0001;
const SIZES_TYPE_HPTE: u32 = 0x0002;

/// What the platform tells the engine about the partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FadumpConfig {
    /// Most vCPUs the partition can have: the CPU state size is advertised for all of them.
    pub max_cpus: u32,
    /// Entries in the guest's hash page table; 0 for radix guests (HPTE size 0).
    pub hpte_capacity: u64,
    /// The real mode area: REGISTER's buffer must lie below this (PAPR R1-2).
    pub rma_size: u64,
    /// Memory the firmware owns (RTAS blob, device tree): no dump destination may overlap it.
    pub firmware_reserved: Vec<GuestRange>,
}

impl FadumpConfig {
    /// Bytes of CPU state data advertised (and required of the CPU section).
    pub fn cpu_state_size(&self) -> u64 {
        regsave::area_size(u64::from(self.max_cpus))
    }

    /// Bytes of HPTE save area advertised (and required of the HPTE section).
    pub fn hpte_size(&self) -> u64 {
        hpte::area_size(self.hpte_capacity)
    }
}

/// The engine's state; serializable so a VMM can keep it across a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FadumpState {
    /// Nothing registered and no dump active: a crash is not dumped.
    #[default]
    Idle,
    /// A structure is registered; a crash will be dumped.
    Registered(KernelDumpStructure),
    /// A dump was performed; the structure carries its results (`ibm,kernel-dump`).
    DumpActive(KernelDumpStructure),
}

/// Errors of [`Fadump::perform_dump`] that prevent any dump.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DumpError {
    /// The engine is idle or a dump is already active (a second crash in the capture kernel):
    /// there is nothing to dump, and the state is left as it was.
    #[error("no dump is registered")]
    NotRegistered,
}

/// What happened to one section during the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionOutcome {
    /// The section's `source_data_type`.
    pub data_type: SectionType,
    /// The `error_flags` written to `ibm,kernel-dump` ([`layout::section_error`] bits; 0 when the
    /// section was dumped).
    pub error_flags: u16,
    /// The `bytes_dumped` written to `ibm,kernel-dump`: `source_len` on success, 0 on failure.
    pub bytes_dumped: u64,
}

/// The result of a dump, for the machine's log and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpReport {
    /// One outcome per registered section, in registration order.
    pub sections: Vec<SectionOutcome>,
    /// The status written to the header (0xC000, plus 0x2000 when a section failed).
    pub status: u16,
    /// Number of CPUs saved in the Register Save Area.
    pub cpus_saved: usize,
    /// Bytes preserved by copy sections (in-place sections count zero), whether copied or
    /// remapped.
    pub bytes_copied: u64,
    /// Of `bytes_copied`, the bytes the [`Preserver`] moved by remapping host pages.
    pub bytes_remapped: u64,
    /// The `ibm,kernel-dump` property for the next boot.
    pub kernel_dump: Vec<u8>,
}

impl DumpReport {
    /// True when some section failed (the header status carries 0x2000).
    pub fn has_errors(&self) -> bool {
        self.status & status::DUMP_ERROR != 0
    }
}

/// Why the engine refused an `ibm,configure-kernel-dump` command. Only the RTAS layer knows
/// the PAPR status each one becomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FadumpRefusal {
    /// REGISTER while a registration exists (RTAS status -9; Linux then believes it is
    /// registered).
    #[error("a dump is already registered")]
    AlreadyRegistered,
    /// REGISTER or UNREGISTER while a dump is active (RTAS status -10).
    #[error("a dump is active")]
    DumpActive,
    /// INVALIDATE while no dump is active (RTAS status -3).
    #[error("no dump is active")]
    NoDumpActive,
    /// A command other than 1, 2 or 3 (RTAS status -3).
    #[error("unknown command {0}")]
    UnknownCommand(u32),
    /// REGISTER with a structure [`validate::validate`] refused (RTAS status -3, or -1 when the
    /// buffer could not be read).
    #[error("invalid registration: {0}")]
    Invalid(#[from] RegistrationError),
}

/// The fadump engine of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fadump {
    config: FadumpConfig,
    state: FadumpState,
    /// The huge-page size the advertised CPU state size is padded for (0: no padding); see
    /// [`preserve`].
    dest_alignment: u64,
}

impl Fadump {
    /// An idle engine for a partition described by `config`.
    pub fn new(config: FadumpConfig) -> Self {
        Self {
            config,
            state: FadumpState::Idle,
            dest_alignment: 0,
        }
    }

    /// Pads the advertised CPU state size so that Linux's first boot-memory destination lands on
    /// a multiple of `alignment` (the host's huge-page size; 0 turns padding off). Registrations
    /// that ask only for the unpadded size are still accepted.
    pub fn set_dest_alignment(&mut self, alignment: u64) {
        self.dest_alignment = alignment;
    }

    /// The CPU state size `ibm,configure-kernel-dump-sizes` advertises: what the Register Save
    /// Area needs ([`FadumpConfig::cpu_state_size`]), padded for the destination alignment.
    pub fn advertised_cpu_state_size(&self) -> u64 {
        preserve::padded_cpu_state_size(
            self.config.cpu_state_size(),
            self.config.hpte_size(),
            self.dest_alignment,
        )
    }

    /// Rebuilds an engine from saved state. A saved structure must obey REGISTER's rules on the
    /// structure itself ([`validate::check_structure`]: format version 1, 1 to 10 sections, no
    /// disk dump, at most 512 bytes); the first rule it breaks is returned. Its sections are not
    /// checked against memory again, so the state should come from an engine with the same
    /// `config` and RAM map: a registration checked against others can fail at dump time (error
    /// flags) instead of at REGISTER.
    pub fn restore(config: FadumpConfig, state: FadumpState) -> Result<Self, RegistrationError> {
        match &state {
            FadumpState::Idle => {}
            FadumpState::Registered(s) | FadumpState::DumpActive(s) => {
                validate::check_structure(s)?
            }
        }
        Ok(Self {
            config,
            state,
            dest_alignment: 0,
        })
    }

    /// The partition description the engine was built with.
    pub fn config(&self) -> &FadumpConfig {
        &self.config
    }

    /// Where the state machine stands; serialize it to keep it across a VMM restart.
    pub fn state(&self) -> &FadumpState {
        &self.state
    }

    /// True when a structure is registered: the next `ibm,os-term` is a dump.
    pub fn is_registered(&self) -> bool {
        matches!(self.state, FadumpState::Registered(_))
    }

    /// True while a performed dump waits for INVALIDATE (`ibm,kernel-dump` is presented).
    pub fn is_dump_active(&self) -> bool {
        matches!(self.state, FadumpState::DumpActive(_))
    }

    /// The upper end of the memory the capture kernel may use, while a dump is active: the sum of
    /// the boot-memory (0x0011) sections plus the holes between them, as Linux computes
    /// `boot_mem_top`. Firmware, kernel, initrd and device tree of the capture boot must stay
    /// below it; everything above is the crashed kernel's memory, exported as it is.
    pub fn boot_mem_top(&self) -> Option<u64> {
        let FadumpState::DumpActive(s) = &self.state else {
            return None;
        };
        s.sections()
            .iter()
            .filter(|x| x.data_type == SectionType::REAL_MODE_REGION)
            .filter_map(|x| x.source_range().map(|r| r.end()))
            .max()
    }

    /// The memory a registered dump will write at crash time: every non-empty section
    /// destination except those of in-place copy sections (source == destination, Linux's
    /// parameter area), which write nothing. A VMM can pre-fault these host pages right after REGISTER (e.g.
    /// `MADV_POPULATE_WRITE` in the background): first-touch page faults, not the copy itself,
    /// dominate the crash-time copy (see `benches/dump_copy.rs`).
    pub fn registered_destinations(&self) -> Vec<GuestRange> {
        let FadumpState::Registered(s) = &self.state else {
            return Vec::new();
        };
        s.sections()
            .iter()
            .filter(|x| !(x.data_type.kind() == SectionKind::Copy && x.is_in_place()))
            .filter_map(DumpSection::destination_range)
            .filter(|r| !r.is_empty())
            .collect()
    }

    /// Handles `ibm,configure-kernel-dump(cmd, addr, len)`: `Ok` or why it was refused. The
    /// engine speaks in [`FadumpRefusal`]s; the RTAS layer turns them into PAPR status codes
    /// (`rtas::status`), as `opal::error` does for MPIPL.
    pub fn configure_kernel_dump<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        cmd: u32,
        addr: u32,
        len: u32,
    ) -> Result<(), FadumpRefusal> {
        match cmd {
            CMD_REGISTER => self.register(mem, addr, len),
            // The buffer and length of UNREGISTER/INVALIDATE are informational (Linux >= 6.10
            // passes the full 440-byte size, and for INVALIDATE a pointer into the device tree):
            // they are deliberately not checked.
            CMD_UNREGISTER => match self.state {
                FadumpState::DumpActive(_) => {
                    warn!("fadump: UNREGISTER refused: a dump is active");
                    Err(FadumpRefusal::DumpActive)
                }
                FadumpState::Registered(_) => {
                    info!("fadump: unregistered");
                    self.state = FadumpState::Idle;
                    Ok(())
                }
                FadumpState::Idle => Ok(()),
            },
            CMD_INVALIDATE => match self.state {
                FadumpState::DumpActive(_) => {
                    info!("fadump: dump invalidated; ibm,kernel-dump withdrawn");
                    self.state = FadumpState::Idle;
                    Ok(())
                }
                _ => {
                    warn!("fadump: INVALIDATE refused: no dump is active");
                    Err(FadumpRefusal::NoDumpActive)
                }
            },
            other => {
                warn!("fadump: unknown command {other}");
                Err(FadumpRefusal::UnknownCommand(other))
            }
        }
    }

    fn register<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        addr: u32,
        len: u32,
    ) -> Result<(), FadumpRefusal> {
        match self.state {
            FadumpState::Registered(_) => {
                warn!("fadump: REGISTER refused: already registered");
                return Err(FadumpRefusal::AlreadyRegistered);
            }
            FadumpState::DumpActive(_) => {
                warn!("fadump: REGISTER refused: a dump is active");
                return Err(FadumpRefusal::DumpActive);
            }
            FadumpState::Idle => {}
        }
        match validate::validate(mem, &self.config, addr, len) {
            Ok(mut structure) => {
                structure.set_status(0);
                info!(
                    "fadump: registered {} sections from {addr:#x} ({len} bytes)",
                    structure.sections().len()
                );
                self.state = FadumpState::Registered(structure);
                Ok(())
            }
            Err(e) => {
                warn!("fadump: REGISTER at {addr:#x} len {len} refused: {e}");
                Err(FadumpRefusal::Invalid(e))
            }
        }
    }

    /// A full partition reset without a dump (`system-reboot`, power-off): a registration does
    /// not survive it (the next kernel would otherwise get -9 and trust a stale structure); an
    /// active dump does (PAPR R1-3).
    pub fn on_partition_reset(&mut self) {
        if self.is_registered() {
            info!("fadump: partition reset drops the registration");
            self.state = FadumpState::Idle;
        }
    }

    /// Performs the dump with [`CopyPreserver`]: the machine has stopped every vCPU and devices
    /// no longer DMA. See [`Fadump::perform_dump_with`].
    pub fn perform_dump<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        cpus: &mut dyn CpuStateSource,
        hpt: Option<&mut dyn HptSource>,
    ) -> Result<DumpReport, DumpError> {
        self.perform_dump_with(mem, cpus, hpt, &mut CopyPreserver)
    }

    /// Performs the dump: the machine has stopped every vCPU and devices no longer DMA.
    ///
    /// Preserves every copy section in registration order through `preserver` (in-place
    /// sections and the sources of later sections are kept intact), then writes the HPTE area
    /// (from `hpt`, when the guest uses a hash MMU) and the Register Save Area. A section that
    /// cannot be honoured gets its error flag and `bytes_dumped = 0`; the others are still
    /// dumped.
    pub fn perform_dump_with<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        cpus: &mut dyn CpuStateSource,
        hpt: Option<&mut dyn HptSource>,
        preserver: &mut dyn Preserver<M>,
    ) -> Result<DumpReport, DumpError> {
        // Only a registration turns into a dump; an active dump (a second crash inside the
        // capture kernel) and Idle stay exactly as they are.
        let FadumpState::Registered(structure) = &self.state else {
            return Err(DumpError::NotRegistered);
        };
        let mut structure = structure.clone();
        for s in structure.sections_mut() {
            s.error_flags = 0;
            s.bytes_dumped = 0;
        }
        let keep_all = kept_ranges(structure.sections());
        let mut done = Outcome::default();
        for (i, s) in structure.sections_mut().iter_mut().enumerate() {
            match s.data_type.kind() {
                SectionKind::Copy => {
                    if let Some(o) = preserve_section(mem, i, s, &keep_all, preserver) {
                        done.add(o);
                    }
                }
                SectionKind::Unsupported | SectionKind::Reserved => {
                    warn!("fadump: section {i}: type {:?} not provided", s.data_type);
                    s.error_flags = section_error::INVALID_DATA_TYPE;
                }
                SectionKind::CpuState | SectionKind::Hpte => {}
            }
        }
        let bytes_copied = done.remapped + done.copied;
        let mut hpt = hpt;
        for (i, s) in structure.sections_mut().iter_mut().enumerate() {
            if s.data_type == SectionType::HPTE {
                let entries = match hpt.as_deref_mut() {
                    None => Ok(Vec::new()),
                    Some(source) => source.valid_entries(),
                };
                match entries {
                    Ok(e) => {
                        let area = hpte::build(&e, s.source_len);
                        write_area(mem, i, s, area, "HPTE", preserver)
                    }
                    Err(msg) => {
                        error!("fadump: section {i}: hash page table unreadable: {msg}");
                        s.error_flags = section_error::INVALID_SOURCE_ADDR;
                    }
                }
            }
        }
        let cpu_states = cpus.online_cpu_states();
        for (i, s) in structure.sections_mut().iter_mut().enumerate() {
            if s.data_type == SectionType::CPU_STATE {
                let area = regsave::build(&cpu_states, s.source_len);
                write_area(mem, i, s, area, "register save area", preserver);
            }
        }
        let failed = structure.sections().iter().any(|s| s.error_flags != 0);
        let mut dump_status = status::DUMP_PERFORMED | status::DUMP_TRIGGERED;
        if failed {
            dump_status |= status::DUMP_ERROR;
        }
        structure.set_status(dump_status);
        let report = DumpReport {
            sections: structure
                .sections()
                .iter()
                .map(|s| SectionOutcome {
                    data_type: s.data_type,
                    error_flags: s.error_flags,
                    bytes_dumped: s.bytes_dumped,
                })
                .collect(),
            status: dump_status,
            cpus_saved: cpu_states.len(),
            bytes_copied,
            bytes_remapped: done.remapped,
            kernel_dump: structure.encode(),
        };
        info!(
            "fadump: dump performed: status {:#06x}, {} CPUs, {} bytes preserved ({} remapped)",
            report.status, report.cpus_saved, report.bytes_copied, report.bytes_remapped
        );
        self.state = FadumpState::DumpActive(structure);
        Ok(report)
    }

    /// The `ibm,kernel-dump` bytes while a dump is active.
    pub fn kernel_dump_property(&self) -> Option<Vec<u8>> {
        match &self.state {
            FadumpState::DumpActive(s) => Some(s.encode()),
            _ => None,
        }
    }

    /// The fadump properties under `/rtas` (the token itself is published by the RTAS layer).
    pub fn rtas_properties(&self) -> Vec<Property> {
        let split = |v: u64| [(v >> 32) as u32, v as u32];
        let cpu = split(self.advertised_cpu_state_size());
        let hpte = split(self.config.hpte_size());
        let mut props = vec![
            Property::new(
                "ibm,configure-kernel-dump-sizes",
                PropValue::U32Cells(vec![
                    SIZES_TYPE_CPU,
                    cpu[0],
                    cpu[1],
                    SIZES_TYPE_HPTE,
                    hpte[0],
                    hpte[1],
                ]),
            ),
            // Two big-endian 16-bit cells: minimum and maximum format version (PAPR binding).
            Property::new(
                "ibm,configure-kernel-dump-version",
                PropValue::Bytes(vec![0, 1, 0, 1]),
            ),
        ];
        if let Some(bytes) = self.kernel_dump_property() {
            props.push(Property::new("ibm,kernel-dump", PropValue::Bytes(bytes)));
        }
        props
    }
}

/// What every move must leave as it is, for each copy section: the sources of the other copy
/// sections registered after it (their data has not been preserved yet) and of every in-place
/// section. Indexed like `sections`; empty for other kinds.
fn kept_ranges(sections: &[DumpSection]) -> Vec<Vec<GuestRange>> {
    let copy_source = |s: &DumpSection| {
        (s.data_type.kind() == SectionKind::Copy)
            .then(|| s.source_range())
            .flatten()
    };
    (0..sections.len())
        .map(|i| {
            sections
                .iter()
                .enumerate()
                .filter(|(j, s)| *j > i || s.is_in_place())
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, s)| copy_source(s))
                .collect()
        })
        .collect()
}

/// Preserves one copy section; returns how, or records the error flag. An in-place section
/// (source == destination) moves nothing.
fn preserve_section<M: GuestMemoryBackend>(
    mem: &M,
    i: usize,
    s: &mut DumpSection,
    keep: &[Vec<GuestRange>],
    preserver: &mut dyn Preserver<M>,
) -> Option<Outcome> {
    let Some(src) = s.source_range() else {
        s.error_flags = section_error::LENGTH_EXCEEDS_SOURCE;
        return None;
    };
    let checked = if !memory::is_backed(mem, &src) {
        Err(CopyError::Source(memory::MemoryError::NotBacked(src)))
    } else {
        memory::range(s.destination_address, src.len())
            .and_then(|d| {
                if memory::is_backed(mem, &d) {
                    Ok(d)
                } else {
                    Err(memory::MemoryError::NotBacked(d))
                }
            })
            .map_err(CopyError::Destination)
    };
    let result = checked.and_then(|_| {
        if s.is_in_place() || src.is_empty() {
            Ok(Outcome::default())
        } else {
            let mv = Move {
                section: i,
                src,
                dst: s.destination_address,
            };
            preserver.preserve(mem, &mv, &keep[i])
        }
    });
    match result {
        Ok(o) => {
            s.bytes_dumped = src.len();
            Some(o)
        }
        Err(e) => {
            error!("fadump: section {i}: {e}");
            s.error_flags = match e {
                CopyError::Source(_) => section_error::INVALID_SOURCE_ADDR,
                CopyError::Destination(_) => section_error::INVALID_DEST_ADDR,
            };
            None
        }
    }
}

/// Writes a firmware-built area to a section's destination, recording the outcome.
fn write_area<M: GuestMemoryBackend>(
    mem: &M,
    i: usize,
    s: &mut DumpSection,
    area: Option<Vec<u8>>,
    what: &str,
    preserver: &mut dyn Preserver<M>,
) {
    let Some(area) = area else {
        error!(
            "fadump: section {i}: {what} does not fit {:#x} bytes",
            s.source_len
        );
        s.error_flags = section_error::DEST_TOO_SMALL;
        return;
    };
    if s.source_len == 0 {
        return;
    }
    // The section was validated as RAM at registration; check the whole destination again before
    // writing anything, then write the area and zero the rest of the section.
    let written = memory::range(s.destination_address, s.source_len)
        .and_then(|dst| {
            if memory::is_backed(mem, &dst) {
                Ok(dst)
            } else {
                Err(memory::MemoryError::NotBacked(dst))
            }
        })
        .and_then(|dst| {
            memory::write_bytes(mem, dst.start(), &area)?;
            let rest = memory::range(
                dst.start() + area.len() as u64,
                dst.len() - area.len() as u64,
            )?;
            preserver.zero(mem, rest)
        });
    match written {
        Ok(()) => s.bytes_dumped = s.source_len,
        Err(e) => {
            error!("fadump: section {i}: cannot write {what}: {e}");
            s.error_flags = section_error::INVALID_DEST_ADDR;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    fn header(offset: u32, count: u16) -> DumpHeader {
        DumpHeader {
            format_version: 1,
            num_sections: count,
            status: 0xc000,
            offset_first_section: offset,
            dd_block_size: 0,
            dd_block_offset: 0,
            dd_num_blocks: 0,
            dd_offset_disk_path: 0,
            max_time_auto: 0,
        }
    }

    /// A saved state as an embedder might restore it: `raw_len` bytes kept, `held` sections.
    fn saved_state(raw_len: usize, header: &DumpHeader, held: usize) -> String {
        let sections = vec![DumpSection::request(SectionType::PARAM_AREA, 0, 0, 0); held];
        format!(
            r#"{{"DumpActive":{{"raw":{:?},"header":{},"sections":{}}}}}"#,
            vec![0u8; raw_len],
            serde_json::to_string(header).unwrap(),
            serde_json::to_string(&sections).unwrap()
        )
    }

    fn cfg() -> FadumpConfig {
        FadumpConfig {
            max_cpus: 1,
            hpte_capacity: 0,
            rma_size: 0x10000,
            firmware_reserved: vec![],
        }
    }

    /// Before structures were checked on the way in, each of these restored and then panicked
    /// in `encode` (`kernel_dump_property`, `rtas_properties`) or wrote sections over the header.
    #[test]
    fn corrupt_restored_state_is_refused_not_a_panic() {
        for (raw_len, offset, count, held) in [
            (8, 0x28, 0, 0),    // kept bytes shorter than the header, no sections
            (0x28, 0x10, 1, 1), // the section overlaps the header
            (0x50, 0x28, 2, 2), // the second section runs past the kept bytes
            (0x50, 0x28, 1, 2), // more sections held than announced
            (0x50, 0x28, 1, 0), // fewer
        ] {
            let json = saved_state(raw_len, &header(offset, count), held);
            assert!(
                serde_json::from_str::<FadumpState>(&json).is_err(),
                "deserialized {json}"
            );
        }
        let good = saved_state(0x50, &header(0x28, 1), 1);
        let state: FadumpState = serde_json::from_str(&good).unwrap();
        let f = Fadump::restore(cfg(), state).unwrap();
        assert_eq!(f.kernel_dump_property().map(|b| b.len()), Some(0x50));
        assert_eq!(f.rtas_properties().len(), 3);
    }

    #[test]
    fn restore_applies_the_structure_rules_of_register() {
        let mut v2 = header(0x28, 1);
        v2.format_version = 2;
        let mut disk = header(0x28, 1);
        disk.dd_block_size = 512;
        for (raw_len, h, held, want) in [
            (0x50, v2, 1, RegistrationError::FormatVersion(2)),
            (
                0x28 + 11 * 0x28,
                header(0x28, 11),
                11,
                RegistrationError::SectionCount(11),
            ),
            (0x50, disk, 1, RegistrationError::DiskDump),
            (
                0x210,
                header(0x1e8, 1),
                1,
                RegistrationError::BufferLength(0x210),
            ),
        ] {
            let state: FadumpState = serde_json::from_str(&saved_state(raw_len, &h, held)).unwrap();
            assert_eq!(Fadump::restore(cfg(), state), Err(want));
        }
    }

    /// Records each move and what it was told to keep, then copies.
    struct Recorder(Vec<(Move, Vec<GuestRange>)>);
    impl<M: GuestMemoryBackend> Preserver<M> for Recorder {
        fn preserve(
            &mut self,
            mem: &M,
            mv: &Move,
            keep: &[GuestRange],
        ) -> Result<Outcome, CopyError> {
            self.0.push((*mv, keep.to_vec()));
            CopyPreserver.preserve(mem, mv, keep).map(|o| Outcome {
                remapped: o.copied / 2,
                copied: o.copied - o.copied / 2,
            })
        }
    }

    #[test]
    fn the_preserver_moves_copy_sections_and_keeps_in_place_and_later_sources() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        let mut f = Fadump::new(FadumpConfig {
            rma_size: 0x40_0000,
            ..cfg()
        });
        f.set_dest_alignment(0x10_0000);
        assert_eq!(f.advertised_cpu_state_size(), 0x10_0000);
        let cpu = f.config().cpu_state_size();
        let sections = [
            DumpSection::request(SectionType::CPU_STATE, 0, cpu, 0x20_0000),
            DumpSection::request(SectionType::HPTE, 0, 0, 0x20_0000 + cpu),
            DumpSection::request(SectionType::REAL_MODE_REGION, 0, 0x8_0000, 0x30_0000),
            DumpSection::request(SectionType::PARAM_AREA, 0x4_0000, 0x800, 0x4_0000),
            DumpSection::request(SectionType::REAL_MODE_REGION, 0x8_0000, 0x4_0000, 0x38_0000),
        ];
        let bytes = KernelDumpStructure::registration_bytes(&sections);
        memory::write_bytes(&m, 0x1000, &bytes).unwrap();
        let len = bytes.len() as u32;
        assert_eq!(
            f.configure_kernel_dump(&m, CMD_REGISTER, 0x1000, len),
            Ok(())
        );
        let mut rec = Recorder(Vec::new());
        let mut cpus = vec![CpuState::new(0)];
        let r = f.perform_dump_with(&m, &mut cpus, None, &mut rec).unwrap();
        assert!(!r.has_errors());
        let param = GuestRange::new(0x4_0000, 0x800).unwrap();
        let second = GuestRange::new(0x8_0000, 0x4_0000).unwrap();
        let moves: Vec<_> = rec
            .0
            .iter()
            .map(|(m, k)| (m.section, m.dst, k.clone()))
            .collect();
        assert_eq!(
            moves,
            vec![
                (2, 0x30_0000, vec![param, second]),
                (4, 0x38_0000, vec![param])
            ]
        );
        assert_eq!(r.bytes_copied, 0xc_0000, "the in-place section counts zero");
        assert_eq!(r.bytes_remapped, 0x6_0000);
        assert_eq!(r.sections[3].bytes_dumped, 0x800);
    }

    #[test]
    fn dump_without_registration_leaves_state_alone() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let cfg = cfg();
        let mut raw = vec![0u8; 0x28 + 0x28];
        raw[3] = 1;
        raw[5] = 1;
        raw[11] = 0x28;
        let active = FadumpState::DumpActive(KernelDumpStructure::decode(&raw).unwrap());
        let mut f = Fadump::restore(cfg.clone(), active.clone()).unwrap();
        let mut cpus = vec![CpuState::new(0)];
        assert_eq!(
            f.perform_dump(&m, &mut cpus, None),
            Err(DumpError::NotRegistered)
        );
        assert_eq!(
            f.state(),
            &active,
            "a second crash must not lose the first dump"
        );
        let mut idle = Fadump::new(cfg);
        assert!(idle.perform_dump(&m, &mut cpus, None).is_err());
        assert_eq!(idle.state(), &FadumpState::Idle);
    }
}
