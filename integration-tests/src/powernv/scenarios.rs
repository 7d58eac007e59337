//! The powernv bench's cases: whole crash cycles on gigabytes of patterned RAM, and every bad
//! input we know of, each returning a one-line result for the bench runner.

use firmware::opal::{MpiplOp, MpiplState, MpiplTag, OpalAction, OpalStatus, OpalToken};
use firmware::GuestRange;
use vm_memory::Bytes;

use super::capture_kernel::{self, Capture, TAG_VAR_ADDR};
use super::first_kernel::{self, Fadump};
use super::machine::{Machine, KERNEL_VA};
use crate::bench::{ensure, CaseResult};
use crate::linux::pt_regs::PtRegs;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
const CHUNK: u64 = MIB;

/// Guest RAM as it was at one instant: one flat buffer, reused from one snapshot to the next
/// on the same thread (gigabytes of fresh allocation cost more than copying them).
pub struct Snapshot {
    regions: Vec<(u64, usize, usize)>,
    bytes: Vec<u8>,
}

thread_local! {
    static SNAPSHOT_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Snapshot {
    pub fn take(m: &Machine) -> Self {
        let ram = m.ram();
        let total: usize = ram.iter().map(|r| r.len() as usize).sum();
        let mut bytes = SNAPSHOT_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
        bytes.resize(total, 0);
        let mut regions = Vec::new();
        let mut off = 0;
        for r in ram {
            let len = r.len() as usize;
            m.mem
                .read_slice(
                    &mut bytes[off..off + len],
                    vm_memory::GuestAddress(r.start()),
                )
                .expect("snapshot of RAM");
            regions.push((r.start(), off, len));
            off += len;
        }
        Self { regions, bytes }
    }

    fn regions(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.regions
            .iter()
            .map(|&(start, off, len)| (start, &self.bytes[off..off + len]))
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        SNAPSHOT_BUFFER.with(|b| *b.borrow_mut() = bytes);
    }
}

/// Visits `before` in chunks minus `skip`: `(piece, expected bytes)`.
fn for_each_piece(
    before: &Snapshot,
    skip: &[GuestRange],
    mut f: impl FnMut(GuestRange, &[u8]) -> Result<(), String>,
) -> Result<u64, String> {
    let mut compared = 0;
    for (start, bytes) in before.regions() {
        let mut off = 0u64;
        while off < bytes.len() as u64 {
            let n = CHUNK.min(bytes.len() as u64 - off);
            let chunk = GuestRange::new(start + off, n).unwrap();
            for p in chunk.subtract(skip) {
                let i = (p.start() - start) as usize;
                f(p, &bytes[i..i + p.len() as usize])?;
                compared += p.len();
            }
            off += n;
        }
    }
    Ok(compared)
}

fn first_mismatch(got: &[u8], want: &[u8]) -> usize {
    got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0)
}

/// The firmware wrote nothing outside `allowed`.
fn check_writes_only_in(m: &Machine, before: &Snapshot, allowed: &[GuestRange]) -> CaseResult {
    let n = for_each_piece(before, allowed, |p, want| {
        let got = m.read(p.start(), p.len() as usize);
        if got != want {
            let at = p.start() + first_mismatch(&got, want) as u64;
            return Err(format!("firmware wrote outside destinations at {at:#x}"));
        }
        Ok(())
    })?;
    Ok(format!("{} MiB untouched", n / MIB))
}

/// Memory through the vmcore equals memory at the crash, except `skip`.
fn check_vmcore(m: &Machine, cap: &Capture, before: &Snapshot, skip: &[GuestRange]) -> CaseResult {
    let n = for_each_piece(before, skip, |p, want| {
        let got = cap
            .read(m, p.start(), p.len() as usize)
            .ok_or_else(|| format!("{p} missing from the vmcore"))?;
        if got != want {
            let at = p.start() + first_mismatch(&got, want) as u64;
            return Err(format!(
                "vmcore differs from memory at crash time at {at:#x}"
            ));
        }
        Ok(())
    })?;
    Ok(format!("{} MiB byte-equal", n / MIB))
}

fn query(m: &mut Machine, pir: u32, tag: MpiplTag) -> (i64, u64) {
    let r = m.call(
        pir,
        OpalToken::MpiplQueryTag,
        &[tag.raw() as u64, KERNEL_VA | TAG_VAR_ADDR],
    );
    let v = u64::from_be_bytes(m.read(TAG_VAR_ADDR, 8).try_into().unwrap());
    (r.r3, v)
}

/// Names of the `pt_regs` fields that differ.
fn reg_diff(a: &PtRegs, b: &PtRegs) -> String {
    let mut d: Vec<String> = (0..32)
        .filter(|&i| a.gpr[i] != b.gpr[i])
        .map(|i| format!("r{i}"))
        .collect();
    for (name, x, y) in [
        ("nip", a.nip, b.nip),
        ("msr", a.msr, b.msr),
        ("ctr", a.ctr, b.ctr),
        ("lr", a.link, b.link),
        ("xer", a.xer, b.xer),
        ("ccr", a.ccr, b.ccr),
        ("dar", a.dar, b.dar),
        ("dsisr", a.dsisr, b.dsisr),
    ] {
        if x != y {
            d.push(format!("{name} {x:#x}!={y:#x}"));
        }
    }
    d.join(" ")
}

/// A whole crash cycle.
pub struct Cycle {
    pub ram: Vec<(u64, u64)>,
    pub pirs: Vec<u32>,
    /// PIR of the thread that boots and runs the kernel's fadump code.
    pub boot_pir: u32,
    pub crashing_pir: u32,
    pub seed: u64,
    /// Go through a petitboot kernel before the capture kernel.
    pub petitboot: bool,
    /// After the release, re-register and crash again on this PIR.
    pub second_crash: Option<u32>,
    /// Boot regions Linux cannot register (the firmware table is full).
    pub expect_unsaved: usize,
}

/// One crash on a registered kernel, through the capture kernel's acceptance; verifies
/// registers and memory and returns the capture.
fn crash_and_capture(
    m: &mut Machine,
    c: &Cycle,
    fadump: &Fadump,
    crashing_pir: u32,
) -> Result<(Capture, String), String> {
    // The guest keeps running after registration: dirty boot memory and high memory.
    m.write(0x12_3400, b"written after registration, before the crash");
    let high = m.ram().last().unwrap().end() - 8 * MIB;
    ensure(!fadump.reserve().contains_addr(high), || {
        "the high-memory write must land outside the reserved area".into()
    })?;
    m.write(high, b"high memory stays in place");

    let thread = m
        .threads
        .iter()
        .find(|t| t.id == crashing_pir)
        .cloned()
        .ok_or("no such thread")?;
    let mut kernel_regs = PtRegs::from_cpu(&thread);
    kernel_regs.nip = 0xc000_0000_00a1_b2c0; // where ppc_save_regs saw it, inside the panic path
    let online = m.threads.len();
    first_kernel::prepare_crash(m, fadump, crashing_pir, &kernel_regs, online);
    let before = Snapshot::take(m);

    let r = first_kernel::trigger(m, crashing_pir);
    ensure(r.action == Some(OpalAction::Mpipl { crashing_pir }), || {
        format!("CEC_REBOOT2(MPIPL) gave r3 {} action {:?}", r.r3, r.action)
    })?;
    let dump = m.last_dump.clone().ok_or("no dump")?;
    ensure(dump.all_copied(), || {
        format!("copy errors: {:?}", dump.results)
    })?;
    ensure(dump.threads == m.threads.len(), || {
        format!(
            "{} thread records for {} threads",
            dump.threads,
            m.threads.len()
        )
    })?;
    let registered = fadump.metadata.registered_regions as usize;
    let mut allowed: Vec<GuestRange> = fadump.metadata.rgn[..registered]
        .iter()
        .map(|r| GuestRange::new(r.dest, r.size).unwrap())
        .collect();
    // ... plus what the firmware owns and writes: the dump area and OPAL's preserved copy
    // (not OPAL's own memory, which a preservation only reads).
    let fw = m.opal.mpipl.config();
    allowed.push(fw.dump_area);
    allowed.extend(fw.opal_dest_range());
    check_writes_only_in(m, &before, &allowed)?;

    m.boot_after_mpipl();
    if c.petitboot {
        let top = capture_kernel::petitboot(m, c.boot_pir);
        ensure(top == Some(fadump.boot_mem_top), || {
            format!("petitboot saw boot memory top {top:?}")
        })?;
    }
    let cap = capture_kernel::boot(m, c.boot_pir).map_err(|e| format!("rejected: {e:?}"))?;

    // Every thread's registers, as Linux builds its notes.
    ensure(cap.notes.len() == m.threads.len(), || {
        format!("{} notes for {} threads", cap.notes.len(), m.threads.len())
    })?;
    for t in &m.threads {
        let (_, regs) = cap
            .notes
            .iter()
            .find(|(pir, _)| *pir == t.id)
            .ok_or_else(|| format!("no note for PIR {:#x}", t.id))?;
        let want = if t.id == crashing_pir {
            kernel_regs
        } else {
            PtRegs::from_cpu(t)
        };
        ensure(*regs == want, || {
            format!("PIR {:#x}: {} differ", t.id, reg_diff(regs, &want))
        })?;
    }
    ensure(cap.crash_info.crashing_cpu == crashing_pir, || {
        "crashing PIR lost".into()
    })?;
    ensure(cap.unsaved.len() == c.expect_unsaved, || {
        format!("{} unsaved regions", cap.unsaved.len())
    })?;

    // Memory: the dump's own area, the firmware's and the unsaved regions are not the crashed
    // kernel's memory contents.
    let mut skip = vec![cap.reserve];
    skip.extend(m.reserved_ranges());
    skip.extend(
        cap.unsaved
            .iter()
            .map(|r| GuestRange::new(r.src, r.size).unwrap()),
    );
    let mem_line = check_vmcore(m, &cap, &before, &skip)?;

    // OPAL's own memory as it was during the crashed boot.
    let (rc, opal_meta) = query(m, c.boot_pir, MpiplTag::Opal);
    ensure(rc == 0 && opal_meta != 0, || {
        format!("QUERY_TAG(OPAL) {rc}")
    })?;
    let meta = m.read(opal_meta, 0x30);
    let pir = u32::from_be_bytes(meta[8..12].try_into().unwrap());
    let dest = u64::from_be_bytes(meta[0x20..0x28].try_into().unwrap());
    let text = Machine::opal_text(m.boots - 1);
    ensure(pir == crashing_pir, || {
        format!("OPAL crashing PIR {pir:#x}")
    })?;
    ensure(m.read(dest, text.len()) == text.as_bytes(), || {
        "OPAL memory copy is not the crashed boot's".into()
    })?;
    let line = format!(
        "{} threads, {} regions ({} unsaved), {mem_line}",
        cap.notes.len(),
        fadump.metadata.region_cnt,
        cap.unsaved.len()
    );
    Ok((cap, line))
}

pub fn run_cycle(c: &Cycle) -> CaseResult {
    let mut m = Machine::new(&c.ram, &c.pirs);
    m.fill_pattern(c.seed);
    m.power_on();
    let fadump = first_kernel::setup(&mut m, c.boot_pir, None)
        .map_err(|e| format!("fadump disabled: {e:?}"))?;
    let want_fail = usize::from(c.expect_unsaved > 0);
    ensure(
        fadump.add_range_codes.iter().filter(|&&rc| rc != 0).count() == want_fail,
        || format!("ADD_RANGE codes {:?}", fadump.add_range_codes),
    )?;
    if c.expect_unsaved > 0 {
        ensure(
            fadump.add_range_codes.last() == Some(&OpalStatus::Resource.code()),
            || "a full table must answer OPAL_RESOURCE".into(),
        )?;
    }
    let (cap, mut line) = crash_and_capture(&mut m, c, &fadump, c.crashing_pir)?;

    // Release: FREE_PRESERVED_MEMORY, then tags are gone; re-register with the same area.
    let rc = capture_kernel::release(&mut m, c.boot_pir);
    ensure(rc == 0, || format!("FREE_PRESERVED_MEMORY {rc}"))?;
    let (rc, _) = query(&mut m, c.boot_pir, MpiplTag::Kernel);
    ensure(rc == OpalStatus::Parameter.code(), || {
        format!("QUERY_TAG after FREE gave {rc}")
    })?;
    let again = first_kernel::setup(&mut m, c.boot_pir, Some(cap.reserve.start()))
        .map_err(|e| format!("re-registration failed: {e:?}"))?;
    ensure(again.reserve_start == fadump.reserve_start, || {
        "reserved area moved".into()
    })?;
    ensure(m.opal.mpipl.is_registered(), || {
        "not registered again".into()
    })?;
    line.push_str(", released and re-registered");

    if let Some(pir) = c.second_crash {
        let (_, l2) = crash_and_capture(&mut m, c, &again, pir)?;
        line.push_str(&format!("; 2nd crash: {l2}"));
    }
    Ok(line)
}

/// The cycles the bench runs.
pub fn cycles() -> Vec<(&'static str, Cycle)> {
    // Two cores of four threads (P9 PIR: core << 2 | thread).
    let eight: Vec<u32> = (0x20..0x24).chain(0x40..0x44).collect();
    vec![
        (
            "2 GiB, 8 threads: crash, accept, release, re-register",
            Cycle {
                ram: vec![(0, 2 * GIB)],
                pirs: eight.clone(),
                boot_pir: 0x20,
                crashing_pir: 0x42,
                seed: 0x5eed_0001_0000_0000,
                petitboot: false,
                second_crash: None,
                expect_unsaved: 0,
            },
        ),
        (
            "holes in boot memory and reserve, petitboot hop, 2nd crash",
            Cycle {
                ram: vec![
                    (0, 256 * MIB),
                    (384 * MIB, 640 * MIB),
                    (GIB + 64 * MIB, 800 * MIB),
                ],
                pirs: (0x08..0x0c).collect(),
                boot_pir: 0x08,
                crashing_pir: 0x0b,
                seed: 0x5eed_0002_0000_0000,
                petitboot: true,
                second_crash: Some(0x09),
                expect_unsaved: 0,
            },
        ),
        (
            "64 boot regions: table full, OPAL_RESOURCE, partial dump",
            Cycle {
                ram: (0..66u64)
                    .map(|i| (i * 16 * MIB, 12 * MIB))
                    .chain([(66 * 16 * MIB, 800 * MIB)])
                    .collect(),
                pirs: vec![0x00, 0x01, 0x02, 0x03],
                boot_pir: 0x00,
                crashing_pir: 0x01,
                seed: 0x5eed_0003_0000_0000,
                petitboot: false,
                second_crash: None,
                expect_unsaved: 1,
            },
        ),
    ]
}

pub type NamedCase = (&'static str, fn() -> CaseResult);

/// Small lifecycle scenarios that need no memory comparison.
pub fn lifecycle_cases() -> Vec<NamedCase> {
    vec![
        (
            "normal reboot drops registration and tags",
            normal_reboot_drops_registration,
        ),
        (
            "unregister (REMOVE_ALL) then register again",
            unregister_reregister,
        ),
        (
            "MPIPL without kernel registration: no dump",
            mpipl_without_registration,
        ),
        (
            "dt scan: fw-load-area within Linux's limit",
            dt_scan_accepts,
        ),
        (
            "cross-check: QEMU-layout register data as Linux parses it",
            qemu_layout_cross_check,
        ),
    ]
}

fn small_machine() -> Machine {
    let mut m = Machine::new(&[(0, 2 * GIB)], &[0, 1, 2, 3]);
    m.power_on();
    m
}

fn normal_reboot_drops_registration() -> CaseResult {
    let mut m = small_machine();
    first_kernel::setup(&mut m, 0, None).map_err(|e| format!("{e:?}"))?;
    ensure(m.opal.mpipl.is_registered(), || "not registered".into())?;
    let r = m.call(1, OpalToken::CecReboot2, &[0, 0]);
    ensure(r.action == Some(OpalAction::Reboot), || format!("{r:?}"))?;
    ensure(m.dump_prop("mpipl-boot").is_none(), || {
        "mpipl-boot after a normal reboot".into()
    })?;
    let (rc, v) = query(&mut m, 0, MpiplTag::Kernel);
    ensure(rc == 0 && v == 0, || format!("KERNEL tag {rc} {v:#x}"))?;
    ensure(!m.opal.mpipl.is_registered(), || "ranges survived".into())?;
    ensure(
        matches!(
            capture_kernel::boot(&mut m, 0),
            Err(capture_kernel::Reject::NotMpiplBoot)
        ),
        || "capture kernel saw a dump".into(),
    )?;
    Ok("no mpipl-boot, KERNEL tag 0, table empty".into())
}

fn unregister_reregister() -> CaseResult {
    let mut m = small_machine();
    let f = first_kernel::setup(&mut m, 0, None).map_err(|e| format!("{e:?}"))?;
    ensure(first_kernel::unregister(&mut m, 0) == 0, || {
        "REMOVE_ALL failed".into()
    })?;
    ensure(!m.opal.mpipl.is_registered(), || "still registered".into())?;
    ensure(first_kernel::unregister(&mut m, 0) == 0, || {
        "REMOVE_ALL not idempotent".into()
    })?;
    let g = first_kernel::setup(&mut m, 0, Some(f.reserve_start)).map_err(|e| format!("{e:?}"))?;
    ensure(g.add_range_codes.iter().all(|&c| c == 0), || {
        format!("{:?}", g.add_range_codes)
    })?;
    ensure(first_kernel::cleanup(&mut m, 0) == 0, || {
        "cleanup failed".into()
    })?;
    Ok(format!("{} ranges registered twice", g.metadata.region_cnt))
}

fn mpipl_without_registration() -> CaseResult {
    let mut m = small_machine();
    let r = m.call(2, OpalToken::CecReboot2, &[3, 0]);
    ensure(
        r.action == Some(OpalAction::Mpipl { crashing_pir: 2 }),
        || format!("{r:?}"),
    )?;
    m.boot_after_mpipl();
    ensure(m.dump_prop("mpipl-boot").is_some(), || {
        "no mpipl-boot".into()
    })?;
    match capture_kernel::boot(&mut m, 0) {
        Err(capture_kernel::Reject::KernelTag { rc: 0, addr: 0 }) => {}
        other => return Err(format!("capture kernel: {:?}", other.map(|_| ()))),
    }
    let (rc, cpu) = query(&mut m, 0, MpiplTag::Cpu);
    ensure(rc == 0 && cpu != 0, || "CPU data missing".into())?;
    Ok("mpipl-boot, KERNEL tag 0: Linux finds no dump".into())
}

fn dt_scan_accepts() -> CaseResult {
    let m = small_machine();
    first_kernel::dt_scan(&m).map_err(|e| format!("{e:?}"))?;
    let area = m.dump_prop("fw-load-area").ok_or("no fw-load-area")?;
    ensure(area.len() == 32, || format!("{} bytes", area.len()))?;
    Ok("compatible ibm,opal-dump, load areas end at 0x30000000".into())
}

/// Replaces our register data with QEMU's layout after a real crash cycle and lets the
/// capture kernel parse it: Linux still accepts it, but loses CR for every thread whose
/// registers come from the firmware (the crashing thread's come from the kernel).
fn qemu_layout_cross_check() -> CaseResult {
    use super::qemu_layout;
    let mut m = Machine::new(&[(0, 1600 * MIB)], &[0x10, 0x11, 0x12, 0x13]);
    m.power_on();
    let f = first_kernel::setup(&mut m, 0x10, None).map_err(|e| format!("{e:?}"))?;
    let crashing = m.threads[1].clone();
    first_kernel::prepare_crash(&mut m, &f, crashing.id, &PtRegs::from_cpu(&crashing), 4);
    first_kernel::trigger(&mut m, crashing.id);
    m.boot_after_mpipl();
    let meta_at = m.last_dump.as_ref().ok_or("no dump")?.tags.cpu;
    let meta = m.read(meta_at, 0x30);
    let dest = u64::from_be_bytes(meta[0x20..0x28].try_into().unwrap());
    for (i, t) in m.threads.clone().iter().enumerate() {
        m.write(
            dest + (i * qemu_layout::STRIDE) as u64,
            &qemu_layout::record(t),
        );
    }
    m.write(meta_at + 0x10, &(qemu_layout::STRIDE as u32).to_be_bytes());
    m.write(
        meta_at + 0x28,
        &((4 * qemu_layout::STRIDE) as u64).to_be_bytes(),
    );
    let cap = capture_kernel::boot(&mut m, 0x10).map_err(|e| format!("rejected: {e:?}"))?;
    ensure(cap.notes.len() == 4, || {
        format!("{} notes", cap.notes.len())
    })?;
    for t in &m.threads {
        let (_, got) = cap
            .notes
            .iter()
            .find(|(p, _)| *p == t.id)
            .ok_or("missing")?;
        let want = PtRegs::from_cpu(t);
        let diff = reg_diff(got, &want);
        let expected = if t.id == crashing.id {
            String::new()
        } else {
            format!("ccr 0x0!={:#x}", want.ccr)
        };
        ensure(diff == expected, || format!("PIR {:#x}: {diff:?}", t.id))?;
    }
    Ok("accepted; CR lost on the 3 non-crashing threads, all else equal".into())
}

/// One bad input: preconditions, the call, and the exact code Linux expects.
pub struct BadInput {
    pub name: &'static str,
    pub setup: fn(&mut Machine),
    pub token: u64,
    pub args: Vec<u64>,
    pub want: OpalStatus,
}

// The bad-input machine: [0, 12M) + hole + [16M, 32M); firmware at [26M, 32M).
const BAD_RAM: [(u64, u64); 2] = [(0, 12 * MIB), (16 * MIB, 16 * MIB)];
const TOP: u64 = 32 * MIB;
const HOLE: u64 = 13 * MIB;
/// A destination the cases use.
const D: u64 = 8 * MIB;
const OUT: u64 = KERNEL_VA | TAG_VAR_ADDR;

fn nothing(_: &mut Machine) {}

fn add(m: &mut Machine, src: u64, dest: u64, size: u64) {
    let r = m.call(
        0,
        OpalToken::MpiplUpdate,
        &[MpiplOp::AddRange.raw() as u64, src, dest, size],
    );
    assert_eq!(r.r3, 0, "setup ADD_RANGE {src:#x} {dest:#x} {size:#x}");
}

fn one_range(m: &mut Machine) {
    add(m, 0, D, MIB);
}

fn full_table(m: &mut Machine) {
    for i in 0..63u64 {
        add(m, i * 64 * 1024, 4 * MIB + i * 64 * 1024, 64 * 1024);
    }
}

fn freed(m: &mut Machine) {
    let r = m.call(0, OpalToken::MpiplUpdate, &[3, 0, 0, 0]);
    assert_eq!(r.r3, 0);
}

fn dump_boot_freed(m: &mut Machine) {
    one_range(m);
    m.call(0, OpalToken::MpiplRegisterTag, &[2, 10 * MIB]);
    let r = m.call(1, OpalToken::CecReboot2, &[3, 0]);
    assert!(matches!(r.action, Some(OpalAction::Mpipl { .. })));
    m.boot_after_mpipl();
    freed(m);
    assert!(matches!(
        m.opal.mpipl.state(),
        MpiplState::Released { mpipl_boot: true }
    ));
}

pub fn bad_inputs() -> Vec<BadInput> {
    let upd = OpalToken::MpiplUpdate.number();
    let reg = OpalToken::MpiplRegisterTag.number();
    let qry = OpalToken::MpiplQueryTag.number();
    let reboot2 = OpalToken::CecReboot2.number();
    let p = OpalStatus::Parameter;
    let b = |name, setup: fn(&mut Machine), token, args: &[u64], want| BadInput {
        name,
        setup,
        token,
        args: args.to_vec(),
        want,
    };
    vec![
        b(
            "MPIPL_UPDATE unknown op 4",
            nothing,
            upd,
            &[4, 0, D, MIB],
            p,
        ),
        b(
            "MPIPL_UPDATE op 0xffffffff",
            nothing,
            upd,
            &[0xffff_ffff, 0, D, MIB],
            p,
        ),
        b("ADD_RANGE size 0", nothing, upd, &[0, 0, D, 0], p),
        b(
            "ADD_RANGE src top nibble 0x8",
            nothing,
            upd,
            &[0, 0x8000_0000_0000_0000, D, MIB],
            p,
        ),
        b(
            "ADD_RANGE dest top nibble 0xD",
            nothing,
            upd,
            &[0, 0, 0xd000_0000_0000_0000 | D, MIB],
            p,
        ),
        b(
            "ADD_RANGE dest beyond top of RAM",
            nothing,
            upd,
            &[0, 0, TOP + MIB, MIB],
            p,
        ),
        b(
            "ADD_RANGE src runs off the end of RAM",
            nothing,
            upd,
            &[0, TOP - MIB / 2, D, MIB],
            p,
        ),
        b(
            "ADD_RANGE src across a RAM hole",
            nothing,
            upd,
            &[0, 10 * MIB, 18 * MIB, 4 * MIB],
            p,
        ),
        b(
            "ADD_RANGE dest in a RAM hole",
            nothing,
            upd,
            &[0, 0, HOLE, MIB],
            p,
        ),
        b(
            "ADD_RANGE size above 32 bits",
            nothing,
            upd,
            &[0, 0, D, 1 << 32],
            p,
        ),
        b(
            "ADD_RANGE size u64::MAX",
            nothing,
            upd,
            &[0, 0, D, u64::MAX],
            p,
        ),
        b(
            "ADD_RANGE duplicate source",
            one_range,
            upd,
            &[0, 0, 10 * MIB, MIB],
            p,
        ),
        b(
            "ADD_RANGE duplicate destination",
            one_range,
            upd,
            &[0, 4 * MIB, D, MIB],
            p,
        ),
        b(
            "ADD_RANGE dest overlaps a destination",
            one_range,
            upd,
            &[0, 4 * MIB, D + MIB / 2, MIB],
            p,
        ),
        b(
            "ADD_RANGE dest overlaps a source",
            one_range,
            upd,
            &[0, 4 * MIB, MIB / 2, MIB],
            p,
        ),
        b(
            "ADD_RANGE src overlaps a destination",
            one_range,
            upd,
            &[0, D + MIB / 4, 10 * MIB, MIB / 2],
            p,
        ),
        b(
            "ADD_RANGE dest overlaps its own source",
            nothing,
            upd,
            &[0, 4 * MIB, 4 * MIB + 4096, MIB],
            p,
        ),
        b(
            "ADD_RANGE dest in the firmware dump area",
            nothing,
            upd,
            &[0, 4 * MIB, TOP - 2 * MIB, MIB],
            p,
        ),
        b(
            "ADD_RANGE dest over OPAL's preserved copy",
            nothing,
            upd,
            &[0, 4 * MIB, TOP - 4 * MIB, MIB],
            p,
        ),
        b(
            "ADD_RANGE into a full table (63 + OPAL's)",
            full_table,
            upd,
            &[0, 20 * MIB, 10 * MIB, MIB],
            OpalStatus::Resource,
        ),
        b(
            "REMOVE_RANGE of an unknown range",
            nothing,
            upd,
            &[1, 0, D, 0],
            p,
        ),
        b(
            "REMOVE_RANGE with the wrong destination",
            one_range,
            upd,
            &[1, 0, D + MIB, 0],
            p,
        ),
        b(
            "REMOVE_RANGE of OPAL's own range",
            nothing,
            upd,
            &[1, TOP - 6 * MIB, TOP - 4 * MIB, 0],
            p,
        ),
        b("REGISTER_TAG unknown tag 4", nothing, reg, &[4, 1], p),
        b(
            "REGISTER_TAG CPU (firmware-owned)",
            nothing,
            reg,
            &[0, 0x1000],
            p,
        ),
        b(
            "REGISTER_TAG OPAL (firmware-owned)",
            nothing,
            reg,
            &[1, 0x1000],
            p,
        ),
        b("REGISTER_TAG BOOT_MEM 0", nothing, reg, &[3, 0], p),
        b(
            "REGISTER_TAG BOOT_MEM above top of RAM",
            nothing,
            reg,
            &[3, TOP + 1],
            p,
        ),
        b(
            "QUERY_TAG output top nibble 0x8",
            nothing,
            qry,
            &[2, 0x8000_0000_0000_b000],
            p,
        ),
        b(
            "QUERY_TAG output beyond top of RAM",
            nothing,
            qry,
            &[2, TOP + 8],
            p,
        ),
        b(
            "QUERY_TAG output in a RAM hole",
            nothing,
            qry,
            &[2, KERNEL_VA | HOLE],
            p,
        ),
        b(
            "QUERY_TAG output straddles the end of RAM",
            nothing,
            qry,
            &[2, KERNEL_VA | (TOP - 4)],
            p,
        ),
        b("QUERY_TAG tag 4", nothing, qry, &[4, OUT], p),
        b(
            "QUERY_TAG tag 0xffffffff",
            nothing,
            qry,
            &[0xffff_ffff, OUT],
            p,
        ),
        b(
            "QUERY_TAG after FREE_PRESERVED_MEMORY",
            freed,
            qry,
            &[2, OUT],
            p,
        ),
        b(
            "QUERY_TAG CPU after FREE on a dump boot",
            dump_boot_freed,
            qry,
            &[0, OUT],
            p,
        ),
        b(
            "CEC_REBOOT2 unknown reboot type 5",
            nothing,
            reboot2,
            &[5, 0],
            OpalStatus::Unsupported,
        ),
        b(
            "unknown OPAL call 9999",
            nothing,
            9999,
            &[0, 0],
            OpalStatus::Unsupported,
        ),
    ]
}

/// Patterned RAM for the bad-input cases: each case gets a fresh firmware on it.
pub fn bad_input_ram() -> vm_memory::GuestMemoryMmap {
    let regions: Vec<_> = BAD_RAM
        .iter()
        .map(|&(s, l)| (vm_memory::GuestAddress(s), l as usize))
        .collect();
    let mem = vm_memory::GuestMemoryMmap::from_ranges(&regions).expect("bad-input RAM");
    Machine::with_memory(mem.clone(), &[]).fill_pattern(0xbad0_0000_0000_0000);
    mem
}

/// Runs one bad input with a freshly powered-on firmware on `mem`: the exact code, no action,
/// memory and firmware state unchanged.
pub fn run_bad_input(mem: &vm_memory::GuestMemoryMmap, case: &BadInput) -> CaseResult {
    let mut m = Machine::with_memory(mem.clone(), &[0, 1, 2, 3]);
    m.power_on();
    (case.setup)(&mut m);
    let state = serde_json::to_string(&m.opal).map_err(|e| e.to_string())?;
    let before = Snapshot::take(&m);
    let r = m.raw_call(1, case.token, &case.args);
    ensure(r.r3 == case.want.code(), || {
        format!("got {} ({:?}), want {:?}", r.r3, r.status_code(), case.want)
    })?;
    ensure(r.action.is_none(), || format!("action {:?}", r.action))?;
    check_writes_only_in(&m, &before, &[])
        .map_err(|e| e.replace("firmware wrote outside destinations", "memory changed"))?;
    ensure(
        serde_json::to_string(&m.opal).map_err(|e| e.to_string())? == state,
        || "firmware state changed".into(),
    )?;
    Ok(format!("{} ({:?}), nothing written", r.r3, case.want))
}

/// A bad pointer that must not stop the dump: `CEC_REBOOT2(MPIPL)` with an unreadable message.
pub fn mpipl_with_bad_message(mem: &vm_memory::GuestMemoryMmap) -> CaseResult {
    let mut m = Machine::with_memory(mem.clone(), &[0, 1, 2, 3]);
    m.power_on();
    one_range(&mut m);
    let r = m.call(3, OpalToken::CecReboot2, &[3, 0x8000_0000_0000_a000]);
    ensure(
        r.action == Some(OpalAction::Mpipl { crashing_pir: 3 }),
        || format!("{r:?}"),
    )?;
    ensure(m.last_dump.as_ref().is_some_and(|d| d.all_copied()), || {
        "dump not taken".into()
    })?;
    Ok("message ignored, MPIPL performed".into())
}
