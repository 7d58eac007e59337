//! The partition: the state every vCPU thread and the main thread share (the VM, guest
//! memory, the PCI host bridges, the console, the firmware, the vCPU handles, the partition-wide
//! LPCR bits and the event channel to the main thread), and the services vCPU exits call on it
//! (MMIO, RTAS, hcall support).

use crate::console::Console;
use crate::devices::phb::tce::{TceCall, TceError};
use crate::devices::phb::Phb;
use crate::events::EventSender;
use crate::events::MachineEvent;
use crate::kvm::bindings::*;
use crate::kvm::VmFd;
use crate::memory::GuestMemory;
use crate::vcpu::handle::VcpuControl;
use firmware::rtas::{CpuRunState, Platform, Rtas, RtasAction, RtasArgs, RtasCall, TimeOfDay};
use firmware::GuestRange;
use log::{debug, info, warn};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use vmm_sys_util::eventfd::EventFd;

/// State every vCPU thread shares.
pub struct Partition {
    /// Declared before `mem`: fields drop in order, so the VM (and its memory slot) is gone
    /// before the guest memory is unmapped.
    pub vm: VmFd,
    /// The PCI host bridges (none without `--disk`). Behind one lock shared by the vCPU
    /// threads (MMIO exits, PCI config RTAS calls) and the reset path; a queue notify only
    /// wakes the disk's I/O thread, which runs the requests without it. Declared before `mem`: its devices hold a
    /// second handle on the VM and clones of the memory.
    pub phbs: Mutex<Vec<Phb>>,
    pub(crate) mmio_exits: std::sync::atomic::AtomicU64,
    /// The memory hotplug window's KVM slots (`--memory hotplug_size=`). Declared before
    /// `mem`, whose window region its slots map.
    pub(crate) hotplug: Option<crate::hotplug::HotplugSlots>,
    /// Pre-faults a new registration's dump destinations (one worker; holds a clone of `mem`).
    pub(crate) prefaulter: crate::prefault::Prefaulter,
    pub mem: GuestMemory,
    pub console: Arc<Console>,
    pub cpu_char: Option<kvm_ppc_cpu_char>,
    pub ail_mode_3: bool,
    /// log2 of the HPT's size when the partition uses a hash page table (`--mmu hash`).
    pub hpt_order: Option<u32>,
    pub(crate) rtas: Mutex<Rtas>,
    pub(crate) vcpus: OnceLock<Vec<Arc<VcpuControl>>>,
    /// (LPCR value for the bits in `vcpu::LPCR_MANAGED`, generation).
    pub(crate) lpcr: Mutex<(u64, u64)>,
    pub(crate) events: EventSender,
    pub(crate) wake: EventFd,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition").finish_non_exhaustive()
    }
}

impl Partition {
    pub fn vcpu(&self, id: u32) -> Option<&Arc<VcpuControl>> {
        self.vcpus.get()?.get(id as usize)
    }

    pub(crate) fn vcpus(&self) -> &[Arc<VcpuControl>] {
        self.vcpus.get().map_or(&[], |v| v.as_slice())
    }

    pub fn lpcr(&self) -> (u64, u64) {
        *self.lpcr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the partition-wide LPCR bits and makes every running vCPU pick them up before
    /// it next enters the guest; stopped vCPUs apply them when started.
    pub fn set_lpcr_bits(&self, mask: u64, value: u64) {
        {
            let mut l = self.lpcr.lock().unwrap_or_else(|e| e.into_inner());
            l.0 = (l.0 & !mask) | (value & mask);
            l.1 = l.1.wrapping_add(1);
            debug!("partition LPCR bits now {:#x} (generation {})", l.0, l.1);
        }
        for v in self.vcpus() {
            if v.run_state() == CpuRunState::Running {
                v.kick();
            }
        }
    }

    pub(crate) fn reset_lpcr(&self) {
        let mut l = self.lpcr.lock().unwrap_or_else(|e| e.into_inner());
        l.0 = 0;
        l.1 = l.1.wrapping_add(1);
    }

    /// Queues an RTAS event log (built with `firmware::rtas::events::ErrorLog`) under
    /// `class` and raises the class's event-source interrupt; the guest fetches it with
    /// `check-exception`. Refused when the queue is full or the log malformed.
    pub(crate) fn queue_event(
        &self,
        class: firmware::rtas::EventClass,
        log: Vec<u8>,
    ) -> Result<(), firmware::rtas::events::QueueError> {
        self.rtas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .events_mut()
            .queue(class, log)?;
        crate::devices::irq::pulse_event(&self.vm, class);
        Ok(())
    }

    /// A fresh platform log id and the current time, for building an event log.
    pub(crate) fn event_log_stamp(&self) -> (TimeOfDay, u32) {
        let plid = self
            .rtas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .events_mut()
            .next_plid();
        (crate::clock::now(), plid)
    }

    pub fn rtas(&self, vcpu: u32, args_addr: u64) -> Option<RtasAction> {
        let platform = MachinePlatform {
            vcpus: self.vcpus(),
            vm: &self.vm,
            hotplug: self.hotplug.as_ref(),
        };
        let mut rtas = self.rtas.lock().unwrap_or_else(|e| e.into_inner());
        let was_registered = rtas.fadump().is_registered();
        let before = crate::event_monitor::enabled().then(|| rtas.fadump().state().clone());
        let was_active = rtas.fadump().is_dump_active();
        let action = match rtas.dispatch(&self.mem, args_addr, &platform) {
            Ok(a) => Some(a),
            Err(e) => {
                warn!("vcpu {vcpu}: RTAS argument block at {args_addr:#x}: {e}");
                None
            }
        };
        if let Some(before) = before {
            if let Some(event) = crate::event_monitor::fadump_transition(&before, rtas.fadump()) {
                let mut props = crate::event_monitor::registration_properties(rtas.fadump());
                props["cpu"] = vcpu.into();
                crate::event_monitor::emit(event, props);
            }
        }
        if was_active && !rtas.fadump().is_dump_active() {
            // The capture kernel released the dump: the window's LMBs it does not hold lose
            // the slots the capture boot had for them.
            if let (Some(slots), Some(d)) = (&self.hotplug, rtas.dlpar()) {
                if let Err(e) = slots.sync(&self.vm, d.table(), false) {
                    warn!("hotplug: after the dump's release: {e}");
                }
            }
        }
        if !was_registered && rtas.fadump().is_registered() {
            // Fault in the destinations the dump will be copied to, on the machine's one
            // pre-fault worker (the guest's RTAS call returns at once), so the copy at crash
            // time does not pay first-touch page faults.
            self.prefaulter
                .request(rtas.fadump().registered_destinations());
        }
        action
    }

    /// Counts MMIO exits; every 20000th is logged (a storm of them shows in the log).
    pub(crate) fn count_mmio(&self, addr: u64) {
        let n = self.mmio_exits.fetch_add(1, Ordering::Relaxed) + 1;
        if n % 20_000 == 0 {
            info!("{n} MMIO exits so far (latest at {addr:#x})");
        }
    }

    pub(crate) fn lock_phbs(&self) -> std::sync::MutexGuard<'_, Vec<Phb>> {
        self.phbs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A guest load from an address outside RAM: true if a PHB window claims it (`data` is
    /// then filled in), or if it lies in the hotplug window (an LMB the guest does not hold,
    /// e.g. one a pre-6.10 capture kernel's stale ELF header lists after its removal: reads
    /// zeros).
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) -> bool {
        self.count_mmio(addr);
        if self
            .hotplug
            .as_ref()
            .is_some_and(|h| h.window().contains_addr(addr))
        {
            data.fill(0);
            return true;
        }
        self.lock_phbs().iter_mut().any(|p| p.mmio_read(addr, data))
    }

    /// A guest store outside RAM: true if a PHB window claims it; dropped in the hotplug
    /// window (an LMB the guest does not hold).
    pub fn mmio_write(&self, addr: u64, data: &[u8]) -> bool {
        self.count_mmio(addr);
        if self
            .hotplug
            .as_ref()
            .is_some_and(|h| h.window().contains_addr(addr))
        {
            crate::guest_warn!(
                "store to {addr:#x} in the hotplug window, outside the guest's LMBs: dropped"
            );
            return true;
        }
        self.lock_phbs()
            .iter_mut()
            .any(|p| p.mmio_write(addr, data))
    }

    /// An RTAS call the firmware routed to the machine: the PCI config and DDW calls go to
    /// the PHBs (which write the return cells). False if nothing here serves `call`.
    pub fn machine_rtas_call(&self, call: RtasCall, args: &RtasArgs) -> bool {
        use crate::devices::phb::{ddw, rtas};
        let mut phbs = self.lock_phbs();
        rtas::handle_config_call(&mut phbs, &self.mem, call, args)
            || ddw::handle_ddw_call(&mut phbs, &self.mem, call, args)
    }

    /// A TCE hcall KVM did not serve: the PHB owning its LIOBN answers.
    pub fn tce_call(&self, call: TceCall) -> Result<u64, TceError> {
        let mut phbs = self.lock_phbs();
        match phbs.iter_mut().find(|p| p.dma().owns(call.liobn())) {
            Some(phb) => phb.dma_mut().tce_call(&self.mem, call),
            None => Err(TceError::UnknownLiobn(call.liobn())),
        }
    }

    /// Queues `ev` for the main thread (tagged with the current boot) and wakes it.
    pub fn send(&self, ev: MachineEvent) {
        self.events.send(ev);
        let _ = self.wake.write(1);
    }
}

pub(crate) struct MachinePlatform<'a> {
    vcpus: &'a [Arc<VcpuControl>],
    vm: &'a VmFd,
    hotplug: Option<&'a crate::hotplug::HotplugSlots>,
}

impl Platform for MachinePlatform<'_> {
    fn time_of_day(&self) -> TimeOfDay {
        crate::clock::now()
    }
    fn cpu_run_state(&self, cpu: u32) -> Option<CpuRunState> {
        self.vcpus.get(cpu as usize).map(|v| v.run_state())
    }
    fn map_memory(&self, range: GuestRange) -> bool {
        let Some(h) = self.hotplug else {
            return false;
        };
        h.map(self.vm, range)
            .inspect_err(|e| warn!("hotplug: {e}"))
            .is_ok()
    }
    fn unmap_memory(&self, range: GuestRange) {
        if let Some(Err(e)) = self.hotplug.map(|h| h.unmap(self.vm, range)) {
            warn!("hotplug: {e}");
        }
    }
}
