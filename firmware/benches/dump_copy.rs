//! How fast the dump moves boot memory, as ratios against a baseline measured in the same run.
//!
//! `cargo bench -p firmware --bench dump_copy` (env `DUMP_COPY_MIB`, default 256).
//!
//! Baseline: one `copy_from_slice` (memcpy) of the same size between two pre-touched host
//! buffers. Measured: `firmware::memory::copy_within` on guest memory with (a) destination pages
//! already touched, (b) destination pages never touched (the first-touch page-fault cost the
//! reference run found to dominate QEMU's copy), and a whole `perform_dump` of a 6.12-style
//! registration. Each figure is the best of several runs; only ratios are printed.

use std::time::{Duration, Instant};

use firmware::fadump::{DumpSection, FadumpConfig, KernelDumpStructure, SectionType, CMD_REGISTER};
use firmware::memory::{self, range};
use firmware::CpuState;
use vm_memory::{GuestAddress, GuestMemoryMmap};

const RUNS: usize = 5;

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| f()).min().unwrap()
}

fn main() {
    let mib: u64 = std::env::var("DUMP_COPY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let size = mib << 20;

    let src_buf = vec![0x5au8; size as usize];
    let mut dst_buf = vec![0u8; size as usize];
    let baseline = best(|| {
        let t = Instant::now();
        dst_buf.copy_from_slice(&src_buf);
        std::hint::black_box(&dst_buf);
        t.elapsed()
    });
    drop((src_buf, dst_buf));

    // Guest RAM: source at 0, destination right after, plus room for the dump's other sections.
    let ram = 2 * size + (64 << 20);
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), ram as usize)]).unwrap();
    memory::write_bytes(&mem, 0, &vec![0x5au8; size as usize]).unwrap();
    let cold = {
        let t = Instant::now();
        memory::copy_within(&mem, range(0, size).unwrap(), size).unwrap();
        t.elapsed()
    };
    let warm = best(|| {
        let t = Instant::now();
        memory::copy_within(&mem, range(0, size).unwrap(), size).unwrap();
        t.elapsed()
    });

    // A whole dump: register CPU + HPTE + one boot region, crash with 4 CPUs.
    let dump = best(|| {
        let cfg = FadumpConfig {
            max_cpus: 4,
            hpte_capacity: 0,
            rma_size: ram,
            firmware_reserved: vec![],
        };
        let mut fd = firmware::fadump::Fadump::new(cfg.clone());
        let cpu = cfg.cpu_state_size();
        let dest = size;
        let b = KernelDumpStructure::registration_bytes(&[
            DumpSection::request(SectionType::CPU_STATE, 0, cpu, dest),
            DumpSection::request(SectionType::HPTE, 0, 0, dest + cpu),
            DumpSection::request(SectionType::REAL_MODE_REGION, 0, size, dest + (1 << 20)),
        ]);
        let buf = ram - (1 << 20);
        memory::write_bytes(&mem, buf, &b).unwrap();
        assert_eq!(
            fd.configure_kernel_dump(&mem, CMD_REGISTER, buf as u32, 160),
            Ok(())
        );
        let mut cpus: Vec<CpuState> = (0..4).map(CpuState::new).collect();
        let t = Instant::now();
        let r = fd.perform_dump(&mem, &mut cpus, None).unwrap();
        let e = t.elapsed();
        assert!(!r.has_errors());
        e
    });

    let ratio = |d: Duration| d.as_secs_f64() / baseline.as_secs_f64();
    println!("dump copy of {mib} MiB, ratios to a host memcpy of the same size (lower is better):");
    println!(
        "  copy_within, destination pre-touched : {:5.2}x",
        ratio(warm)
    );
    println!(
        "  copy_within, destination first touch : {:5.2}x",
        ratio(cold)
    );
    println!(
        "  perform_dump (4 CPUs + boot memory)  : {:5.2}x",
        ratio(dump)
    );
}
