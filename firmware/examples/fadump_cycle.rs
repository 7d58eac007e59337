//! Embedding the RTAS fadump engine: one register → crash → dump cycle over plain guest memory,
//! with no KVM and no VMM, as a firmware test bench or another VMM would drive it.
//!
//!     cargo run -p firmware --example fadump_cycle
//!
//! The "guest" here is this program: it writes RTAS argument blocks into guest memory and hands
//! their address to [`Rtas::dispatch`], exactly what a VMM does on an `H_RTAS` hcall. Steps:
//! 1. `ibm,configure-kernel-dump(REGISTER)` with a Linux-style registration (CPU state, HPTE,
//!    one boot-memory region);
//! 2. `ibm,os-term`: the firmware answers `RtasAction::FadumpCrash`, the machine's cue to stop
//!    every vCPU and collect their registers;
//! 3. [`Fadump::perform_dump`](firmware::fadump::Fadump::perform_dump) writes the PAPR Register
//!    Save Area and copies boot memory to its destination;
//! 4. the capture boot's `/rtas` node then carries `ibm,kernel-dump`, which is what the next
//!    kernel reads to export `/proc/vmcore`.

use firmware::fadump::{DumpSection, FadumpConfig, KernelDumpStructure, SectionType, CMD_REGISTER};
use firmware::rtas::{CpuRunState, Platform, Rtas, RtasAction, RtasArgs, RtasCall, TimeOfDay};
use firmware::{memory, CpuState, PropValue};
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// What the firmware asks of the machine: a clock and the vCPUs' run states.
struct Bench;

impl Platform for Bench {
    fn time_of_day(&self) -> TimeOfDay {
        TimeOfDay {
            year: 2026,
            month: 12,
            day: 3,
            hour: 0,
            minute: 0,
            second: 0,
            nanosecond: 0,
        }
    }
    fn cpu_run_state(&self, cpu: u32) -> Option<CpuRunState> {
        (cpu < 2).then_some(CpuRunState::Running)
    }
}

/// Writes an RTAS argument block (token, nargs, nret, args, room for the returns) at `addr`.
fn rtas_block(mem: &GuestMemoryMmap<()>, addr: u64, call: RtasCall, args: &[u32], nret: u32) {
    let bytes = RtasArgs::block_bytes(call.token(), args, nret, 0);
    memory::write_bytes(mem, addr, &bytes).expect("argument block in RAM");
}

/// The first return cell (the status) of the block at `addr` with `nargs` arguments.
fn status(mem: &GuestMemoryMmap<()>, addr: u64, nargs: u64) -> i32 {
    let b = memory::read_bytes(mem, addr + 12 + 4 * nargs, 4).expect("status cell");
    i32::from_be_bytes(b.try_into().unwrap())
}

fn main() {
    const RAM: u64 = 64 << 20;
    const BOOT_MEM: u64 = 8 << 20; // what the capture kernel boots in
    const DEST: u64 = 32 << 20; // where the crashed kernel's boot memory is preserved
    const ARGS: u64 = 0x1000; // the RTAS argument block
    const FDM: u64 = 0x2000; // the registration structure (Linux's fadump_mem_struct)
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap();

    let cfg = FadumpConfig {
        max_cpus: 2,
        hpte_capacity: 0,
        rma_size: RAM,
        firmware_reserved: vec![],
    };
    let mut rtas = Rtas::new(cfg.clone());

    // The crashed kernel's boot memory holds something we can recognise afterwards.
    memory::write_bytes(&mem, 0x10_0000, b"the crashed kernel's data").unwrap();

    // 1. REGISTER: CPU state and HPTE areas, then boot memory [0, 8 MiB) preserved at 32 MiB + 1 MiB.
    let cpu_area = cfg.cpu_state_size();
    let sections = [
        DumpSection::request(SectionType::CPU_STATE, 0, cpu_area, DEST),
        DumpSection::request(SectionType::HPTE, 0, cfg.hpte_size(), DEST + cpu_area),
        DumpSection::request(SectionType::REAL_MODE_REGION, 0, BOOT_MEM, DEST + (1 << 20)),
    ];
    let fdm = KernelDumpStructure::registration_bytes(&sections);
    memory::write_bytes(&mem, FDM, &fdm).unwrap();
    rtas_block(
        &mem,
        ARGS,
        RtasCall::IbmConfigureKernelDump,
        &[CMD_REGISTER, FDM as u32, fdm.len() as u32],
        1,
    );
    let action = rtas.dispatch(&mem, ARGS, &Bench).unwrap();
    assert_eq!(action, RtasAction::None);
    assert_eq!(status(&mem, ARGS, 3), 0, "registration accepted");
    println!(
        "registered {} sections; pre-fault these destinations: {:x?}",
        sections.len(),
        rtas.fadump().registered_destinations()
    );

    // 2. The kernel panics and calls ibm,os-term: the firmware asks the machine for a dump.
    memory::write_bytes(&mem, 0x3000, b"Kernel panic - not syncing: sysrq\0").unwrap();
    rtas_block(&mem, ARGS, RtasCall::IbmOsTerm, &[0x3000], 1);
    let RtasAction::FadumpCrash { message, .. } = rtas.dispatch(&mem, ARGS, &Bench).unwrap() else {
        panic!("os-term with a registered dump must ask for a dump");
    };
    println!("os-term: {message}");

    // 3. The machine stopped every vCPU and read their registers (here: made up).
    let mut cpus: Vec<CpuState> = (0..2).map(CpuState::new).collect();
    cpus[0].gpr[1] = 0xc000_0000_0123_4000; // the crashing CPU's stack pointer
    let report = rtas
        .fadump_mut()
        .perform_dump(&mem, &mut cpus, None)
        .expect("a registered dump");
    assert!(!report.has_errors());
    println!(
        "dump written: status {:#06x}, {} CPUs saved, {} bytes copied",
        report.status, report.cpus_saved, report.bytes_copied
    );
    let kept = memory::read_bytes(&mem, DEST + (1 << 20) + 0x10_0000, 25).unwrap();
    assert_eq!(kept, b"the crashed kernel's data");

    // 4. The capture boot's /rtas node tells the next kernel a dump is waiting.
    let props = rtas.properties();
    let kernel_dump = props
        .iter()
        .find(|p| p.name == "ibm,kernel-dump")
        .expect("ibm,kernel-dump on the capture boot");
    let PropValue::Bytes(bytes) = &kernel_dump.value else {
        panic!("ibm,kernel-dump is the dump structure's bytes");
    };
    // Header: version, sections, status (big-endian; 0xC000 = dump performed, triggered).
    let header_status = u16::from_be_bytes([bytes[6], bytes[7]]);
    assert_eq!(header_status, 0xc000);
    println!(
        "capture boot: /rtas/ibm,kernel-dump is {} bytes, status {header_status:#06x}",
        bytes.len()
    );
}
