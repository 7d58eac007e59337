//! The memory hot-plug request the platform sends the guest, and the bytes of its "HP"
//! section (`struct pseries_hp_errorlog` after the section header).
//!
//! The whole log (fixed part, v6 extended header, Main-A, Main-B, then this section) is built
//! and queued by `rtas::events` under the hot-plug class (`Rtas::memory_hotplug`); the
//! platform raises the `/event-sources/hot-plug-events` interrupt once per log. Linux
//! (`ras_hotplug_interrupt()` → `check-exception` → `queue_hotplug_event()` →
//! `handle_dlpar_errorlog()`) reads:
//!
//! ```text
//! 0  resource: 2 (PSERIES_HP_ELOG_RESOURCE_MEM)
//! 1  action: 1 add, 2 remove
//! 2  id type: 4 (PSERIES_HP_ELOG_ID_DRC_IC, count and index)
//! 3  reserved
//! 4  count (BE32)
//! 8  index of the first LMB (BE32)
//! ```

/// `PSERIES_HP_ELOG_RESOURCE_MEM`.
pub const RESOURCE_MEM: u8 = 2;
/// `PSERIES_HP_ELOG_ID_DRC_IC`: count and index.
pub const ID_DRC_COUNT_INDEX: u8 = 4;
/// The section's version (QEMU's and Linux's 1).
pub const HP_SECTION_VERSION: u8 = 1;
/// Main-B subsystem id QEMU uses for hot-plug logs.
pub const HP_SUBSYSTEM: u8 = 0x80;

/// What the event asks the guest to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotplugAction {
    /// Add the LMBs (`PSERIES_HP_ELOG_ACTION_ADD`).
    Add = 1,
    /// Remove them (`PSERIES_HP_ELOG_ACTION_REMOVE`).
    Remove = 2,
}

/// One memory hot-plug request, count-indexed: `count` LMBs from DRC index `index` up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotplugEvent {
    /// Add or remove.
    pub action: HotplugAction,
    /// How many LMBs.
    pub count: u32,
    /// The DRC index of the first.
    pub index: u32,
}

impl HotplugEvent {
    /// The "HP" section's data (after its 8-byte header), 12 bytes.
    pub fn section_data(&self) -> Vec<u8> {
        let mut d = vec![RESOURCE_MEM, self.action as u8, ID_DRC_COUNT_INDEX, 0];
        d.extend(self.count.to_be_bytes());
        d.extend(self.index.to_be_bytes());
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hp_section_linux_parses() {
        let ev = HotplugEvent {
            action: HotplugAction::Add,
            count: 2,
            index: 0x8000_0006,
        };
        assert_eq!(ev.section_data(), [2, 1, 4, 0, 0, 0, 0, 2, 0x80, 0, 0, 6]);
        let rm = HotplugEvent {
            action: HotplugAction::Remove,
            ..ev
        };
        assert_eq!(rm.section_data()[1], 2);
    }
}
