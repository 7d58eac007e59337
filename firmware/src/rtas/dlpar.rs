//! The memory-DLPAR RTAS calls over a [`Dlpar`]: `get-sensor-state` 9003, `set-indicator`
//! 9001/9003, `ibm,configure-connector` (argument counts checked by
//! [`super::Rtas::dispatch`]), and [`Rtas::memory_hotplug`], the platform's add and remove,
//! whose logs go through the RTAS event queue ([`super::events`]) to `check-exception`.

use log::{info, warn};
use vm_memory::GuestMemoryBackend;

use super::events::{log_type, ErrorLog, EventClass, Section, MAX_PENDING_LOGS};
use super::{Platform, Rtas, RtasArgs, RtasCall, RtasStatus, TimeOfDay};
use crate::dlpar::drc::{CcPiece, Change, DrcError};
use crate::dlpar::event::{HotplugAction, HotplugEvent, HP_SECTION_VERSION, HP_SUBSYSTEM};
use crate::dlpar::*;
use crate::memory;

/// The RTAS calls of memory DLPAR, published when the partition has a window.
pub const DLPAR_CALLS: [RtasCall; 3] = [
    RtasCall::SetIndicator,
    RtasCall::GetSensorState,
    RtasCall::IbmConfigureConnector,
];

/// The full log of one hot-plug request: QEMU's `spapr_hotplug_req_event` layout (event,
/// not recovered, type 0xE5, Main-B subsystem 0x80, then the "HP" section).
pub fn hotplug_log(ev: &HotplugEvent, created: TimeOfDay, plid: u32) -> Vec<u8> {
    let mut log = ErrorLog::event(log_type::HOTPLUG).with_section(Section::new(
        *b"HP",
        HP_SECTION_VERSION,
        ev.section_data(),
    ));
    log.subsystem_id = HP_SUBSYSTEM;
    log.build(created, plid)
}

impl Rtas {
    /// The platform adds (or takes back) `n` LMBs of the hotplug window: the table changes
    /// ([`Dlpar::add`], [`Dlpar::remove`]) and one log per event is queued under the hot-plug
    /// class; the platform then raises the hot-plug interrupt once per event. Refused,
    /// changing nothing, without a window, while a dump is active, past the window, or when
    /// the event queue has no room.
    pub fn memory_hotplug(
        &mut self,
        action: HotplugAction,
        n: usize,
        now: TimeOfDay,
    ) -> Result<Request, Option<DlparError>> {
        let dump_active = self.fadump.is_dump_active();
        let room = MAX_PENDING_LOGS.saturating_sub(self.events.len());
        let dlpar = self.dlpar.as_mut().ok_or(None)?;
        let before = dlpar.table().clone();
        let request = match action {
            HotplugAction::Add => dlpar.add(n, dump_active),
            HotplugAction::Remove => dlpar.remove(n, dump_active),
        }
        .map_err(Some)?;
        if request.events.len() > room {
            *dlpar.table_mut() = before;
            return Err(Some(DlparError::QueueFull));
        }
        for ev in &request.events {
            let plid = self.events.next_plid();
            let log = hotplug_log(ev, now, plid);
            if let Err(e) = self.events.queue(EventClass::HotPlug, log) {
                // Room was checked: only a bug gets here.
                warn!("dlpar: {e}");
            }
        }
        Ok(request)
    }
}

/// One of the guest's DLPAR RTAS calls (or `check-exception` / `event-scan`), counts
/// already checked by the caller; writes the return cells.
pub(crate) fn call<M: GuestMemoryBackend>(
    d: &mut Dlpar,
    mem: &M,
    call: RtasCall,
    args: &RtasArgs,
    platform: &dyn Platform,
) {
    let rets = match call {
        RtasCall::GetSensorState => get_sensor_state(d, args.arg(0), args.arg(1)),
        RtasCall::SetIndicator => {
            vec![set_indicator(
                d,
                args.arg(0),
                args.arg(1),
                args.arg(2),
                platform,
            )]
        }
        RtasCall::IbmConfigureConnector => {
            let wa = (u64::from(args.arg(1)) << 32) | u64::from(args.arg(0));
            vec![configure_connector(d, mem, wa)]
        }
        _ => vec![RtasStatus::ParameterError.cell()],
    };
    if let Err(e) = args.write_rets(mem, &rets) {
        warn!("rtas: {}: {e}", call.name());
    }
}

fn get_sensor_state(d: &Dlpar, sensor: u32, index: u32) -> Vec<u32> {
    let param = vec![RtasStatus::ParameterError.cell(), 0];
    if sensor != SENSOR_DR_ENTITY_SENSE {
        warn!("rtas: get-sensor-state: sensor {sensor} not supported");
        return param;
    }
    match d.table().lookup(index) {
        Some(k) => vec![RtasStatus::Success.cell(), d.table().drc(k).sense()],
        None => {
            warn!("rtas: get-sensor-state: no DRC with index {index:#x}");
            param
        }
    }
}

fn set_indicator(
    d: &mut Dlpar,
    indicator: u32,
    index: u32,
    value: u32,
    platform: &dyn Platform,
) -> u32 {
    let Some(k) = d.table().lookup(index) else {
        warn!("rtas: set-indicator {indicator}: no DRC with index {index:#x}");
        return RtasStatus::ParameterError.cell();
    };
    let range = d.table().range(k);
    let before = *d.table().drc(k);
    let result = match indicator {
        INDICATOR_ALLOCATION => d.table_mut().drc_mut(k).set_allocation(value),
        INDICATOR_ISOLATION => d.table_mut().drc_mut(k).set_isolation(value),
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
                d.table_mut().acquired(k);
                info!("dlpar: LMB {index:#x} ({range}) acquired by the guest");
                RtasStatus::Success.cell()
            } else {
                *d.table_mut().drc_mut(k) = before;
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
            warn!(
                "dlpar: the guest refused to remove LMB {index:#x} ({range}): it stays the guest's"
            );
            RtasStatus::Success.cell()
        }
        Ok(Change::None | Change::Configured) => RtasStatus::Success.cell(),
    }
}

fn configure_connector<M: GuestMemoryBackend>(d: &mut Dlpar, mem: &M, wa: u64) -> u32 {
    let index = match memory::read_bytes(mem, wa, 4) {
        Ok(b) => u32::from_be_bytes(b.try_into().expect("4 bytes")),
        Err(e) => {
            warn!("rtas: ibm,configure-connector: work area {wa:#x}: {e}");
            return RtasStatus::HardwareError.cell();
        }
    };
    let Some(k) = d.table().lookup(index) else {
        warn!("rtas: ibm,configure-connector: no DRC with index {index:#x}");
        return RtasStatus::ParameterError.cell();
    };
    let range = d.table().range(k);
    let before = *d.table().drc(k);
    let (piece, change) = match d.table_mut().drc_mut(k).configure_step() {
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
            *d.table_mut().drc_mut(k) = before;
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
