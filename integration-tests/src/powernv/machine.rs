//! A powernv machine as the bench needs it: guest RAM (with holes if asked), the OPAL firmware,
//! the threads with their register values, and the machine's part of an MPIPL (stop the
//! threads, let the firmware preserve, reboot without clearing RAM).

use firmware::opal::{
    MpiplConfig, MpiplEngine, Opal, OpalAction, OpalCall, OpalMemory, OpalReturn, OpalToken,
    PreservedDump,
};
use firmware::{CpuState, GuestRange, Property, Reg};
use vm_memory::{GuestAddress, GuestMemoryMmap};

const MIB: u64 = 1 << 20;

/// Base of Linux's linear mapping: the kernel passes some pointers to OPAL as virtual
/// addresses (`__va`), which OPAL's real-address rule accepts.
pub const KERNEL_VA: u64 = 0xc000_0000_0000_0000;

/// What the firmware "loads" into `fw-load-area` on every boot (kernel and initramfs images).
pub const LOAD_FILL: u8 = 0x4b;

pub struct Machine {
    pub mem: GuestMemoryMmap,
    pub opal: Opal,
    /// Every thread, running; `id` is the PIR.
    pub threads: Vec<CpuState>,
    /// Boots so far (1 = power on).
    pub boots: u32,
    /// What the last MPIPL preserved, as the firmware reported it.
    pub last_dump: Option<PreservedDump>,
}

/// Distinct register values for the thread with this PIR: every register the OPAL data carries
/// and every one Linux reads differs between threads.
pub fn thread_registers(pir: u32) -> CpuState {
    crate::linux::distinct_registers(pir, &Reg::OPAL_SAVED)
}

impl Machine {
    /// A machine with RAM `ram` = (start, len) regions and threads with these PIRs. The firmware
    /// keeps its areas in the last 6 MiB of the last region: OPAL's own memory (2 MiB), its
    /// preserved copy (2 MiB), the dump area (2 MiB).
    pub fn new(ram: &[(u64, u64)], pirs: &[u32]) -> Self {
        let regions: Vec<(GuestAddress, usize)> = ram
            .iter()
            .map(|&(s, l)| (GuestAddress(s), l as usize))
            .collect();
        Self::with_memory(
            GuestMemoryMmap::from_ranges(&regions).expect("guest RAM"),
            pirs,
        )
    }

    /// A machine on existing guest RAM (a clone shares the mapping, so several machines in
    /// turn can reuse one patterned RAM).
    pub fn with_memory(mem: GuestMemoryMmap, pirs: &[u32]) -> Self {
        let top = firmware::memory::ram_ranges(&mem)
            .last()
            .map(|r| r.end())
            .expect("some RAM");
        let config = MpiplConfig {
            opal_memory: Some(OpalMemory {
                src: GuestRange::new(top - 6 * MIB, 2 * MIB).unwrap(),
                dest: top - 4 * MIB,
            }),
            dump_area: GuestRange::new(top - 2 * MIB, 2 * MIB).unwrap(),
            max_threads: 64,
            fw_load_area: MpiplConfig::skiboot_fw_load_area(),
        };
        let engine = MpiplEngine::new(config, &mem).expect("valid MPIPL configuration");
        Self {
            mem,
            opal: Opal::new(engine),
            threads: pirs.iter().map(|&p| thread_registers(p)).collect(),
            boots: 0,
            last_dump: None,
        }
    }

    /// Power on: the firmware writes its own state and loads the kernel images (call after
    /// filling RAM with a pattern).
    pub fn power_on(&mut self) {
        self.boot_firmware();
    }

    /// The text OPAL keeps in its own memory during boot `n`.
    pub fn opal_text(n: u32) -> String {
        format!("skiboot-like OPAL state, boot {n}\0")
    }

    fn boot_firmware(&mut self) {
        self.boots += 1;
        if let Some(o) = self.opal.mpipl.config().opal_memory {
            self.write(o.src.start(), Self::opal_text(self.boots).as_bytes());
        }
        // The images it loads: their first MiB is enough to be recognisable.
        for r in self.opal.mpipl.config().fw_load_area.clone() {
            self.fill(
                GuestRange::new(r.start(), r.len().min(MIB)).unwrap(),
                LOAD_FILL,
            );
        }
    }

    pub fn write(&self, addr: u64, bytes: &[u8]) {
        firmware::memory::write_bytes(&self.mem, addr, bytes).expect("bench write inside RAM");
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        firmware::memory::read_bytes(&self.mem, addr, len).expect("bench read inside RAM")
    }

    /// Fills all RAM with a recognisable pattern: every 8-byte word holds its own address XOR
    /// `seed` (little-endian), so a byte copied to or read from the wrong place shows. Cheaper
    /// than a hash per word, which matters for gigabytes in an opt-level-1 test build.
    pub fn fill_pattern(&self, seed: u64) {
        crate::pattern::fill(&self.mem, seed);
    }

    /// Fills `r` (which may span holes: only RAM is written) with `byte`.
    pub fn fill(&self, r: GuestRange, byte: u8) {
        for ram in firmware::memory::ram_ranges(&self.mem) {
            let (s, e) = (r.start().max(ram.start()), r.end().min(ram.end()));
            let mut a = s;
            let chunk = vec![byte; (4 * MIB) as usize];
            while a < e {
                let n = (e - a).min(4 * MIB) as usize;
                self.write(a, &chunk[..n]);
                a += n as u64;
            }
        }
    }

    pub fn ram(&self) -> Vec<GuestRange> {
        firmware::memory::ram_ranges(&self.mem)
    }

    /// The properties of `/ibm,opal/dump` in the device tree of the current boot.
    pub fn dump_node(&self) -> Vec<Property> {
        self.opal.mpipl.dump_node_properties()
    }

    pub fn dump_prop(&self, name: &str) -> Option<Vec<u8>> {
        self.dump_node()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| p.value.to_fdt_bytes())
    }

    /// The root `reserved-ranges` the kernel must avoid.
    pub fn reserved_ranges(&self) -> Vec<GuestRange> {
        self.opal
            .mpipl
            .reserved_ranges()
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    /// One OPAL call from thread `pir`, without the machine acting on the result.
    pub fn raw_call(&mut self, pir: u32, token: u64, args: &[u64]) -> OpalReturn {
        self.opal.call(&self.mem, &OpalCall::new(token, args, pir))
    }

    /// One OPAL call from thread `pir`; the machine carries out any action, except that after
    /// an MPIPL's preservation it waits for [`Machine::boot_after_mpipl`], so a test can look at
    /// memory in between.
    pub fn call(&mut self, pir: u32, token: OpalToken, args: &[u64]) -> OpalReturn {
        let r = self.raw_call(pir, token.number(), args);
        match r.action {
            Some(OpalAction::Mpipl { crashing_pir }) => self.preserve(crashing_pir),
            Some(OpalAction::Reboot) => self.normal_reboot(),
            Some(OpalAction::PowerOff) | None => {}
        }
        r
    }

    /// The machine's half of an MPIPL: every thread is stopped (here they simply stop being
    /// run) and the firmware preserves.
    pub fn preserve(&mut self, crashing_pir: u32) {
        let mut threads = self.threads.clone();
        let dump = self
            .opal
            .mpipl
            .preserve(&self.mem, &mut threads, crashing_pir)
            .clone();
        self.last_dump = Some(dump);
    }

    /// Reset and boot again without clearing RAM; the firmware reloads its images.
    pub fn boot_after_mpipl(&mut self) {
        self.boot_firmware();
    }

    pub fn normal_reboot(&mut self) {
        self.opal.mpipl.normal_boot();
        self.boot_firmware();
    }
}
