//! The fadump crash sequence: stop every vCPU and take its registers → the firmware writes the
//! dump (Register Save Area, HPTE area, boot-memory copies) → reset vCPUs and devices → boot
//! the capture kernel, whose device tree carries `ibm,kernel-dump`. When no trustworthy dump
//! can be taken, the vCPUs resume and the caller's `ibm,os-term` returns a hardware error.
//!
//! The sequence ([`fadump_crash`]) is written over [`CrashHost`], which the machine implements
//! over KVM and the unit tests implement over fake vCPU threads (`vcpu::handle::fake`) and the
//! real firmware, so its order and its refusals are tested without KVM.
//!
//! Which vCPUs can be missing:
//! * a **dead** vCPU (its thread ended) runs no guest code: the dump goes ahead without its
//!   registers, and the log names it;
//! * an **unresponsive** vCPU (no answer within the machine's answer timeout) may still be
//!   running guest code and changing the memory being preserved: no dump is taken (the
//!   refusal above), so a torn dump is never reported as good.

use super::{ms, Machine, MachineState};
use crate::boot::{InstallAfterHead, StagedImages};
use crate::config::PreserveMode;
use crate::error::Error;
use crate::hash::{self, UnreadableHpt};
use crate::memory::remap::{Mode, RemapPreserver, RemapStats};
use crate::vcpu::set::{self, Stopped};
use crate::vcpu::VcpuControl;
use devicetree::Mmu;
use firmware::fadump::{DumpError, DumpReport, HptSource};
use firmware::rtas::{RtasArgs, RtasStatus};
use firmware::CpuState;
use log::{error, info, warn};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the crash sequence needs from the machine.
pub(crate) trait CrashHost {
    /// Every vCPU, in vCPU order.
    fn vcpus(&self) -> Vec<Arc<VcpuControl>>;
    /// How long a vCPU may take to answer.
    fn answer_timeout(&self) -> Duration;
    /// Every vCPU is stopped: stops the devices' I/O threads (the request in progress
    /// finishes, no other starts), so nothing but the dump touches guest memory from now on.
    fn pause_io(&mut self);
    /// No dump after all: the I/O threads go on.
    fn resume_io(&mut self);
    /// Every vCPU is stopped: read what else the dump needs (the HPT) and let the firmware
    /// write the dump from `cpus`.
    fn dump(&mut self, cpus: &mut Vec<CpuState>) -> Result<DumpReport, DumpError>;
    /// Resets vCPUs and devices for the next boot.
    fn reset(&mut self) -> Result<(), Error>;
    /// Boots the capture kernel; returns when its boot vCPU was asked to start.
    fn boot(&mut self) -> Result<Instant, Error>;
    /// The caller's `ibm,os-term` returns `status` (written into its argument block).
    fn answer_os_term(&mut self, args: &RtasArgs, status: RtasStatus);
}

/// How long each step of a dump took.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Phases {
    /// Stopping every vCPU and reading its registers, and stopping the I/O threads.
    pub stop: Duration,
    /// The firmware's dump (HPT read, register save area, boot-memory copies).
    pub dump: Duration,
    /// vCPU and device reset.
    pub reset: Duration,
    /// Setting up the capture boot (device tree, images, boot vCPU start).
    pub boot: Duration,
}

impl Phases {
    /// The VMM's whole share of crash → capture kernel.
    pub fn total(&self) -> Duration {
        self.stop + self.dump + self.reset + self.boot
    }
}

/// Why no dump was taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// These vCPUs did not stop: they may still be running guest code.
    #[error("vCPUs {0:?} did not stop")]
    Unresponsive(Vec<u32>),
    /// The firmware could not dump.
    #[error("{0}")]
    Dump(DumpError),
}

/// How a crash with a registered dump ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CrashOutcome {
    /// The dump was written and the capture kernel boots.
    Dumped {
        /// The firmware's report.
        report: DumpReport,
        /// The VMM's phase times.
        phases: Phases,
        /// vCPUs missing from the dump because their thread had ended.
        missing: Vec<u32>,
    },
    /// No dump: the vCPUs resumed and `ibm,os-term` returned a hardware error.
    Refused(Refusal),
}

/// The crash sequence for `ibm,os-term` from vCPU `cpu` with a dump registered; `args` is the
/// call's argument block. An `Err` is a failure after the dump was written (reset or boot):
/// the machine cannot go on.
pub(crate) fn fadump_crash(
    host: &mut impl CrashHost,
    cpu: u32,
    args: &RtasArgs,
) -> Result<CrashOutcome, Error> {
    info!("fadump: vcpu {cpu} crashed with a dump registered: stopping all vCPUs");
    let t0 = Instant::now();
    let vcpus = host.vcpus();
    let Stopped {
        mut online,
        held,
        dead,
        unresponsive,
        ..
    } = set::stop_all(&vcpus, host.answer_timeout());
    let refuse = |host: &mut dyn CrashHost, why: Refusal, paused: bool| {
        error!("fadump: cannot dump ({why}); ibm,os-term returns a hardware error");
        if paused {
            host.resume_io();
        }
        set::resume(&held);
        host.answer_os_term(args, RtasStatus::HardwareError);
        Ok(CrashOutcome::Refused(why))
    };
    if !unresponsive.is_empty() {
        return refuse(host, Refusal::Unresponsive(unresponsive), false);
    }
    if !dead.is_empty() {
        warn!("fadump: vCPUs {dead:?} have no thread: their registers are not in the dump");
    }
    host.pause_io();
    let stop = t0.elapsed();
    let report = match host.dump(&mut online) {
        Ok(r) => r,
        Err(e) => return refuse(host, Refusal::Dump(e), true),
    };
    let dump = t0.elapsed() - stop;
    info!(
        "fadump: dump written: status {:#06x}, {} CPUs saved, {} bytes preserved ({} remapped); \
         rebooting into the capture kernel",
        report.status, report.cpus_saved, report.bytes_copied, report.bytes_remapped
    );
    host.reset()?;
    let reset = t0.elapsed() - stop - dump;
    let started = host.boot()?;
    let phases = Phases {
        stop,
        dump,
        reset,
        boot: started.saturating_duration_since(t0) - stop - dump - reset,
    };
    info!(
        "fadump: phases: stop + registers {:.1} ms, dump {:.1} ms, reset {:.1} ms, capture boot \
         set up {:.1} ms (total {:.1} ms)",
        ms(phases.stop),
        ms(phases.dump),
        ms(phases.reset),
        ms(phases.boot),
        ms(phases.total())
    );
    Ok(CrashOutcome::Dumped {
        report,
        phases,
        missing: dead,
    })
}

impl Machine {
    /// The firmware's dump with boot memory preserved as configured (`--fadump-preserve`):
    /// copied, or its host pages moved ([`RemapPreserver`]), which needs every vCPU stopped
    /// (checked: otherwise it copies).
    fn preserve_boot_memory(
        &self,
        rtas: &mut firmware::rtas::Rtas,
        cpus: &mut Vec<CpuState>,
        hpt: Option<&mut dyn HptSource>,
        staged: Option<&mut StagedImages>,
    ) -> Result<DumpReport, DumpError> {
        // A populate still running would only fault pages in, but it competes for the lock
        // the moves take.
        self.partition.prefaulter.cancel();
        let running: Vec<u32> = self
            .partition
            .vcpus()
            .iter()
            .filter(|v| v.state().runnable())
            .map(|v| v.id())
            .collect();
        let mode = match self.config.preserve {
            PreserveMode::Copy => None,
            _ if !running.is_empty() => {
                error!("fadump: vCPUs {running:?} are runnable: boot memory is copied, not moved");
                None
            }
            PreserveMode::Remap => Some(Mode::Swap),
            PreserveMode::RemapZero => Some(Mode::Zero),
        };
        let mem = &self.partition.mem;
        let t = Instant::now();
        let destinations = rtas.fadump().registered_destinations();
        let early = staged.and_then(|s| InstallAfterHead::new(s, mem, &destinations));
        let (result, stats) = match (mode, early) {
            // Copying: the capture kernel's images move in beside the copy, once its head
            // is preserved.
            (None, Some(mut p)) => {
                let r = rtas.fadump_mut().perform_dump_with(mem, cpus, hpt, &mut p);
                if p.started() {
                    info!("fadump: capture images moving in beside the rest of the copy");
                }
                (r, RemapStats::default())
            }
            (None, None) => (
                rtas.fadump_mut().perform_dump(mem, cpus, hpt),
                RemapStats::default(),
            ),
            (Some(mode), _) => {
                let mut p = RemapPreserver::new(mode, self.huge_page);
                let r = rtas.fadump_mut().perform_dump_with(mem, cpus, hpt, &mut p);
                (r, p.stats)
            }
        };
        if let Ok(r) = &result {
            info!(
                "fadump: boot memory preserved ({:?}): {} MiB, {} MiB of it remapped in {} \
                 chunks ({} mremap calls, {:.1} ms; {} copied instead), in {:.1} ms",
                self.config.preserve,
                r.bytes_copied >> 20,
                r.bytes_remapped >> 20,
                stats.chunks,
                stats.syscalls,
                ms(stats.moving),
                stats.fallbacks,
                ms(t.elapsed())
            );
        }
        result
    }
}

impl CrashHost for Machine {
    fn vcpus(&self) -> Vec<Arc<VcpuControl>> {
        self.partition.vcpus().to_vec()
    }

    fn answer_timeout(&self) -> Duration {
        self.answer_timeout
    }

    fn pause_io(&mut self) {
        let mut phbs = self.partition.lock_phbs();
        for p in phbs.iter_mut() {
            p.pause();
        }
    }

    fn resume_io(&mut self) {
        let mut phbs = self.partition.lock_phbs();
        for p in phbs.iter_mut() {
            p.resume();
        }
    }

    fn dump(&mut self, cpus: &mut Vec<CpuState>) -> Result<DumpReport, DumpError> {
        let snapshot = match self.mmu {
            Mmu::Hash { htab_shift } => Some(hash::read(&self.partition.vm, htab_shift)),
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
            let source: Option<&mut dyn HptSource> = match &mut entries {
                // Radix: no HPT, the firmware writes an empty area (size 0 advertised).
                Ok(_) if snapshot.is_none() => None,
                Ok(v) => Some(v),
                Err(u) => Some(u),
            };
            // Out of `self` for the dump (the partition stays borrowed), back right after.
            let mut staged = self.staged.take();
            let r = self.preserve_boot_memory(&mut rtas, cpus, source, staged.as_mut());
            self.staged = staged;
            r
        };
        if let (Some(Ok(snap)), Ok(report)) = (&snapshot, &result) {
            match hash::stream::verify_hpte_section(&self.partition.mem, &report.kernel_dump, snap)
            {
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
        result
    }

    fn reset(&mut self) -> Result<(), Error> {
        self.go_to(MachineState::Resetting)?;
        // The dump is written and nothing runs: the capture kernel's staged images move under
        // guest RAM beside the reset (the move's KVM invalidations are most of its cost).
        if let Some(s) = &mut self.staged {
            s.start_install(&self.partition.mem);
        }
        Machine::reset(self, firmware::dlpar::table::ResetKind::Fadump)
    }

    fn boot(&mut self) -> Result<Instant, Error> {
        let started = Machine::start_boot(self)?;
        self.go_to(MachineState::Running)?;
        Ok(started)
    }

    fn answer_os_term(&mut self, args: &RtasArgs, status: RtasStatus) {
        args.write_status(&self.partition.mem, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcpu::handle::fake::{spawn, Behaviour};
    use crate::vcpu::state::{GuestRun, StartRequest, VcpuState};
    use crate::vcpu::ANSWER_TIMEOUT;
    use firmware::fadump::{DumpSection, FadumpConfig, KernelDumpStructure, SectionType};
    use firmware::fadump::{CMD_REGISTER, CMD_UNREGISTER};
    use firmware::rtas::{CpuRunState, Platform, Rtas, RtasAction, RtasCall, TimeOfDay};
    use firmware::{memory, PropValue};
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    const RAM: u64 = 64 << 20;
    const BOOT_MEM: u64 = 4 << 20;
    const DEST: u64 = 32 << 20;
    const ARGS: u64 = 0x1000;
    const FDM: u64 = 0x2000;
    const PATTERN: &[u8] = b"the crashed kernel's page";
    const SHORT: Duration = Duration::from_millis(200);

    struct Clock;
    impl Platform for Clock {
        fn time_of_day(&self) -> TimeOfDay {
            TimeOfDay {
                year: 2026,
                month: 12,
                day: 4,
                hour: 0,
                minute: 0,
                second: 0,
                nanosecond: 0,
            }
        }
        fn cpu_run_state(&self, _: u32) -> Option<CpuRunState> {
            Some(CpuRunState::Running)
        }
    }

    /// A machine without KVM: fake vCPU threads, the real firmware over real guest memory,
    /// and a record of the steps in the order they ran.
    struct FakeMachine {
        vcpus: Vec<Arc<VcpuControl>>,
        _release: Vec<std::sync::mpsc::Sender<()>>,
        mem: GuestMemoryMmap<()>,
        rtas: Rtas,
        steps: Vec<&'static str>,
        os_term: Option<RtasStatus>,
        timeout: Duration,
        /// Set during the dump, as the SIGTERM handler would if the signal came then.
        signal_during_dump: Option<Arc<std::sync::atomic::AtomicBool>>,
    }

    impl CrashHost for FakeMachine {
        fn vcpus(&self) -> Vec<Arc<VcpuControl>> {
            self.vcpus.clone()
        }
        fn answer_timeout(&self) -> Duration {
            self.timeout
        }
        fn pause_io(&mut self) {
            self.steps.push("io paused");
        }
        fn resume_io(&mut self) {
            self.steps.push("io resumed");
        }
        fn dump(&mut self, cpus: &mut Vec<CpuState>) -> Result<DumpReport, DumpError> {
            self.steps.push("dump");
            // Nothing may run while the firmware dumps.
            for v in &self.vcpus {
                assert!(
                    !v.state().runnable(),
                    "vcpu {} runnable during the dump",
                    v.id()
                );
            }
            if let Some(flag) = &self.signal_during_dump {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            self.rtas.fadump_mut().perform_dump(&self.mem, cpus, None)
        }
        fn reset(&mut self) -> Result<(), Error> {
            self.steps.push("reset");
            set::reset_all(&self.vcpus, self.timeout).map_err(|e| Error::Runtime(e.to_string()))
        }
        fn boot(&mut self) -> Result<Instant, Error> {
            self.steps.push("boot");
            let start = StartRequest {
                entry: 0x10,
                r3: 0x20,
                r4: 0,
            };
            if self.vcpus[0].is_dead() || !self.vcpus[0].request_start(start) {
                return Err(Error::Runtime("boot vCPU is not stopped".into()));
            }
            Ok(Instant::now())
        }
        fn answer_os_term(&mut self, args: &RtasArgs, status: RtasStatus) {
            self.steps.push("os-term answered");
            self.os_term = Some(status);
            args.write_status(&self.mem, status);
        }
    }

    fn block(mem: &GuestMemoryMmap<()>, call: RtasCall, args: &[u32], nret: u32) {
        let bytes = RtasArgs::block_bytes(call.token(), args, nret, 0);
        memory::write_bytes(mem, ARGS, &bytes).unwrap();
    }

    /// A machine of `behaviours.len()` vCPUs, all running but those that never answer or
    /// are dead, with fadump registered and vCPU `caller` having called `ibm,os-term`
    /// (unregistered again after it unless `register`): returns the machine and the os-term's
    /// argument block.
    fn crashed(behaviours: &[Behaviour], caller: u32, register: bool) -> (FakeMachine, RtasArgs) {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap();
        let cfg = FadumpConfig {
            max_cpus: behaviours.len() as u32,
            hpte_capacity: 0,
            rma_size: RAM,
            firmware_reserved: vec![],
        };
        let mut rtas = Rtas::new(cfg.clone());
        memory::write_bytes(&mem, 0x10_0000, PATTERN).unwrap();
        let cpu_area = cfg.cpu_state_size();
        let sections = [
            DumpSection::request(SectionType::CPU_STATE, 0, cpu_area, DEST),
            DumpSection::request(SectionType::HPTE, 0, cfg.hpte_size(), DEST + cpu_area),
            DumpSection::request(SectionType::REAL_MODE_REGION, 0, BOOT_MEM, DEST + (1 << 20)),
        ];
        let fdm = KernelDumpStructure::registration_bytes(&sections);
        memory::write_bytes(&mem, FDM, &fdm).unwrap();
        let registration = [CMD_REGISTER, FDM as u32, fdm.len() as u32];
        block(&mem, RtasCall::IbmConfigureKernelDump, &registration, 1);
        rtas.dispatch(&mem, ARGS, &Clock).unwrap();
        assert!(rtas.fadump().is_registered());
        memory::write_bytes(&mem, 0x3000, b"Kernel panic - not syncing: test\0").unwrap();
        block(&mem, RtasCall::IbmOsTerm, &[0x3000], 1);
        let RtasAction::FadumpCrash { args, .. } = rtas.dispatch(&mem, ARGS, &Clock).unwrap()
        else {
            panic!("os-term with a registered dump must ask for a dump")
        };
        if !register {
            // Another vCPU's UNREGISTER got in between the os-term and the dump.
            block(
                &mem,
                RtasCall::IbmConfigureKernelDump,
                &[CMD_UNREGISTER, FDM as u32, fdm.len() as u32],
                1,
            );
            rtas.dispatch(&mem, ARGS, &Clock).unwrap();
            assert!(!rtas.fadump().is_registered());
            // The os-term's block is the one the machine answers.
            block(&mem, RtasCall::IbmOsTerm, &[0x3000], 1);
        }
        let mut vcpus = Vec::new();
        let mut release = Vec::new();
        for (id, b) in behaviours.iter().enumerate() {
            let (c, _, r) = spawn(id as u32, *b);
            if *b == Behaviour::Answers {
                assert!(c.request_start(StartRequest {
                    entry: 0x100,
                    r3: 0,
                    r4: 0
                }));
                while c.state() != VcpuState::Free(GuestRun::Running) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            vcpus.push(c);
            release.push(r);
        }
        vcpus[caller as usize].hold_self();
        let m = FakeMachine {
            vcpus,
            _release: release,
            mem,
            rtas,
            steps: Vec::new(),
            os_term: None,
            timeout: SHORT,
            signal_during_dump: None,
        };
        (m, args)
    }

    fn kernel_dump_status(m: &FakeMachine) -> Option<u16> {
        m.rtas.properties().iter().find_map(|p| match &p.value {
            PropValue::Bytes(b) if p.name == "ibm,kernel-dump" => {
                Some(u16::from_be_bytes([b[6], b[7]]))
            }
            _ => None,
        })
    }

    /// The report and missing vCPUs of a crash that must have dumped.
    fn dumped(out: CrashOutcome) -> (DumpReport, Vec<u32>) {
        match out {
            CrashOutcome::Dumped {
                report, missing, ..
            } => (report, missing),
            CrashOutcome::Refused(r) => panic!("no dump: {r:?}"),
        }
    }

    fn os_term_status_cell(m: &FakeMachine) -> i32 {
        let b = memory::read_bytes(&m.mem, ARGS + 12 + 4, 4).unwrap();
        i32::from_be_bytes(b.try_into().unwrap())
    }

    #[test]
    fn stop_dump_reset_boot_in_that_order_with_every_vcpu_saved() {
        let (mut m, args) = crashed(&[Behaviour::Answers; 3], 1, true);
        m.timeout = ANSWER_TIMEOUT;
        let (report, missing) = dumped(fadump_crash(&mut m, 1, &args).unwrap());
        assert_eq!(m.steps, ["io paused", "dump", "reset", "boot"]);
        assert_eq!(report.cpus_saved, 3);
        assert!(missing.is_empty());
        assert_eq!(kernel_dump_status(&m), Some(0xc000));
        let kept = memory::read_bytes(&m.mem, DEST + (1 << 20) + 0x10_0000, PATTERN.len());
        assert_eq!(kept.unwrap(), PATTERN, "boot memory preserved");
        // The capture kernel starts on vCPU 0; the others wait for its start-cpu.
        assert!(matches!(
            m.vcpus[0].state(),
            VcpuState::Free(GuestRun::Starting(_) | GuestRun::Running)
        ));
        for v in &m.vcpus[1..] {
            assert_eq!(v.state(), VcpuState::Free(GuestRun::Stopped));
        }
        assert_eq!(m.os_term, None, "os-term does not return on success");
        set::quit_all(&m.vcpus, ANSWER_TIMEOUT);
    }

    #[test]
    fn a_vcpu_that_never_answers_means_no_dump_and_a_hardware_error() {
        let (mut m, args) = crashed(
            &[
                Behaviour::Answers,
                Behaviour::Answers,
                Behaviour::NeverAnswers,
            ],
            0,
            true,
        );
        let out = fadump_crash(&mut m, 0, &args).unwrap();
        assert_eq!(out, CrashOutcome::Refused(Refusal::Unresponsive(vec![2])));
        assert_eq!(m.steps, ["os-term answered"], "no dump, no reset, no boot");
        assert_eq!(os_term_status_cell(&m), RtasStatus::HardwareError as i32);
        // The registration stands (the guest may retry or reboot), nothing was dumped, and
        // the vCPUs that stopped go on where they were.
        assert!(m.rtas.fadump().is_registered());
        assert_eq!(kernel_dump_status(&m), None);
        for v in &m.vcpus[..2] {
            assert_eq!(v.state(), VcpuState::Free(GuestRun::Running));
        }
        m._release.clear();
        set::quit_all(&m.vcpus, ANSWER_TIMEOUT);
    }

    #[test]
    fn a_dead_vcpu_is_left_out_and_the_dump_goes_ahead() {
        let (mut m, args) = crashed(
            &[Behaviour::Answers, Behaviour::Dead, Behaviour::Answers],
            2,
            true,
        );
        let (report, missing) = dumped(fadump_crash(&mut m, 2, &args).unwrap());
        assert_eq!(m.steps, ["io paused", "dump", "reset", "boot"]);
        assert_eq!(report.cpus_saved, 2);
        assert_eq!(missing, vec![1]);
        assert_eq!(kernel_dump_status(&m), Some(0xc000));
        set::quit_all(&m.vcpus, ANSWER_TIMEOUT);
    }

    #[test]
    fn a_dump_the_firmware_refuses_resumes_every_vcpu() {
        // os-term raced an UNREGISTER: the firmware has nothing to dump.
        let (mut m, args) = crashed(&[Behaviour::Answers; 2], 1, false);
        let out = fadump_crash(&mut m, 1, &args).unwrap();
        assert_eq!(
            out,
            CrashOutcome::Refused(Refusal::Dump(DumpError::NotRegistered))
        );
        assert_eq!(
            m.steps,
            ["io paused", "dump", "io resumed", "os-term answered"]
        );
        assert_eq!(m.os_term, Some(RtasStatus::HardwareError));
        for v in &m.vcpus {
            assert_eq!(
                v.state(),
                VcpuState::Free(GuestRun::Running),
                "the caller too"
            );
        }
        set::quit_all(&m.vcpus, ANSWER_TIMEOUT);
    }

    #[test]
    fn a_dead_boot_vcpu_fails_the_machine_after_the_dump() {
        let (mut m, args) = crashed(&[Behaviour::Dead, Behaviour::Answers], 1, true);
        let err = fadump_crash(&mut m, 1, &args).unwrap_err();
        assert_eq!(err.to_string(), "threads/events: boot vCPU is not stopped");
        assert_eq!(m.steps, ["io paused", "dump", "reset", "boot"]);
        set::quit_all(&m.vcpus, ANSWER_TIMEOUT);
    }

    /// SIGTERM while the dump is being written: the dump is completed (whole, no error status,
    /// boot memory copied), then the signal is refused once because the dump waits for the
    /// capture kernel, and the exit becomes due when the capture kernel releases it.
    #[test]
    fn a_signal_during_the_dump_lets_it_complete_and_waits_for_the_capture_kernel() {
        use super::super::exit_policy::{ExitPolicy, OnSignal};
        use firmware::fadump::CMD_INVALIDATE;
        let (mut m, args) = crashed(&[Behaviour::Answers; 2], 1, true);
        m.timeout = ANSWER_TIMEOUT;
        let signalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        m.signal_during_dump = Some(signalled.clone());
        let mut policy = ExitPolicy::default();
        let (report, _) = dumped(fadump_crash(&mut m, 1, &args).unwrap());
        assert_eq!(
            m.steps,
            ["io paused", "dump", "reset", "boot"],
            "the signal cut nothing short"
        );
        assert!(!report.has_errors());
        assert_eq!(kernel_dump_status(&m), Some(0xc000));
        let kept = memory::read_bytes(&m.mem, DEST + (1 << 20) + 0x10_0000, PATTERN.len());
        assert_eq!(kept.unwrap(), PATTERN);
        // The event loop's check after the crash event: refused, the dump is unsaved.
        let unsaved = m.rtas.fadump().is_dump_active();
        assert_eq!(
            policy.take_signal(&signalled, unsaved),
            Some(OnSignal::Defer)
        );
        assert_eq!(policy.take_signal(&signalled, unsaved), None, "taken once");
        assert!(!policy.due(m.rtas.fadump().is_dump_active()));
        // The capture kernel saved the vmcore and releases the dump: the exit is due.
        block(
            &m.mem,
            RtasCall::IbmConfigureKernelDump,
            &[CMD_INVALIDATE, FDM as u32, 0],
            1,
        );
        m.rtas.dispatch(&m.mem, ARGS, &Clock).unwrap();
        assert!(policy.due(m.rtas.fadump().is_dump_active()));
        set::quit_all(&m.vcpus, ANSWER_TIMEOUT);
    }

    /// A second signal before the release exits, saying the dump is discarded.
    #[test]
    fn a_second_signal_exits_with_the_dump_unsaved() {
        use super::super::exit_policy::{ExitPolicy, OnSignal};
        let (mut m, args) = crashed(&[Behaviour::Answers; 2], 0, true);
        m.timeout = ANSWER_TIMEOUT;
        dumped(fadump_crash(&mut m, 0, &args).unwrap());
        let signalled = std::sync::atomic::AtomicBool::new(true);
        let mut policy = ExitPolicy::default();
        let unsaved = m.rtas.fadump().is_dump_active();
        assert_eq!(
            policy.take_signal(&signalled, unsaved),
            Some(OnSignal::Defer)
        );
        signalled.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            policy.take_signal(&signalled, unsaved),
            Some(OnSignal::ExitDiscardingDump)
        );
        set::quit_all(&m.vcpus, ANSWER_TIMEOUT);
    }

    /// This process's threads, open fds and resident memory (KiB).
    fn resources() -> (usize, usize, u64) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
        (field("Threads:") as usize, fds, field("VmRSS:"))
    }

    /// The soak of issue 16, over the fake vCPU threads and the real firmware, in a process of
    /// its own (the test re-runs its binary on itself): 20 crash -> dump -> capture boot ->
    /// save (the dump checked: status, registers, the crashed kernel's page) -> release ->
    /// re-register -> crash again, then 200 reboots; threads, fds and resident memory are
    /// measured after each cycle and must stay flat.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "re-runs the test binary, which a test under qemu-user cannot start"
    )]
    #[test]
    fn soak_20_dump_cycles_and_200_reboots_keep_threads_fds_and_memory_flat() {
        const CHILD: &str = "PPC_VMM_SOAK_CHILD";
        if std::env::var_os(CHILD).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "machine::crash::tests::soak_20_dump_cycles_and_200_reboots_keep_threads_fds_and_memory_flat",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            for line in stdout.lines().filter(|l| l.starts_with("SOAK")) {
                println!("{line}");
            }
            assert!(
                out.status.success() && stdout.contains("SOAK done"),
                "the soak failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        use firmware::fadump::CMD_INVALIDATE;
        let (mut m, mut args) = crashed(&[Behaviour::Answers; 2], 1, true);
        m.timeout = ANSWER_TIMEOUT;
        let cfg = m.rtas.fadump().config().clone();
        let cpu_area = cfg.cpu_state_size();
        let fdm = KernelDumpStructure::registration_bytes(&[
            DumpSection::request(SectionType::CPU_STATE, 0, cpu_area, DEST),
            DumpSection::request(SectionType::HPTE, 0, cfg.hpte_size(), DEST + cpu_area),
            DumpSection::request(SectionType::REAL_MODE_REGION, 0, BOOT_MEM, DEST + (1 << 20)),
        ]);
        let mut caller = 1;
        let mut seen = Vec::new();
        for cycle in 1..=20u32 {
            let page = format!("the crashed kernel's page, cycle {cycle:02}");
            memory::write_bytes(&m.mem, 0x10_0000, page.as_bytes()).unwrap();
            let (report, missing) = dumped(fadump_crash(&mut m, caller, &args).unwrap());
            // The dump, checked as the matrix checks a vmcore: complete, every CPU, the page.
            assert!(!report.has_errors() && missing.is_empty(), "cycle {cycle}");
            assert_eq!(report.cpus_saved, 2);
            assert_eq!(kernel_dump_status(&m), Some(0xc000));
            let kept = memory::read_bytes(&m.mem, DEST + (1 << 20) + 0x10_0000, page.len());
            assert_eq!(kept.unwrap(), page.as_bytes(), "cycle {cycle}: boot memory");
            // The capture kernel brings its second CPU up (start-cpu), saves the dump and
            // releases it, registers again and crashes.
            assert!(m.vcpus[1].request_start(StartRequest {
                entry: 0x100,
                r3: 0,
                r4: 0
            }));
            // Both run before the next crash (on a loaded host the boot vCPU's thread may not
            // have taken its start yet).
            while m
                .vcpus
                .iter()
                .any(|v| v.state() != VcpuState::Free(GuestRun::Running))
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            block(
                &m.mem,
                RtasCall::IbmConfigureKernelDump,
                &[CMD_INVALIDATE, FDM as u32, 0],
                1,
            );
            m.rtas.dispatch(&m.mem, ARGS, &Clock).unwrap();
            assert!(!m.rtas.fadump().is_dump_active());
            memory::write_bytes(&m.mem, FDM, &fdm).unwrap();
            block(
                &m.mem,
                RtasCall::IbmConfigureKernelDump,
                &[CMD_REGISTER, FDM as u32, fdm.len() as u32],
                1,
            );
            m.rtas.dispatch(&m.mem, ARGS, &Clock).unwrap();
            assert!(
                m.rtas.fadump().is_registered(),
                "cycle {cycle}: re-registered"
            );
            block(&m.mem, RtasCall::IbmOsTerm, &[0x3000], 1);
            let RtasAction::FadumpCrash { args: a, .. } =
                m.rtas.dispatch(&m.mem, ARGS, &Clock).unwrap()
            else {
                panic!("cycle {cycle}: os-term did not ask for a dump")
            };
            args = a;
            // The capture kernel runs on vCPU 0; its os-term holds it.
            caller = 0;
            m.vcpus[0].hold_self();
            let r = resources();
            println!(
                "SOAK dump-cycle {cycle:3} threads={} fds={} rss_kib={}",
                r.0, r.1, r.2
            );
            seen.push(r);
        }
        // 200 reboots of the same machine.
        m.rtas.fadump_mut().on_partition_reset();
        for reboot in 1..=200u32 {
            set::reset_all(&m.vcpus, m.timeout).unwrap();
            m.rtas.fadump_mut().on_partition_reset();
            assert!(m.vcpus[0].request_start(StartRequest {
                entry: 0x10,
                r3: 0,
                r4: 0
            }));
            if reboot % 20 == 0 {
                let r = resources();
                println!(
                    "SOAK reboot {reboot:3} threads={} fds={} rss_kib={}",
                    r.0, r.1, r.2
                );
                seen.push(r);
            }
        }
        let first = seen[0];
        for (i, r) in seen.iter().enumerate() {
            assert_eq!(
                (r.0, r.1),
                (first.0, first.1),
                "threads/fds grew by measurement {i}: {seen:?}"
            );
        }
        let rss_growth = seen.iter().map(|r| r.2).max().unwrap() - first.2;
        assert!(
            rss_growth <= 1024,
            "resident memory grew {rss_growth} KiB: {seen:?}"
        );
        println!(
            "SOAK done: threads {} and fds {} flat, resident memory within {rss_growth} KiB",
            first.0, first.1
        );
        set::quit_all(&m.vcpus, ANSWER_TIMEOUT);
    }
}
