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
//!   ([`Dlpar::add`], [`Dlpar::remove`], [`Dlpar::reset`]). The guest's RTAS calls
//!   (`get-sensor-state`, `set-indicator`, `ibm,configure-connector`, and `check-exception` /
//!   `event-scan` for the events) are `rtas::dlpar`'s, which `Rtas` routes there when the
//!   partition has a window. (This module does not import `rtas`: imports point down.)

pub mod drc;
pub mod event;
pub mod table;
pub mod tree;

use thiserror::Error;

use crate::properties::Property;
use event::{HotplugAction, HotplugEvent, HotplugQueue};
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

    /// The hot-plug event queue, for `check-exception` and `event-scan`.
    pub(crate) fn queue_mut(&mut self) -> &mut HotplugQueue {
        &mut self.queue
    }
}

#[cfg(test)]
mod tests;
