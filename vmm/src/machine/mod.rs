//! The machine: KVM setup, boot, and the lifecycle (SMP start/stop, reboot, power-off).
//!
//! `Machine::new` builds the VM once (memory, the in-kernel XICS device, vCPUs and their
//! threads). `boot` (re)loads the kernel, initramfs, RTAS stub and a fresh device tree and
//! starts the boot vCPU; a guest `system-reboot` stops every vCPU, resets their state and
//! boots again in the same process with guest RAM kept; `power-off` ends the run with status
//! 0. The main thread runs an `event-manager` loop for console input, vCPU events and
//! SIGINT/SIGTERM.
//!
//! # Interrupt controller: KVM's in-kernel XICS
//!
//! We use `KVM_DEV_TYPE_XICS` rather than emulating XICS in userspace: the presentation hcalls
//! (H_XIRR, H_EOI, H_CPPR, H_IPI, H_IPOLL) and, through `KVM_PPC_RTAS_DEFINE_TOKEN`, the four
//! source RTAS calls stay inside the kernel, so IPIs (every SMP reschedule and TLB flush) do
//! not cost a round trip to userspace (100-370 µs in the nested setup). It is available on
//! every host we target (POWER9/10 as XICS-on-XIVE, nested L1 as the classic emulation), and
//! it needs no `PPC_IRQ_LEVEL`/`KVM_INTERRUPT` plumbing in the VMM.

mod event_loop;
mod fadump;

use event_loop::{on_terminate, StdinInput, Wakeup, SIGNALLED, SIGNAL_WAKE};

use crate::boot::{BootImages, BootSpec};
use crate::config::{MmuMode, VmConfig};
use crate::console::Console;
use crate::devices::disk_spec::build_pci;
use crate::devices::irq::{configure_lsis, KvmIrqLine};
use crate::devices::phb::rtas::PCI_CONFIG_CALLS;
use crate::error::{kvm_err, Error};
use crate::events::MachineEvent;
use crate::events::{event_channel, EventQueue};
use crate::hpt;
use crate::kvm::bindings::*;
use crate::kvm::{DeviceFd, Kvm, VmFd};
use crate::layout::{FDT_MAX_SIZE, LOW_TOP_MAX};
use crate::memory::GuestMemory;
use crate::partition::Partition;
use crate::vcpu::{register_kick_signal, StartRequest, VcpuControl};
use devicetree::{CpuModel, Mmu};
use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use firmware::fadump::FadumpConfig;
use firmware::rtas::{Rtas, RtasCall};
use firmware::GuestRange;
use log::{debug, info, warn};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use vm_memory::{GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::EventFd;

/// The XICS RTAS calls KVM serves once their tokens are defined.
const XICS_RTAS_CALLS: [RtasCall; 4] = [
    RtasCall::IbmSetXive,
    RtasCall::IbmGetXive,
    RtasCall::IbmIntOff,
    RtasCall::IbmIntOn,
];

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
}

/// The name Linux shows for a PVR (node `PowerPC,<name>@<id>`).
fn cpu_name(pvr: u32) -> &'static str {
    match pvr >> 16 {
        0x004b..=0x004d => "POWER8",
        0x004e => "POWER9",
        0x0080 => "POWER10",
        0x0082 => "POWER11",
        _ => "POWER",
    }
}

impl Machine {
    /// Creates the VM, its memory, the XICS device and the vCPU threads (all stopped).
    pub fn new(config: VmConfig) -> Result<Self, Error> {
        let images = BootImages::read(&config.kernel, config.initramfs.as_deref())?;
        let kvm = Kvm::new().map_err(Error::OpenKvm)?;
        let api = kvm.get_api_version();
        if api != KVM_API_VERSION {
            return Err(Error::ApiVersion(api, std::io::Error::last_os_error()));
        }
        let vm = kvm
            .create_vm_with_type(KVM_VM_PPC_HV)
            .map_err(Error::CreateVm)?;
        let mmu_cap = match config.mmu {
            MmuMode::Radix => (
                KVM_CAP_PPC_MMU_RADIX,
                "KVM_CAP_PPC_MMU_RADIX (radix guests on POWER9+)",
            ),
            MmuMode::Hash => (
                KVM_CAP_PPC_ALLOC_HTAB,
                "KVM_CAP_PPC_ALLOC_HTAB (hash guests need a bare-metal KVM-HV host)",
            ),
        };
        for (cap, name) in [
            (KVM_CAP_PPC_PAPR, "KVM_CAP_PPC_PAPR"),
            (KVM_CAP_ONE_REG, "KVM_CAP_ONE_REG"),
            (KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"),
            (KVM_CAP_IRQ_XICS, "KVM_CAP_IRQ_XICS"),
            mmu_cap,
        ] {
            if !vm.check_extension(cap) {
                return Err(Error::MissingCap(name));
            }
        }
        let max_vcpus = vm.check_extension_int(KVM_CAP_MAX_VCPUS).max(1) as u32;
        if config.cpus == 0 || config.cpus > max_vcpus {
            return Err(Error::Runtime(format!(
                "{} vCPUs requested, KVM allows 1..={max_vcpus}",
                config.cpus
            )));
        }
        if vm.check_extension(KVM_CAP_PPC_ENABLE_HCALL) {
            for h in crate::hcall::kernel_when_enabled() {
                if let Err(e) = vm.enable_hcall(h.nr(), true) {
                    debug!("in-kernel {}: {e}", h.name());
                }
            }
        }
        let cpu_char = if vm.check_extension(KVM_CAP_PPC_GET_CPU_CHAR) {
            vm.get_cpu_char().ok()
        } else {
            None
        };
        let ail_mode_3 = vm.check_extension(KVM_CAP_PPC_AIL_MODE_3);

        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), config.memory as usize)])
            .map_err(|e| Error::Memory(e.to_string()))?;
        let host = mem
            .get_host_address(GuestAddress(0))
            .map_err(|e| Error::Memory(e.to_string()))?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: config.memory,
            userspace_addr: host as u64,
        };
        // SAFETY: `host` is the start of `mem`'s single anonymous mapping of exactly
        // `config.memory` bytes. Both `mem` and the VM fd move into `Partition`, where the VM is
        // dropped first (field order), so the slot never outlives the mapping.
        unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("set_user_memory_region"))?;
        let (mmu, rma_size) = setup_mmu(&vm, config.mmu, config.memory)?;

        let mut dev = kvm_create_device {
            type_: KVM_DEV_TYPE_XICS,
            ..Default::default()
        };
        let xics = vm
            .create_device(&mut dev)
            .map_err(kvm_err("create XICS device"))?;
        // Only XICS-on-XIVE (POWER9/10 host) has the NR_SERVERS control; the classic in-kernel
        // XICS a nested KVM uses answers ENXIO and needs none.
        let nr_servers = kvm_device_attr {
            group: KVM_DEV_XICS_GRP_CTRL,
            attr: KVM_DEV_XICS_NR_SERVERS,
            ..Default::default()
        };
        if xics.has_device_attr(&nr_servers).is_ok() {
            xics.set_attr_u64(
                KVM_DEV_XICS_GRP_CTRL,
                KVM_DEV_XICS_NR_SERVERS,
                config.cpus.into(),
            )
            .map_err(kvm_err("XICS nr_servers"))?;
        } else {
            debug!("XICS device has no NR_SERVERS control (classic XICS)");
        }

        let phbs = if config.disks.is_empty() {
            Vec::new()
        } else {
            let irq = KvmIrqLine::new(
                vm.try_clone()
                    .map_err(|e| Error::Runtime(format!("dup VM fd: {e}")))?,
            );
            let phb = build_pci(&mem, &config.disks, Arc::new(irq))?;
            for slot in phb.occupied_slots() {
                info!(
                    "PCI {:#x} slot {slot}: virtio-blk {} (LSI {:#x})",
                    phb.config().buid,
                    config.disks[usize::from(slot) - 1].path.display(),
                    phb.irq_of(slot).unwrap_or(0)
                );
            }
            vec![phb]
        };
        configure_lsis(&xics, &phbs)?;

        let mut fds = Vec::new();
        let mut pvr = 0;
        for id in 0..config.cpus {
            let vcpu = vm.create_vcpu(id.into()).map_err(kvm_err("create vcpu"))?;
            let papr = kvm_enable_cap {
                cap: KVM_CAP_PPC_PAPR,
                ..Default::default()
            };
            vcpu.enable_cap(&papr).map_err(kvm_err("enable PAPR"))?;
            let xics_cap = kvm_enable_cap {
                cap: KVM_CAP_IRQ_XICS,
                args: [xics_fd(&xics), id.into(), 0, 0],
                ..Default::default()
            };
            vcpu.enable_cap(&xics_cap)
                .map_err(kvm_err("connect vcpu to XICS"))?;
            if id == 0 {
                pvr = vcpu.get_sregs().map_err(kvm_err("get_sregs"))?.pvr;
            }
            fds.push(vcpu);
        }
        let mut cpu = CpuModel::new(cpu_name(pvr), pvr);
        if let Mmu::Hash { .. } = mmu {
            cpu.segment_page_sizes =
                hpt::usable_page_sizes(&cpu.segment_page_sizes, hpt::host_page_shift());
        }
        info!(
            "KVM-HV VM: {} vCPUs ({}, PVR {pvr:#010x}), {} MiB",
            config.cpus,
            cpu.name,
            config.memory >> 20
        );

        let low_top = crate::layout::low_top(config.memory, rma_size);
        let firmware_area = GuestRange::new(
            low_top - crate::layout::RTAS_SIZE - FDT_MAX_SIZE,
            crate::layout::RTAS_SIZE + FDT_MAX_SIZE,
        )
        .expect("nonzero");
        let mut rtas = Rtas::new(FadumpConfig {
            max_cpus: config.cpus,
            hpte_capacity: match mmu {
                Mmu::Hash { htab_shift } => hpt::entries(htab_shift),
                Mmu::Radix { .. } => 0,
            },
            rma_size: low_top,
            firmware_reserved: vec![firmware_area],
        });
        for call in XICS_RTAS_CALLS {
            rtas.enable_machine_call(call);
            vm.rtas_define_token(call.name(), call.token().into())
                .map_err(kvm_err("define XICS RTAS token"))?;
        }
        if !phbs.is_empty() {
            for call in PCI_CONFIG_CALLS {
                rtas.enable_machine_call(call);
            }
        }

        let console = Arc::new(Console::for_mode(&config.serial).map_err(Error::Console)?);
        let (tx, rx) = event_channel();
        let wake = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Runtime(e.to_string()))?;
        let prefaulter = crate::prefault::Prefaulter::new(mem.clone())
            .map_err(|e| Error::Runtime(format!("pre-fault worker: {e}")))?;
        let partition = Arc::new(Partition {
            vm,
            phbs: Mutex::new(phbs),
            mmio_exits: Default::default(),
            prefaulter,
            mem,
            console,
            cpu_char,
            ail_mode_3,
            hpt_order: match mmu {
                Mmu::Hash { htab_shift } => Some(htab_shift),
                Mmu::Radix { .. } => None,
            },
            rtas: Mutex::new(rtas),
            vcpus: OnceLock::new(),
            lpcr: Mutex::new((0, 0)),
            events: tx,
            wake,
        });
        register_kick_signal().map_err(|e| Error::Runtime(format!("SIGRTMIN handler: {e}")))?;
        let controls: Vec<Arc<VcpuControl>> = fds
            .iter()
            .enumerate()
            .map(|(id, fd)| Arc::new(VcpuControl::new(id as u32, fd.immediate_exit_handle())))
            .collect();
        partition.vcpus.set(controls.clone()).expect("set once");
        for (ctl, fd) in controls.iter().zip(fds) {
            ctl.spawn(fd, partition.clone())
                .map_err(|e| Error::Runtime(e.to_string()))?;
        }
        Ok(Machine {
            config,
            partition,
            events: rx,
            xics,
            cpu,
            images,
            boots: 0,
            mmu,
            rma_size,
        })
    }

    /// Loads everything (kernel, initramfs, RTAS stub, fresh device tree) and starts the boot
    /// vCPU.
    pub fn boot(&mut self) -> Result<(), Error> {
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
        let img = crate::boot::load(&self.partition.mem, &spec)?;
        self.boots += 1;
        info!(
            "boot #{}: kernel {:#x}..{:#x} entry {:#x}, initrd {:?}, fdt {:#x} ({} bytes), rtas {:#x}",
            self.boots,
            img.kernel_base,
            img.kernel_end,
            img.entry,
            img.layout.initrd.map(|r| (r.start(), r.len())),
            img.fdt_addr,
            img.dtb_len,
            img.layout.rtas.start()
        );
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
        Ok(())
    }

    /// Stops every vCPU and resets their state (guest RAM untouched), then every PCI device
    /// (requests run synchronously on vCPU threads, so none is in flight once they stopped)
    /// and the XICS state of their LSIs.
    fn reset(&mut self) -> Result<(), Error> {
        self.partition.reset_lpcr();
        for v in self.partition.vcpus() {
            v.reset_and_wait();
        }
        if let Mmu::Hash { htab_shift } = self.mmu {
            // Every vCPU is stopped: KVM clears the HPT (and sets the VRMA up again on the
            // next entry), so the next kernel starts from an empty table.
            let order = self
                .partition
                .vm
                .allocate_htab(htab_shift)
                .map_err(kvm_err("KVM_PPC_ALLOCATE_HTAB (clear the HPT on reset)"))?;
            if order != htab_shift {
                return Err(Error::Runtime(format!(
                    "HPT reset returned order {order}, expected {htab_shift}"
                )));
            }
            info!("HPT of 2^{order} bytes cleared for the next boot");
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

    fn shutdown(&mut self) {
        for v in self.partition.vcpus() {
            v.quit_and_join();
        }
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

        self.boot()?;
        let result = loop {
            em.run().map_err(rt)?;
            if SIGNALLED.load(Ordering::SeqCst) {
                warn!("terminated by signal");
                break Ok(128 + libc::SIGTERM);
            }
            // One wake may stand for several events: take them all, each against the boot
            // that is current when it is handled (a reboot or dump starts a new one).
            let mut outcome = None;
            while let Some(event) = self.events.next(self.partition.events.boot()) {
                outcome = self.handle_event(event);
                if outcome.is_some() {
                    break;
                }
            }
            if let Some(result) = outcome {
                break result;
            }
        };
        self.shutdown();
        result
    }

    /// Acts on one event; `Some(result)` ends the run.
    fn handle_event(&mut self, event: MachineEvent) -> Option<Result<i32, Error>> {
        match event {
            MachineEvent::PowerOff => {
                info!("guest powered off");
                Some(Ok(0))
            }
            MachineEvent::Reboot => {
                info!("guest requested a reboot: resetting and booting again");
                let reset = self.reset().map(|()| {
                    // Only now that every vCPU has stopped (no REGISTER can race it): a plain
                    // reboot keeps an active dump but not a registration (the next kernel
                    // would get -9 and trust a stale structure).
                    self.partition
                        .rtas
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .fadump_mut()
                        .on_partition_reset();
                });
                reset.and_then(|()| self.boot()).err().map(Err)
            }
            MachineEvent::FadumpCrash { cpu, args } => self.fadump_crash(cpu, args).err().map(Err),
            MachineEvent::Fatal(m) => Some(Err(Error::Guest(m))),
        }
    }
}

/// Radix needs nothing (a new VM on a POWER9 host starts radix). Hash: allocate the HPT, sized
/// so that the real-mode area covers the firmware region; returns the MMU for the device tree
/// and the real-mode area's size.
fn setup_mmu(vm: &VmFd, mode: MmuMode, memory: u64) -> Result<(Mmu, u64), Error> {
    match mode {
        MmuMode::Radix => Ok((Mmu::Radix { gtse: true }, memory)),
        MmuMode::Hash => {
            let page_shift = hpt::host_page_shift();
            let want = hpt::order_for(memory, page_shift, LOW_TOP_MAX);
            let order = vm.allocate_htab(want).map_err(kvm_err(
                "KVM_PPC_ALLOCATE_HTAB (hash guests need a bare-metal KVM-HV host; a nested \
                 pseries L1 runs radix guests only)",
            ))?;
            if !(hpt::MIN_ORDER..=hpt::MAX_ORDER).contains(&order) {
                return Err(Error::Runtime(format!(
                    "KVM_PPC_ALLOCATE_HTAB returned order {order}"
                )));
            }
            let rma = hpt::rma_size(memory, order, page_shift);
            info!(
                "hash MMU: HPT of 2^{order} bytes ({} entries; asked 2^{want}), host pages 2^{page_shift}: \
                 real-mode area {} MiB of {} MiB",
                hpt::entries(order),
                rma >> 20,
                memory >> 20
            );
            Ok((Mmu::Hash { htab_shift: order }, rma))
        }
    }
}

fn xics_fd(d: &DeviceFd) -> u64 {
    use std::os::fd::AsRawFd;
    d.as_raw_fd() as u64
}

/// A duration in milliseconds, for log lines.
pub(crate) fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_names_from_pvr() {
        assert_eq!(cpu_name(0x004e_1202), "POWER9");
        assert_eq!(cpu_name(0x0080_0200), "POWER10");
        assert_eq!(cpu_name(0x004d_0200), "POWER8");
        assert_eq!(cpu_name(0x1234_0000), "POWER");
    }
}
