//! The pseries fadump bench: a Linux-faithful model of both kernels drives the firmware through
//! whole crash cycles and through every bad input we know of.
//!
//! Run: `cargo test -p integration-tests --test pseries_bench` (prints one line per case).

use firmware::fadump::{
    FadumpState, HptEntry, PoisonPreserver, CMD_INVALIDATE, CMD_REGISTER, CMD_UNREGISTER,
};
use firmware::rtas::{RtasAction, RtasCall};
use firmware::GuestRange;
use firmware::Reg;
use integration_tests::bench::{ensure, Bench, CaseResult};
use integration_tests::linux::pt_regs::PtRegs;
use integration_tests::pattern;
use integration_tests::pseries::capture_kernel::{self, Reject};
use integration_tests::pseries::first_kernel::{
    self, structure_bytes, SectionSpec, FDM_ADDR, TYPE_CPU, TYPE_HPTE, TYPE_PARAM, TYPE_RMR,
};
use integration_tests::pseries::guest::{Guest, RTAS_ENTRY};
use integration_tests::pseries::KernelGen;

const MIB: u64 = 1 << 20;
/// What [`PoisonPreserver`] writes over boot memory after preserving it.
const POISON: u8 = 0xa5;

struct Cycle {
    gen: KernelGen,
    ram: Vec<(u64, u64)>,
    ncpus: u32,
    boot_mem: u64,
    param: Option<u64>,
    crashing_cpu: u32,
    stopped: Vec<u32>,
    hpte_capacity: u64,
    hpt: Vec<HptEntry>,
}

/// How the bench machine preserves boot memory, and for which host huge-page size the
/// firmware pads the advertised CPU state (0: no padding).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Preserve {
    Copy,
    /// Copy, then overwrite every source byte the firmware need not keep.
    Poison {
        dest_alignment: u64,
    },
}

/// Returns the guest after the capture kernel accepted the dump, plus the vmcore.
fn run_cycle(c: &Cycle) -> Result<(Guest, capture_kernel::Vmcore, String), String> {
    run_cycle_with(c, Preserve::Copy)
}

fn run_cycle_with(
    c: &Cycle,
    how: Preserve,
) -> Result<(Guest, capture_kernel::Vmcore, String), String> {
    let mut g = Guest::new(&c.ram, c.ncpus, c.hpte_capacity);
    if let Preserve::Poison { dest_alignment } = how {
        g.rtas.fadump_mut().set_dest_alignment(dest_alignment);
    }
    g.hpt = c.hpt.clone();
    pattern::fill(&g.mem, 0x5eed_0000 ^ c.ncpus as u64);
    for s in &c.stopped {
        g.stop_cpu(*s);
    }
    let reg = first_kernel::register(&mut g, c.gen, c.boot_mem, c.param)?;
    ensure(reg.status == 0, || {
        format!("REGISTER returned {}", reg.status)
    })?;
    ensure(g.rtas.fadump().is_registered(), || {
        "firmware not registered".into()
    })?;
    ensure(!reg.boot_regions.is_empty(), || "no boot regions".into())?;
    // What the VMM would pre-fault: exactly the destinations the kernel chose (minus in-place).
    let mut pre = g.rtas.fadump().registered_destinations();
    pre.sort_by_key(|r| r.start());
    let mut want: Vec<(u64, u64)> = reg
        .sections
        .iter()
        .filter(|s| s.len > 0 && s.source != s.dest)
        .map(|s| (s.dest, s.len))
        .collect();
    want.sort();
    let got: Vec<(u64, u64)> = pre.iter().map(|r| (r.start(), r.len())).collect();
    ensure(got == want, || {
        format!("destinations {got:x?}, want {want:x?}")
    })?;

    // The guest keeps running after registration: dirty some boot memory and high memory.
    g.write(0x12_3400, b"written after REGISTER, before the crash");
    let high = c.ram.last().map(|(s, l)| s + l - 0x10_0000).unwrap();
    g.write(high, b"high memory stays in place");

    let online: Vec<u32> = (0..c.ncpus).filter(|i| !c.stopped.contains(i)).collect();
    let mut kernel_regs = PtRegs::from_cpu(&g.cpus[c.crashing_cpu as usize]);
    kernel_regs.nip = 0xc000_0000_00a1_b2c0; // sysrq_handle_crash, as ppc_save_regs saw it
    first_kernel::prepare_crash(&mut g, &reg, c.crashing_cpu, &kernel_regs, &online);
    first_kernel::os_term_args(&g);
    // Memory at the instant the crashing CPU enters RTAS.
    let before = pattern::snapshot(&g.mem);

    let r = first_kernel::os_term_enter(&mut g);
    let RtasAction::FadumpCrash { message, .. } = &r.action else {
        return Err(format!("os-term gave {:?}", r.action));
    };
    ensure(r.status.is_none(), || {
        "os-term must not return a status when it dumps".into()
    })?;
    ensure(message == "OS panic: sysrq triggered crash", || {
        format!("message {message:?}")
    })?;
    let mut poison = PoisonPreserver::new(POISON);
    let report = match how {
        Preserve::Copy => g.machine_handles_crash(c.crashing_cpu),
        Preserve::Poison { .. } => g.machine_handles_crash_with(c.crashing_cpu, &mut poison),
    };
    ensure(!report.has_errors(), || {
        format!("dump errors: {:?}", report.sections)
    })?;
    // Boot memory the poisoner may overwrite: every moved source but the in-place sections.
    let in_place: Vec<GuestRange> = reg
        .sections
        .iter()
        .filter(|s| s.source == s.dest)
        .filter_map(|s| GuestRange::new(s.source, s.len))
        .collect();
    let poisonable: Vec<(u64, u64)> = match how {
        Preserve::Copy => Vec::new(),
        Preserve::Poison { .. } => reg
            .sections
            .iter()
            .filter(|s| s.data_type == TYPE_RMR)
            .filter_map(|s| GuestRange::new(s.source, s.len))
            .flat_map(|r| r.subtract(&in_place))
            .map(|r| (r.start(), r.end()))
            .collect(),
    };
    ensure(
        how == Preserve::Copy
            || poison.poisoned == poisonable.iter().map(|(s, e)| e - s).sum::<u64>(),
        || format!("{} bytes poisoned", poison.poisoned),
    )?;
    ensure(report.status == 0xc000, || {
        format!("status {:#x}", report.status)
    })?;

    // PAPR R1-6: the firmware wrote nothing but the section destinations.
    let dests: Vec<(u64, u64)> = reg
        .sections
        .iter()
        .map(|s| (s.dest, s.dest + s.len))
        .collect();
    for ((start, old), (_, new)) in before.iter().zip(pattern::snapshot(&g.mem)) {
        for (i, (a, b)) in old.iter().zip(&new).enumerate() {
            let addr = start + i as u64;
            let allowed = dests.iter().chain(&poisonable);
            if a != b && !allowed.clone().any(|(d, e)| addr >= *d && addr < *e) {
                return Err(format!("firmware wrote outside destinations at {addr:#x}"));
            }
        }
    }

    // The reboot: the next kernel sees ibm,kernel-dump and accepts the dump.
    let vm = capture_kernel::process(&g, c.gen).map_err(|e| format!("capture kernel: {e:?}"))?;

    // Every byte of the crashed kernel's memory the vmcore exports equals memory at the crash.
    let mut checked = 0u64;
    for (start, old) in &before {
        let end = start + old.len() as u64;
        for l in vm
            .loads
            .iter()
            .filter(|l| l.paddr >= *start && l.paddr + l.size <= end)
        {
            let mut off = 0;
            while off < l.size {
                let n = (l.size - off).min(4 * MIB) as usize;
                let got = vm.read_phys(&g, l.paddr + off, n).ok_or("unmapped")?;
                let lo = (l.paddr + off - start) as usize;
                if got[..] != old[lo..lo + n] {
                    return Err(format!("vmcore differs in [{:#x}, +{n:#x})", l.paddr + off));
                }
                off += n as u64;
                checked += n as u64;
            }
        }
    }
    // ... and it covers all boot memory and all RAM above boot_mem_top but the reserved area.
    let ram_total: u64 = c.ram.iter().map(|(_, l)| l).sum();
    let holes_below_top: u64 = ram_total
        - c.ram
            .iter()
            .map(|(s, l)| (s + l).min(vm.boot_mem_top).saturating_sub(*s))
            .sum::<u64>()
        - c.ram
            .iter()
            .map(|(s, l)| (s + l).saturating_sub((*s).max(vm.boot_mem_top)))
            .sum::<u64>();
    ensure(holes_below_top == 0, || "bad arithmetic".into())?;
    let expected = c.boot_mem + (ram_total - c.boot_mem)
        - (vm.reserve.1 - vm.reserve.0)
        - below_top_not_boot(&c.ram, vm.boot_mem_top, c.boot_mem);
    ensure(checked == expected, || {
        format!("vmcore covers {checked:#x} bytes, want {expected:#x}")
    })?;

    // One PRSTATUS per online CPU; the crashing one carries the kernel's saved registers, the
    // others exactly what the vCPU held when the machine stopped it.
    ensure(vm.prstatus.len() == online.len(), || {
        format!("{} notes", vm.prstatus.len())
    })?;
    for note in &vm.prstatus {
        let want = if note.cpu == c.crashing_cpu {
            kernel_regs
        } else {
            PtRegs::from_cpu(&g.cpus[note.cpu as usize])
        };
        ensure(note.regs == want, || {
            format!("cpu {} registers differ", note.cpu)
        })?;
    }
    // Every saved register, not only those Linux keeps, for every CPU the firmware saved.
    ensure(vm.raw_registers.len() == online.len(), || {
        "RSA cpu count".into()
    })?;
    for (regs, id) in vm.raw_registers.iter().zip(&online) {
        let cpu = &g.cpus[*id as usize];
        for r in Reg::PAPR_SAVED {
            let want = if r == Reg::Nia && *id == c.crashing_cpu {
                RTAS_ENTRY + 0x10
            } else {
                cpu.get(r)
            };
            ensure(regs.get(r.papr_name()) == Some(&want), || {
                format!("cpu {id} {} = {:?}", r.papr_name(), regs.get(r.papr_name()))
            })?;
        }
        for n in 0..32 {
            ensure(regs.get(&format!("GPR{n:02}")) == Some(&cpu.gpr[n]), || {
                format!("cpu {id} GPR{n:02}")
            })?;
        }
    }
    if c.gen == KernelGen::V6_12 {
        ensure(vm.vmcoreinfo == first_kernel::vmcoreinfo_blob(), || {
            "vmcoreinfo".into()
        })?;
    }
    if c.param.is_some() {
        ensure(
            vm.bootargs_append.as_deref() == Some("nr_cpus=1 fadump_extra=bench"),
            || format!("bootargs {:?}", vm.bootargs_append),
        )?;
    }

    let detail = format!(
        "{} sections, {} boot regions, {} CPUs saved, {} MiB checked",
        reg.sections.len(),
        reg.boot_regions.len(),
        report.cpus_saved,
        checked / MIB
    );
    // Release and re-register, as the kdump service does.
    let s = capture_kernel::release(&mut g, c.gen);
    ensure(s == 0, || format!("INVALIDATE returned {s}"))?;
    ensure(g.rtas_prop("ibm,kernel-dump").is_none(), || {
        "kernel-dump still presented".into()
    })?;
    let again = first_kernel::register(&mut g, c.gen, c.boot_mem, c.param)?;
    ensure(again.status == 0, || {
        format!("re-REGISTER returned {}", again.status)
    })?;
    ensure(again.reserve_start == reg.reserve_start, || {
        "reserve area moved".into()
    })?;
    Ok((g, vm, detail))
}

/// RAM below boot_mem_top that is not boot memory (none with Linux's layouts).
fn below_top_not_boot(ram: &[(u64, u64)], top: u64, boot: u64) -> u64 {
    ram.iter()
        .map(|(s, l)| (s + l).min(top).saturating_sub(*s))
        .sum::<u64>()
        - boot
}

fn scenarios(b: &mut Bench) {
    b.case("linux-6.1: 3 sections, FADMPINF, 4 vCPUs, 384 MiB", || {
        let c = Cycle {
            gen: KernelGen::V6_1,
            ram: vec![(0, 384 * MIB)],
            ncpus: 4,
            boot_mem: 128 * MIB,
            param: None,
            crashing_cpu: 2,
            stopped: vec![],
            hpte_capacity: 0,
            hpt: vec![],
        };
        run_cycle(&c).map(|r| r.2)
    });
    b.case(
        "linux-6.12: 3 boot regions across holes + param area, 4 vCPUs",
        || {
            let c = Cycle {
                gen: KernelGen::V6_12,
                ram: vec![(0, 64 * MIB), (96 * MIB, 96 * MIB), (256 * MIB, 256 * MIB)],
                ncpus: 4,
                boot_mem: 192 * MIB,
                param: Some(512 * MIB - 0x800),
                crashing_cpu: 1,
                stopped: vec![],
                hpte_capacity: 0,
                hpt: vec![],
            };
            let (_, vm, d) = run_cycle(&c)?;
            ensure(vm.sections.len() == 6, || {
                format!("{} sections", vm.sections.len())
            })?;
            Ok(d)
        },
    );
    b.case(
        "linux-6.12: hash guest, HPTE section holds the guest's HPT",
        || {
            let hpt: Vec<HptEntry> = (0..300u64)
                .map(|i| HptEntry {
                    index: i * 13,
                    dword0: 0x4000_0000_0000_0001 | i << 12,
                    dword1: (0x1_0000 * i) | 0x190,
                })
                .collect();
            let c = Cycle {
                gen: KernelGen::V6_12,
                ram: vec![(0, 320 * MIB)],
                ncpus: 2,
                boot_mem: 96 * MIB,
                param: Some(300 * MIB),
                crashing_cpu: 0,
                stopped: vec![],
                hpte_capacity: 4096,
                hpt: hpt.clone(),
            };
            let (g, vm, d) = run_cycle(&c)?;
            let s = vm
                .sections
                .iter()
                .find(|s| s.data_type == TYPE_HPTE)
                .unwrap();
            ensure(s.len == 0x20 + 4096 * 24 && s.bytes_dumped == s.len, || {
                format!("{s:?}")
            })?;
            let area = g.read(s.dest, s.len as usize);
            ensure(&area[..8] == b"HPTESAVE", || "magic".into())?;
            let n = u64::from_be_bytes(area[0x18..0x20].try_into().unwrap());
            ensure(n == hpt.len() as u64, || format!("{n} entries"))?;
            for (i, e) in hpt.iter().enumerate() {
                let o = 0x20 + 24 * i;
                let got: Vec<u64> = (0..3)
                    .map(|k| u64::from_be_bytes(area[o + 8 * k..o + 8 * k + 8].try_into().unwrap()))
                    .collect();
                ensure(got == [e.index, e.dword0, e.dword1], || {
                    format!("entry {i}")
                })?;
            }
            Ok(format!("{d}, {n} HPTEs"))
        },
    );
    b.case(
        "linux-6.12: one vCPU offline (stop-self) is not saved",
        || {
            let c = Cycle {
                gen: KernelGen::V6_12,
                ram: vec![(0, 256 * MIB)],
                ncpus: 4,
                boot_mem: 64 * MIB,
                param: None,
                crashing_cpu: 3,
                stopped: vec![2],
                hpte_capacity: 0,
                hpt: vec![],
            };
            let (_, vm, d) = run_cycle(&c)?;
            ensure(vm.prstatus.iter().all(|n| n.cpu != 2), || {
                "offline CPU saved".into()
            })?;
            Ok(d)
        },
    );
    b.case(
        "second crash inside the capture kernel: no second dump",
        || {
            let c = small_cycle();
            let (mut g, _, _) = run_cycle_until_captured(&c)?;
            let first = g.rtas_prop("ibm,kernel-dump").ok_or("no dump")?;
            let r = first_kernel::os_term(&mut g);
            ensure(matches!(r.action, RtasAction::OsTerm { .. }), || {
                format!("{:?}", r.action)
            })?;
            ensure(r.status == Some(0), || format!("status {:?}", r.status))?;
            let s = first_kernel::register(&mut g, KernelGen::V6_12, 64 * MIB, None)?.status;
            ensure(s == -10, || format!("REGISTER during dump gave {s}"))?;
            g.rtas.fadump_mut().on_partition_reset();
            ensure(g.rtas_prop("ibm,kernel-dump") == Some(first), || {
                "first dump changed".into()
            })?;
            Ok("os-term returns 0, REGISTER -10, dump survives reboot".into())
        },
    );
    // Zero-copy preservation: the firmware pads the advertised CPU state so Linux's boot-memory
    // destinations land on a 2 MiB boundary, and the source is poisoned after the dump: the
    // capture side (vmcore, vmcoreinfo, the in-place parameter area) must read only what was
    // preserved or kept.
    for (name, c) in [
        (
            "linux-6.12 poisoned: boot regions across holes + param area, 2 MiB-aligned destinations",
            Cycle {
                gen: KernelGen::V6_12,
                ram: vec![(0, 64 * MIB), (96 * MIB, 96 * MIB), (256 * MIB, 256 * MIB)],
                ncpus: 4,
                boot_mem: 192 * MIB,
                param: Some(512 * MIB - 0x800),
                crashing_cpu: 1,
                stopped: vec![],
                hpte_capacity: 0,
                hpt: vec![],
            },
        ),
        (
            "linux-6.12 poisoned: param area inside boot memory (hash layout) stays in place",
            Cycle {
                gen: KernelGen::V6_12,
                ram: vec![(0, 320 * MIB)],
                ncpus: 2,
                boot_mem: 96 * MIB,
                param: Some(40 * MIB),
                crashing_cpu: 0,
                stopped: vec![],
                hpte_capacity: 4096,
                hpt: vec![],
            },
        ),
        (
            "linux-6.1 poisoned: 3 sections, 2 MiB-aligned destination",
            Cycle {
                gen: KernelGen::V6_1,
                ram: vec![(0, 384 * MIB)],
                ncpus: 4,
                boot_mem: 128 * MIB,
                param: None,
                crashing_cpu: 2,
                stopped: vec![],
                hpte_capacity: 0,
                hpt: vec![],
            },
        ),
    ] {
        b.case(name, move || {
            const G: u64 = 2 * MIB;
            let (_, vm, d) = run_cycle_with(&c, Preserve::Poison { dest_alignment: G })?;
            let rmr: Vec<_> = vm.sections.iter().filter(|s| s.data_type == TYPE_RMR).collect();
            ensure(!rmr.is_empty(), || "no boot-memory section".into())?;
            for s in rmr {
                ensure(s.dest % G == 0, || {
                    format!("boot memory {:#x} lands at {:#x}, not 2 MiB-aligned", s.source, s.dest)
                })?;
            }
            let cpu = vm.sections.iter().find(|s| s.data_type == TYPE_CPU).unwrap();
            let hpte = vm.sections.iter().find(|s| s.data_type == TYPE_HPTE).unwrap();
            // Both areas need less than G here: the padding rounds them up to exactly G.
            ensure(cpu.len + hpte.len == G, || {
                format!("cpu {:#x} + hpte {:#x}", cpu.len, hpte.len)
            })?;
            Ok(format!("{d}, source poisoned"))
        });
    }
    b.case("guest that never registered crashes: plain os-term", || {
        let mut g = Guest::new(&[(0, 64 * MIB)], 2, 0);
        g.write(first_kernel::OS_TERM_MSG_ADDR, b"OS panic: no fadump\0");
        let r = first_kernel::os_term(&mut g);
        ensure(r.status == Some(0), || format!("{:?}", r.status))?;
        ensure(
            r.action
                == RtasAction::OsTerm {
                    message: "OS panic: no fadump".into(),
                },
            || format!("{:?}", r.action),
        )?;
        ensure(g.rtas_prop("ibm,kernel-dump").is_none(), || {
            "dump appeared".into()
        })?;
        Ok("status 0, no dump".into())
    });
    b.case(
        "registration is a private copy: later guest writes ignored",
        || {
            let c = small_cycle();
            let mut g = Guest::new(&c.ram, c.ncpus, 0);
            let reg = first_kernel::register(&mut g, c.gen, c.boot_mem, None)?;
            ensure(reg.status == 0, || "register".into())?;
            g.write(FDM_ADDR, &[0xff; 200]);
            let online: Vec<u32> = (0..c.ncpus).collect();
            first_kernel::prepare_crash(&mut g, &reg, 0, &PtRegs::default(), &online);
            first_kernel::os_term(&mut g);
            let report = g.machine_handles_crash(0);
            ensure(!report.has_errors(), || "errors".into())?;
            capture_kernel::process(&g, c.gen).map_err(|e| format!("{e:?}"))?;
            Ok("dump follows the registered copy".into())
        },
    );
    b.case(
        "system-reboot drops a registration, keeps an active dump",
        || {
            let c = small_cycle();
            let mut g = Guest::new(&c.ram, c.ncpus, 0);
            first_kernel::register(&mut g, c.gen, c.boot_mem, None)?;
            g.rtas.fadump_mut().on_partition_reset();
            ensure(!g.rtas.fadump().is_registered(), || {
                "still registered".into()
            })?;
            let s = first_kernel::register(&mut g, c.gen, c.boot_mem, None)?.status;
            ensure(s == 0, || format!("next kernel's REGISTER gave {s}"))?;
            Ok("next kernel registers with 0, not -9".into())
        },
    );
    b.case(
        "engine state survives serde round trip (VMM restart)",
        || {
            let c = small_cycle();
            let (g, _, _) = run_cycle_until_captured(&c)?;
            let state = g.rtas.fadump().state().clone();
            let json = serde_json::to_string(&state).map_err(|e| e.to_string())?;
            let back: FadumpState = serde_json::from_str(&json).map_err(|e| e.to_string())?;
            ensure(back == state, || "state differs".into())?;
            let restored =
                firmware::fadump::Fadump::restore(g.rtas.fadump().config().clone(), back)
                    .map_err(|e| e.to_string())?;
            ensure(
                restored.kernel_dump_property() == g.rtas.fadump().kernel_dump_property(),
                || "ibm,kernel-dump differs".into(),
            )?;
            Ok(format!("{} bytes of JSON", json.len()))
        },
    );
    b.case(
        "memory lost between REGISTER and crash: section flagged, rest dumped",
        || {
            // Register on a 96 MiB partition, then dump on one whose top 32 MiB are gone (e.g.
            // hot-unplugged): the boot memory destination is no longer RAM.
            let c = small_cycle();
            let mut big = Guest::new(&[(0, 96 * MIB)], c.ncpus, 0);
            let reg = first_kernel::register(&mut big, KernelGen::V6_12, 32 * MIB, None)?;
            ensure(reg.status == 0, || "register".into())?;
            let state = big.rtas.fadump().state().clone();
            let mut small = Guest::new(&[(0, 64 * MIB)], c.ncpus, 0);
            *small.rtas.fadump_mut() =
                firmware::fadump::Fadump::restore(big.rtas.fadump().config().clone(), state)
                    .map_err(|e| e.to_string())?;
            let report = small.machine_handles_crash(0);
            ensure(report.status == 0xe000, || {
                format!("status {:#x}", report.status)
            })?;
            let rmr = report
                .sections
                .iter()
                .find(|s| s.data_type.0 == TYPE_RMR)
                .unwrap();
            ensure(rmr.error_flags == 0x1000 && rmr.bytes_dumped == 0, || {
                format!("{rmr:?}")
            })?;
            let cpu = report
                .sections
                .iter()
                .find(|s| s.data_type.0 == TYPE_CPU)
                .unwrap();
            ensure(cpu.error_flags == 0 && cpu.bytes_dumped > 0, || {
                format!("{cpu:?}")
            })?;
            // Both Linux generations reject it, and INVALIDATE clears it.
            let r = capture_kernel::process(&small, KernelGen::V6_12);
            ensure(matches!(r, Err(Reject::DumpError(_))), || {
                format!("{:?}", r.err())
            })?;
            ensure(
                capture_kernel::release(&mut small, KernelGen::V6_12) == 0,
                || "invalidate".into(),
            )?;
            Ok("RMR error 0x1000, status 0xe000, CPU still saved, Linux rejects".into())
        },
    );
    b.case(
        "os-term with an unreadable message pointer still dumps",
        || {
            let c = small_cycle();
            let mut g = Guest::new(&c.ram, c.ncpus, 0);
            let reg = first_kernel::register(&mut g, c.gen, c.boot_mem, None)?;
            ensure(reg.status == 0, || "register".into())?;
            let r = g.call(RtasCall::IbmOsTerm, &[0xffff_fff0], 1);
            ensure(matches!(r.action, RtasAction::FadumpCrash { .. }), || {
                format!("{:?}", r.action)
            })?;
            Ok("FadumpCrash".into())
        },
    );
}

fn small_cycle() -> Cycle {
    Cycle {
        gen: KernelGen::V6_12,
        ram: vec![(0, 256 * MIB)],
        ncpus: 2,
        boot_mem: 64 * MIB,
        param: None,
        crashing_cpu: 0,
        stopped: vec![],
        hpte_capacity: 0,
        hpt: vec![],
    }
}

/// A crash cycle stopped right after the capture kernel accepted the dump (no release).
fn run_cycle_until_captured(c: &Cycle) -> Result<(Guest, capture_kernel::Vmcore, String), String> {
    let mut g = Guest::new(&c.ram, c.ncpus, c.hpte_capacity);
    let reg = first_kernel::register(&mut g, c.gen, c.boot_mem, c.param)?;
    ensure(reg.status == 0, || "register".into())?;
    let online: Vec<u32> = (0..c.ncpus).collect();
    first_kernel::prepare_crash(&mut g, &reg, c.crashing_cpu, &PtRegs::default(), &online);
    first_kernel::os_term(&mut g);
    g.machine_handles_crash(c.crashing_cpu);
    let vm = capture_kernel::process(&g, c.gen).map_err(|e| format!("{e:?}"))?;
    Ok((g, vm, String::new()))
}

// ------------------------------------------------------------------------------------------
// Bad inputs (spec section 7): each asserts the exact status and that guest memory outside the
// status cell is unchanged.

/// A 16 MiB partition with a hole at [8, 12) MiB; RMA = 8 MiB; RTAS firmware at RTAS_ENTRY is
/// outside it, so firmware memory is modelled by a reserved range inside RAM below.
fn bad_guest() -> Guest {
    Guest::new(&[(0, 8 * MIB), (12 * MIB, 4 * MIB)], 2, 0)
}

/// A valid 6.12-style structure for `bad_guest`.
fn good_sections(g: &Guest) -> Vec<SectionSpec> {
    let (cpu, _) = first_kernel::read_sizes(g);
    vec![
        SectionSpec {
            data_type: TYPE_CPU,
            source: 0,
            len: cpu,
            dest: 4 * MIB,
        },
        SectionSpec {
            data_type: TYPE_HPTE,
            source: 0,
            len: 0,
            dest: 4 * MIB + cpu,
        },
        SectionSpec {
            data_type: TYPE_RMR,
            source: 0,
            len: MIB,
            dest: 5 * MIB,
        },
        SectionSpec {
            data_type: TYPE_PARAM,
            source: 7 * MIB,
            len: 2048,
            dest: 7 * MIB,
        },
    ]
}

fn token(g: &Guest) -> u32 {
    g.token("ibm,configure-kernel-dump").unwrap()
}

/// Writes `bytes` as the structure and calls `ibm,configure-kernel-dump(cmd, FDM_ADDR, len)`.
fn register_bytes(g: &mut Guest, bytes: &[u8], len: u32) -> Result<Option<i32>, String> {
    g.write(FDM_ADDR, bytes);
    let t = token(g);
    Ok(
        g.call_without_side_effects(t, &[CMD_REGISTER, FDM_ADDR as u32, len], 1)?
            .status,
    )
}

fn expect_status(got: Option<i32>, want: i32) -> CaseResult {
    ensure(got == Some(want), || format!("status {got:?}, want {want}"))?;
    Ok(format!("-> {want}"))
}

/// A case that edits a valid structure (bytes) and expects REGISTER to give `want`.
fn bad_structure(
    b: &mut Bench,
    name: &str,
    want: i32,
    edit: impl FnOnce(&Guest, &mut Vec<SectionSpec>, &mut Vec<u8>) -> u32,
) {
    b.case(name, || {
        let mut g = bad_guest();
        let mut secs = good_sections(&g);
        let mut probe = Vec::new();
        let len = edit(&g, &mut secs, &mut probe);
        let mut bytes = structure_bytes(&secs);
        if !probe.is_empty() {
            bytes = probe;
        }
        let r = expect_status(register_bytes(&mut g, &bytes, len)?, want)?;
        ensure(!g.rtas.fadump().is_registered() || want == 0, || {
            "registered anyway".into()
        })?;
        Ok(r)
    });
}

fn header_edit(secs: &[SectionSpec], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = structure_bytes(secs);
    f(&mut b);
    b
}

/// A platform for calls that must be refused before they ask it anything.
struct NoCpus;

impl firmware::rtas::Platform for NoCpus {
    fn time_of_day(&self) -> firmware::rtas::TimeOfDay {
        Default::default()
    }
    fn cpu_run_state(&self, _: u32) -> Option<firmware::rtas::CpuRunState> {
        None
    }
}

fn bad_inputs(b: &mut Bench) {
    let exact = |s: &Vec<SectionSpec>| 40 + 40 * s.len() as u32;
    // Positive control: the base structure registers, so every refusal below is caused by
    // the one thing each case changes.
    bad_structure(
        b,
        "control: the unmodified structure registers",
        0,
        |_, s, _| exact(s),
    );

    b.case("#1 nargs != 3", || {
        let mut g = bad_guest();
        let t = token(&g);
        expect_status(
            g.call_without_side_effects(t, &[1, FDM_ADDR as u32], 1)?
                .status,
            -3,
        )
    });
    b.case("#1 nret != 1", || {
        let mut g = bad_guest();
        let t = token(&g);
        let r = g.call_without_side_effects(t, &[1, FDM_ADDR as u32, 160], 2)?;
        expect_status(r.status, -3)
    });
    b.case("#1 nret = 0: nothing written at all", || {
        let mut g = bad_guest();
        let t = token(&g);
        let r = g.call_without_side_effects(t, &[1, FDM_ADDR as u32, 160, 0], 0)?;
        ensure(r.status.is_none(), || "wrote a status".into())?;
        Ok("no status written".into())
    });
    for cmd in [0u32, 4, 0xffff_ffff] {
        b.case(&format!("#2 unknown command {cmd:#x}"), || {
            let mut g = bad_guest();
            let t = token(&g);
            expect_status(
                g.call_without_side_effects(t, &[cmd, FDM_ADDR as u32, 160], 1)?
                    .status,
                -3,
            )
        });
    }
    let addr_cases: [(&str, u32, u32); 5] = [
        ("#3 buffer address 0", 0, 160),
        ("#3 buffer beyond RAM", 0xff00_0000, 160),
        ("#3 buffer in the RAM hole", (9 * MIB) as u32, 160),
        ("#3 buffer in RAM but above the RMA", (13 * MIB) as u32, 160),
        ("#3 addr + len wraps 32 bits", 0xffff_ff80, 0x100),
    ];
    for (name, addr, len) in addr_cases {
        b.case(name, || {
            let mut g = bad_guest();
            let t = token(&g);
            expect_status(
                g.call_without_side_effects(t, &[CMD_REGISTER, addr, len], 1)?
                    .status,
                -3,
            )
        });
    }
    bad_structure(b, "#4 len < 40", -3, |_, _, _| 39);
    bad_structure(b, "#4 len > 512", -3, |_, _, _| 513);
    bad_structure(b, "#4 len < offset + 40 * n", -3, |_, s, _| exact(s) - 1);
    bad_structure(b, "#5 format version 2", -3, |_, s, p| {
        *p = header_edit(s, |b| b[3] = 2);
        exact(s)
    });
    bad_structure(b, "#6 zero sections", -3, |_, s, p| {
        *p = header_edit(s, |b| b[4..6].copy_from_slice(&0u16.to_be_bytes()));
        exact(s)
    });
    bad_structure(b, "#6 eleven sections", -3, |_, s, p| {
        *p = header_edit(s, |b| {
            b[4..6].copy_from_slice(&11u16.to_be_bytes());
            b.resize(0x28 + 11 * 0x28, 0);
        });
        0x28 + 11 * 0x28
    });
    bad_structure(b, "#7 first section offset below 40", -3, |_, s, p| {
        *p = header_edit(s, |b| b[8..12].copy_from_slice(&0x20u32.to_be_bytes()));
        exact(s)
    });
    bad_structure(
        b,
        "#7 first section offset puts sections past len",
        -3,
        |_, s, p| {
            *p = header_edit(s, |b| b[8..12].copy_from_slice(&0x30u32.to_be_bytes()));
            exact(s)
        },
    );
    bad_structure(b, "#7 first section offset near u32::MAX", -3, |_, s, p| {
        *p = header_edit(s, |b| {
            b[8..12].copy_from_slice(&0xffff_fff0u32.to_be_bytes())
        });
        exact(s)
    });
    bad_structure(b, "#8 request flag without the copy bit", -3, |_, s, p| {
        *p = header_edit(s, |b| b[0x28 + 0x28 * 2 + 3] = 0);
        exact(s)
    });
    bad_structure(b, "#8 disk dump: dd_block_size set", -3, |_, s, p| {
        *p = header_edit(s, |b| b[0x0f] = 1);
        exact(s)
    });
    bad_structure(b, "#8 disk dump: disk path offset set", -3, |_, s, p| {
        *p = header_edit(s, |b| b[0x23] = 0x40);
        exact(s)
    });
    for t in [0x0000u16, 0x0003, 0x0010, 0x0013, 0x00ff] {
        bad_structure(
            b,
            &format!("#9 reserved section type {t:#06x}"),
            -3,
            |_, s, _| {
                s[2].data_type = t;
                exact(s)
            },
        );
    }
    bad_structure(
        b,
        "#9 PAPR type 0x0012 with a destination outside RAM (fuzz find)",
        -3,
        |_, s, _| {
            s[1].data_type = 0x0012;
            s[1].len = 0x62_0000_0000;
            exact(s)
        },
    );
    b.case(
        "PAPR type 0x0012 accepted, flagged 0x8000 at dump, rest dumped",
        || {
            let mut g = bad_guest();
            let mut s = good_sections(&g);
            s.push(SectionSpec {
                data_type: 0x0012,
                source: 0,
                len: 0x100,
                dest: 6 * MIB,
            });
            let bytes = structure_bytes(&s);
            expect_status(register_bytes(&mut g, &bytes, 240)?, 0)?;
            first_kernel::os_term(&mut g);
            let r = g.machine_handles_crash(0);
            let flags: Vec<u16> = r.sections.iter().map(|x| x.error_flags).collect();
            ensure(flags == [0, 0, 0, 0, 0x8000], || format!("{flags:x?}"))?;
            ensure(r.status == 0xe000, || format!("status {:#x}", r.status))?;
            Ok("flags [0,0,0,0,0x8000], status 0xe000".into())
        },
    );
    bad_structure(b, "#10 two CPU state sections", -3, |_, s, _| {
        let mut extra = s[0];
        extra.dest = 6 * MIB;
        s.push(extra);
        exact(s)
    });
    bad_structure(b, "#10 two HPTE sections", -3, |_, s, _| {
        s.push(s[1]);
        exact(s)
    });
    bad_structure(
        b,
        "#10 CPU section smaller than advertised",
        -3,
        |_, s, _| {
            s[0].len -= 16;
            exact(s)
        },
    );
    bad_structure(b, "#11 copy section of length 0", -3, |_, s, _| {
        s[2].len = 0;
        exact(s)
    });
    bad_structure(b, "#11 source + length overflows 64 bits", -3, |_, s, _| {
        s[2].source = u64::MAX - 0x100;
        exact(s)
    });
    bad_structure(
        b,
        "#11 destination + length overflows 64 bits",
        -3,
        |_, s, _| {
            s[2].dest = u64::MAX - 0x100;
            exact(s)
        },
    );
    bad_structure(b, "#11 source beyond RAM", -3, |_, s, _| {
        s[2].source = 64 * MIB;
        exact(s)
    });
    bad_structure(b, "#11 CPU destination beyond RAM", -3, |_, s, _| {
        s[0].dest = 16 * MIB - 0x100;
        exact(s)
    });
    bad_structure(
        b,
        "#12 boot memory source crosses the hole",
        -3,
        |_, s, _| {
            s[2].source = 7 * MIB;
            s[2].len = 2 * MIB;
            s[2].dest = 12 * MIB;
            s[3].source = 14 * MIB;
            s[3].dest = 14 * MIB;
            exact(s)
        },
    );
    bad_structure(b, "#12 destination crosses the hole", -3, |_, s, _| {
        s[2].dest = 7 * MIB + MIB / 2;
        exact(s)
    });
    bad_structure(b, "#13 destinations overlap", -3, |_, s, _| {
        s[2].dest = 4 * MIB + 0x100;
        exact(s)
    });
    bad_structure(
        b,
        "#13 destination overlaps a copy source",
        -3,
        |_, s, _| {
            s[0].dest = MIB / 2;
            s[1].dest = MIB / 2 + s[0].len;
            exact(s)
        },
    );
    bad_structure(
        b,
        "#13 destination overlaps the parameter area",
        -3,
        |_, s, _| {
            s[2].dest = 7 * MIB - MIB / 2;
            exact(s)
        },
    );
    b.case("#13 destination overlaps firmware memory", || {
        let mut g = Guest::new(&[(0, 256 * MIB)], 2, 0);
        let mut s = good_sections(&g);
        s[2].dest = RTAS_ENTRY - 0x1000;
        s[2].len = 0x2000;
        let bytes = structure_bytes(&s);
        expect_status(register_bytes(&mut g, &bytes, 200)?, -3)
    });
    bad_structure(
        b,
        "#13 (allowed) parameter area inside boot memory",
        0,
        |_, s, _| {
            s[3].source = MIB / 2;
            s[3].dest = MIB / 2;
            exact(s)
        },
    );
    b.case("#14 REGISTER while registered -> -9", || {
        let mut g = bad_guest();
        let s = good_sections(&g);
        let bytes = structure_bytes(&s);
        expect_status(register_bytes(&mut g, &bytes, 200)?, 0)?;
        expect_status(register_bytes(&mut g, &bytes, 200)?, -9)
    });
    b.case(
        "#15 REGISTER and UNREGISTER while a dump is active -> -10",
        || {
            let mut g = bad_guest();
            let s = good_sections(&g);
            let bytes = structure_bytes(&s);
            expect_status(register_bytes(&mut g, &bytes, 200)?, 0)?;
            first_kernel::os_term(&mut g);
            g.machine_handles_crash(0);
            expect_status(register_bytes(&mut g, &bytes, 200)?, -10)?;
            let t = token(&g);
            let r = g.call_without_side_effects(t, &[CMD_UNREGISTER, FDM_ADDR as u32, 440], 1)?;
            expect_status(r.status, -10)
        },
    );
    b.case("#16 INVALIDATE with no dump active -> -3", || {
        let mut g = bad_guest();
        let t = token(&g);
        let r = g.call_without_side_effects(t, &[CMD_INVALIDATE, 0, 0], 1)?;
        expect_status(r.status, -3)?;
        let bytes = structure_bytes(&good_sections(&g));
        expect_status(register_bytes(&mut g, &bytes, 200)?, 0)?;
        let r = g.call_without_side_effects(t, &[CMD_INVALIDATE, 0, 0], 1)?;
        expect_status(r.status, -3)?;
        ensure(g.rtas.fadump().is_registered(), || {
            "registration lost".into()
        })?;
        Ok("-> -3 when idle and when registered".into())
    });
    b.case("UNREGISTER ignores a nonsense buffer and length", || {
        let mut g = bad_guest();
        let bytes = structure_bytes(&good_sections(&g));
        expect_status(register_bytes(&mut g, &bytes, 200)?, 0)?;
        let t = token(&g);
        let r = g.call_without_side_effects(t, &[CMD_UNREGISTER, 0xffff_fff0, 0xffff], 1)?;
        expect_status(r.status, 0)?;
        ensure(!g.rtas.fadump().is_registered(), || {
            "still registered".into()
        })?;
        Ok("-> 0, unregistered".into())
    });
    b.case("UNREGISTER when idle is idempotent", || {
        let mut g = bad_guest();
        let t = token(&g);
        expect_status(
            g.call_without_side_effects(t, &[CMD_UNREGISTER, 0, 0], 1)?
                .status,
            0,
        )
    });
    b.case("RTAS: unknown token -> -3", || {
        let mut g = bad_guest();
        expect_status(
            g.call_without_side_effects(0x1234, &[1, 2, 3], 1)?.status,
            -3,
        )
    });
    b.case("RTAS: unpublished token (ibm,suspend-me) -> -3", || {
        let mut g = bad_guest();
        let t = RtasCall::IbmSuspendMe.token();
        expect_status(g.call_without_side_effects(t, &[], 1)?.status, -3)
    });
    b.case(
        "RTAS: argument block off the end of RAM -> refused, nothing written",
        || {
            let g = bad_guest();
            let before = pattern::snapshot(&g.mem);
            let mut rtas = firmware::rtas::Rtas::new(g.rtas.fadump().config().clone());
            for addr in [16 * MIB + 12 * MIB - 8, 8 * MIB - 4, u64::MAX - 2] {
                ensure(rtas.dispatch(&g.mem, addr, &NoCpus).is_err(), || {
                    format!("{addr:#x} accepted")
                })?;
            }
            ensure(before == pattern::snapshot(&g.mem), || {
                "memory changed".into()
            })?;
            Ok("Err (H_PARAMETER), memory unchanged".into())
        },
    );
    b.case("RTAS: block claiming 4 billion args -> refused", || {
        let g = bad_guest();
        g.write(
            0x8000,
            &[0, 0, 0x20, 0x2d, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1],
        );
        let cfg = g.rtas.fadump().config().clone();
        let mut rtas = firmware::rtas::Rtas::new(cfg);
        ensure(rtas.dispatch(&g.mem, 0x8000, &NoCpus).is_err(), || {
            "accepted".into()
        })?;
        Ok("Err (H_PARAMETER)".into())
    });
    b.case(
        "#6.10 exact-length rule: 6.1's 160 bytes with 3 sections accepted",
        || {
            let mut g = bad_guest();
            let s: Vec<SectionSpec> = good_sections(&g).into_iter().take(3).collect();
            let bytes = structure_bytes(&s);
            expect_status(register_bytes(&mut g, &bytes, 160)?, 0)
        },
    );
}

fn main() {
    let mut b = Bench::new("pseries fadump bench");
    scenarios(&mut b);
    bad_inputs(&mut b);
    b.finish();
}
