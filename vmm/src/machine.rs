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

use crate::boot::{BootImages, BootSpec};
use crate::console::Console;
use crate::devices::disk_spec::{build_pci, DiskSpec};
use crate::devices::phb::{rtas::PCI_CONFIG_CALLS, IrqLine, Phb};
use crate::events::MachineEvent;
use crate::events::{event_channel, EventQueue, EventSender};
use crate::hpt;
use crate::kvm::bindings::*;
use crate::kvm::{DeviceFd, Kvm, VmFd};
use crate::layout::{LayoutError, FDT_MAX_SIZE, LOW_TOP_MAX};
use crate::loader::ElfError;
use crate::vcpu::{register_kick_signal, StartRequest, VcpuControl};
use devicetree::{CpuModel, Mmu};
use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use firmware::fadump::FadumpConfig;
use firmware::rtas::{
    CpuRunState, Platform, Rtas, RtasAction, RtasArgs, RtasCall, RtasStatus, TimeOfDay,
};
use firmware::GuestRange;
use log::{debug, error, info, warn};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

/// Guest memory as the VMM maps it.
pub type GuestMemory = GuestMemoryMmap<()>;

/// The XICS RTAS calls KVM serves once their tokens are defined.
const XICS_RTAS_CALLS: [RtasCall; 4] = [
    RtasCall::IbmSetXive,
    RtasCall::IbmGetXive,
    RtasCall::IbmIntOff,
    RtasCall::IbmIntOn,
];

/// How the guest translates addresses (`--mmu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MmuMode {
    /// Radix (POWER9+): no hash page table; the only mode a nested (pseries) L1 supports.
    #[default]
    Radix,
    /// Hash page table allocated by the VMM (`KVM_PPC_ALLOCATE_HTAB`); needs a bare-metal
    /// (powernv) KVM-HV host.
    Hash,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub cmdline: String,
    pub memory: u64,
    pub cpus: u32,
    pub serial: crate::console::SerialMode,
    /// `--disk` options, in order (disk `i` is `/dev/vd<a+i>` in the guest).
    pub disks: Vec<DiskSpec>,
    pub mmu: MmuMode,
}

/// Why the machine could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot open /dev/kvm: {0} (is this a POWER host with KVM, and are you allowed to use it?)"
    )]
    OpenKvm(vmm_sys_util::errno::Error),
    #[error("KVM API version {0}, expected 12 ({1})")]
    ApiVersion(i32, std::io::Error),
    #[error("cannot create a KVM-HV virtual machine: {0} (is the kvm_hv module loaded? on a nested host the parent must allow nesting)")]
    CreateVm(vmm_sys_util::errno::Error),
    #[error("KVM lacks a required capability: {0}")]
    MissingCap(&'static str),
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("KVM {what}: {err}")]
    Kvm {
        what: &'static str,
        err: vmm_sys_util::errno::Error,
    },
    #[error("kernel {path}: {err}")]
    Kernel { path: PathBuf, err: ElfError },
    #[error("cannot read {path}: {err}")]
    File { path: PathBuf, err: std::io::Error },
    #[error("memory layout: {0}")]
    Layout(#[from] LayoutError),
    #[error("device tree: {0}")]
    DeviceTree(String),
    #[error("console: {0}")]
    Console(std::io::Error),
    #[error("threads/events: {0}")]
    Runtime(String),
    #[error("disks: {0}")]
    Disk(#[from] crate::devices::disk_spec::BuildError),
    #[error("the guest stopped: {0}")]
    Guest(String),
}

fn kvm_err(what: &'static str) -> impl FnOnce(vmm_sys_util::errno::Error) -> Error {
    move |err| Error::Kvm { what, err }
}

/// State every vCPU thread shares.
pub struct Shared {
    /// Declared before `mem`: fields drop in order, so the VM (and its memory slot) is gone
    /// before the guest memory is unmapped.
    pub vm: VmFd,
    /// The PCI host bridges (none without `--disk`). Behind one lock shared by the vCPU
    /// threads (MMIO exits, PCI config RTAS calls) and the reset path; a queue notify runs
    /// its requests to completion under it. Declared before `mem`: its devices hold a
    /// second handle on the VM and clones of the memory.
    pub phbs: Mutex<Vec<Phb>>,
    mmio_exits: std::sync::atomic::AtomicU64,
    /// Pre-faults a new registration's dump destinations (one worker; holds a clone of `mem`).
    prefaulter: crate::prefault::Prefaulter,
    pub mem: GuestMemory,
    pub console: Arc<Console>,
    pub cpu_char: Option<kvm_ppc_cpu_char>,
    pub ail_mode_3: bool,
    /// log2 of the HPT's size when the partition uses a hash page table (`--mmu hash`).
    pub hpt_order: Option<u32>,
    rtas: Mutex<Rtas>,
    vcpus: OnceLock<Vec<Arc<VcpuControl>>>,
    /// (LPCR value for the bits in `vcpu::LPCR_MANAGED`, generation).
    lpcr: Mutex<(u64, u64)>,
    events: EventSender,
    wake: EventFd,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    pub fn vcpu(&self, id: u32) -> Option<&Arc<VcpuControl>> {
        self.vcpus.get()?.get(id as usize)
    }

    fn vcpus(&self) -> &[Arc<VcpuControl>] {
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

    fn reset_lpcr(&self) {
        let mut l = self.lpcr.lock().unwrap_or_else(|e| e.into_inner());
        l.0 = 0;
        l.1 = l.1.wrapping_add(1);
    }

    pub fn rtas(&self, vcpu: u32, args_addr: u64) -> Option<RtasAction> {
        let platform = MachinePlatform {
            vcpus: self.vcpus(),
        };
        let mut rtas = self.rtas.lock().unwrap_or_else(|e| e.into_inner());
        let was_registered = rtas.fadump().is_registered();
        let action = match rtas.dispatch(&self.mem, args_addr, &platform) {
            Ok(a) => Some(a),
            Err(e) => {
                warn!("vcpu {vcpu}: RTAS argument block at {args_addr:#x}: {e}");
                None
            }
        };
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
    fn count_mmio(&self, addr: u64) {
        let n = self.mmio_exits.fetch_add(1, Ordering::Relaxed) + 1;
        if n % 20_000 == 0 {
            info!("{n} MMIO exits so far (latest at {addr:#x})");
        }
    }

    fn lock_phbs(&self) -> std::sync::MutexGuard<'_, Vec<Phb>> {
        self.phbs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A guest load from an address outside RAM: true if a PHB window claims it (`data` is
    /// then filled in).
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) -> bool {
        self.count_mmio(addr);
        self.lock_phbs().iter_mut().any(|p| p.mmio_read(addr, data))
    }

    /// A guest store outside RAM: true if a PHB window claims it.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) -> bool {
        self.count_mmio(addr);
        self.lock_phbs()
            .iter_mut()
            .any(|p| p.mmio_write(addr, data))
    }

    /// An RTAS call the firmware routed to the machine: the PCI config calls go to the PHBs
    /// (which write the return cells). False if nothing here serves `call`.
    pub fn machine_rtas_call(&self, call: RtasCall, args: &RtasArgs) -> bool {
        let mut phbs = self.lock_phbs();
        crate::devices::phb::rtas::handle_config_call(&mut phbs, &self.mem, call, args)
    }

    /// Queues `ev` for the main thread (tagged with the current boot) and wakes it.
    pub fn send(&self, ev: MachineEvent) {
        self.events.send(ev);
        let _ = self.wake.write(1);
    }
}

struct MachinePlatform<'a> {
    vcpus: &'a [Arc<VcpuControl>],
}

impl Platform for MachinePlatform<'_> {
    fn time_of_day(&self) -> TimeOfDay {
        crate::clock::now()
    }
    fn cpu_run_state(&self, cpu: u32) -> Option<CpuRunState> {
        self.vcpus.get(cpu as usize).map(|v| v.run_state())
    }
}

/// PCI LSIs over `KVM_IRQ_LINE`: with the in-kernel XICS the line number is the XICS
/// source number, and the source is level-sensitive (see [`configure_lsis`]).
struct KvmIrqLine {
    vm: VmFd,
    /// Level changes so far (the first few and then every 10000th are logged).
    changes: std::sync::atomic::AtomicU64,
}

impl IrqLine for KvmIrqLine {
    fn set_level(&self, irq: u32, level: bool) {
        let n = self.changes.fetch_add(1, Ordering::Relaxed);
        if n < 16 || n % 10_000 == 0 {
            debug!("LSI {irq:#x} -> {} (level change #{n})", u8::from(level));
        }
        if let Err(e) = self.vm.set_irq_line(irq, level) {
            warn!("KVM_IRQ_LINE {irq:#x} level {}: {e}", u8::from(level));
        }
    }
}

/// XICS priority meaning "masked" (also what `ibm,int-off` saves).
const XICS_PRIORITY_MASKED: u64 = 0xff;

/// Configures the XICS sources of every PHB's occupied slots as level-sensitive LSIs, masked
/// (server 0, priority 0xff) until the guest's `ibm,set-xive`, not asserted. Done at start
/// and again on every reset so a new kernel finds the power-on state.
fn configure_lsis(xics: &DeviceFd, phbs: &[Phb]) -> Result<(), Error> {
    let state = KVM_XICS_LEVEL_SENSITIVE
        | KVM_XICS_MASKED
        | (XICS_PRIORITY_MASKED << KVM_XICS_PRIORITY_SHIFT);
    for phb in phbs {
        for slot in phb.occupied_slots() {
            let Some(irq) = phb.irq_of(slot) else {
                continue;
            };
            xics.set_attr_u64(KVM_DEV_XICS_GRP_SOURCES, irq.into(), state)
                .map_err(kvm_err("configure XICS source for a PCI LSI"))?;
            debug!("XICS source {irq:#x} (PCI slot {slot}): level-sensitive, masked");
        }
    }
    Ok(())
}

/// A running VM.
pub struct Machine {
    config: VmConfig,
    shared: Arc<Shared>,
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

static SIGNAL_WAKE: OnceLock<EventFd> = OnceLock::new();
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    SIGNALLED.store(true, Ordering::SeqCst);
    if let Some(e) = SIGNAL_WAKE.get() {
        let _ = e.write(1);
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
        // `config.memory` bytes. Both `mem` and the VM fd move into `Shared`, where the VM is
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
            let irq = KvmIrqLine {
                vm: vm
                    .try_clone()
                    .map_err(|e| Error::Runtime(format!("dup VM fd: {e}")))?,
                changes: Default::default(),
            };
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
        let shared = Arc::new(Shared {
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
        shared.vcpus.set(controls.clone()).expect("set once");
        for (ctl, fd) in controls.iter().zip(fds) {
            ctl.spawn(fd, shared.clone())
                .map_err(|e| Error::Runtime(e.to_string()))?;
        }
        Ok(Machine {
            config,
            shared,
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
            .shared
            .rtas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .properties();
        let pci: Vec<_> = self
            .shared
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
        let img = crate::boot::load(&self.shared.mem, &spec)?;
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
        self.shared.events.next_boot();
        let boot = self.shared.vcpu(0).expect("vcpu 0");
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
        self.shared.reset_lpcr();
        for v in self.shared.vcpus() {
            v.reset_and_wait();
        }
        if let Mmu::Hash { htab_shift } = self.mmu {
            // Every vCPU is stopped: KVM clears the HPT (and sets the VRMA up again on the
            // next entry), so the next kernel starts from an empty table.
            let order = self
                .shared
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
        let mut phbs = self.shared.lock_phbs();
        for p in phbs.iter_mut() {
            p.reset();
        }
        if !phbs.is_empty() {
            info!("PCI devices reset to their power-on state");
        }
        configure_lsis(&self.xics, &phbs)
    }

    /// Firmware-assisted dump: stop every vCPU and read its registers, let the firmware write
    /// the dump (register save area, boot-memory copies; guest RAM is otherwise kept), then
    /// reset and boot again: the new device tree carries `ibm,kernel-dump`. If the firmware
    /// cannot dump, the caller's `ibm,os-term` returns a hardware error and every vCPU resumes.
    fn fadump_crash(&mut self, cpu: u32, args: RtasArgs) -> Result<(), Error> {
        info!("fadump: vcpu {cpu} crashed with a dump registered: stopping all vCPUs");
        let t0 = Instant::now();
        let mut states = Vec::new();
        let mut online = Vec::new();
        for v in self.shared.vcpus() {
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
            let mut rtas = self.shared.rtas.lock().unwrap_or_else(|e| e.into_inner());
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
                .perform_dump(&self.shared.mem, &mut states, source)
        };
        if let (Some(Ok(snap)), Ok(report)) = (&snapshot, &result) {
            match crate::htab::verify_hpte_section(&self.shared.mem, &report.kernel_dump, snap) {
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
                args.write_status(&self.shared.mem, RtasStatus::HardwareError);
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
            .shared
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

    fn shutdown(&mut self) {
        for v in self.shared.vcpus() {
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
            .shared
            .wake
            .try_clone()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        em.add_subscriber(Arc::new(Mutex::new(Wakeup {
            fds: vec![wake, sig_fd],
        })));
        if self.config.serial == crate::console::SerialMode::Tty {
            em.add_subscriber(Arc::new(Mutex::new(StdinInput::new(
                self.shared.console.clone(),
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
            while let Some(event) = self.events.next(self.shared.events.boot()) {
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
                    self.shared
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

/// The HPT could not be read: the firmware flags the HPTE section.
struct UnreadableHpt(String);

impl firmware::fadump::HptSource for UnreadableHpt {
    fn valid_entries(&mut self) -> Result<Vec<firmware::fadump::HptEntry>, String> {
        Err(self.0.clone())
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

/// Drains wake-up event fds (vCPU events, signals) so `EventManager::run` returns.
struct Wakeup {
    fds: Vec<EventFd>,
}

impl MutEventSubscriber for Wakeup {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        for f in &self.fds {
            use std::os::fd::AsRawFd;
            if f.as_raw_fd() == events.fd() {
                let _ = f.read();
            }
        }
    }
    fn init(&mut self, ops: &mut EventOps) {
        for f in &self.fds {
            if let Err(e) = ops.add(Events::new(f, EventSet::IN)) {
                error!("event loop: {e:?}");
            }
        }
    }
}

/// Feeds stdin to the guest console.
///
/// Reads an unbuffered duplicate of fd 0: `std::io::Stdin` keeps its own 8 KiB buffer, so a
/// read of part of a long line would leave the rest in that buffer where epoll cannot see it,
/// and the guest would wait for input that has already arrived.
struct StdinInput {
    console: Arc<Console>,
    stdin: Option<std::fs::File>,
}

impl StdinInput {
    fn new(console: Arc<Console>) -> Self {
        use std::os::fd::AsFd;
        let stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => Some(std::fs::File::from(fd)),
            Err(e) => {
                warn!("console input unavailable: dup stdin: {e}");
                None
            }
        };
        StdinInput { console, stdin }
    }

    /// Input from any readable file (tests use a pipe).
    #[cfg(test)]
    fn from_file(console: Arc<Console>, file: std::fs::File) -> Self {
        StdinInput {
            console,
            stdin: Some(file),
        }
    }
}

impl MutEventSubscriber for StdinInput {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let mut buf = [0u8; 4096];
        let Some(stdin) = self.stdin.as_mut() else {
            let _ = ops.remove(events);
            return;
        };
        match stdin.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => {
                // EOF or error: stop watching stdin, the guest keeps running.
                let _ = ops.remove(events);
            }
            Ok(n) => self.console.queue_input(&buf[..n]),
        }
    }
    fn init(&mut self, ops: &mut EventOps) {
        if let Some(stdin) = &self.stdin {
            if let Err(e) = ops.add(Events::new(stdin, EventSet::IN)) {
                warn!("console input unavailable: {e:?}");
            }
        }
    }
}

/// A duration in milliseconds, for log lines.
fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line longer than one read must reach the guest whole, without more input arriving:
    /// every byte the pipe delivered is queued after the loop has run.
    #[test]
    fn console_input_longer_than_one_read_is_delivered_whole() {
        use std::io::Write;
        use std::os::fd::OwnedFd;
        let (rd, mut wr) = std::os::unix::net::UnixStream::pair().unwrap();
        let rd = std::fs::File::from(OwnedFd::from(rd));
        let console = Arc::new(Console::new(Box::new(std::io::sink())));
        let line: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        wr.write_all(&line).unwrap();
        let mut em: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
            EventManager::new().unwrap();
        em.add_subscriber(Arc::new(Mutex::new(StdinInput::from_file(
            console.clone(),
            rd,
        ))));
        let mut got = Vec::new();
        for _ in 0..16 {
            if got.len() == line.len() {
                break;
            }
            em.run_with_timeout(100).unwrap();
            let mut buf = [0u8; 16];
            loop {
                let n = console.read(&mut buf);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(got, line);
    }

    #[test]
    fn cpu_names_from_pvr() {
        assert_eq!(cpu_name(0x004e_1202), "POWER9");
        assert_eq!(cpu_name(0x0080_0200), "POWER10");
        assert_eq!(cpu_name(0x004d_0200), "POWER8");
        assert_eq!(cpu_name(0x1234_0000), "POWER");
    }
}
