//! The MPIPL engine: registration (ranges and tags), the preservation at crash time, and what
//! the next boot presents.
//!
//! OPAL's lifecycle differs from PAPR fadump in one way that shapes the state: the registration
//! for the *next* MPIPL (skiboot's MDST/MDDT tables and its `mpipl_metadata`) and the dump the
//! *last* MPIPL preserved are independent. A capture kernel reads the old dump's tags while it may
//! already register new tags, and the preserved dump stays presented until
//! `FREE_PRESERVED_MEMORY`. So the engine keeps a [`Registration`] next to an [`MpiplState`]:
//!
//! ```text
//!            power on / normal reboot                CEC_REBOOT2(MPIPL) → machine → preserve()
//!   ──────────────▶ Idle ───────────────────────────────────────────────▶ DumpActive(dump)
//!                    │ FREE_PRESERVED_MEMORY                                  │ FREE_PRESERVED_MEMORY
//!                    ▼                                                        ▼
//!             Released{mpipl_boot: false}                           Released{mpipl_boot: true}
//! ```
//!
//! Every boot (normal or MPIPL) starts with an empty registration (OPAL's own range only), as
//! skiboot re-initialises its tables; the registered tags move into the dump on an MPIPL.
//! [`MpiplEngine::is_registered`] says whether a crash now would preserve kernel memory.

use log::{info, warn};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use vm_memory::GuestMemoryBackend;

use crate::cpu::CpuStateSource;
use crate::memory;
use crate::opal::addr;
use crate::opal::config::{
    ConfigError, MpiplConfig, CPU_METADATA_OFFSET, OPAL_METADATA_OFFSET, REGDATA_OFFSET,
};
use crate::opal::error::MpiplError;
use crate::opal::metadata::{MpiplFadump, MpiplRegion, MPIPL_VERSION};
use crate::opal::regdata::{self, CPU_DATA_VERSION, THREAD_SIZE};
use crate::opal::table::{DataRegion, RangeTable, TableEntry};
use crate::opal::token::{MpiplOp, MpiplTag};
use crate::properties::Property;
use crate::range::GuestRange;

/// What the next MPIPL will use: the range table and the kernel's tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The ranges to copy: OPAL's own entry first (when the machine has OPAL memory), then the
    /// kernel's `ADD_RANGE`s in registration order.
    pub table: RangeTable,
    /// `TAG_KERNEL`: the kernel's metadata address (0 = none).
    pub kernel_tag: u64,
    /// `TAG_BOOT_MEM`: top of the memory the capture kernel boots in (0 = none).
    pub boot_mem: u64,
}

/// The tag values a dump boot answers `QUERY_TAG` with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresentedTags {
    /// `TAG_CPU`: real address of the CPU metadata in the dump area (its one region covers the
    /// thread records); 0 when no register data was written.
    pub cpu: u64,
    /// `TAG_OPAL`: real address of the OPAL metadata in the dump area; 0 without OPAL memory or
    /// when its copy failed.
    pub opal: u64,
    /// `TAG_KERNEL`: the value the crashed kernel registered (the address of its
    /// `struct opal_fadump_mem_struct`).
    pub kernel: u64,
    /// `TAG_BOOT_MEM`: the value the crashed kernel registered (the top of its boot memory).
    pub boot_mem: u64,
}

impl PresentedTags {
    /// The value of `tag`.
    pub fn get(&self, tag: MpiplTag) -> u64 {
        match tag {
            MpiplTag::Cpu => self.cpu,
            MpiplTag::Opal => self.opal,
            MpiplTag::Kernel => self.kernel,
            MpiplTag::BootMem => self.boot_mem,
        }
    }
}

/// One line of the result table (skiboot's MDRT, written by the platform after copying).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultEntry {
    /// Who registered the range.
    pub region: DataRegion,
    /// The range that was to be copied.
    pub src: GuestRange,
    /// Where it was to be copied (same length).
    pub dest: GuestRange,
    /// `None` when copied; otherwise why not.
    pub error: Option<String>,
}

/// A dump the last MPIPL preserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreservedDump {
    /// PIR of the thread that called `CEC_REBOOT2(MPIPL)`.
    pub crashing_pir: u32,
    /// What `QUERY_TAG` answers in this boot.
    pub tags: PresentedTags,
    /// One line per table entry, in copy order (OPAL's own first).
    pub results: Vec<ResultEntry>,
    /// Thread records written into the dump area.
    pub threads: usize,
}

impl PreservedDump {
    /// True when every range was copied.
    pub fn all_copied(&self) -> bool {
        self.results.iter().all(|r| r.error.is_none())
    }
}

/// Where the dump lifecycle stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MpiplState {
    /// A normal boot: no dump; `QUERY_TAG` answers 0 for every tag.
    Idle,
    /// This boot follows an MPIPL: the dump is presented (`mpipl-boot`, the tags).
    DumpActive(PreservedDump),
    /// `FREE_PRESERVED_MEMORY` was called: `QUERY_TAG` answers `OPAL_PARAMETER` until the next
    /// boot. `mpipl_boot` remembers whether this boot still is an MPIPL boot.
    Released {
        /// True when this boot followed an MPIPL (the memory was freed in a dump boot), so
        /// `mpipl-boot` stays in the device tree.
        mpipl_boot: bool,
    },
}

/// Why [`MpiplEngine::new`] refused to build an engine.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The configuration does not fit the RAM map ([`MpiplConfig::validate`]).
    #[error("bad MPIPL configuration: {0}")]
    Config(#[from] ConfigError),
}

/// The MPIPL firmware of one machine: its configuration, the [`Registration`] for the next MPIPL
/// and the [`MpiplState`] of the last one. Serializable so a machine can snapshot it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpiplEngine {
    config: MpiplConfig,
    registration: Registration,
    state: MpiplState,
}

impl MpiplEngine {
    /// An engine after power on. The configuration is checked against the RAM map.
    pub fn new<M: GuestMemoryBackend>(config: MpiplConfig, mem: &M) -> Result<Self, EngineError> {
        config.validate(mem)?;
        let registration = Self::fresh_registration(&config);
        Ok(Self {
            config,
            registration,
            state: MpiplState::Idle,
        })
    }

    fn fresh_registration(config: &MpiplConfig) -> Registration {
        let opal = config.opal_memory.and_then(|o| {
            Some(TableEntry {
                region: DataRegion::OpalMemory,
                src: o.src,
                dest: config.opal_dest_range()?,
            })
        });
        Registration {
            table: RangeTable::new(opal),
            kernel_tag: 0,
            boot_mem: 0,
        }
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &MpiplConfig {
        &self.config
    }

    /// What the next MPIPL will preserve.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// Where the dump lifecycle stands in this boot.
    pub fn state(&self) -> &MpiplState {
        &self.state
    }

    /// True when an MPIPL now would preserve kernel memory.
    pub fn is_registered(&self) -> bool {
        self.registration.table.has_kernel_entries()
    }

    /// True while a preserved dump is presented (until `FREE_PRESERVED_MEMORY`).
    pub fn is_dump_active(&self) -> bool {
        matches!(self.state, MpiplState::DumpActive(_))
    }

    /// True when this boot is an MPIPL boot (`mpipl-boot` in the device tree).
    pub fn is_mpipl_boot(&self) -> bool {
        matches!(
            self.state,
            MpiplState::DumpActive(_) | MpiplState::Released { mpipl_boot: true }
        )
    }

    fn firmware_owned_ranges(&self) -> Vec<GuestRange> {
        self.config
            .firmware_owned()
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    /// `OPAL_MPIPL_UPDATE(op, src, dest, size)`.
    ///
    /// `ADD_RANGE` applies skiboot's checks (valid addresses, size not 0, room, no duplicate
    /// source or destination) and refuses in addition sizes above 32 bits, ranges that are not
    /// RAM, destinations overlapping their source, a registered range or firmware-owned memory,
    /// and sources overlapping another kernel range's destination.
    /// `REMOVE_RANGE` refuses a pair that is not registered. `REMOVE_ALL` and
    /// `FREE_PRESERVED_MEMORY` always succeed; the latter ends the presented dump but leaves the
    /// registration for the next MPIPL alone. An unknown `op` is
    /// [`MpiplError::UnknownOp`].
    pub fn update<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        op: u32,
        src: u64,
        dest: u64,
        size: u64,
    ) -> Result<(), MpiplError> {
        match MpiplOp::from_raw(op).ok_or(MpiplError::UnknownOp(op))? {
            MpiplOp::AddRange => {
                let fw = self.firmware_owned_ranges();
                let e = self
                    .registration
                    .table
                    .add_kernel(mem, src, dest, size, &fw)?;
                info!("MPIPL: kernel range {} -> {} registered", e.src, e.dest);
            }
            MpiplOp::RemoveRange => {
                let e = self.registration.table.remove_kernel(src, dest)?;
                info!("MPIPL: kernel range {} -> {} removed", e.src, e.dest);
            }
            MpiplOp::RemoveAll => {
                let n = self.registration.table.remove_all_kernel();
                info!("MPIPL: {n} kernel ranges removed");
            }
            MpiplOp::FreePreservedMemory => {
                let mpipl_boot = self.is_mpipl_boot();
                self.state = MpiplState::Released { mpipl_boot };
                info!("MPIPL: preserved memory freed; tags no longer queryable this boot");
            }
        }
        Ok(())
    }

    /// `OPAL_MPIPL_REGISTER_TAG(tag, value)`: the kernel's tags for the next MPIPL.
    ///
    /// `TAG_KERNEL` takes any value (Linux writes 0 on shutdown to clear it); `TAG_BOOT_MEM`
    /// must be nonzero and at most the top of RAM; `TAG_CPU` and `TAG_OPAL` belong to the
    /// firmware and are refused, as are unknown tags.
    pub fn register_tag<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        tag: u32,
        value: u64,
    ) -> Result<(), MpiplError> {
        match MpiplTag::from_raw(tag).ok_or(MpiplError::UnknownTag(tag))? {
            t @ (MpiplTag::Cpu | MpiplTag::Opal) => Err(MpiplError::FirmwareTag(t)),
            MpiplTag::Kernel => {
                self.registration.kernel_tag = value;
                info!("MPIPL: kernel tag {value:#x}");
                Ok(())
            }
            MpiplTag::BootMem => {
                let top = memory::top_of_ram(mem);
                if value == 0 || value > top {
                    return Err(MpiplError::BadBootMem { value, top });
                }
                self.registration.boot_mem = value;
                info!("MPIPL: boot memory top {value:#x}");
                Ok(())
            }
        }
    }

    /// `OPAL_MPIPL_QUERY_TAG(tag, out)`: writes the tag as a BE64 at `out` and returns it.
    ///
    /// In a normal boot every tag reads 0; in a dump boot the values come from the
    /// [`PreservedDump`]. Refused: an `out` that fails `opal_addr_valid` or is not 8 bytes of
    /// RAM, a tag of 4 or more, and any query after `FREE_PRESERVED_MEMORY` in this boot.
    pub fn query_tag<M: GuestMemoryBackend>(
        &self,
        mem: &M,
        tag: u32,
        out: u64,
    ) -> Result<u64, MpiplError> {
        let real =
            addr::real_addr(out, memory::top_of_ram(mem)).ok_or(MpiplError::BadOutput(out))?;
        let value = match &self.state {
            MpiplState::Released { .. } => return Err(MpiplError::TagNotQueryable(tag)),
            _ if tag >= MpiplTag::COUNT => return Err(MpiplError::TagNotQueryable(tag)),
            MpiplState::Idle => 0,
            MpiplState::DumpActive(d) => d.tags.get(MpiplTag::from_raw(tag).expect("tag < COUNT")),
        };
        memory::write_bytes(mem, real, &value.to_be_bytes())
            .map_err(|_| MpiplError::BadOutput(out))?;
        Ok(value)
    }

    /// The preservation an MPIPL performs, called by the machine once every vCPU is stopped
    /// (after `CEC_REBOOT2(MPIPL)` returned [`crate::opal::OpalAction::Mpipl`]) and before it
    /// resets and reboots.
    ///
    /// In order: copy every table entry (OPAL's own, then the kernel's in registration order);
    /// write the register records of every thread the source reports into the dump area (at most
    /// `max_threads`: the first ones, always including the crashing thread); write the CPU and
    /// OPAL metadata; move the registered tags into the dump. A range that cannot be copied is
    /// recorded as failed in the result table and the rest goes on. Nothing is written outside
    /// registered destinations and the dump area.
    ///
    /// A second MPIPL while a dump is presented (the capture kernel crashed before
    /// `FREE_PRESERVED_MEMORY`) keeps that dump as it is, writes nothing and drops any new
    /// registration.
    pub fn preserve<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        cpus: &mut dyn CpuStateSource,
        crashing_pir: u32,
    ) -> &PreservedDump {
        if matches!(self.state, MpiplState::DumpActive(_)) {
            // The capture kernel crashed before it released the dump: copying again would
            // overwrite the first crash's register data and OPAL copy in the dump area with the
            // capture kernel's, and its (empty) registration would replace the tags the next
            // capture kernel needs. The first dump is the one worth keeping.
            warn!(
                "MPIPL: crash of PIR {crashing_pir:#x} while a dump is presented: the presented \
                 dump is kept and nothing is copied"
            );
            self.registration = Self::fresh_registration(&self.config);
            let MpiplState::DumpActive(d) = &self.state else {
                unreachable!("checked above")
            };
            return d;
        }
        let mut results = Vec::new();
        for e in self.registration.table.entries() {
            let error = match memory::copy_within(mem, e.src, e.dest.start()) {
                Ok(_) => None,
                Err(err) => {
                    warn!("MPIPL: range {} -> {} not preserved: {err}", e.src, e.dest);
                    Some(err.to_string())
                }
            };
            results.push(ResultEntry {
                region: e.region,
                src: e.src,
                dest: e.dest,
                error,
            });
        }

        let area = self.config.dump_area;
        let mut states = cpus.online_cpu_states();
        let max = self.config.max_threads;
        if states.len() > max {
            warn!(
                "MPIPL: {} threads, room for {max}: the last ones are not saved (the crashing \
                 thread {crashing_pir:#x} is)",
                states.len()
            );
            // The crashing thread's registers are the ones the capture kernel needs most: when it
            // falls past the cut, it takes the last place kept.
            if let Some(i) = states.iter().position(|s| s.id == crashing_pir) {
                if i >= max && max > 0 {
                    states.swap(i, max - 1);
                }
            }
            states.truncate(max);
        }
        let records = regdata::encode(&states);
        let mut cpu_tag = 0;
        if !states.is_empty() {
            let written = write_in_area(mem, area, REGDATA_OFFSET, &records).and_then(|regs_at| {
                let cpu_meta = MpiplFadump {
                    version: MPIPL_VERSION,
                    crashing_pir: 0,
                    cpu_data_version: CPU_DATA_VERSION,
                    cpu_data_size: THREAD_SIZE as u32,
                    regions: vec![MpiplRegion {
                        src: regs_at,
                        dest: regs_at,
                        size: records.len() as u64,
                    }],
                };
                write_in_area(mem, area, CPU_METADATA_OFFSET, &cpu_meta.to_be_bytes())
            });
            match written {
                Ok(meta_at) => cpu_tag = meta_at,
                Err(err) => warn!("MPIPL: register data not written: {err}"),
            }
        }

        let opal_regions: Vec<MpiplRegion> = results
            .iter()
            .filter(|r| r.region == DataRegion::OpalMemory && r.error.is_none())
            .map(|r| MpiplRegion {
                src: r.src.start(),
                dest: r.dest.start(),
                size: r.src.len(),
            })
            .collect();
        let mut opal_tag = 0;
        if !opal_regions.is_empty() {
            let opal_meta = MpiplFadump {
                version: MPIPL_VERSION,
                crashing_pir,
                cpu_data_version: 0,
                cpu_data_size: 0,
                regions: opal_regions,
            };
            match write_in_area(mem, area, OPAL_METADATA_OFFSET, &opal_meta.to_be_bytes()) {
                Ok(meta_at) => opal_tag = meta_at,
                Err(err) => warn!("MPIPL: OPAL metadata not written: {err}"),
            }
        }

        let dump = PreservedDump {
            crashing_pir,
            tags: PresentedTags {
                cpu: cpu_tag,
                opal: opal_tag,
                kernel: self.registration.kernel_tag,
                boot_mem: self.registration.boot_mem,
            },
            results,
            threads: states.len(),
        };
        info!(
            "MPIPL: preserved {} ranges ({} failed), {} threads, crashing PIR {crashing_pir:#x}",
            dump.results.len(),
            dump.results.iter().filter(|r| r.error.is_some()).count(),
            dump.threads
        );
        self.registration = Self::fresh_registration(&self.config);
        self.state = MpiplState::DumpActive(dump);
        match &self.state {
            MpiplState::DumpActive(d) => d,
            _ => unreachable!("just set"),
        }
    }

    /// A boot that does not preserve memory (power on, normal or fast reboot): skiboot clears
    /// its tables and metadata, so registration and dump are gone.
    pub fn normal_boot(&mut self) {
        self.registration = Self::fresh_registration(&self.config);
        self.state = MpiplState::Idle;
    }

    /// Properties of `/ibm,opal/dump` for the device tree of the current boot.
    pub fn dump_node_properties(&self) -> Vec<Property> {
        crate::opal::dt::dump_node_properties(&self.config.fw_load_area, self.is_mpipl_boot())
    }

    /// Memory to reserve in the device tree (name, range), on every boot.
    pub fn reserved_ranges(&self) -> Vec<(&'static str, GuestRange)> {
        self.config.firmware_owned()
    }
}

/// Writes `bytes` at `offset` in the dump area and returns their address. Refused, with nothing
/// written, when they would not lie inside the area: [`MpiplConfig::validate`] rules that out, but
/// a restored (deserialized) engine never went through it.
fn write_in_area<M: GuestMemoryBackend>(
    mem: &M,
    area: GuestRange,
    offset: u64,
    bytes: &[u8],
) -> Result<u64, String> {
    let slot = area
        .start()
        .checked_add(offset)
        .and_then(|at| GuestRange::new(at, bytes.len() as u64))
        .filter(|slot| area.contains(slot))
        .ok_or_else(|| {
            format!(
                "{} bytes at offset {offset:#x} do not fit the dump area {area}",
                bytes.len()
            )
        })?;
    memory::write_bytes(mem, slot.start(), bytes).map_err(|e| e.to_string())?;
    Ok(slot.start())
}
