//! Memory hotplug on the machine: `resize_memory` (cloud-hypervisor's `vm.resize` with
//! `desired_ram`, called by the API on the main thread) and the LMB state across resets.
//!
//! `desired_ram` is boot RAM plus whole 256 MiB LMBs of the window. Growing grants the lowest
//! free LMBs and queues count-indexed add events; shrinking asks for the highest hot-added
//! LMBs back with remove events. Each event raises the hot-plug interrupt once; the guest
//! fetches it with `check-exception` and runs its DLPAR code, which may refuse a removal
//! (memory in use): the LMB then stays the guest's (logged by the firmware). Nothing changes
//! while a firmware-assisted dump is active.

use super::Machine;
use crate::devices::irq::configure_hotplug_source;
use crate::error::Error;
use firmware::dlpar::table::ResetKind;
use firmware::dlpar::{DlparError, LMB_SIZE};
use firmware::rtas::Rtas;
use log::{info, warn};

/// Why a resize was refused. Shaped like the machine operations' `OpError` (`Busy` → 409,
/// `Invalid` → 400, `NotSupported`), so the API maps it the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    /// A dump is active, or an earlier request is still in flight.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// `desired_ram` is not boot RAM plus whole LMBs of the window.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The machine has no hotplug window (`--memory hotplug_size=`).
    #[error("not supported: {0}")]
    NotSupported(&'static str),
}

/// What a resize did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResizeReport {
    /// Guest memory the machine meant the guest to have before (boot RAM, LMBs it owns and
    /// LMBs offered, minus LMBs asked back).
    pub previous: u64,
    /// `desired_ram`.
    pub desired: u64,
    /// DRC indexes of the LMBs offered (add) or asked back (remove).
    pub lmbs: Vec<u32>,
    /// True for an add, false for a remove (meaningless when `lmbs` is empty).
    pub added: bool,
    /// Hot-plug events queued.
    pub events: usize,
}

/// The firmware's side of a resize: validates `desired_ram`, grants or asks back LMBs and
/// queues the events (nothing changes on an error). The caller raises the interrupt once per
/// event.
pub(crate) fn plan_resize(rtas: &mut Rtas, desired_ram: u64) -> Result<ResizeReport, ResizeError> {
    let dump_active = rtas.fadump().is_dump_active();
    let Some(dlpar) = rtas.dlpar_mut() else {
        return Err(ResizeError::NotSupported(
            "no memory hotplug window (--memory size=...,hotplug_size=...)",
        ));
    };
    let t = dlpar.table();
    let boot = t.boot_ram();
    let max = boot + t.len() as u64 * LMB_SIZE;
    if desired_ram < boot || desired_ram > max || (desired_ram - boot) % LMB_SIZE != 0 {
        warn!(
            "vm.resize: desired_ram {desired_ram:#x} refused: boot RAM {boot:#x} plus whole \
             256 MiB LMBs up to {max:#x}"
        );
        return Err(ResizeError::Invalid(format!(
            "desired_ram {desired_ram} must be {boot} (boot RAM) plus a multiple of {LMB_SIZE}, \
             at most {max}"
        )));
    }
    let target = t.target();
    let previous = boot + target as u64 * LMB_SIZE;
    let want = ((desired_ram - boot) / LMB_SIZE) as usize;
    let (request, added) = match want.cmp(&target) {
        std::cmp::Ordering::Equal => {
            return Ok(ResizeReport {
                previous,
                desired: desired_ram,
                lmbs: vec![],
                added: false,
                events: 0,
            })
        }
        std::cmp::Ordering::Greater => (dlpar.add(want - target, dump_active), true),
        std::cmp::Ordering::Less => (dlpar.remove(target - want, dump_active), false),
    };
    let request = request.map_err(|e| {
        warn!("vm.resize to {desired_ram:#x}: {e}");
        match e {
            DlparError::DumpActive => {
                ResizeError::Busy("a firmware-assisted dump is active: resize after it is released")
            }
            DlparError::QueueFull(_) => {
                ResizeError::Busy("too many hot-plug events are waiting for the guest")
            }
            DlparError::Table(_) => ResizeError::Busy(
                "LMBs are still changing hands: resize again once the guest has finished",
            ),
        }
    })?;
    let lmbs: Vec<u32> = request
        .lmbs
        .iter()
        .map(|&k| dlpar.table().drc_index(k))
        .collect();
    info!(
        "vm.resize: {previous:#x} -> {desired_ram:#x}: {} LMBs {:x?} {}, {} hot-plug events",
        lmbs.len(),
        lmbs,
        if added { "offered" } else { "asked back" },
        request.events.len()
    );
    Ok(ResizeReport {
        previous,
        desired: desired_ram,
        lmbs,
        added,
        events: request.events.len(),
    })
}

impl Machine {
    /// Asks the guest to hold `desired_ram` bytes: hot-plug events for the difference, each
    /// raising the hot-plug interrupt once. (The API's `vm.resize` route calls it on the
    /// main thread.)
    pub fn resize_memory(&mut self, desired_ram: u64) -> Result<ResizeReport, ResizeError> {
        let report = {
            let mut rtas = self
                .partition
                .rtas
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            plan_resize(&mut rtas, desired_ram)?
        };
        for _ in 0..report.events {
            if let Err(e) = self
                .partition
                .vm
                .set_irq_line(firmware::dlpar::event::HOTPLUG_IRQ, true)
            {
                warn!("vm.resize: raising the hot-plug interrupt: {e}");
            }
        }
        Ok(report)
    }

    /// The LMB state through a reset (every vCPU stopped): pending events dropped; on a
    /// reboot pending unplugs complete, on the fadump reset every LMB the crashed kernel owned
    /// stays assigned; the window's KVM slots follow (all mapped while a dump is active), and
    /// the hot-plug source is back to its power-on state.
    pub(super) fn reset_hotplug(&mut self, kind: ResetKind) -> Result<(), Error> {
        let mut rtas = self
            .partition
            .rtas
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let dump_active = rtas.fadump().is_dump_active();
        let Some(dlpar) = rtas.dlpar_mut() else {
            return Ok(());
        };
        let released = dlpar.reset(kind);
        let table = dlpar.table();
        info!(
            "hotplug: {kind:?} reset: the guest keeps LMBs {:x?} ({} MiB in all){}",
            table
                .owned()
                .iter()
                .map(|&k| table.drc_index(k))
                .collect::<Vec<_>>(),
            table.guest_ram_size() >> 20,
            if released.is_empty() {
                String::new()
            } else {
                format!(
                    "; LMBs {:x?} released",
                    released
                        .iter()
                        .map(|&k| table.drc_index(k))
                        .collect::<Vec<_>>()
                )
            }
        );
        if let Some(slots) = &self.partition.hotplug {
            slots
                .sync(&self.partition.vm, table, dump_active)
                .map_err(|e| Error::Runtime(format!("hotplug slots on reset: {e}")))?;
        }
        configure_hotplug_source(&self.xics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::dlpar::table::LmbTable;
    use firmware::dlpar::Dlpar;
    use firmware::fadump::FadumpConfig;

    const M: u64 = 1 << 20;

    fn rtas(window: bool) -> Rtas {
        let mut r = Rtas::new(FadumpConfig {
            max_cpus: 1,
            hpte_capacity: 0,
            rma_size: 64 * M,
            firmware_reserved: vec![],
        });
        if window {
            let t = LmbTable::new(1536 * M, 1536 * M, 512 * M).unwrap();
            r.set_dlpar(Dlpar::new(t));
        }
        r
    }

    #[test]
    fn desired_ram_is_boot_ram_plus_whole_lmbs_of_the_window() {
        assert!(matches!(
            plan_resize(&mut rtas(false), 2048 * M),
            Err(ResizeError::NotSupported(_))
        ));
        let mut r = rtas(true);
        for bad in [1024 * M, 1600 * M, 2304 * M, u64::MAX] {
            assert!(
                matches!(plan_resize(&mut r, bad), Err(ResizeError::Invalid(_))),
                "{bad:#x}"
            );
        }
        assert_eq!(
            r.dlpar().unwrap().pending_events(),
            0,
            "nothing queued for bad input"
        );
        let same = plan_resize(&mut r, 1536 * M).unwrap();
        assert_eq!((same.previous, same.events), (1536 * M, 0));
    }

    #[test]
    fn growing_offers_lmbs_and_shrinking_asks_the_guests_back() {
        let mut r = rtas(true);
        let grow = plan_resize(&mut r, 2048 * M).unwrap();
        assert_eq!(
            (grow.previous, grow.added, grow.events),
            (1536 * M, true, 1)
        );
        assert_eq!(grow.lmbs, [0x8000_0006, 0x8000_0007]);
        // Offered, not yet taken: asking for less now is refused (busy), not half-done.
        assert!(matches!(
            plan_resize(&mut r, 1792 * M),
            Err(ResizeError::Busy(_))
        ));
        assert_eq!(
            plan_resize(&mut r, 2048 * M).unwrap().events,
            0,
            "already the target"
        );
        // The guest takes both (Linux's add sequence on each DRC).
        let d = r.dlpar_mut().unwrap();
        for k in 0..2 {
            let drc = d.table_mut().drc_mut(k);
            drc.set_allocation(1).unwrap();
            drc.set_isolation(1).unwrap();
            while drc.configure_step().unwrap().0 != firmware::dlpar::drc::CcPiece::Complete {}
        }
        let shrink = plan_resize(&mut r, 1792 * M).unwrap();
        assert_eq!(
            (shrink.previous, shrink.added, shrink.lmbs.as_slice()),
            (2048 * M, false, &[0x8000_0007][..])
        );
    }

    #[test]
    fn nothing_changes_while_a_dump_is_active() {
        use firmware::fadump::{
            DumpSection, Fadump, FadumpState, KernelDumpStructure, SectionType,
        };
        let cfg = FadumpConfig {
            max_cpus: 1,
            hpte_capacity: 0,
            rma_size: 64 * M,
            firmware_reserved: vec![],
        };
        let section = DumpSection::request(SectionType::REAL_MODE_REGION, 0, M, 32 * M);
        let kds = KernelDumpStructure::decode(&KernelDumpStructure::registration_bytes(&[section]))
            .unwrap();
        let fadump = Fadump::restore(cfg, FadumpState::DumpActive(kds)).unwrap();
        let mut r = Rtas::with_fadump(fadump);
        r.set_dlpar(Dlpar::new(
            LmbTable::new(1536 * M, 1536 * M, 512 * M).unwrap(),
        ));
        assert!(r.fadump().is_dump_active());
        for desired in [1792 * M, 2048 * M] {
            assert!(matches!(
                plan_resize(&mut r, desired),
                Err(ResizeError::Busy(_))
            ));
        }
        let t = r.dlpar().unwrap().table();
        assert_eq!((r.dlpar().unwrap().pending_events(), t.target()), (0, 0));
    }
}
