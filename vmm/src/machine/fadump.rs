//! The fadump crash flow: stop every vCPU and take its registers, read the HPT (hash
//! guests), let the firmware write the dump, then reset and boot the capture kernel.

use crate::error::Error;
use crate::hpt;
use crate::kvm::bindings::*;
use devicetree::Mmu;
use firmware::rtas::{RtasArgs, RtasStatus};
use log::{error, info};
use std::time::Instant;

use super::{ms, Machine};

impl Machine {
    /// Firmware-assisted dump: stop every vCPU and read its registers, let the firmware write
    /// the dump (register save area, boot-memory copies; guest RAM is otherwise kept), then
    /// reset and boot again: the new device tree carries `ibm,kernel-dump`. If the firmware
    /// cannot dump, the caller's `ibm,os-term` returns a hardware error and every vCPU resumes.
    pub(super) fn fadump_crash(&mut self, cpu: u32, args: RtasArgs) -> Result<(), Error> {
        info!("fadump: vcpu {cpu} crashed with a dump registered: stopping all vCPUs");
        let t0 = Instant::now();
        let mut states = Vec::new();
        let mut online = Vec::new();
        for v in self.partition.vcpus() {
            if let Some((state, was_online)) = v.snapshot_and_wait() {
                if was_online {
                    states.push(state);
                    online.push(v.clone());
                }
            }
        }
        let stopped = t0.elapsed();
        let snapshot = match self.mmu {
            Mmu::Hash { htab_shift } => Some(self.read_hpt(htab_shift)),
            Mmu::Radix { .. } => None,
        };
        let result = {
            let mut rtas = self
                .partition
                .rtas
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut entries = match &snapshot {
                Some(Ok(s)) => Ok(s.entries.clone()),
                Some(Err(e)) => Err(UnreadableHpt(e.clone())),
                None => Ok(Vec::new()),
            };
            let source: Option<&mut dyn firmware::fadump::HptSource> = match &mut entries {
                // Radix: no HPT, the firmware writes an empty area (size 0 advertised).
                Ok(_) if snapshot.is_none() => None,
                Ok(v) => Some(v),
                Err(u) => Some(u),
            };
            rtas.fadump_mut()
                .perform_dump(&self.partition.mem, &mut states, source)
        };
        if let (Some(Ok(snap)), Ok(report)) = (&snapshot, &result) {
            match crate::htab::verify_hpte_section(&self.partition.mem, &report.kernel_dump, snap) {
                Ok(c) => info!(
                    "fadump: HPTE section verified: {:#x} bytes at {:#x} hold the {} entries read \
                     (save area {} bytes, fnv1a64 {:#018x}, rest zero)",
                    c.section_len,
                    c.destination,
                    snap.entries.len(),
                    c.area_len,
                    c.area_sum
                ),
                Err(e) => error!("fadump: HPTE section verification FAILED: {e}"),
            }
        }
        let dumped = t0.elapsed() - stopped;
        match result {
            Ok(report) => {
                info!(
                    "fadump: dump written: status {:#06x}, {} CPUs saved, {} bytes copied; rebooting \
                     into the capture kernel",
                    report.status, report.cpus_saved, report.bytes_copied
                );
                self.reset()?;
                let reset = t0.elapsed() - stopped - dumped;
                self.boot()?;
                let booted = t0.elapsed() - stopped - dumped - reset;
                info!(
                    "fadump: phases: stop + registers {:.1} ms, dump {:.1} ms, reset {:.1} ms, \
                     capture boot set up {:.1} ms (total {:.1} ms)",
                    ms(stopped),
                    ms(dumped),
                    ms(reset),
                    ms(booted),
                    ms(t0.elapsed())
                );
                Ok(())
            }
            Err(e) => {
                error!("fadump: cannot dump ({e}); ibm,os-term returns a hardware error");
                args.write_status(&self.partition.mem, RtasStatus::HardwareError);
                for v in online {
                    v.resume();
                }
                Ok(())
            }
        }
    }

    /// One full pass of KVM's HPT (every vCPU is stopped), logged with its size and checksum.
    fn read_hpt(&self, order: u32) -> Result<crate::htab::HptSnapshot, String> {
        let t = Instant::now();
        let args = kvm_get_htab_fd::default();
        let mut fd = self
            .partition
            .vm
            .get_htab_fd(&args)
            .map_err(|e| format!("KVM_PPC_GET_HTAB_FD: {e}"))?;
        let snap = crate::htab::HptSnapshot::read(&mut fd).map_err(|e| e.to_string())?;
        let area = snap.save_area();
        info!(
            "fadump: HPT read from KVM in {:.1} ms: table 2^{order} bytes ({} entries), stream {} \
             bytes (fnv1a64 {:#018x}), {} valid entries -> save area {} bytes (fnv1a64 {:#018x})",
            ms(t.elapsed()),
            hpt::entries(order),
            snap.stream_len,
            snap.stream_sum,
            snap.entries.len(),
            area.len(),
            crate::htab::fnv1a64(&area)
        );
        Ok(snap)
    }
}

/// The HPT could not be read: the firmware flags the HPTE section.
struct UnreadableHpt(String);

impl firmware::fadump::HptSource for UnreadableHpt {
    fn valid_entries(&mut self) -> Result<Vec<firmware::fadump::HptEntry>, String> {
        Err(self.0.clone())
    }
}
