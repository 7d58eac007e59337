//! Memory DLPAR: adding and removing 256 MiB logical memory blocks (LMBs) of a running
//! pseries guest, the PAPR way Linux's `hotplug-memory.c` and `dlpar.c` use.
//!
//! * [`drc`]: one LMB's dynamic-reconfiguration connector and its state machine;
//! * [`table`]: the partition's LMBs (boot RAM, then the hotplug window), which survives
//!   resets and says what every boot's device tree lists as assigned;
//! * [`tree`]: the `ibm,dynamic-reconfiguration-memory` properties, the root's DRC lists,
//!   `ibm,lrdr-capacity`, and the LMB node `ibm,configure-connector` streams;
//! * [`event`]: the hot-plug error log and the queue `check-exception` drains;
//! * here: [`Dlpar`], the table and the queue together, with the platform's requests
//!   ([`Dlpar::add`], [`Dlpar::remove`], [`Dlpar::reset`]) and the guest's RTAS calls
//!   (`get-sensor-state`, `set-indicator`, `ibm,configure-connector`, `check-exception`,
//!   `event-scan`), which [`crate::rtas::Rtas`] routes here when the partition has a window.

pub mod drc;
pub mod event;
pub mod table;
pub mod tree;

use log::{info, warn};
use thiserror::Error;
use vm_memory::GuestMemoryBackend;

use crate::memory;
use crate::properties::Property;
use crate::rtas::{Platform, RtasArgs, RtasCall, RtasStatus};
use drc::{CcPiece, Change, DrcError};
use event::{HotplugAction, HotplugEvent, HotplugQueue, EVENT_MASK_HOTPLUG, HOTPLUG_IRQ};
use table::{LmbTable, ResetKind, TableError};
use tree::DrconfFormat;

/// The LMB size: 256 MiB, which must equal the guest's memory block size (Linux adds
/// `memory_block_size_bytes()` per LMB).
pub const LMB_SIZE: u64 = 256 << 20;
/// The DRC type of an LMB (index bits 31..28).
pub const DRC_TYPE_LMB: u32 = 8;
/// `get-sensor-state` sensor: dr-entity-sense.
pub const SENSOR_DR_ENTITY_SENSE: u32 = 9003;
/// `set-indicator` indicator: isolation state.
pub const INDICATOR_ISOLATION: u32 = 9001;
/// `set-indicator` indicator: dr-indicator (physical DRCs only: -3 for an LMB).
pub const INDICATOR_DR: u32 = 9002;
/// `set-indicator` indicator: allocation state.
pub const INDICATOR_ALLOCATION: u32 = 9003;

/// `ibm,configure-connector` status: the DRC is not unisolated.
pub const CC_NOT_CONFIGURABLE: i32 = -9003;
/// `ibm,configure-connector` response: complete.
pub const CC_COMPLETE: u32 = 0;
/// `ibm,configure-connector` response: the work area holds the next child node.
pub const CC_NEXT_CHILD: u32 = 2;
/// `ibm,configure-connector` response: the work area holds the next property.
pub const CC_NEXT_PROPERTY: u32 = 3;
/// Where the work area's strings and values start (QEMU's `CC_VAL_DATA_OFFSET`).
pub const CC_DATA_OFFSET: u32 = 20;

/// The RTAS calls of memory DLPAR, published when the partition has a window.
pub const DLPAR_CALLS: [RtasCall; 3] = [
    RtasCall::SetIndicator,
    RtasCall::GetSensorState,
    RtasCall::IbmConfigureConnector,
];

/// Why a platform request (add, remove) was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DlparError {
    /// The LMB table refused it (past the window, fewer LMBs owned).
    #[error(transparent)]
    Table(#[from] TableError),
    /// A firmware-assisted dump is active: memory is not added or removed until the capture
    /// kernel has released it.
    #[error("a firmware-assisted dump is active: memory changes wait until it is released")]
    DumpActive,
    /// Too many events are waiting for the guest.
    #[error(transparent)]
    QueueFull(#[from] event::QueueFull),
}

/// The LMB table and the hot-plug event queue of a partition with a hotplug window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dlpar {
    table: LmbTable,
    queue: HotplugQueue,
    format: DrconfFormat,
}

/// What [`Dlpar::add`] or [`Dlpar::remove`] did: the LMBs named and the events queued (the
/// platform raises [`HOTPLUG_IRQ`] once per event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Window LMB numbers (0-based within the window), ascending.
    pub lmbs: Vec<usize>,
    /// The events queued, one per run of consecutive LMBs.
    pub events: Vec<HotplugEvent>,
}

impl Dlpar {
    /// DLPAR over `table`, listing its LMBs as `ibm,dynamic-memory-v2`.
    pub fn new(table: LmbTable) -> Self {
        Dlpar {
            table,
            queue: HotplugQueue::default(),
            format: DrconfFormat::V2,
        }
    }

    /// The LMB table.
    pub fn table(&self) -> &LmbTable {
        &self.table
    }

    /// The LMB table, for the platform's grants (e.g. [`LmbTable::grant_all`]).
    pub fn table_mut(&mut self) -> &mut LmbTable {
        &mut self.table
    }

    /// Events the guest has not fetched yet.
    pub fn pending_events(&self) -> usize {
        self.queue.len()
    }

    /// Which encoding of the LMB list the device tree gets.
    pub fn set_format(&mut self, format: DrconfFormat) {
        self.format = format;
    }

    /// The `/ibm,dynamic-reconfiguration-memory` properties for the next boot.
    pub fn drconf_properties(&self) -> Vec<Property> {
        tree::drconf_properties(&self.table, self.format)
    }

    fn queue_runs(
        &mut self,
        action: HotplugAction,
        lmbs: &[usize],
    ) -> Result<Vec<HotplugEvent>, DlparError> {
        let mut events: Vec<HotplugEvent> = Vec::new();
        for &k in lmbs {
            match events.last_mut() {
                Some(e) if e.index + e.count == self.table.drc_index(k) => e.count += 1,
                _ => events.push(HotplugEvent {
                    action,
                    count: 1,
                    index: self.table.drc_index(k),
                }),
            }
        }
        if self.queue.len() + events.len() > event::QUEUE_MAX {
            return Err(event::QueueFull.into());
        }
        for e in &events {
            self.queue.push(*e)?;
        }
        Ok(events)
    }

    /// The platform adds `n` LMBs (`dump_active`: refused while a dump is active). Grants
    /// the lowest free ones and queues add events for them.
    pub fn add(&mut self, n: usize, dump_active: bool) -> Result<Request, DlparError> {
        if dump_active {
            return Err(DlparError::DumpActive);
        }
        let free = self.table.free();
        if n > free.len() {
            return Err(TableError::NotEnoughFree {
                wanted: n,
                free: free.len(),
            }
            .into());
        }
        let before = self.table.clone();
        let lmbs = self.table.plug(n)?;
        match self.queue_runs(HotplugAction::Add, &lmbs) {
            Ok(events) => Ok(Request { lmbs, events }),
            Err(e) => {
                self.table = before;
                Err(e)
            }
        }
    }

    /// The platform takes back `n` hot-added LMBs (the highest the guest owns): marks them
    /// and queues remove events. The guest may refuse (memory in use): the LMB then stays
    /// its own ([`Change::RolledBack`]).
    pub fn remove(&mut self, n: usize, dump_active: bool) -> Result<Request, DlparError> {
        if dump_active {
            return Err(DlparError::DumpActive);
        }
        let before = self.table.clone();
        let lmbs = self.table.unplug(n)?;
        match self.queue_runs(HotplugAction::Remove, &lmbs) {
            Ok(events) => Ok(Request { lmbs, events }),
            Err(e) => {
                self.table = before;
                Err(e)
            }
        }
    }

    /// The partition resets: queued events are dropped and the table resets
    /// ([`LmbTable::reset`]). Returns the LMBs whose memory the platform may unmap.
    pub fn reset(&mut self, kind: ResetKind) -> Vec<usize> {
        self.queue.clear();
        self.table.reset(kind)
    }

    /// One of the guest's DLPAR RTAS calls (or `check-exception` / `event-scan`), counts
    /// already checked by the caller; writes the return cells.
    pub(crate) fn call<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        call: RtasCall,
        args: &RtasArgs,
        platform: &dyn Platform,
    ) {
        let rets = match call {
            RtasCall::GetSensorState => self.get_sensor_state(args.arg(0), args.arg(1)),
            RtasCall::SetIndicator => {
                vec![self.set_indicator(args.arg(0), args.arg(1), args.arg(2), platform)]
            }
            RtasCall::IbmConfigureConnector => {
                let wa = (u64::from(args.arg(1)) << 32) | u64::from(args.arg(0));
                vec![self.configure_connector(mem, wa)]
            }
            RtasCall::CheckException => {
                vec![self.check_exception(mem, args.arg(2), args.arg(4), args.arg(5), platform)]
            }
            RtasCall::EventScan => {
                // Recover a lost edge: rtasd polls this periodically.
                if !self.queue.is_empty() {
                    platform.raise_irq(HOTPLUG_IRQ);
                }
                vec![RtasStatus::NoEventFound.cell()]
            }
            _ => vec![RtasStatus::ParameterError.cell()],
        };
        if let Err(e) = args.write_rets(mem, &rets) {
            warn!("rtas: {}: {e}", call.name());
        }
    }

    fn get_sensor_state(&self, sensor: u32, index: u32) -> Vec<u32> {
        let param = vec![RtasStatus::ParameterError.cell(), 0];
        if sensor != SENSOR_DR_ENTITY_SENSE {
            warn!("rtas: get-sensor-state: sensor {sensor} not supported");
            return param;
        }
        match self.table.lookup(index) {
            Some(k) => vec![RtasStatus::Success.cell(), self.table.drc(k).sense()],
            None => {
                warn!("rtas: get-sensor-state: no DRC with index {index:#x}");
                param
            }
        }
    }

    fn set_indicator(
        &mut self,
        indicator: u32,
        index: u32,
        value: u32,
        platform: &dyn Platform,
    ) -> u32 {
        let Some(k) = self.table.lookup(index) else {
            warn!("rtas: set-indicator {indicator}: no DRC with index {index:#x}");
            return RtasStatus::ParameterError.cell();
        };
        let range = self.table.range(k);
        let before = *self.table.drc(k);
        let result = match indicator {
            INDICATOR_ALLOCATION => self.table.drc_mut(k).set_allocation(value),
            INDICATOR_ISOLATION => self.table.drc_mut(k).set_isolation(value),
            _ => {
                warn!("rtas: set-indicator {indicator} (value {value}) on LMB {index:#x}: not a logical DRC indicator");
                return RtasStatus::ParameterError.cell();
            }
        };
        match result {
            Err(e) => {
                warn!("rtas: set-indicator {indicator}={value} on LMB {index:#x}: {e}");
                RtasStatus::ParameterError.cell()
            }
            Ok(Change::Acquired) => {
                if platform.map_memory(range) {
                    self.table.acquired(k);
                    info!("dlpar: LMB {index:#x} ({range}) acquired by the guest");
                    RtasStatus::Success.cell()
                } else {
                    *self.table.drc_mut(k) = before;
                    warn!("dlpar: LMB {index:#x} ({range}) could not be mapped");
                    RtasStatus::HardwareError.cell()
                }
            }
            Ok(Change::Released { detached }) => {
                platform.unmap_memory(range);
                info!(
                    "dlpar: LMB {index:#x} ({range}) released by the guest{}",
                    if detached { ", removal complete" } else { "" }
                );
                RtasStatus::Success.cell()
            }
            Ok(Change::RolledBack) => {
                warn!("dlpar: the guest refused to remove LMB {index:#x} ({range}): it stays the guest's");
                RtasStatus::Success.cell()
            }
            Ok(Change::None | Change::Configured) => RtasStatus::Success.cell(),
        }
    }

    fn configure_connector<M: GuestMemoryBackend>(&mut self, mem: &M, wa: u64) -> u32 {
        let index = match memory::read_bytes(mem, wa, 4) {
            Ok(b) => u32::from_be_bytes(b.try_into().expect("4 bytes")),
            Err(e) => {
                warn!("rtas: ibm,configure-connector: work area {wa:#x}: {e}");
                return RtasStatus::HardwareError.cell();
            }
        };
        let Some(k) = self.table.lookup(index) else {
            warn!("rtas: ibm,configure-connector: no DRC with index {index:#x}");
            return RtasStatus::ParameterError.cell();
        };
        let range = self.table.range(k);
        let before = *self.table.drc(k);
        let (piece, change) = match self.table.drc_mut(k).configure_step() {
            Ok(p) => p,
            Err(e @ DrcError::NotConfigurable(_)) | Err(e @ DrcError::NotAllowed(_)) => {
                warn!("rtas: ibm,configure-connector on LMB {index:#x}: {e}");
                return CC_NOT_CONFIGURABLE as u32;
            }
        };
        let (name, props) = tree::lmb_node(range);
        let cell = |v: u32| v.to_be_bytes();
        let mut out = Vec::new();
        let code = match piece {
            CcPiece::Node => {
                out.extend(cell(index));
                out.extend(cell(0));
                out.extend(cell(CC_DATA_OFFSET));
                out.extend(cell(0));
                out.extend(cell(0));
                out.extend(name.as_bytes());
                out.push(0);
                CC_NEXT_CHILD
            }
            CcPiece::Property(i) => {
                let (pname, value) = &props[i];
                let value_at = CC_DATA_OFFSET + pname.len() as u32 + 1;
                out.extend(cell(index));
                out.extend(cell(0));
                out.extend(cell(CC_DATA_OFFSET));
                out.extend(cell(value.len() as u32));
                out.extend(cell(value_at));
                out.extend(pname.as_bytes());
                out.push(0);
                out.extend(value);
                CC_NEXT_PROPERTY
            }
            CcPiece::Complete => CC_COMPLETE,
        };
        if !out.is_empty() {
            if let Err(e) = memory::write_bytes(mem, wa, &out) {
                warn!("rtas: ibm,configure-connector: work area {wa:#x}: {e}");
                *self.table.drc_mut(k) = before;
                return RtasStatus::HardwareError.cell();
            }
        }
        match change {
            Change::RolledBack => {
                warn!("dlpar: the guest re-added LMB {index:#x} ({range}) instead of removing it")
            }
            Change::Configured => {
                info!("dlpar: LMB {index:#x} ({range}) configured: the guest's memory")
            }
            _ => {}
        }
        code
    }

    fn check_exception<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        mask: u32,
        buf: u32,
        len: u32,
        platform: &dyn Platform,
    ) -> u32 {
        if mask & EVENT_MASK_HOTPLUG == 0 {
            return RtasStatus::NoEventFound.cell();
        }
        let Some(log) = self.queue.peek_log(platform.time_of_day()) else {
            return RtasStatus::NoEventFound.cell();
        };
        if (len as usize) < log.len() {
            warn!(
                "rtas: check-exception: buffer of {len} bytes, the event needs {}",
                log.len()
            );
            return RtasStatus::ParameterError.cell();
        }
        if let Err(e) = memory::write_bytes(mem, u64::from(buf), &log) {
            warn!("rtas: check-exception: buffer {buf:#x}: {e}");
            return RtasStatus::HardwareError.cell();
        }
        if let Some(ev) = self.queue.pop() {
            info!("dlpar: hot-plug event {ev:?} delivered");
        }
        if !self.queue.is_empty() {
            platform.raise_irq(HOTPLUG_IRQ);
        }
        RtasStatus::Success.cell()
    }
}

#[cfg(test)]
mod tests;
