//! The machine's side of the operator API: the main thread takes `ApiRequest`s from the
//! [`ApiQueue`] between events and answers each (`Machine::serve_api`). The bodies are
//! built by plain functions ([`vm_info`], [`fadump_info`], [`counters`]) that tests call over
//! fake machines.

use super::{CoredumpReport, CrashOutcome, Machine, MachineState, OpError, Refusal};
use crate::api::types::{
    Counters, DiskInfo, FadumpInfo, FadumpSectionInfo, InfoConfig, LastDump, PhasesMs, VmInfo,
};
use crate::api::{Action, ApiQueue, Reply};
use crate::config::{MmuMode, PreserveMode, VmConfig};
use crate::error::Error;
use crate::events::MachineEvent;
use crate::vcpu::VcpuControl;
use firmware::fadump::layout::SectionType;
use firmware::fadump::{Fadump, FadumpState};
use log::info;
use std::sync::Arc;

impl Machine {
    /// Serves operator API requests from `queue` from now on (before [`Machine::run`]).
    pub fn attach_api(&mut self, queue: ApiQueue) {
        queue.status.set_state(self.state);
        queue.status.set_boots(self.boots);
        self.api = Some(queue);
    }

    /// Publishes the state and boot count for the API threads.
    pub(super) fn publish_status(&self) {
        if let Some(q) = &self.api {
            q.status.set_state(self.state);
            q.status.set_boots(self.boots);
        }
    }

    /// Answers every queued API request; `Some(status)` ends the run (`vm.shutdown`).
    pub(super) fn serve_api(&mut self) -> Result<Option<i32>, Error> {
        loop {
            let Some(req) = self.api.as_ref().and_then(ApiQueue::next) else {
                return Ok(None);
            };
            let (reply, end) = match self.api_action(&req.action) {
                Ok(r) => r,
                Err(e) => {
                    let _ = req.reply.try_send(Reply::error(500, e.to_string()));
                    return Err(e);
                }
            };
            let _ = req.reply.try_send(reply);
            if end.is_some() {
                return Ok(end);
            }
        }
    }

    /// Acts on one request: the reply, and `Some(status)` when the run ends.
    fn api_action(&mut self, action: &Action) -> Result<(Reply, Option<i32>), Error> {
        let reply = match action {
            Action::Info => Reply::json(vm_info(&self.config, self.state, self.boots)),
            Action::Counters => {
                let devices: Vec<_> = self
                    .partition
                    .phbs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .flat_map(|p| p.device_counters())
                    .collect();
                Reply::json(counters(
                    self.partition.vcpus(),
                    self.mmio_exits(),
                    &devices,
                ))
            }
            Action::Fadump => {
                let rtas = self
                    .partition
                    .rtas
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                Reply::json(fadump_info(rtas.fadump(), self.last_dump.as_ref()))
            }
            Action::Shutdown => {
                info!("api: vm.shutdown: ending the run");
                crate::event_monitor::emit("shutdown", serde_json::json!({ "reason": "api" }));
                return Ok((Reply::no_content(), Some(0)));
            }
            Action::Reboot => {
                if self.state != MachineState::Running {
                    return Ok((
                        Reply::error(409, format!("the machine is {}: no reboot", self.state)),
                        None,
                    ));
                }
                info!("api: vm.reboot");
                self.handle_event(MachineEvent::Reboot)?;
                Reply::no_content()
            }
            Action::PowerButton => {
                info!("api: vm.power-button requested");
                match self.power_button() {
                    Ok(()) => Reply::no_content(),
                    Err(e) => op_error_reply("vm.power-button", &e),
                }
            }
            Action::Nmi => {
                info!("api: vm.nmi requested");
                match self.nmi() {
                    Ok(()) => Reply::no_content(),
                    Err(e) => op_error_reply("vm.nmi", &e),
                }
            }
            Action::Coredump { path } => match self.coredump(path) {
                Ok(r) => Reply::json(coredump_body(&r)),
                Err(e) => op_error_reply("vm.coredump", &e),
            },
            Action::Resize { desired_ram } => match self.resize_memory(*desired_ram) {
                Ok(_) => Reply::no_content(),
                Err(e) => op_error_reply("vm.resize", &e),
            },
        };
        Ok((reply, None))
    }

    fn mmio_exits(&self) -> u64 {
        self.partition
            .mmio_exits
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The one mapping of [`OpError`] to HTTP: 409 busy (the guest keeps running, retry later),
/// 400 for a bad request or one this machine cannot do, 500 for host I/O and other failures.
pub fn op_error_status(e: &OpError) -> u16 {
    match e {
        OpError::Busy(_) => 409,
        OpError::Invalid(_) | OpError::NotSupported(_) => 400,
        OpError::Io(_) | OpError::Failed(_) => 500,
    }
}

fn op_error_reply(what: &str, e: &OpError) -> Reply {
    log::warn!("api: {what}: {e}");
    Reply::error(op_error_status(e), format!("{what}: {e}"))
}

/// `vm.coredump`'s answer: where the core went and what it holds.
pub fn coredump_body(r: &CoredumpReport) -> serde_json::Value {
    serde_json::json!({
        "path": r.path.display().to_string(),
        "file_bytes": r.stats.file_bytes,
        "data_bytes": r.stats.data_bytes,
        "ram_bytes": r.stats.ram_bytes,
        "cpus": r.stats.cpus,
        "vmcoreinfo_release": r.stats.vmcoreinfo.as_ref().map(|(rel, _)| rel.clone()),
        "vmcoreinfo_confirmed": r.stats.vmcoreinfo.as_ref().is_some_and(|(_, ok)| *ok),
        "paused_ms": super::ms(r.paused),
    })
}

/// `GET vm.info` of a machine with `config`, in `state`, after `boots` boots.
pub fn vm_info(config: &VmConfig, state: MachineState, boots: u32) -> VmInfo {
    VmInfo {
        config: InfoConfig {
            cpus: config.cpus,
            memory: config.memory,
            disks: config
                .disks
                .iter()
                .map(|d| DiskInfo {
                    path: d.path.display().to_string(),
                    readonly: d.readonly,
                })
                .collect(),
            mmu: match config.mmu {
                MmuMode::Radix => "radix",
                MmuMode::Hash => "hash",
            }
            .into(),
            kernel: config.kernel.display().to_string(),
            initramfs: config.initramfs.as_ref().map(|p| p.display().to_string()),
            cmdline: config.cmdline.clone(),
            fadump_preserve: match config.preserve {
                PreserveMode::Copy => "copy",
                PreserveMode::Remap => "remap",
                PreserveMode::RemapZero => "remap-zero",
            }
            .into(),
        },
        state: state.name().into(),
        boot_count: boots,
        memory_actual_size: config.memory,
    }
}

/// `GET vm.counters`: one entry per vCPU, the machine's MMIO total, and one per device that
/// counts something (a disk's `host_io_errors`: requests its backing file failed).
pub fn counters(
    vcpus: &[Arc<VcpuControl>],
    mmio_exits: u64,
    devices: &[crate::devices::DeviceCounters],
) -> Counters {
    let mut c = Counters::new();
    for d in devices {
        c.insert(
            d.name.clone(),
            d.values.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        );
    }
    for v in vcpus {
        c.insert(
            format!("vcpu{}", v.id()),
            v.counters
                .read()
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
        );
    }
    c.insert(
        "machine".into(),
        [("mmio_exits".to_string(), mmio_exits)]
            .into_iter()
            .collect(),
    );
    c
}

fn section_kind(t: SectionType) -> &'static str {
    use firmware::fadump::layout::SectionKind;
    match t {
        SectionType::REAL_MODE_REGION => "boot-memory",
        SectionType::PARAM_AREA => "param-area",
        _ => match t.kind() {
            SectionKind::CpuState => "cpu-state",
            SectionKind::Hpte => "hpte",
            SectionKind::Copy => "os-defined",
            SectionKind::Unsupported => "unsupported",
            SectionKind::Reserved => "reserved",
        },
    }
}

/// `GET vm.fadump` from the firmware engine's state and the last crash's outcome.
pub fn fadump_info(fadump: &Fadump, last: Option<&CrashOutcome>) -> FadumpInfo {
    let (state, structure, dumped) = match fadump.state() {
        FadumpState::Idle => ("idle", None, false),
        FadumpState::Registered(s) => ("registered", Some(s), false),
        FadumpState::DumpActive(s) => ("dump-active", Some(s), true),
    };
    let sections: Vec<FadumpSectionInfo> = structure
        .map(|s| s.sections())
        .unwrap_or_default()
        .iter()
        .map(|x| FadumpSectionInfo {
            data_type: format!("{:#06x}", x.data_type.0),
            kind: section_kind(x.data_type).into(),
            source: x.source_address,
            size: x.source_len,
            destination: x.destination_address,
            bytes_dumped: dumped.then_some(x.bytes_dumped),
            error_flags: dumped.then_some(x.error_flags),
        })
        .collect();
    let boot_memory = structure.map(|_| {
        sections
            .iter()
            .filter(|s| s.kind == "boot-memory")
            .map(|s| s.size)
            .sum()
    });
    FadumpInfo {
        state: state.into(),
        sections,
        boot_memory,
        boot_mem_top: fadump.boot_mem_top(),
        cpu_state_size: Some(fadump.advertised_cpu_state_size()),
        hpte_size: Some(fadump.config().hpte_size()),
        last_dump: last.map(last_dump),
    }
}

/// The VMM's phase times of a dump in milliseconds.
pub fn phases_ms(p: &super::Phases) -> PhasesMs {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    PhasesMs {
        stop: ms(p.stop),
        dump: ms(p.dump),
        reset: ms(p.reset),
        boot: ms(p.boot),
        total: ms(p.total()),
    }
}

/// The report of one crash, for `vm.fadump` and the event monitor.
pub fn last_dump(o: &CrashOutcome) -> LastDump {
    match o {
        CrashOutcome::Dumped {
            report,
            phases,
            missing,
        } => LastDump {
            outcome: "dumped".into(),
            reason: None,
            status: Some(format!("{:#06x}", report.status)),
            cpus_saved: Some(report.cpus_saved),
            bytes_preserved: Some(report.bytes_copied),
            bytes_remapped: Some(report.bytes_remapped),
            phases_ms: Some(phases_ms(phases)),
            missing_cpus: missing.clone(),
        },
        CrashOutcome::Refused(why) => LastDump {
            outcome: "refused".into(),
            reason: Some(why.to_string()),
            status: None,
            cpus_saved: None,
            bytes_preserved: None,
            bytes_remapped: None,
            phases_ms: None,
            missing_cpus: match why {
                Refusal::Unresponsive(v) => v.clone(),
                Refusal::Dump(_) => Vec::new(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_errors_map_to_one_http_status_each() {
        assert_eq!(
            op_error_status(&OpError::Busy("a dump is being written")),
            409
        );
        assert_eq!(op_error_status(&OpError::Invalid("x".into())), 400);
        assert_eq!(op_error_status(&OpError::NotSupported("x")), 400);
        assert_eq!(
            op_error_status(&OpError::Io(std::io::Error::other("x"))),
            500
        );
        assert_eq!(op_error_status(&OpError::Failed("x".into())), 500);
    }

    #[test]
    fn coredump_body_names_the_file_and_its_contents() {
        let r = CoredumpReport {
            path: "/tmp/core".into(),
            stats: crate::coredump::CoreStats {
                file_bytes: 100,
                data_bytes: 60,
                ram_bytes: 64,
                cpus: 2,
                vmcoreinfo: Some(("6.12.9".into(), true)),
            },
            paused: std::time::Duration::from_millis(5),
        };
        let b = coredump_body(&r);
        assert_eq!(b["path"], "/tmp/core");
        assert_eq!(b["cpus"], 2);
        assert_eq!(b["vmcoreinfo_release"], "6.12.9");
        assert_eq!(b["vmcoreinfo_confirmed"], true);
        assert_eq!(b["paused_ms"], 5.0);
    }
    use crate::vcpu::handle::VcpuCounters;
    use firmware::fadump::layout::{DumpSection, KernelDumpStructure};
    use firmware::fadump::{DumpError, DumpReport, FadumpConfig};
    use std::time::Duration;

    fn engine(state: impl FnOnce(KernelDumpStructure) -> FadumpState) -> Fadump {
        let config = FadumpConfig {
            max_cpus: 1,
            hpte_capacity: 0,
            rma_size: 1 << 30,
            firmware_reserved: Vec::new(),
        };
        let mut boot = DumpSection::request(SectionType::REAL_MODE_REGION, 0, 64 << 20, 1 << 28);
        boot.bytes_dumped = 64 << 20;
        let bytes = KernelDumpStructure::registration_bytes(&[
            DumpSection::request(
                SectionType::CPU_STATE,
                0,
                config.cpu_state_size(),
                0x0f00_0000,
            ),
            boot,
            DumpSection::request(SectionType::PARAM_AREA, 0x3000, 0x1000, 0x3000),
        ]);
        let s = KernelDumpStructure::decode(&bytes).unwrap();
        Fadump::restore(config, state(s)).unwrap()
    }

    #[test]
    fn fadump_info_follows_the_engine_from_registered_to_dump_active() {
        let idle = fadump_info(
            &Fadump::new(engine(FadumpState::Registered).config().clone()),
            None,
        );
        assert_eq!(idle.state, "idle");
        assert!(idle.sections.is_empty() && idle.boot_memory.is_none());

        let reg = fadump_info(&engine(FadumpState::Registered), None);
        assert_eq!(reg.state, "registered");
        let kinds: Vec<&str> = reg.sections.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["cpu-state", "boot-memory", "param-area"]);
        assert_eq!(reg.boot_memory, Some(64 << 20));
        assert_eq!(reg.sections[1].data_type, "0x0011");
        assert_eq!(reg.sections[1].bytes_dumped, None, "nothing dumped yet");
        assert_eq!(reg.boot_mem_top, None);

        let active = fadump_info(&engine(FadumpState::DumpActive), None);
        assert_eq!(active.state, "dump-active");
        assert_eq!(active.sections[1].bytes_dumped, Some(64 << 20));
        assert_eq!(active.sections[1].error_flags, Some(0));
        assert_eq!(active.boot_mem_top, Some(64 << 20));
    }

    #[test]
    fn the_last_dump_carries_its_report_phases_or_refusal() {
        let dumped = CrashOutcome::Dumped {
            report: DumpReport {
                sections: Vec::new(),
                status: 0xe000,
                cpus_saved: 3,
                bytes_copied: 1 << 30,
                bytes_remapped: 1 << 29,
                kernel_dump: Vec::new(),
            },
            phases: super::super::Phases {
                stop: Duration::from_millis(1),
                dump: Duration::from_millis(20),
                reset: Duration::from_millis(3),
                boot: Duration::from_millis(6),
            },
            missing: vec![2],
        };
        let d = last_dump(&dumped);
        assert_eq!(d.outcome, "dumped");
        assert_eq!(d.status.as_deref(), Some("0xe000"));
        assert_eq!((d.cpus_saved, d.bytes_remapped), (Some(3), Some(1 << 29)));
        assert_eq!(d.missing_cpus, vec![2]);
        let p = d.phases_ms.unwrap();
        assert_eq!(
            (p.stop, p.dump, p.reset, p.boot, p.total),
            (1.0, 20.0, 3.0, 6.0, 30.0)
        );

        let r = last_dump(&CrashOutcome::Refused(Refusal::Unresponsive(vec![1])));
        assert_eq!(r.outcome, "refused");
        assert_eq!(r.reason.as_deref(), Some("vCPUs [1] did not stop"));
        assert_eq!(r.missing_cpus, vec![1]);
        let r = last_dump(&CrashOutcome::Refused(Refusal::Dump(
            DumpError::NotRegistered,
        )));
        assert_eq!(r.reason.as_deref(), Some("no dump is registered"));
        assert!(r.phases_ms.is_none());
    }

    #[test]
    fn counters_name_every_vcpu_and_the_machine() {
        let v: Vec<Arc<VcpuControl>> = (0..2)
            .map(|i| Arc::new(VcpuControl::new(i, crate::kvm::ImmediateExit::for_test())))
            .collect();
        VcpuCounters::count(&v[1].counters.hcalls);
        VcpuCounters::count(&v[1].counters.hcalls);
        VcpuCounters::count(&v[1].counters.rtas);
        let disk = crate::devices::DeviceCounters {
            name: "ppc-vmm-disk0".into(),
            values: vec![("host_io_errors", 7)],
        };
        let c = counters(&v, 5, &[disk]);
        assert_eq!(c["ppc-vmm-disk0"]["host_io_errors"], 7);
        assert_eq!(c.len(), 4, "two vCPUs, the machine, one disk");
        assert_eq!(c["vcpu1"]["hcalls"], 2);
        assert_eq!(c["vcpu1"]["rtas"], 1);
        assert_eq!(c["vcpu0"]["exits"], 0);
        assert_eq!(c["machine"]["mmio_exits"], 5);
    }

    #[test]
    fn vm_info_shows_the_configuration_state_and_boots() {
        let config = VmConfig {
            kernel: "k".into(),
            initramfs: None,
            cmdline: "console=hvc0".into(),
            memory: 2 << 30,
            hotplug_size: 0,
            prefault: false,
            cpus: 4,
            serial: crate::console::SerialMode::Off,
            disks: vec![crate::devices::disk_spec::DiskSpec {
                path: "/d.img".into(),
                readonly: true,
            }],
            mmu: MmuMode::Hash,
            preserve: PreserveMode::RemapZero,
            on_crash: Default::default(),
        };
        let i = vm_info(&config, MachineState::Dumping, 3);
        assert_eq!((i.config.cpus, i.config.memory), (4, 2 << 30));
        assert_eq!(i.config.mmu, "hash");
        assert_eq!(i.config.fadump_preserve, "remap-zero");
        assert!(i.config.disks[0].readonly);
        assert_eq!((i.state.as_str(), i.boot_count), ("dumping", 3));
    }
}
