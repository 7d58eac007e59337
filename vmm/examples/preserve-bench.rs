//! How long fadump's boot-memory preservation takes, by size and by method, in one run.
//!
//! `cargo run --release -p vmm --example preserve-bench` (env `PRESERVE_SIZES`, MiB, default
//! `256,512,1024,2048,4096`; `PRESERVE_REPS`, default 3: the median is printed).
//!
//! Variants, each on fresh guest memory laid out as Linux lays a dump out (boot memory at 0,
//! its destination above it), with the source written and the destination pre-faulted (as the
//! VMM's pre-fault worker does after REGISTER) outside the timer unless said otherwise:
//!
//! * `memcpy`: `copy_from_slice` between two touched host buffers (the baseline);
//! * `copy`: the firmware's copy (`CopyPreserver`, what `perform_dump` does), destination
//!   pre-faulted, and `copy-cold`, destination never touched;
//! * `remap`: [`RemapPreserver`] swap, destination on a 2 MiB boundary (the padded layout);
//! * `remap-4k`: the same at Linux's unpadded destination, 4 KiB past the boundary;
//! * `remap-zero`: move only, destination aligned.
//!
//! For each: the preservation alone, and `+touch`, the preservation plus a first touch of every
//! 4 KiB of both ranges afterwards (a write into boot memory, a read of the destination: what
//! the capture kernel's first accesses cost on the host). Then the least-squares slope of each
//! (ms per GiB) and its ratio to `copy`'s. No KVM here: inside a VM the moves also cost KVM's
//! invalidations and the guest's re-faults (the nested fadump matrix measures those).

use std::time::{Duration, Instant};

use firmware::fadump::{CopyPreserver, Move, Preserver};
use firmware::GuestRange;
use vm_memory::{Bytes, GuestAddress};
use vmm::memory::remap::{Mode, RemapPreserver};
use vmm::memory::{advise_huge_pages, host_huge_page_size, GuestMemory};

const MIB: u64 = 1 << 20;
const G: u64 = 2 * MIB;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Memcpy,
    /// No preservation: the touch alone, on the same layout (the floor of `+touch`).
    TouchOnly,
    Copy,
    CopyCold,
    Remap,
    Remap4k,
    RemapZero,
}

impl Variant {
    const ALL: [Variant; 7] = [
        Variant::Memcpy,
        Variant::TouchOnly,
        Variant::Copy,
        Variant::CopyCold,
        Variant::Remap,
        Variant::Remap4k,
        Variant::RemapZero,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Memcpy => "memcpy",
            Variant::TouchOnly => "none",
            Variant::Copy => "copy",
            Variant::CopyCold => "copy-cold",
            Variant::Remap => "remap",
            Variant::Remap4k => "remap-4k",
            Variant::RemapZero => "remap-zero",
        }
    }
}

/// Fills `[0, size)` with a non-zero pattern (4 MiB at a time).
fn fill(mem: &GuestMemory, size: u64) {
    let chunk = vec![0x5au8; (4 * MIB) as usize];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(4 * MIB) as usize;
        mem.write_slice(&chunk[..n], GuestAddress(at)).unwrap();
        at += n as u64;
    }
}

/// One byte written per 4 KiB of `[0, size)` and one read per 4 KiB of the destination.
fn touch(mem: &GuestMemory, size: u64, dst: u64) -> u64 {
    let mut sum = 0u64;
    for off in (0..size).step_by(4096) {
        mem.write_obj(1u8, GuestAddress(off)).unwrap();
        sum += u64::from(mem.read_obj::<u8>(GuestAddress(dst + off)).unwrap());
    }
    sum
}

/// This process's minor page faults so far (`getrusage`).
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s[s.rfind(')')? + 2..].to_string();
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// (preserve, preserve + touch, faults in preserve, faults in touch) for one variant and size.
fn run(v: Variant, size: u64, huge: u64) -> (Duration, Duration, u64, u64) {
    if v == Variant::Memcpy {
        let src = vec![0x5au8; size as usize];
        let mut dst = vec![1u8; size as usize];
        let t = Instant::now();
        dst.copy_from_slice(&src);
        std::hint::black_box(&dst);
        let d = t.elapsed();
        return (d, d, 0, 0);
    }
    let dst = match v {
        Variant::Remap4k => size + G + 4096,
        _ => size + G,
    };
    let ram = dst + size + 4 * MIB;
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), ram as usize)]).unwrap();
    advise_huge_pages(&mem, huge);
    fill(&mem, size);
    let dst_range = GuestRange::new(dst, size).unwrap();
    if v != Variant::CopyCold {
        vmm::prefault::populate_write(&mem, &[dst_range]);
    }
    let mv = Move {
        section: 2,
        src: GuestRange::new(0, size).unwrap(),
        dst,
    };
    if v == Variant::TouchOnly {
        // The data in place for the check below, untimed, then the caches flushed by a pass
        // over as much other memory as the copy touched.
        CopyPreserver.preserve(&mem, &mv, &[]).unwrap();
        let mut flush = vec![0u8; (2 * size).min(1 << 30) as usize];
        flush.fill(3);
        std::hint::black_box(&flush);
    }
    let f0 = minor_faults();
    let t = Instant::now();
    let out = match v {
        Variant::Copy | Variant::CopyCold => CopyPreserver.preserve(&mem, &mv, &[]),
        Variant::Remap | Variant::Remap4k => {
            RemapPreserver::new(Mode::Swap, huge).preserve(&mem, &mv, &[])
        }
        Variant::RemapZero => RemapPreserver::new(Mode::Zero, huge).preserve(&mem, &mv, &[]),
        Variant::TouchOnly => Ok(Default::default()),
        Variant::Memcpy => unreachable!(),
    }
    .expect("preserve");
    let preserved = t.elapsed();
    let f1 = minor_faults();
    std::hint::black_box(touch(&mem, size, dst));
    let total = t.elapsed();
    let f2 = minor_faults();
    if v == Variant::TouchOnly {
        return (Duration::ZERO, total - preserved, 0, f2 - f1);
    }
    assert_eq!(out.remapped + out.copied, size);
    let mut check = [0u8; 16];
    mem.read_slice(&mut check, GuestAddress(dst + size - 16))
        .unwrap();
    assert_eq!(check, [0x5a; 16], "{} lost data", v.name());
    (preserved, total, f1 - f0, f2 - f1)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Least-squares slope of `ys` (ms) against `xs` (GiB).
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let num: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if den == 0.0 {
        f64::NAN
    } else {
        num / den
    }
}

fn main() {
    let sizes: Vec<u64> = std::env::var("PRESERVE_SIZES")
        .unwrap_or_else(|_| "256,512,1024,2048,4096".into())
        .split(',')
        .filter_map(|s| s.trim().parse::<u64>().ok())
        .map(|m| m * MIB)
        .collect();
    let reps: usize = std::env::var("PRESERVE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let huge = host_huge_page_size().unwrap_or(0);
    println!(
        "fadump boot-memory preservation, host page {} B, THP {} B, median of {reps} \
         (variants interleaved)",
        vmm::memory::host_page_size(),
        huge
    );
    // times[variant][size] = (preserve, +touch)
    let mut times = vec![vec![(Duration::ZERO, Duration::ZERO); sizes.len()]; Variant::ALL.len()];
    let mut faults = vec![(0, 0); Variant::ALL.len()];
    for (si, &size) in sizes.iter().enumerate() {
        let mut samples = vec![(Vec::new(), Vec::new()); Variant::ALL.len()];
        for _ in 0..reps {
            for (vi, &v) in Variant::ALL.iter().enumerate() {
                let (p, t, fp, ft) = run(v, size, huge);
                faults[vi] = (fp, ft);
                samples[vi].0.push(p);
                samples[vi].1.push(t);
            }
        }
        for (vi, (p, t)) in samples.into_iter().enumerate() {
            times[vi][si] = (median(p), median(t));
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    print!("{:<12}", "MiB");
    for s in &sizes {
        print!("{:>18}", s / MIB);
    }
    println!("{:>14}{:>10}", "ms/GiB", "/copy");
    let xs: Vec<f64> = sizes
        .iter()
        .map(|&s| s as f64 / (1u64 << 30) as f64)
        .collect();
    let copy_slopes = {
        let ci = 2;
        (
            slope(&xs, &times[ci].iter().map(|t| ms(t.0)).collect::<Vec<_>>()),
            slope(&xs, &times[ci].iter().map(|t| ms(t.1)).collect::<Vec<_>>()),
        )
    };
    for (vi, v) in Variant::ALL.iter().enumerate() {
        for (label, pick, copy) in [("", 0usize, copy_slopes.0), ("+touch", 1, copy_slopes.1)] {
            if (*v == Variant::Memcpy && pick == 1) || (*v == Variant::TouchOnly && pick == 0) {
                continue;
            }
            let ys: Vec<f64> = times[vi]
                .iter()
                .map(|t| ms(if pick == 0 { t.0 } else { t.1 }))
                .collect();
            print!("{:<12}", format!("{}{label}", v.name()));
            for y in &ys {
                print!("{:>15.2} ms", y);
            }
            let k = slope(&xs, &ys);
            println!("{:>14.2}{:>10.4}", k, k / copy);
        }
    }
    println!(
        "minor page faults at {} MiB (last repetition), during the preservation / the touch:",
        sizes.last().copied().unwrap_or(0) / MIB
    );
    for (v, (fp, ft)) in Variant::ALL.iter().zip(&faults).skip(1) {
        println!("  {:<12}{fp:>10} /{ft:>10}", v.name());
    }
    println!(
        "pass criterion (issue 13): remap+touch slope <= 1/10 of copy+touch slope: {}",
        {
            let r =
                slope(&xs, &times[4].iter().map(|t| ms(t.1)).collect::<Vec<_>>()) / copy_slopes.1;
            if r <= 0.1 {
                format!("yes ({r:.4})")
            } else {
                format!("no ({r:.4})")
            }
        }
    );
}
