//! A partition on the bench: RAM, firmware, vCPUs, and the machine's side of a crash.

use std::collections::BTreeSet;

use firmware::fadump::{DumpReport, FadumpConfig, HptEntry};
use firmware::rtas::{CpuRunState, Platform, Rtas, RtasAction, RtasArgs, RtasCall, TimeOfDay};
use firmware::{CpuState, GuestRange, Reg};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::linux::distinct_registers;

/// Where the model keeps its `struct rtas_args` (Linux: a static in the RMO).
pub const RTAS_ARGS_ADDR: u64 = 0x8000;
/// Where the model's RTAS stub lives: the NIA of a vCPU stopped inside `ibm,os-term`.
/// Low in RAM, as a VMM must place it: Linux puts its dump destinations right above
/// `boot_mem_top` (>= 320 MiB on pseries), so firmware there would be refused (or, without the
/// firmware-overlap check, overwritten by the dump).
pub const RTAS_ENTRY: u64 = 0x00f0_0000;

struct BenchPlatform {
    cpus: u32,
    stopped: BTreeSet<u32>,
}

impl Platform for BenchPlatform {
    fn time_of_day(&self) -> TimeOfDay {
        TimeOfDay {
            year: 2026,
            month: 11,
            day: 21,
            ..TimeOfDay::default()
        }
    }

    fn cpu_run_state(&self, cpu: u32) -> Option<CpuRunState> {
        (cpu < self.cpus).then(|| {
            if self.stopped.contains(&cpu) {
                CpuRunState::Stopped
            } else {
                CpuRunState::Running
            }
        })
    }
}

/// The result of one RTAS call as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    /// `rets[0]`, when nret >= 1 and the firmware wrote it.
    pub status: Option<i32>,
    pub action: RtasAction,
}

pub struct Guest {
    pub mem: GuestMemoryMmap,
    pub rtas: Rtas,
    /// The live register values of every vCPU (index = CPU id).
    pub cpus: Vec<CpuState>,
    /// The guest's hash page table (empty for radix guests).
    pub hpt: Vec<HptEntry>,
    platform: BenchPlatform,
}

impl Guest {
    /// `ram`: (start, size) regions; holes between them are not RAM.
    pub fn new(ram: &[(u64, u64)], ncpus: u32, hpte_capacity: u64) -> Self {
        let ranges: Vec<(GuestAddress, usize)> = ram
            .iter()
            .map(|(s, l)| (GuestAddress(*s), *l as usize))
            .collect();
        let mem = GuestMemoryMmap::from_ranges(&ranges).expect("bench RAM layout");
        let config = FadumpConfig {
            max_cpus: ncpus,
            hpte_capacity,
            rma_size: ram[0].1.min(0x4000_0000),
            firmware_reserved: vec![GuestRange::new(RTAS_ENTRY, 0x1000).unwrap()],
        };
        Self {
            mem,
            rtas: Rtas::new(config),
            cpus: (0..ncpus)
                .map(|id| distinct_registers(id, &Reg::PAPR_SAVED))
                .collect(),
            hpt: Vec::new(),
            platform: BenchPlatform {
                cpus: ncpus,
                stopped: BTreeSet::new(),
            },
        }
    }

    /// A property of `/rtas` as the guest's device tree would carry it.
    pub fn rtas_prop(&self, name: &str) -> Option<Vec<u8>> {
        self.rtas
            .properties()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| p.value.to_fdt_bytes())
    }

    /// The token for `name` read from `/rtas`, as `rtas_function_token()` does.
    pub fn token(&self, name: &str) -> Option<u32> {
        let b = self.rtas_prop(name)?;
        Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
    }

    pub fn write(&self, addr: u64, bytes: &[u8]) {
        firmware::memory::write_bytes(&self.mem, addr, bytes).expect("bench write inside RAM");
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        firmware::memory::read_bytes(&self.mem, addr, len).expect("bench read inside RAM")
    }

    /// Writes an argument block at `at` as Linux's `rtas_call()` builds it (rets pre-filled with
    /// a marker so an unwritten status is visible).
    pub fn write_args_block(&self, at: u64, token: u32, args: &[u32], nret: u32) {
        self.write(at, &RtasArgs::block_bytes(token, args, nret, 0xdead_beef));
    }

    /// Enters RTAS with the block already at `at` (`nargs`/`nret` as written there).
    pub fn enter_rtas(&mut self, at: u64, nargs: usize, nret: u32) -> CallResult {
        let action = self
            .rtas
            .dispatch(&self.mem, at, &self.platform)
            .expect("argument block inside RAM");
        let status = (nret >= 1).then(|| {
            let at = at + 12 + 4 * nargs as u64;
            i32::from_be_bytes(self.read(at, 4).try_into().unwrap())
        });
        let status = status.filter(|s| *s != 0xdead_beef_u32 as i32);
        CallResult { status, action }
    }

    /// Builds an argument block at `at` and calls RTAS with a raw token and counts.
    pub fn raw_call_at(&mut self, at: u64, token: u32, args: &[u32], nret: u32) -> CallResult {
        self.write_args_block(at, token, args, nret);
        self.enter_rtas(at, args.len(), nret)
    }

    /// Like [`Guest::raw_call_at`], and also proves the call wrote nothing but its status cell:
    /// guest RAM is compared before (after the argument block is in place) and after.
    /// Meant for small bench guests.
    pub fn call_without_side_effects(
        &mut self,
        token: u32,
        args: &[u32],
        nret: u32,
    ) -> Result<CallResult, String> {
        let at = RTAS_ARGS_ADDR;
        self.write_args_block(at, token, args, nret);
        let before = crate::pattern::snapshot(&self.mem);
        let result = self.enter_rtas(at, args.len(), nret);
        let status_cell = at + 12 + 4 * args.len() as u64;
        for ((start, old), (_, new)) in before.iter().zip(crate::pattern::snapshot(&self.mem)) {
            if let Some(i) = old.iter().zip(&new).enumerate().position(|(i, (a, b))| {
                let addr = start + i as u64;
                a != b && !(nret >= 1 && addr >= status_cell && addr < status_cell + 4)
            }) {
                return Err(format!("guest memory changed at {:#x}", start + i as u64));
            }
        }
        Ok(result)
    }

    pub fn raw_call(&mut self, token: u32, args: &[u32], nret: u32) -> CallResult {
        self.raw_call_at(RTAS_ARGS_ADDR, token, args, nret)
    }

    /// Calls RTAS by name, looking the token up in `/rtas`.
    pub fn call(&mut self, call: RtasCall, args: &[u32], nret: u32) -> CallResult {
        let token = self.token(call.name()).expect("token published");
        self.raw_call(token, args, nret)
    }

    /// `ibm,configure-kernel-dump(cmd, addr, len)`, returning the status.
    pub fn configure_kernel_dump(&mut self, cmd: u32, addr: u32, len: u32) -> i32 {
        self.call(RtasCall::IbmConfigureKernelDump, &[cmd, addr, len], 1)
            .status
            .expect("nret = 1")
    }

    /// The machine's side of `ibm,os-term` with a registered dump: stop every vCPU (the caller
    /// is inside RTAS), take their registers, let the firmware dump, reset. Returns the report.
    pub fn machine_handles_crash(&mut self, caller: u32) -> DumpReport {
        self.machine_handles_crash_with(caller, &mut firmware::fadump::CopyPreserver)
    }

    /// [`Guest::machine_handles_crash`] with the boot memory preserved by `preserver` (a VMM
    /// may move pages instead of copying them; [`firmware::fadump::PoisonPreserver`] proves
    /// nothing reads the source afterwards).
    pub fn machine_handles_crash_with(
        &mut self,
        caller: u32,
        preserver: &mut dyn firmware::fadump::Preserver<GuestMemoryMmap>,
    ) -> DumpReport {
        let mut online: Vec<CpuState> = self
            .cpus
            .iter()
            .filter(|c| !self.platform.stopped.contains(&c.id))
            .cloned()
            .collect();
        for c in &mut online {
            if c.id == caller {
                // The caller was stopped inside the RTAS stub.
                c.set(Reg::Nia, RTAS_ENTRY + 0x10);
            }
        }
        let mut hpt = self.hpt.clone();
        let hpt_source: Option<&mut dyn firmware::fadump::HptSource> =
            if hpt.is_empty() { None } else { Some(&mut hpt) };
        self.rtas
            .fadump_mut()
            .perform_dump_with(&self.mem, &mut online, hpt_source, preserver)
            .expect("dump registered")
    }

    /// Marks a vCPU as in the RTAS stopped state (offline).
    pub fn stop_cpu(&mut self, id: u32) {
        self.platform.stopped.insert(id);
    }
}
