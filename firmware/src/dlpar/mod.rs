//! Memory DLPAR: adding and removing 256 MiB logical memory blocks (LMBs) of a running
//! pseries guest, the PAPR way Linux's `hotplug-memory.c` and `dlpar.c` use.
//!
//! * [`drc`]: one LMB's dynamic-reconfiguration connector and its state machine;
//! * [`table`]: the partition's LMBs (boot RAM, then the hotplug window), which survives
//!   resets and says what every boot's device tree lists as assigned;
//! * [`tree`]: the `ibm,dynamic-reconfiguration-memory` properties, the root's DRC lists,
//!   `ibm,lrdr-capacity`, and the LMB node `ibm,configure-connector` streams;
//! * [`event`]: the hot-plug request and its "HP" log section;
//! * here: [`Dlpar`], the table with the platform's requests ([`Dlpar::add`],
//!   [`Dlpar::remove`], [`Dlpar::reset`]). The guest's RTAS calls (`get-sensor-state`,
//!   `set-indicator`, `ibm,configure-connector`) and the queuing of the events' logs
//!   (`Rtas::memory_hotplug`, through `rtas::events`) are `rtas::dlpar`'s. (This module does
//!   not import `rtas`: imports point down.)

pub mod drc;
pub mod event;
pub mod table;
pub mod tree;

use thiserror::Error;

use crate::properties::Property;
use event::{HotplugAction, HotplugEvent};
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
    /// Too many event logs are waiting for the guest.
    #[error("too many RTAS event logs are waiting for the guest")]
    QueueFull,
}

/// The LMB table of a partition with a hotplug window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dlpar {
    table: LmbTable,
    format: DrconfFormat,
}

/// What [`Dlpar::add`] or [`Dlpar::remove`] did: the LMBs named and the events to send (one
/// log each, the hot-plug interrupt raised once per log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Window LMB numbers (0-based within the window), ascending.
    pub lmbs: Vec<usize>,
    /// The events, one per run of consecutive LMBs.
    pub events: Vec<HotplugEvent>,
}

impl Dlpar {
    /// DLPAR over `table`, listing its LMBs as `ibm,dynamic-memory-v2`.
    pub fn new(table: LmbTable) -> Self {
        Dlpar {
            table,
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

    /// Which encoding of the LMB list the device tree gets.
    pub fn set_format(&mut self, format: DrconfFormat) {
        self.format = format;
    }

    /// The `/ibm,dynamic-reconfiguration-memory` properties for the next boot.
    pub fn drconf_properties(&self) -> Vec<Property> {
        tree::drconf_properties(&self.table, self.format)
    }

    fn runs(&self, action: HotplugAction, lmbs: &[usize]) -> Vec<HotplugEvent> {
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
        events
    }

    /// The platform adds `n` LMBs (`dump_active`: refused while a dump is active). Grants
    /// the lowest free ones and returns the add events for them.
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
        let lmbs = self.table.plug(n)?;
        let events = self.runs(HotplugAction::Add, &lmbs);
        Ok(Request { lmbs, events })
    }

    /// The platform takes back `n` hot-added LMBs (the highest the guest owns): marks them
    /// and returns the remove events. The guest may refuse (memory in use): the LMB then stays
    /// its own (`Change::RolledBack`).
    pub fn remove(&mut self, n: usize, dump_active: bool) -> Result<Request, DlparError> {
        if dump_active {
            return Err(DlparError::DumpActive);
        }
        let lmbs = self.table.unplug(n)?;
        let events = self.runs(HotplugAction::Remove, &lmbs);
        Ok(Request { lmbs, events })
    }

    /// The partition resets ([`LmbTable::reset`]; the machine drops the queued logs). Returns
    /// the LMBs whose memory the platform may unmap.
    pub fn reset(&mut self, kind: ResetKind) -> Vec<usize> {
        self.table.reset(kind)
    }
}

#[cfg(test)]
mod tests;
