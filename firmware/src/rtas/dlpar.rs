//! The memory-DLPAR RTAS calls over a [`Dlpar`]: `get-sensor-state` 9003, `set-indicator`
//! 9001/9003, `ibm,configure-connector`, and the hot-plug side of `check-exception` and
//! `event-scan`. Argument counts are checked by the caller ([`super::Rtas::dispatch`]).

use log::{info, warn};
use vm_memory::GuestMemoryBackend;

use super::{Platform, RtasArgs, RtasCall, RtasStatus, TimeOfDay};
use crate::dlpar::drc::{CcPiece, Change, DrcError};
use crate::dlpar::event::{Timestamp, EVENT_MASK_HOTPLUG, HOTPLUG_IRQ};
use crate::dlpar::*;
use crate::memory;

/// The RTAS calls of memory DLPAR, published when the partition has a window.
pub const DLPAR_CALLS: [RtasCall; 3] = [
    RtasCall::SetIndicator,
    RtasCall::GetSensorState,
    RtasCall::IbmConfigureConnector,
];

fn timestamp(t: TimeOfDay) -> Timestamp {
    Timestamp {
        year: t.year,
        month: t.month,
        day: t.day,
        hour: t.hour,
        minute: t.minute,
        second: t.second,
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
        RtasCall::CheckException => {
            vec![check_exception(
                d,
                mem,
                args.arg(2),
                args.arg(4),
                args.arg(5),
                platform,
            )]
        }
        RtasCall::EventScan => {
            // Recover a lost edge: rtasd polls this periodically.
            if !d.queue_mut().is_empty() {
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

fn check_exception<M: GuestMemoryBackend>(
    d: &mut Dlpar,
    mem: &M,
    mask: u32,
    buf: u32,
    len: u32,
    platform: &dyn Platform,
) -> u32 {
    if mask & EVENT_MASK_HOTPLUG == 0 {
        return RtasStatus::NoEventFound.cell();
    }
    let Some(log) = d.queue_mut().peek_log(timestamp(platform.time_of_day())) else {
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
    if let Some(ev) = d.queue_mut().pop() {
        info!("dlpar: hot-plug event {ev:?} delivered");
    }
    if !d.queue_mut().is_empty() {
        platform.raise_irq(HOTPLUG_IRQ);
    }
    RtasStatus::Success.cell()
}
