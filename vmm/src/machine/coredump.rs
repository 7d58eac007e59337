//! `vm.coredump` and `--on-crash host-dump=PATH`: every vCPU is paused (a register snapshot,
//! as for fadump), an ELF core of guest RAM with one `NT_PRSTATUS` per vCPU and the guest's
//! VMCOREINFO is written ([`crate::coredump`]), and the vCPUs go on.
//!
//! The dump runs on the main thread with the machine in `Dumping`: operator requests that
//! arrive meanwhile (SIGUSR1 / SIGUSR2) are refused as busy, between chunks, and the guest
//! keeps its state.

use super::event_loop::{NMI_SIGNALLED, POWER_BUTTON_SIGNALLED};
use super::{Machine, MachineState, OpError};
use crate::coredump::{self, elf::Endian, CoreStats};
use crate::vcpu::set;
use log::{info, warn};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What a core dump wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoredumpReport {
    /// Where.
    pub path: PathBuf,
    /// Sizes, notes, the guest release found.
    pub stats: CoreStats,
    /// How long the vCPUs were paused.
    pub paused: Duration,
}

/// `vm/coredump-written` for the event monitor (`trigger`: api or os-term).
fn emit_written(r: &CoredumpReport, trigger: &str) {
    crate::event_monitor::emit(
        "coredump-written",
        serde_json::json!({
            "trigger": trigger,
            "path": r.path.display().to_string(),
            "file_bytes": r.stats.file_bytes,
            "data_bytes": r.stats.data_bytes,
            "paused_ms": super::ms(r.paused),
        }),
    );
}

impl Machine {
    /// Writes an ELF core of the running guest to `path` (created or truncated, mode 0600)
    /// and lets the guest go on. Refused while another dump is being written.
    pub(crate) fn coredump(&mut self, path: &Path) -> Result<CoredumpReport, OpError> {
        super::nmi::refuse_unless_running(self.state)?;
        let r = self.write_coredump(path, true)?;
        emit_written(&r, "api");
        Ok(r)
    }

    /// `ibm,os-term` with no dump registered, from vCPU `cpu` (held): with
    /// `--on-crash host-dump=PATH` the core is written first; then the partition reboots.
    pub(super) fn os_term_host_dump(&mut self, cpu: u32) {
        let crate::config::OnCrash::HostDump(path) = self.config.on_crash.clone() else {
            return;
        };
        info!(
            "vcpu {cpu} terminated the OS with no dump registered: host dump to {}",
            path.display()
        );
        // The caller stays held: the reboot that follows resets it.
        match self.write_coredump(&path, false) {
            Ok(r) => {
                info!("host dump written: {}", summary(&r));
                emit_written(&r, "os-term");
            }
            Err(e) => warn!("host dump to {} failed: {e}", path.display()),
        }
    }

    fn write_coredump(&mut self, path: &Path, resume: bool) -> Result<CoredumpReport, OpError> {
        if path.as_os_str().is_empty() {
            return Err(OpError::Invalid("empty core file path".into()));
        }
        // Opened before anything stops: a bad path costs the guest nothing.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)?
        };
        self.go_to(MachineState::Dumping)
            .map_err(|e| OpError::Failed(e.to_string()))?;
        let t0 = Instant::now();
        let vcpus = self.partition.vcpus().to_vec();
        let stopped = set::stop_all(&vcpus, self.answer_timeout);
        let result = if stopped.unresponsive.is_empty() {
            let le = self.partition.lpcr().0 & crate::kvm::bindings::LPCR_ILE != 0;
            let cpus: Vec<_> = vcpus
                .iter()
                .map(|v| {
                    let s = stopped.states.iter().find(|s| s.id == v.id())?;
                    Some(match coredump::rtas_caller_view(s, le) {
                        Some(view) => {
                            info!("coredump: vcpu {} is inside RTAS; shown at its return into the kernel", v.id());
                            view
                        }
                        None => s.clone(),
                    })
                })
                .collect();
            // The loader takes little-endian kernels only (ELFDATA2LSB vmlinux).
            coredump::write_core(
                &self.partition.mem,
                Endian::Little,
                &cpus,
                &file,
                &mut || refuse_while_dumping(),
            )
            .map_err(OpError::from)
        } else {
            Err(OpError::Failed(format!(
                "vcpus {:?} did not stop; no dump written",
                stopped.unresponsive
            )))
        };
        if resume {
            set::resume(&stopped.held);
        }
        let paused = t0.elapsed();
        self.go_to(MachineState::Running)
            .map_err(|e| OpError::Failed(e.to_string()))?;
        let stats = result?;
        let r = CoredumpReport {
            path: path.to_path_buf(),
            stats,
            paused,
        };
        info!("coredump: {}", summary(&r));
        Ok(r)
    }
}

fn summary(r: &CoredumpReport) -> String {
    format!(
        "{} ({} bytes, {} of {} RAM bytes non-zero, {} vCPUs, vmcoreinfo {}; paused {:.1} ms)",
        r.path.display(),
        r.stats.file_bytes,
        r.stats.data_bytes,
        r.stats.ram_bytes,
        r.stats.cpus,
        r.stats
            .vmcoreinfo
            .as_ref()
            .map_or("none".to_string(), |(rel, ok)| format!(
                "{rel}{}",
                if *ok { "" } else { " (unconfirmed)" }
            )),
        super::ms(r.paused)
    )
}

/// Operator signals during a dump are refused (logged), not queued behind it.
fn refuse_while_dumping() {
    if NMI_SIGNALLED.swap(false, Ordering::SeqCst) {
        warn!("SIGUSR1: NMI refused: busy: a dump is being written");
    }
    if POWER_BUTTON_SIGNALLED.swap(false, Ordering::SeqCst) {
        warn!("SIGUSR2: power button refused: busy: a dump is being written");
    }
}
