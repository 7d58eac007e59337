//! The machine: its lifecycle (boot, reset, the run loop, one handler per event).
//!
//! * [`build`](self): `Machine::new` as named steps (VM, capabilities, memory, MMU, XICS,
//!   PCI, vCPUs, firmware, partition, vCPU threads).
//! * here: `boot` (re)loads the kernel and initramfs read at start-up, the RTAS stub and a
//!   fresh device tree, and starts the boot vCPU; a guest `system-reboot` resets every vCPU
//!   and device and boots again in the same process with guest RAM kept; `power-off` ends
//!   the run with status 0. The main thread runs an `event-manager` loop for console input,
//!   vCPU events and SIGINT/SIGTERM.
//! * [`state`]: the lifecycle as [`MachineState`] with its valid transitions.
//! * `crash`: the fadump crash sequence, written over a trait so it is unit-tested over fake
//!   vCPUs ([`CrashOutcome`], [`Phases`], [`Refusal`]).
//! * `event_loop`: signals, wake-up fds, unbuffered console input.
//!
//! # Interrupt controller: KVM's in-kernel XICS
//!
//! We use `KVM_DEV_TYPE_XICS` rather than emulating XICS in userspace: the presentation hcalls
//! (H_XIRR, H_EOI, H_CPPR, H_IPI, H_IPOLL) and, through `KVM_PPC_RTAS_DEFINE_TOKEN`, the four
//! source RTAS calls stay inside the kernel, so IPIs (every SMP reschedule and TLB flush) do
//! not cost a round trip to userspace (100-370 µs in the nested setup). It is available on
//! every host we target (POWER9/10 as XICS-on-XIVE, nested L1 as the classic emulation), and
//! it needs no `PPC_IRQ_LEVEL`/`KVM_INTERRUPT` plumbing in the VMM.

pub mod api_ops;
mod build;
mod coredump;
mod crash;
mod event_loop;
mod nmi;
mod ops_error;
mod power;
pub mod resize;
pub mod state;

pub use coredump::CoredumpReport;
pub use crash::{CrashOutcome, Phases, Refusal};
pub use ops_error::OpError;
pub use state::{InvalidTransition, MachineState};

use event_loop::{
    on_operator_signal, on_terminate, StdinInput, Wakeup, NMI_SIGNALLED, POWER_BUTTON_SIGNALLED,
    SIGNALLED, SIGNAL_WAKE,
};

use crate::boot::{BootImages, BootSpec, StagedImages};
use crate::config::VmConfig;
use crate::devices::irq::{configure_event_sources, configure_lsis};
use crate::error::Error;
use crate::events::{EventQueue, MachineEvent};
use crate::hash;
use crate::kvm::DeviceFd;
use crate::partition::Partition;
use crate::vcpu::{set, StartRequest};
use devicetree::{CpuModel, Mmu};
use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use firmware::dlpar::table::ResetKind;
use firmware::rtas::RtasArgs;
use log::{error, info, warn};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vmm_sys_util::eventfd::EventFd;

/// A running VM.
pub struct Machine {
    config: VmConfig,
    partition: Arc<Partition>,
    events: EventQueue,
    xics: DeviceFd,
    cpu: CpuModel,
    /// The kernel and initramfs as read at start-up (every boot loads these bytes).
    images: BootImages,
    boots: u32,
    mmu: Mmu,
    /// Bytes from 0 the guest reaches in real mode (all of RAM for radix).
    rma_size: u64,
    /// Where the lifecycle is; changed only through [`Machine::go_to`].
    state: MachineState,
    /// How long a vCPU may take to answer a request (stop, reset, quit).
    answer_timeout: Duration,
    /// How the last crash with a registered dump ended.
    last_dump: Option<CrashOutcome>,
    /// The host's transparent huge page size (0 without THP): fadump's page moves and the
    /// destination padding are sized for it.
    huge_page: u64,
    /// The kernel and initramfs loaded ahead for the next boot (`None` until the first boot
    /// staged them, or when staging failed).
    staged: Option<StagedImages>,
    /// Where the last boot's images ended (what [`Machine::stage_next_boot`] stages).
    images_end: u64,
    /// Operator API requests (`--api-socket`), when served.
    api: Option<crate::api::ApiQueue>,
}

impl Machine {
    /// Where the lifecycle is.
    pub fn state(&self) -> MachineState {
        self.state
    }

    /// How the last crash with a registered dump ended, if one happened.
    pub fn last_dump(&self) -> Option<&CrashOutcome> {
        self.last_dump.as_ref()
    }

    /// Moves the lifecycle to `to`; a transition it does not have is a bug, reported as an
    /// error that ends the run.
    fn go_to(&mut self, to: MachineState) -> Result<(), Error> {
        let next = self.state.go_to(to)?;
        log::debug!("machine: {} -> {next}", self.state);
        self.state = next;
        self.publish_status();
        Ok(())
    }

    /// Loads everything (kernel, initramfs, RTAS stub, fresh device tree) and starts the boot
    /// vCPU.
    pub fn boot(&mut self) -> Result<(), Error> {
        self.start_boot().map(|_| ())
    }

    /// [`Machine::boot`]; returns when the boot vCPU was asked to start (the end of a capture
    /// boot's set-up: what follows, the boot's log line, runs beside the guest).
    fn start_boot(&mut self) -> Result<std::time::Instant, Error> {
        let t = std::time::Instant::now();
        let (rtas_properties, drconf) = {
            let rtas = self
                .partition
                .rtas
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let drconf = rtas.dlpar().map(|d| devicetree::Drconf {
                properties: d.drconf_properties(),
                root_properties: firmware::dlpar::tree::drc_root_properties(d.table()),
            });
            (rtas.properties(), drconf)
        };
        let pci: Vec<_> = self
            .partition
            .lock_phbs()
            .iter()
            .map(|p| p.description())
            .collect();
        let spec = BootSpec {
            images: &self.images,
            cmdline: &self.config.cmdline,
            memory: self.config.memory,
            cpus: self.config.cpus,
            cpu: &self.cpu,
            rtas_properties,
            pci: &pci,
            mmu: self.mmu,
            rma_size: self.rma_size,
            drconf,
        };
        // Page faults tell where a load that writes the images spends its time; a staged boot
        // writes (almost) nothing, and reading procfs twice would cost more than it does.
        let count_faults = !self.staged.as_ref().is_some_and(|s| s.is_filled());
        let faults = count_faults.then(thread_page_faults).flatten();
        let img = crate::boot::load_staged(&self.partition.mem, &spec, self.staged.as_mut())?;
        let faults = count_faults
            .then(thread_page_faults)
            .flatten()
            .zip(faults)
            .map(|(b, a)| (b.0 - a.0, b.1 - a.1));
        self.images_end = img.layout.initrd.map_or(img.kernel_end, |r| r.end());
        // Every vCPU is stopped here: what they send from now on belongs to this boot.
        self.partition.events.next_boot();
        let boot = self.partition.vcpu(0).expect("vcpu 0");
        let start = StartRequest {
            entry: img.entry,
            r3: img.fdt_addr,
            r4: img.kernel_base,
        };
        if !boot.request_start(start) {
            return Err(Error::Runtime("boot vCPU is not stopped".into()));
        }
        let started = std::time::Instant::now();
        self.boots += 1;
        self.publish_status();
        info!(
            "boot #{}: kernel {:#x}..{:#x} entry {:#x}, initrd {:?}, fdt {:#x} ({} bytes), rtas {:#x}; \
             loaded in {:.1} ms (kernel {:.1} ms, {} KiB of it written; initrd {:.1} ms; device \
             tree {:.1} ms, {:.1} ms of it writing; page faults minor/major {:?}){}; boot vCPU started {:.1} ms after \
             the set-up began",
            self.boots,
            img.kernel_base,
            img.kernel_end,
            img.entry,
            img.layout.initrd.map(|r| (r.start(), r.len())),
            img.fdt_addr,
            img.dtb_len,
            img.layout.rtas.start(),
            ms(img.timings.kernel + img.timings.initrd + img.timings.fdt),
            ms(img.timings.kernel),
            img.kernel_written >> 10,
            ms(img.timings.initrd),
            ms(img.timings.fdt),
            ms(img.timings.fdt_write),
            faults,
            match (img.staged, img.tree_staged) {
                (true, true) => {
                    "; kernel and initramfs moved in from the staged pages, device tree built \
                     ahead with ibm,kernel-dump put in"
                }
                (true, false) => "; kernel and initramfs moved in from the staged pages",
                _ => "",
            },
            ms(started - t)
        );
        Ok(started)
    }

    /// Stages the kernel and initramfs for the next boot (the capture boot after a crash), so
    /// that boot moves them in instead of writing them, and builds the capture boot's device
    /// tree (the crash only puts `ibm,kernel-dump` in). Called once a boot has started the
    /// guest, off the crash path; a failure only means the next boot writes them.
    fn stage_next_boot(&mut self, end: u64) {
        let rtas_properties = self
            .partition
            .rtas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .properties();
        // The PCI description at power-on, as the capture boot (after its reset) sees it.
        let pci: Vec<_> = self
            .partition
            .lock_phbs()
            .iter()
            .map(|p| p.description())
            .collect();
        let spec = BootSpec {
            images: &self.images,
            cmdline: &self.config.cmdline,
            memory: self.config.memory,
            cpus: self.config.cpus,
            cpu: &self.cpu,
            rtas_properties,
            pci: &pci,
            mmu: self.mmu,
            rma_size: self.rma_size,
            drconf: None,
        };
        let t = std::time::Instant::now();
        let staged = match &mut self.staged {
            Some(s) if s.is_filled() && s.tree_matches(&spec) => return,
            Some(s) => s.refill(&spec),
            None => StagedImages::new(&spec, end, self.huge_page).map(|s| self.staged = Some(s)),
        };
        match staged {
            Ok(()) => info!(
                "boot #{}: kernel, initramfs and capture device tree staged for the next boot \
                 in {:.1} ms",
                self.boots,
                ms(t.elapsed())
            ),
            Err(e) => {
                warn!("boot images not staged ({e}): the next boot writes them");
                self.staged = None;
            }
        }
    }

    /// Stops every vCPU and resets their state (guest RAM untouched), then every PCI device
    /// (each stops and drains its I/O thread first: the request in progress finishes and no
    /// other starts) and the XICS state of their LSIs. A vCPU that does not answer fails the reset: the
    /// next kernel cannot start from a known state.
    fn reset(&mut self, kind: ResetKind) -> Result<(), Error> {
        self.partition.reset_lpcr();
        set::reset_all(self.partition.vcpus(), self.answer_timeout)
            .map_err(|e| Error::Runtime(format!("reset: {e}")))?;
        if let Mmu::Hash { htab_shift } = self.mmu {
            // Every vCPU is stopped: the next kernel starts from an empty table.
            hash::clear(&self.partition.vm, htab_shift)
                .map_err(|e| Error::Runtime(format!("clearing the HPT on reset: {e}")))?;
            info!("HPT of 2^{htab_shift} bytes cleared for the next boot");
        }
        let mut phbs = self.partition.lock_phbs();
        for p in phbs.iter_mut() {
            p.reset();
        }
        if !phbs.is_empty() {
            info!("PCI devices reset to their power-on state");
        }
        configure_lsis(&self.xics, &phbs)?;
        drop(phbs);
        // Logs queued for the OS that went away are dropped; the sources start masked again.
        self.partition
            .rtas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .events_mut()
            .clear();
        configure_event_sources(&self.xics)?;
        self.reset_hotplug(kind)
    }

    /// Ends every vCPU thread (bounded: a stuck one is left behind and named).
    fn shutdown(&mut self) {
        set::quit_all(self.partition.vcpus(), self.answer_timeout);
    }

    /// Boots and runs until power-off (Ok(0)), a signal (Ok(128 + 15)) or a fatal error.
    pub fn run(mut self) -> Result<i32, Error> {
        let rt = |e: event_manager::Error| Error::Runtime(e.to_string());
        let mut em: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
            EventManager::new().map_err(rt)?;
        let sig = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Runtime(e.to_string()))?;
        let sig_fd = sig.try_clone().map_err(|e| Error::Runtime(e.to_string()))?;
        let _ = SIGNAL_WAKE.set(sig);
        for s in [libc::SIGINT, libc::SIGTERM] {
            vmm_sys_util::signal::register_signal_handler(s, on_terminate)
                .map_err(|e| Error::Runtime(format!("signal handler: {e}")))?;
        }
        // SIGUSR1 = NMI, SIGUSR2 = power button (operators' and the nested tests' triggers).
        for s in [libc::SIGUSR1, libc::SIGUSR2] {
            vmm_sys_util::signal::register_signal_handler(s, on_operator_signal)
                .map_err(|e| Error::Runtime(format!("signal handler: {e}")))?;
        }
        let wake = self
            .partition
            .wake
            .try_clone()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let mut fds = vec![wake, sig_fd];
        if let Some(q) = &self.api {
            fds.push(
                q.wake
                    .try_clone()
                    .map_err(|e| Error::Runtime(e.to_string()))?,
            );
        }
        em.add_subscriber(Arc::new(Mutex::new(Wakeup { fds })));
        if self.config.serial == crate::console::SerialMode::Tty {
            em.add_subscriber(Arc::new(Mutex::new(StdinInput::new(
                self.partition.console.clone(),
            ))));
        }

        let result = self
            .boot()
            .and_then(|()| self.go_to(MachineState::Running))
            .and_then(|()| {
                self.emit_booted("boot");
                self.stage_next_boot(self.images_end);
                self.event_loop(&mut em)
            });
        let end = match &result {
            Ok(_) => MachineState::Off,
            Err(_) => MachineState::Failed,
        };
        if let Err(e) = self.go_to(end) {
            error!("{e}");
        }
        self.shutdown();
        result
    }

    /// Serves events until one ends the run. A dump in progress is always finished first:
    /// events are handled one at a time on this thread, and a signal is looked at between
    /// them.
    fn event_loop(
        &mut self,
        em: &mut EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>>,
    ) -> Result<i32, Error> {
        loop {
            em.run().map_err(|e| Error::Runtime(e.to_string()))?;
            if SIGNALLED.load(Ordering::SeqCst) {
                warn!("terminated by signal");
                crate::event_monitor::emit("shutdown", serde_json::json!({ "reason": "signal" }));
                return Ok(128 + libc::SIGTERM);
            }
            self.operator_signals();
            // One wake may stand for several events: take them all, each against the boot
            // that is current when it is handled (a reboot or dump starts a new one).
            while let Some(event) = self.events.next(self.partition.events.boot()) {
                if let Some(result) = self.handle_event(event)? {
                    return Ok(result);
                }
            }
            // Operator requests after the guest's own: a reboot or crash the guest asked for
            // first is handled first, and a request accepted before it is then refused.
            if let Some(result) = self.serve_api()? {
                return Ok(result);
            }
        }
    }

    /// Carries out the operator requests SIGUSR1 (NMI) and SIGUSR2 (power button) made; a
    /// refusal is logged and the guest keeps running.
    fn operator_signals(&mut self) {
        if NMI_SIGNALLED.swap(false, Ordering::SeqCst) {
            info!("SIGUSR1: NMI requested");
            if let Err(e) = self.nmi() {
                warn!("SIGUSR1: NMI not delivered: {e}");
            }
        }
        if POWER_BUTTON_SIGNALLED.swap(false, Ordering::SeqCst) {
            info!("SIGUSR2: power button pressed");
            if let Err(e) = self.power_button() {
                warn!("SIGUSR2: power button refused: {e}");
            }
        }
    }

    /// Acts on one event; `Some(status)` ends the run.
    fn handle_event(&mut self, event: MachineEvent) -> Result<Option<i32>, Error> {
        match event {
            MachineEvent::PowerOff => {
                info!("guest powered off");
                crate::event_monitor::emit(
                    "shutdown",
                    serde_json::json!({ "reason": "guest power-off" }),
                );
                Ok(Some(0))
            }
            MachineEvent::OsTerm { cpu } => {
                self.os_term_host_dump(cpu);
                self.handle_event(MachineEvent::Reboot)
            }
            MachineEvent::Reboot => {
                info!("guest requested a reboot: resetting and booting again");
                crate::event_monitor::emit("rebooting", serde_json::json!({ "boot": self.boots }));
                self.go_to(MachineState::Resetting)?;
                self.reset(ResetKind::Reboot)?;
                // Only now that every vCPU has stopped (no REGISTER can race it): a plain
                // reboot keeps an active dump but not a registration (the next kernel would
                // get -9 and trust a stale structure).
                self.partition
                    .rtas
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .fadump_mut()
                    .on_partition_reset();
                self.boot()?;
                self.go_to(MachineState::Running)?;
                self.emit_booted("reboot");
                self.stage_next_boot(self.images_end);
                Ok(None)
            }
            MachineEvent::FadumpCrash { cpu, args } => {
                self.fadump_crash(cpu, &args)?;
                Ok(None)
            }
            MachineEvent::SignalSysReset { caller, target } => {
                self.signal_sys_reset(caller, target);
                Ok(None)
            }
            MachineEvent::Fatal(m) => Err(Error::Guest(m)),
        }
    }

    /// Runs the crash sequence ([`crash::fadump_crash`]) through the lifecycle: `Dumping`,
    /// then `Resetting` and `Running` again in the capture kernel, or back to `Running` when
    /// no dump could be taken.
    fn fadump_crash(&mut self, cpu: u32, args: &RtasArgs) -> Result<(), Error> {
        self.go_to(MachineState::Dumping)?;
        crate::event_monitor::emit(
            "fadump-dump-started",
            serde_json::json!({ "cpu": cpu, "boot": self.boots }),
        );
        let outcome = crash::fadump_crash(self, cpu, args)?;
        let report = serde_json::to_value(api_ops::last_dump(&outcome)).unwrap_or_default();
        match outcome {
            CrashOutcome::Refused(_) => {
                crate::event_monitor::emit("fadump-dump-refused", report);
                self.go_to(MachineState::Running)?
            }
            // The capture kernel runs: its own crash or reboot gets staged images too.
            CrashOutcome::Dumped { .. } => {
                crate::event_monitor::emit("fadump-dump-written", report);
                self.emit_booted("capture");
                self.stage_next_boot(self.images_end)
            }
        }
        self.last_dump = Some(outcome);
        Ok(())
    }
}

impl Machine {
    /// `vm/booted` for the boot that just started (`kind`: boot, reboot, capture).
    fn emit_booted(&self, kind: &str) {
        crate::event_monitor::emit(
            "booted",
            serde_json::json!({ "boot": self.boots, "kind": kind }),
        );
    }
}

/// This thread's (minor, major) page faults so far, from `/proc/thread-self/stat` (fields 10
/// and 12); `None` where it cannot be read.
fn thread_page_faults() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(7)?.parse().ok()?, f.get(9)?.parse().ok()?))
}

/// A duration in milliseconds, for log lines.
pub(crate) fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_faults_of_this_thread_count_first_touches() {
        let before = thread_page_faults().expect("/proc/thread-self/stat");
        // 64 MiB is above glibc's largest mmap threshold, so these are fresh pages: touching
        // each faults at least once per 2 MiB even where the kernel backs them with huge
        // pages.
        let mut v = vec![0u8; 64 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&v);
        let after = thread_page_faults().unwrap();
        assert!(after.0 >= before.0 + 32, "{before:?} -> {after:?}");
    }
}
