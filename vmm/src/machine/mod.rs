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

mod build;
mod crash;
mod event_loop;
pub mod state;

pub use crash::{CrashOutcome, Phases, Refusal};
pub use state::{InvalidTransition, MachineState};

use event_loop::{on_terminate, StdinInput, Wakeup, SIGNALLED, SIGNAL_WAKE};

use crate::boot::{BootImages, BootSpec, StagedImages};
use crate::config::VmConfig;
use crate::devices::irq::configure_lsis;
use crate::error::Error;
use crate::events::{EventQueue, MachineEvent};
use crate::hash;
use crate::kvm::DeviceFd;
use crate::partition::Partition;
use crate::vcpu::{set, StartRequest};
use devicetree::{CpuModel, Mmu};
use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
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
        let rtas_properties = self
            .partition
            .rtas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .properties();
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
        };
        // Page faults tell where a load that writes the images spends its time; a staged boot
        // writes (almost) nothing, and reading procfs twice would cost more than it does.
        let count_faults = !self.staged.as_ref().is_some_and(|s| s.is_filled());
        let faults = count_faults.then(thread_page_faults).flatten();
        let t_spec = std::time::Instant::now();
        let img = crate::boot::load_staged(&self.partition.mem, &spec, self.staged.as_mut())?;
        let t_loaded = std::time::Instant::now();
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
        // The set-up ends when the boot vCPU is released; the time this thread then waits for
        // a CPU while the woken vCPU runs the guest is not set-up.
        let started = std::time::Instant::now();
        if !boot.request_start(start) {
            return Err(Error::Runtime("boot vCPU is not stopped".into()));
        }
        self.boots += 1;
        info!(
            "boot #{}: kernel {:#x}..{:#x} entry {:#x}, initrd {:?}, fdt {:#x} ({} bytes), rtas {:#x}; \
             loaded in {:.1} ms (kernel {:.1} ms, {} KiB of it written; initrd {:.1} ms; device \
             tree {:.1} ms, {:.1} ms of it writing; page faults minor/major {:?}){}; boot vCPU started {:.1} ms after \
             the set-up began (firmware and PCI state {:.1} ms, load {:.1} ms, start {:.1} ms)",
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
            ms(started - t),
            ms(t_spec - t),
            ms(t_loaded - t_spec),
            ms(started - t_loaded)
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
    fn reset(&mut self) -> Result<(), Error> {
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
        configure_lsis(&self.xics, &phbs)
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
        let wake = self
            .partition
            .wake
            .try_clone()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        em.add_subscriber(Arc::new(Mutex::new(Wakeup {
            fds: vec![wake, sig_fd],
        })));
        if self.config.serial == crate::console::SerialMode::Tty {
            em.add_subscriber(Arc::new(Mutex::new(StdinInput::new(
                self.partition.console.clone(),
            ))));
        }

        let result = self
            .boot()
            .and_then(|()| self.go_to(MachineState::Running))
            .and_then(|()| {
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
                return Ok(128 + libc::SIGTERM);
            }
            // One wake may stand for several events: take them all, each against the boot
            // that is current when it is handled (a reboot or dump starts a new one).
            while let Some(event) = self.events.next(self.partition.events.boot()) {
                if let Some(result) = self.handle_event(event)? {
                    return Ok(result);
                }
            }
        }
    }

    /// Acts on one event; `Some(status)` ends the run.
    fn handle_event(&mut self, event: MachineEvent) -> Result<Option<i32>, Error> {
        match event {
            MachineEvent::PowerOff => {
                info!("guest powered off");
                Ok(Some(0))
            }
            MachineEvent::Reboot => {
                info!("guest requested a reboot: resetting and booting again");
                self.go_to(MachineState::Resetting)?;
                self.reset()?;
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
                self.stage_next_boot(self.images_end);
                Ok(None)
            }
            MachineEvent::FadumpCrash { cpu, args } => {
                self.fadump_crash(cpu, &args)?;
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
        let outcome = crash::fadump_crash(self, cpu, args)?;
        match outcome {
            CrashOutcome::Refused(_) => self.go_to(MachineState::Running)?,
            // The capture kernel runs: its own crash or reboot gets staged images too.
            CrashOutcome::Dumped { .. } => self.stage_next_boot(self.images_end),
        }
        self.last_dump = Some(outcome);
        Ok(())
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
