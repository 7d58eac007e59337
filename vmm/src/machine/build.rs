//! Building the machine, as named steps: read the images, open KVM and create the VM, check
//! its capabilities, map guest memory, set the MMU up, create the in-kernel XICS, the PCI host
//! bridge and the vCPUs, build the firmware, assemble the partition and start the vCPU threads
//! (all stopped). Nothing runs guest code until [`Machine::boot`](super::Machine::boot).

use super::state::MachineState;
use super::Machine;
use crate::boot::BootImages;
use crate::config::{MmuMode, PreserveMode, VmConfig};
use crate::console::Console;
use crate::devices::disk_spec::build_pci;
use crate::devices::irq::{configure_event_sources, configure_lsis, KvmIoEvents, KvmIrqLine};
use crate::devices::kvm_tce::KvmTces;
use crate::devices::phb::ddw::DDW_CALLS;
use crate::devices::phb::rtas::PCI_CONFIG_CALLS;
use crate::devices::phb::Phb;
use crate::error::{kvm_err, Error};
use crate::events::{event_channel, EventQueue};
use crate::hash;
use crate::hotplug::HotplugSlots;
use crate::kvm::bindings::*;
use crate::kvm::{DeviceFd, Kvm, VcpuFd, VmFd};
use crate::layout::FDT_MAX_SIZE;
use crate::memory::GuestMemory;
use crate::partition::Partition;
use crate::prefault::Prefaulter;
use crate::vcpu::{register_kick_signal, VcpuControl, ANSWER_TIMEOUT};
use devicetree::{CpuModel, Mmu};
use firmware::dlpar::table::LmbTable;
use firmware::dlpar::Dlpar;
use firmware::fadump::FadumpConfig;
use firmware::rtas::{Rtas, RtasCall};
use firmware::GuestRange;
use log::{debug, info};
use std::os::fd::AsRawFd;
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

/// What KVM offers beyond the capabilities we require.
struct Caps {
    cpu_char: Option<kvm_ppc_cpu_char>,
    ail_mode_3: bool,
    /// In-kernel TCE tables (`KVM_CAP_SPAPR_TCE_64`).
    spapr_tce_64: bool,
}

impl Machine {
    /// Creates the VM, its memory, the XICS device and the vCPU threads (all stopped).
    pub fn new(config: VmConfig) -> Result<Self, Error> {
        let images = BootImages::read(&config.kernel, config.initramfs.as_deref())?;
        let vm = create_vm()?;
        let caps = check_caps(&vm, &config)?;
        let window = hotplug_window(&config)?;
        let mem = map_memory(&vm, config.memory, window)?;
        let huge_page = crate::memory::host_huge_page_size().unwrap_or(0);
        crate::memory::advise_huge_pages(&mem, huge_page);
        let max_ram = window.map_or(config.memory, |w| w.end());
        let (mmu, rma_size) = hash::setup_mmu(&vm, config.mmu, config.memory, max_ram)?;
        let xics = create_xics(&vm, config.cpus)?;
        let phbs = create_phbs(&vm, &mem, &config, caps.spapr_tce_64)?;
        configure_lsis(&xics, &phbs)?;
        configure_event_sources(&xics)?;
        let (fds, pvr) = create_vcpus(&vm, &xics, config.cpus)?;
        let cpu = cpu_model(pvr, mmu);
        info!(
            "KVM-HV VM: {} vCPUs ({}, PVR {pvr:#010x}), {} MiB",
            config.cpus,
            cpu.name,
            config.memory >> 20
        );
        let mut rtas = build_rtas(&vm, &config, mmu, rma_size, !phbs.is_empty())?;
        let hotplug = match window {
            Some(w) => Some(setup_hotplug(&mut rtas, &mem, &config, w)?),
            None => None,
        };
        if config.preserve != PreserveMode::Copy {
            // Linux's boot-memory destination on a huge-page boundary: whole PMDs move.
            rtas.fadump_mut().set_dest_alignment(huge_page);
        }
        let (partition, events) =
            assemble_partition(&config, vm, mem, phbs, rtas, caps, mmu, hotplug)?;
        start_vcpu_threads(&partition, fds)?;
        Ok(Machine {
            config,
            partition,
            events,
            xics,
            cpu,
            images,
            boots: 0,
            mmu,
            rma_size,
            state: MachineState::Created,
            answer_timeout: ANSWER_TIMEOUT,
            last_dump: None,
            huge_page,
            staged: None,
            images_end: 0,
            api: None,
        })
    }
}

/// Opens `/dev/kvm`, checks the API version and creates a KVM-HV VM.
fn create_vm() -> Result<VmFd, Error> {
    let kvm = Kvm::new().map_err(Error::OpenKvm)?;
    let api = kvm.get_api_version();
    if api != KVM_API_VERSION {
        return Err(Error::ApiVersion(api, std::io::Error::last_os_error()));
    }
    kvm.create_vm_with_type(KVM_VM_PPC_HV)
        .map_err(Error::CreateVm)
}

/// Refuses a VM without what we need (PAPR, ONE_REG, immediate exit, XICS, the MMU asked
/// for) or with fewer vCPUs than asked; turns the optional in-kernel hcalls on and reads what
/// the host offers.
fn check_caps(vm: &VmFd, config: &VmConfig) -> Result<Caps, Error> {
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
    let multitce = vm.check_extension(KVM_CAP_SPAPR_MULTITCE);
    if vm.check_extension(KVM_CAP_PPC_ENABLE_HCALL) {
        let kernel_has = |h: &crate::hcall::Hcall| multitce || !crate::hcall::MULTI_TCE.contains(h);
        for h in crate::hcall::kernel_when_enabled().filter(kernel_has) {
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
    let spapr_tce_64 = vm.check_extension(KVM_CAP_SPAPR_TCE_64);
    info!(
        "TCE tables: {}; multi-TCE hcalls: {}",
        if spapr_tce_64 { "in KVM" } else { "in the VMM" },
        if multitce { "in KVM" } else { "in the VMM" }
    );
    Ok(Caps {
        cpu_char,
        ail_mode_3: vm.check_extension(KVM_CAP_PPC_AIL_MODE_3),
        spapr_tce_64,
    })
}

/// The memory hotplug window `--memory hotplug_size=` asks for, checked against the LMB
/// table's rules.
fn hotplug_window(config: &VmConfig) -> Result<Option<GuestRange>, Error> {
    let spec = crate::hotplug::MemorySpec {
        size: config.memory,
        hotplug_size: config.hotplug_size,
        prefault: config.prefault,
    };
    match spec.window() {
        None if config.hotplug_size > 0 => Err(Error::Memory(format!(
            "no room for a {:#x}-byte hotplug window after {:#x} bytes of RAM",
            config.hotplug_size, config.memory
        ))),
        w => Ok(w),
    }
}

/// Maps `size` bytes of anonymous guest RAM at guest address 0 and gives it to KVM as slot 0;
/// with a hotplug window, maps the window too (anonymous, reserving nothing), as a second
/// region of guest memory that gets KVM slots per LMB only when the guest takes one
/// ([`crate::hotplug::slots`]).
fn map_memory(vm: &VmFd, size: u64, window: Option<GuestRange>) -> Result<GuestMemory, Error> {
    let mut ranges = vec![(GuestAddress(0), size as usize)];
    ranges.extend(window.map(|w| (w.start_addr(), w.len() as usize)));
    let mem = GuestMemory::from_ranges(&ranges).map_err(|e| Error::Memory(e.to_string()))?;
    let host = mem
        .get_host_address(GuestAddress(0))
        .map_err(|e| Error::Memory(e.to_string()))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: size,
        userspace_addr: host as u64,
    };
    // SAFETY: `host` is the start of `mem`'s single anonymous mapping of exactly `size`
    // bytes. Both `mem` and the VM fd move into `Partition`, where the VM is dropped first
    // (field order), so the slot never outlives the mapping.
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("set_user_memory_region"))?;
    Ok(mem)
}

/// The in-kernel XICS device (why in-kernel: `machine/mod.rs`).
fn create_xics(vm: &VmFd, cpus: u32) -> Result<DeviceFd, Error> {
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
        xics.set_attr_u64(KVM_DEV_XICS_GRP_CTRL, KVM_DEV_XICS_NR_SERVERS, cpus.into())
            .map_err(kvm_err("XICS nr_servers"))?;
    } else {
        debug!("XICS device has no NR_SERVERS control (classic XICS)");
    }
    Ok(xics)
}

/// One PCI host bridge carrying the `--disk`s (none without disks); its TCE tables in KVM
/// when `kernel_tces`.
fn create_phbs(
    vm: &VmFd,
    mem: &GuestMemory,
    config: &VmConfig,
    kernel_tces: bool,
) -> Result<Vec<Phb>, Error> {
    if config.disks.is_empty() {
        return Ok(Vec::new());
    }
    let dup = || {
        vm.try_clone()
            .map_err(|e| Error::Runtime(format!("dup VM fd: {e}")))
    };
    let irq = KvmIrqLine::new(dup()?);
    let mut phb = build_pci(mem, &config.disks, Arc::new(irq))?;
    if kernel_tces {
        phb.use_kernel_tces(Arc::new(KvmTces::new(dup()?)));
    }
    // Notifies as ioeventfds (every KVM has them; the capability says so); completions are
    // raised by each disk's I/O thread with KVM_IRQ_LINE (see devices::irq).
    let ioeventfd = vm.check_extension(KVM_CAP_IOEVENTFD);
    info!(
        "KVM: ioeventfd {}, irqfd {}, irqfd resample {} (completions use KVM_IRQ_LINE from the \
         I/O threads: see devices::irq)",
        u8::from(ioeventfd),
        vm.check_extension_int(KVM_CAP_IRQFD),
        vm.check_extension_int(KVM_CAP_IRQFD_RESAMPLE)
    );
    if ioeventfd {
        phb.use_io_events(Arc::new(KvmIoEvents::new(dup()?)));
    }
    for slot in phb.occupied_slots() {
        info!(
            "PCI {:#x} slot {slot}: virtio-blk {} (LSI {:#x}), served by its I/O thread; \
             notify {}",
            phb.config().buid,
            config.disks[usize::from(slot) - 1].path.display(),
            phb.irq_of(slot).unwrap_or(0),
            if ioeventfd {
                "through KVM_IOEVENTFD"
            } else {
                "by MMIO exit (no KVM_CAP_IOEVENTFD)"
            }
        );
    }
    Ok(vec![phb])
}

/// Creates the vCPUs, each in PAPR mode and connected to the XICS; returns them and the PVR.
fn create_vcpus(vm: &VmFd, xics: &DeviceFd, cpus: u32) -> Result<(Vec<VcpuFd>, u32), Error> {
    let mut fds = Vec::new();
    let mut pvr = 0;
    for id in 0..cpus {
        let vcpu = vm.create_vcpu(id.into()).map_err(kvm_err("create vcpu"))?;
        let papr = kvm_enable_cap {
            cap: KVM_CAP_PPC_PAPR,
            ..Default::default()
        };
        vcpu.enable_cap(&papr).map_err(kvm_err("enable PAPR"))?;
        let xics_cap = kvm_enable_cap {
            cap: KVM_CAP_IRQ_XICS,
            args: [xics.as_raw_fd() as u64, id.into(), 0, 0],
            ..Default::default()
        };
        vcpu.enable_cap(&xics_cap)
            .map_err(kvm_err("connect vcpu to XICS"))?;
        if id == 0 {
            pvr = vcpu.get_sregs().map_err(kvm_err("get_sregs"))?.pvr;
        }
        fds.push(vcpu);
    }
    Ok((fds, pvr))
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

/// The CPU the device tree describes; a hash guest gets only the page sizes the host backs.
fn cpu_model(pvr: u32, mmu: Mmu) -> CpuModel {
    let mut cpu = CpuModel::new(cpu_name(pvr), pvr);
    if let Mmu::Hash { .. } = mmu {
        cpu.segment_page_sizes = hash::sizing::usable_page_sizes(
            &cpu.segment_page_sizes,
            hash::sizing::host_page_shift(),
        );
    }
    cpu
}

/// The RTAS firmware with its fadump engine, sized for this machine; the XICS calls are
/// defined in KVM and the PCI config calls enabled when there is a PHB.
fn build_rtas(
    vm: &VmFd,
    config: &VmConfig,
    mmu: Mmu,
    rma_size: u64,
    has_pci: bool,
) -> Result<Rtas, Error> {
    let low_top = crate::layout::low_top(config.memory, rma_size);
    let firmware_area = GuestRange::new(
        low_top - crate::layout::RTAS_SIZE - FDT_MAX_SIZE,
        crate::layout::RTAS_SIZE + FDT_MAX_SIZE,
    )
    .expect("nonzero");
    let mut rtas = Rtas::new(FadumpConfig {
        max_cpus: config.cpus,
        hpte_capacity: match mmu {
            Mmu::Hash { htab_shift } => hash::sizing::entries(htab_shift),
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
    if has_pci {
        for call in PCI_CONFIG_CALLS.into_iter().chain(DDW_CALLS) {
            rtas.enable_machine_call(call);
        }
    }
    Ok(rtas)
}

/// Memory DLPAR over `window`: the firmware's LMB table with every LMB granted (the guest
/// may add them itself) and the window's KVM slots (none mapped). (The hot-plug event
/// source is configured with the other RTAS event sources.)
fn setup_hotplug(
    rtas: &mut Rtas,
    mem: &GuestMemory,
    config: &VmConfig,
    window: GuestRange,
) -> Result<HotplugSlots, Error> {
    let mut table = LmbTable::new(config.memory, window.start(), window.len())
        .map_err(|e| Error::Memory(e.to_string()))?;
    let granted = table.grant_all();
    rtas.set_dlpar(Dlpar::new(table));
    let slots = HotplugSlots::new(mem, window)
        .ok_or_else(|| Error::Memory(format!("hotplug window {window} is not one region")))?;
    info!(
        "memory hotplug window {window}: {granted} LMBs of 256 MiB, every one the guest's to add"
    );
    Ok(slots)
}

/// The state the vCPU threads and the main thread share, and the main thread's event queue.
#[allow(clippy::too_many_arguments)]
fn assemble_partition(
    config: &VmConfig,
    vm: VmFd,
    mem: GuestMemory,
    phbs: Vec<Phb>,
    rtas: Rtas,
    caps: Caps,
    mmu: Mmu,
    hotplug: Option<HotplugSlots>,
) -> Result<(Arc<Partition>, EventQueue), Error> {
    let console = Arc::new(Console::for_mode(&config.serial).map_err(Error::Console)?);
    let (tx, rx) = event_channel();
    let wake = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::Runtime(e.to_string()))?;
    // --memory prefault=on: all of boot RAM, after each registration's destinations.
    let resident = match config.prefault {
        true => GuestRange::new(0, config.memory).into_iter().collect(),
        false => Vec::new(),
    };
    let prefaulter = Prefaulter::new(mem.clone(), resident)
        .map_err(|e| Error::Runtime(format!("pre-fault worker: {e}")))?;
    let partition = Arc::new(Partition {
        vm,
        phbs: Mutex::new(phbs),
        mmio_exits: Default::default(),
        hotplug,
        prefaulter,
        mem,
        console,
        cpu_char: caps.cpu_char,
        ail_mode_3: caps.ail_mode_3,
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
    Ok((partition, rx))
}

/// One thread per vCPU, each parked until started.
fn start_vcpu_threads(partition: &Arc<Partition>, fds: Vec<VcpuFd>) -> Result<(), Error> {
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
    Ok(())
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
