//! OPAL MPIPL conformance: what QEMU 11.1's powernv machine and skiboot recorded for a real
//! Linux 6.12 fadump crash, against what our `firmware::opal` engine records for the same
//! registration and the same registers, field by field.
//!
//! The QEMU side is captured by `integration-tests/nested/opal-conformance.sh` (QEMU 11.1.3
//! powernv9, skiboot from Debian's qemu-system-data, a 6.12 powernv kernel with `fadump=on`,
//! crashed with sysrq c) out of guest memory through QEMU's monitor, and committed as small
//! fixtures in `integration-tests/fixtures/opal-conformance/` (`OPAL_CONFORMANCE_RUN=DIR` reads
//! another capture). The replay puts our engine where skiboot keeps its areas, makes the calls
//! the kernel made (the tags and ranges skiboot recorded), hands it the registers QEMU captured,
//! and reads back what a capture kernel would get.
//!
//! Every row of the printed table is either equal, or a difference listed in [`known`] with the
//! side Linux's code agrees with and the source line it relies on; a new difference, or a listed
//! one that went away, fails. Linux references are to the 6.12 sources
//! (`arch/powerpc/platforms/powernv/opal-fadump.{c,h}`, `opal-core.c`); QEMU's to
//! `hw/ppc/pnv_mpipl.c` (11.1).
//!
//! Built with `harness = false`: it prints the table and a closing `N passed, N failed` line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use firmware::opal::metadata::MpiplFadump;
use firmware::opal::regdata::THREAD_SIZE;
use firmware::opal::{MpiplConfig, MpiplEngine, Opal, OpalAction, OpalCall, OpalMemory, OpalToken};
use firmware::{CpuState, GuestRange, Reg};
use integration_tests::bytes::{be16, be32, be64};
use integration_tests::linux::pt_regs::PtRegs;
use integration_tests::powernv::capture_kernel::set_regval;
use serde_json::Value;
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// skiboot marks the addresses it hands the platform with the HRMOR bit.
const HRMOR_BIT: u64 = 1 << 63;
const REGION_OPAL: u8 = 0x03;
const REGION_KERNEL: u8 = 0x80;
const TYPE_GPR: u32 = 1;
const TYPE_SPR: u32 = 2;
/// Where the replay's QUERY_TAG answers go (below the kernel, in boot memory).
const SCRATCH: u64 = 0x1_0000;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// A captured run: the fixture directory.
struct Capture {
    dir: PathBuf,
    json: Value,
}

impl Capture {
    fn load() -> Result<Self, String> {
        let dir = match std::env::var("OPAL_CONFORMANCE_RUN") {
            Ok(d) if !d.is_empty() => PathBuf::from(d),
            _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/opal-conformance"),
        };
        let text = std::fs::read_to_string(dir.join("capture.json"))
            .map_err(|e| format!("{}: {e}", dir.join("capture.json").display()))?;
        let json = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        Ok(Self { dir, json })
    }

    fn bin(&self, name: &str) -> Vec<u8> {
        let p = self.dir.join(format!("{name}.bin"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn j(&self, path: &[&str]) -> &Value {
        path.iter().fold(&self.json, |v, k| &v[*k])
    }
}

/// One MDST/MDDT entry (16 bytes).
#[derive(Debug, Clone, Copy)]
struct TableEntry {
    addr: u64,
    region: u8,
    size: u32,
}

fn table16(b: &[u8]) -> Vec<TableEntry> {
    b.chunks_exact(16)
        .map(|e| TableEntry {
            addr: be64(e, 0) & !HRMOR_BIT,
            region: e[8],
            size: be32(e, 12),
        })
        .take_while(|e| e.addr != 0 || e.size != 0)
        .collect()
}

/// One MDRT entry (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
struct ResultEntry {
    src: u64,
    dest: u64,
    region: u8,
    dump_type: u8,
    size: u64,
}

fn mdrt(b: &[u8]) -> Vec<ResultEntry> {
    b.chunks_exact(32)
        .map(|e| ResultEntry {
            src: be64(e, 0),
            dest: be64(e, 8),
            region: e[16],
            dump_type: e[17],
            size: be32(e, 20) as u64,
        })
        .filter(|e| e.src != 0 || e.dest != 0 || e.size != 0)
        .collect()
}

/// skiboot's `struct proc_dump_area` (the fields used).
struct ProcDumpArea {
    thread_size: u32,
    version: u8,
    alloc_addr: u64,
    alloc_size: u32,
    dest_addr: u64,
    act_size: u32,
}

fn proc_dump_area(b: &[u8]) -> ProcDumpArea {
    ProcDumpArea {
        thread_size: be32(b, 0),
        version: b[4],
        alloc_addr: be64(b, 0x10) & !HRMOR_BIT,
        alloc_size: be32(b, 0x1c),
        dest_addr: be64(b, 0x20) & !HRMOR_BIT,
        act_size: be32(b, 0x2c),
    }
}

/// One thread record of the HDAT register data: header fields and the entries as written
/// (right after the 24-byte header, where both QEMU and we put them).
#[derive(Debug, Clone)]
struct Thread {
    pir: u32,
    core_state: u8,
    offset: u32,
    ecnt: u32,
    esize: u32,
    eactsz: u32,
    entries: Vec<(u32, u32, u64)>,
}

fn threads(data: &[u8], stride: usize) -> Vec<Thread> {
    data.chunks_exact(stride)
        .map(|t| {
            let ecnt = be32(t, 12);
            let entries = (0..ecnt as usize)
                .map(|i| 0x18 + 16 * i)
                .take_while(|&o| o + 16 <= t.len())
                .map(|o| (be32(t, o), be32(t, o + 4), be64(t, o + 8)))
                .collect();
            Thread {
                pir: be32(t, 0),
                core_state: t[4],
                offset: be32(t, 8),
                ecnt,
                esize: be32(t, 16),
                eactsz: be32(t, 20),
                entries,
            }
        })
        .collect()
}

/// What Linux's `opal_fadump_build_cpu_notes` makes of the register data: offset, entry size
/// and count from the first thread header (opal-fadump.c:448-452), entries read from
/// `thread + offsetof(offset) + offset`, `opal_fadump_set_regval_regnum` per entry, inactive
/// cores (0x0F) skipped. The crashing thread (whose notes come from the kernel's own save) is
/// parsed too, for comparison.
fn linux_view(data: &[u8], stride: usize, size: usize) -> Vec<(u32, u8, PtRegs)> {
    let num = size / stride;
    let regs_offset = 8 + be32(data, 8) as usize;
    let esize = be32(data, 16) as usize;
    let ecnt = be32(data, 12) as usize;
    (0..num)
        .map(|i| {
            let t = &data[i * stride..];
            let mut regs = PtRegs::default();
            for e in 0..ecnt {
                let o = regs_offset + e * esize;
                set_regval(&mut regs, be32(t, o), be32(t, o + 4), be64(t, o + 8));
            }
            (be32(t, 0), t[4], regs)
        })
        .collect()
}

/// The registers our CPU state knows beyond the PAPR save set, to map QEMU's SPR numbers back
/// (with `Reg::PAPR_SAVED`).
const MORE_REGS: [Reg; 8] = [
    Reg::Hsrr0,
    Reg::Hsrr1,
    Reg::Hmer,
    Reg::Lpcr,
    Reg::Sprg0,
    Reg::Sprg1,
    Reg::Sprg2,
    Reg::Sprg3,
];

/// The vCPU state QEMU captured, as our machine would hand it to the engine (later entries
/// win, as in Linux's reader).
fn cpu_state(t: &Thread) -> CpuState {
    let by_num: BTreeMap<u32, Reg> = Reg::PAPR_SAVED
        .iter()
        .chain(&MORE_REGS)
        .filter_map(|&r| r.spr_number().map(|n| (n, r)))
        .collect();
    let mut c = CpuState::new(t.pir);
    for &(ty, num, v) in &t.entries {
        match ty {
            TYPE_GPR if num < 32 => c.gpr[num as usize] = v,
            TYPE_SPR => {
                if let Some(&r) = by_num.get(&num) {
                    c.set(r, v);
                }
            }
            _ => {}
        }
    }
    c
}

/// The QEMU side, decoded.
struct Qemu {
    ram: u64,
    mdst: Vec<TableEntry>,
    mddt: Vec<TableEntry>,
    kernel_tag: u64,
    boot_mem: u64,
    pda_first: ProcDumpArea,
    pda: ProcDumpArea,
    regdata: Vec<u8>,
    mdrt: Vec<ResultEntry>,
    mdrt_act_cnt: u64,
    cpu_meta: MpiplFadump,
    opal_meta: MpiplFadump,
    tags: [u64; 4],
    dt: BTreeMap<String, Vec<u8>>,
    kernel_regions: Vec<(u64, u64, u64)>,
    crashing_cpu: u32,
}

fn ram_bytes(s: &str) -> u64 {
    let (n, unit) = s.split_at(s.len() - 1);
    let n: u64 = n.parse().expect("RAM size");
    match unit {
        "G" => n << 30,
        "M" => n << 20,
        _ => panic!("RAM size {s}"),
    }
}

fn qemu_side(c: &Capture) -> Qemu {
    let meta = c.bin("first-mpipl-metadata");
    let km = c.bin("first-kernel-metadata");
    let n = be16(&km, 4) as usize;
    let kernel_regions = (0..n)
        .map(|i| {
            let o = 16 + 24 * i;
            (be64(&km, o), be64(&km, o + 8), be64(&km, o + 16))
        })
        .collect();
    let dt: BTreeMap<String, Vec<u8>> = c
        .j(&["console", "dt", "capture"])
        .as_object()
        .expect("the capture kernel's /ibm,opal/dump")
        .iter()
        .map(|(k, v)| (k.clone(), hex(v.as_str().unwrap())))
        .collect();
    let tags = c.j(&["firmware_structs", "tags"]);
    let tag = |k: &str| tags[k].as_u64().expect("tag");
    let crash = c.bin("capture-crash-info");
    Qemu {
        ram: ram_bytes(c.j(&["run", "machine", "ram"]).as_str().unwrap()),
        mdst: table16(&c.bin("first-mdst")),
        mddt: table16(&c.bin("first-mddt")),
        kernel_tag: u64::from_be_bytes(meta[4..12].try_into().unwrap()),
        boot_mem: u64::from_be_bytes(meta[12..20].try_into().unwrap()),
        pda_first: proc_dump_area(&c.bin("first-proc-dump-area")),
        pda: proc_dump_area(&c.bin("capture-proc-dump-area")),
        regdata: c.bin("capture-regdata"),
        mdrt: mdrt(&c.bin("capture-mdrt")),
        mdrt_act_cnt: be16(&c.bin("capture-spirah"), 0xe0 + 10) as u64,
        cpu_meta: MpiplFadump::from_be_bytes(&c.bin("capture-cpu-metadata")).unwrap(),
        opal_meta: MpiplFadump::from_be_bytes(&c.bin("capture-opal-metadata")).unwrap(),
        tags: [tag("cpu"), tag("opal"), tag("kernel"), tag("boot_mem")],
        dt,
        kernel_regions,
        // struct fadump_crash_info_header: magic, version, crashing_cpu (native LE).
        crashing_cpu: u32::from_le_bytes(crash[12..16].try_into().unwrap()),
    }
}

/// Our side: the same registration and registers through `firmware::opal`.
struct Ours {
    statuses: Vec<(String, i64)>,
    table: Vec<(u8, u64, u64, u64)>,
    results: Vec<ResultEntry>,
    tags: [u64; 4],
    cpu_meta: MpiplFadump,
    opal_meta: MpiplFadump,
    regdata: Vec<u8>,
    dt: BTreeMap<String, Vec<u8>>,
    crashing_pir: u32,
    reserved: Vec<(String, u64, u64)>,
}

fn replay(q: &Qemu) -> Ours {
    let mem: GuestMemoryMmap =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), q.ram as usize)]).unwrap();
    let read = |a: u64, n: usize| firmware::memory::read_bytes(&mem, a, n).unwrap();
    // Our firmware's areas where skiboot keeps them: OPAL's image and its copy as skiboot's own
    // table entry says, the register data in skiboot's `ibm,firmware-arch-registers`.
    let i = q
        .mdst
        .iter()
        .position(|e| e.region == REGION_OPAL)
        .expect("OPAL's own entry");
    let config = MpiplConfig {
        opal_memory: Some(OpalMemory {
            src: GuestRange::new(q.mdst[i].addr, q.mdst[i].size as u64).unwrap(),
            dest: q.mddt[i].addr,
        }),
        dump_area: GuestRange::new(q.pda_first.alloc_addr, q.pda_first.alloc_size as u64).unwrap(),
        max_threads: (q.pda_first.alloc_size as usize - 0x1000) / THREAD_SIZE,
        // Our own constant (not QEMU's property): the dt.fw-load-area row compares them.
        fw_load_area: MpiplConfig::skiboot_fw_load_area(),
    };
    let mut opal = Opal::new(MpiplEngine::new(config, &mem).expect("skiboot's layout"));
    let pir = q.opal_meta.crashing_pir;
    let mut statuses = Vec::new();
    let mut call = |opal: &mut Opal, name: String, token: OpalToken, args: &[u64]| {
        let r = opal.call(&mem, &OpalCall::new(token.number(), args, pir));
        statuses.push((name, r.r3));
        r
    };
    // opal_fadump_setup_metadata, then opal_fadump_register: one ADD_RANGE per kernel entry.
    call(
        &mut opal,
        "REGISTER_TAG(KERNEL)".into(),
        OpalToken::MpiplRegisterTag,
        &[2, q.kernel_tag],
    );
    call(
        &mut opal,
        "REGISTER_TAG(BOOT_MEM)".into(),
        OpalToken::MpiplRegisterTag,
        &[3, q.boot_mem],
    );
    for (k, (s, d)) in q.mdst.iter().zip(&q.mddt).enumerate() {
        if s.region == REGION_KERNEL {
            call(
                &mut opal,
                format!("ADD_RANGE(table[{k}])"),
                OpalToken::MpiplUpdate,
                &[0, s.addr, d.addr, s.size as u64],
            );
        }
    }
    let table = opal
        .mpipl
        .registration()
        .table
        .entries()
        .iter()
        .map(|e| (e.region.raw(), e.src.start(), e.dest.start(), e.src.len()))
        .collect();
    let stride = q.pda.thread_size as usize;
    let mut cpus: Vec<CpuState> = threads(&q.regdata, stride).iter().map(cpu_state).collect();
    let r = call(
        &mut opal,
        "CEC_REBOOT2(MPIPL)".into(),
        OpalToken::CecReboot2,
        &[3, 0],
    );
    let Some(OpalAction::Mpipl { crashing_pir }) = r.action else {
        panic!("CEC_REBOOT2(MPIPL) did not start an MPIPL: {r:?}");
    };
    let dump = opal.mpipl.preserve(&mem, &mut cpus, crashing_pir).clone();
    let results = dump
        .results
        .iter()
        .map(|e| ResultEntry {
            src: e.src.start(),
            dest: e.dest.start(),
            region: e.region.raw(),
            // Our engine does not model the dump type; what it does is an MPIPL copy (0x00).
            dump_type: 0,
            size: e.src.len(),
        })
        .collect();
    // The MPIPL boot: what QUERY_TAG answers.
    let mut tags = [0u64; 4];
    for (t, v) in tags.iter_mut().enumerate() {
        call(
            &mut opal,
            format!("QUERY_TAG({t})"),
            OpalToken::MpiplQueryTag,
            &[t as u64, SCRATCH],
        );
        *v = be64(&read(SCRATCH, 8), 0);
    }
    let meta = |a: u64| {
        let head = read(a, 0x18);
        let n = be32(&head, 0x14) as usize;
        MpiplFadump::from_be_bytes(&read(a, 0x18 + 24 * n)).unwrap()
    };
    let cpu_meta = meta(tags[0]);
    let opal_meta = meta(tags[1]);
    let regdata = read(cpu_meta.regions[0].dest, cpu_meta.regions[0].size as usize);
    let dt = opal
        .mpipl
        .dump_node_properties()
        .into_iter()
        .map(|p| (p.name.to_string(), p.value.to_fdt_bytes()))
        .collect();
    let reserved = opal
        .mpipl
        .reserved_ranges()
        .into_iter()
        .map(|(n, r)| (n.to_string(), r.start(), r.len()))
        .collect();
    Ours {
        reserved,
        statuses,
        table,
        results,
        tags,
        cpu_meta,
        opal_meta,
        regdata,
        dt,
        crashing_pir,
    }
}

/// Which side Linux's code agrees with, for a known difference.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Linux {
    /// Linux reads the field and works only (or correctly only) with our value.
    Ours,
    /// Linux accepts either value.
    Both,
    /// Linux never reads the field.
    Unread,
}

/// The known, deliberate differences: (field prefix, side, why with the source line).
fn known(field: &str) -> Option<(Linux, &'static str)> {
    const LIST: &[(&str, Linux, &str)] = &[
        ("result[OPAL].src", Linux::Ours,
         "QEMU records src after its 32 MiB copy loop advanced it (pnv_mpipl.c pnv_mpipl_preserve_mem); \
          skiboot turns the MDRT into TAG_OPAL, whose regions opal-core.c:519-522 reads (dest, size) for \
          /sys/firmware/opal/mpipl/core"),
        ("result[OPAL].dest", Linux::Ours,
         "same: QEMU's dest points ceil(size/32MiB)*32MiB past OPAL's copy; opal-core.c:519-520 reads \
          OPAL's memory from region.dest"),
        ("result[kernel].src", Linux::Unread,
         "QEMU: start + chunks*32MiB (HDAT: the range's start); the capture kernel uses its own \
          metadata (opal-fadump.c:686-699), not the MDRT"),
        ("result[kernel].dest", Linux::Unread, "same as src"),
        ("TAG_CPU", Linux::Both,
         "where the firmware keeps its metadata (skiboot heap vs our dump area); Linux __va()s what \
          QUERY_TAG returns (opal-fadump.c:708-712)"),
        ("TAG_OPAL", Linux::Both, "same, opal-core.c:478-485"),
        ("cpu.cpu_data_size", Linux::Both,
         "the per-thread stride (QEMU 24+66*16, ours 24+60*16); Linux only strides by it \
          (opal-fadump.c:378-380, 429-430)"),
        ("cpu.region[0].src", Linux::Both, "location of the register data, firmware's choice"),
        ("cpu.region[0].dest", Linux::Both,
         "location of the register data; Linux reads region[0].dest (opal-fadump.c:381-382)"),
        ("cpu.region[0].size", Linux::Both,
         "threads x stride; Linux: num_cpus = size / cpu_data_size (opal-fadump.c:430)"),
        ("opal.region[0].src", Linux::Ours, "from the MDRT: see result[OPAL].src"),
        ("opal.region[0].dest", Linux::Ours,
         "from the MDRT: opal-core.c:519-520 reads OPAL's copy at region.dest"),
        ("thread.core_state", Linux::Both,
         "QEMU 0xFF (not an HDAT stop level), ours 0x00 (running); Linux skips only 0x0F \
          (opal-fadump.c:488, opal-fadump.h:55)"),
        ("thread.offset", Linux::Ours,
         "Linux: regs = thread + offsetof(offset) + offset (opal-fadump.c:449-450), so entries after \
          the 24-byte header need 0x10. With QEMU's 0 Linux reads header bytes 8..23 as an entry \
          (type 0, ignored) and drops the last real entry (HMEER): harmless by luck"),
        ("thread.ecnt", Linux::Both,
         "entry sets differ (see the entries); Linux walks ecnt entries (opal-fadump.c:451)"),
        ("thread.entry only in QEMU", Linux::Unread,
         "Linux reads only GPRs and SPRs 1/8/9/18/19 + 0x7D0-0x7D2 (opal-fadump.h:86-125)"),
        ("thread.entry only ours", Linux::Unread, "same"),
        ("thread.entry CR (0x7D2) only ours", Linux::Ours,
         "Linux reads HDAT_FADUMP_REG_ID_CCR into pt_regs.ccr (opal-fadump.h:118); without it a \
          non-crashing CPU's note shows CR 0"),
        ("thread.entry duplicated in QEMU", Linux::Both,
         "QEMU writes CTR (first from its SPR array, 0), DAR, DSISR, CFAR twice; Linux's loop keeps \
          the last (opal-fadump.h:135-142)"),
        ("dt.mpipl-boot", Linux::Both,
         "QEMU a u64 1, ours empty (skiboot's own form); Linux tests presence only \
          (opal-fadump.c:46, 682)"),
    ];
    LIST.iter()
        .find(|(f, _, _)| field.starts_with(f))
        .map(|&(_, l, w)| (l, w))
}

struct Row {
    field: String,
    key: String,
    qemu: String,
    ours: String,
}

struct Table {
    rows: Vec<Row>,
    notes: Vec<String>,
    failures: Vec<String>,
    equal: usize,
}

impl Table {
    /// A compared field; `key` is the name [`known`] matches.
    fn cmp(&mut self, field: impl Into<String>, key: &str, qemu: String, ours: String) {
        let field = field.into();
        let same = qemu == ours;
        match (same, known(key)) {
            (true, None) => self.equal += 1,
            (true, Some(_)) => self.failures.push(format!(
                "{field}: listed as a known difference but equal ({qemu})"
            )),
            (false, None) => self.failures.push(format!(
                "{field}: QEMU {qemu}, ours {ours}: not a known difference"
            )),
            (false, Some(_)) => {}
        }
        self.rows.push(Row {
            field,
            key: key.into(),
            qemu,
            ours,
        });
    }

    fn check(&mut self, what: impl Into<String>, ok: bool) {
        let what = what.into();
        if !ok {
            self.failures.push(what.clone());
        }
        self.notes
            .push(format!("{} {what}", if ok { "ok  " } else { "FAIL" }));
    }

    fn print(&self) {
        println!(
            "{:<44} {:<22} {:<22} Linux agrees with",
            "field", "QEMU 11.1", "ours"
        );
        for r in &self.rows {
            let verdict = match (r.qemu == r.ours, known(&r.key)) {
                (true, _) => "=".to_string(),
                (false, Some((Linux::Ours, _))) => "ours".into(),
                (false, Some((Linux::Both, _))) => "both accepted".into(),
                (false, Some((Linux::Unread, _))) => "not read by Linux".into(),
                (false, None) => "UNKNOWN DIFFERENCE".into(),
            };
            if r.qemu != r.ours {
                println!("{:<44} {:<22} {:<22} {verdict}", r.field, r.qemu, r.ours);
            }
        }
        println!("({} compared fields equal, not listed)", self.equal);
        println!();
        println!("Why, per known difference:");
        let mut seen = Vec::new();
        for r in self.rows.iter().filter(|r| r.qemu != r.ours) {
            if let Some((_, why)) = known(&r.key) {
                if !seen.contains(&why) {
                    seen.push(why);
                    println!(
                        "  {}: {}",
                        r.key,
                        why.split_whitespace().collect::<Vec<_>>().join(" ")
                    );
                }
            }
        }
        println!();
        for n in &self.notes {
            println!("{n}");
        }
    }
}

fn x(v: u64) -> String {
    format!("{v:#x}")
}

fn compare(cap: &Capture, q: &Qemu, o: &Ours) -> Table {
    let mut t = Table {
        rows: Vec::new(),
        notes: Vec::new(),
        failures: Vec::new(),
        equal: 0,
    };

    // The registration: each call as skiboot took it (all succeeded: they are in its tables).
    for (name, r3) in &o.statuses {
        if name.starts_with("REGISTER_TAG") || name.starts_with("ADD_RANGE") {
            t.cmp(
                format!("status {name}"),
                "status",
                "0".into(),
                r3.to_string(),
            );
        }
    }
    t.cmp(
        "registration table entries",
        "table",
        q.mdst.len().to_string(),
        o.table.len().to_string(),
    );
    for (k, (s, d)) in q.mdst.iter().zip(&q.mddt).enumerate() {
        let Some(&(region, src, dest, size)) = o.table.get(k) else {
            continue;
        };
        let f = |n: &str| format!("table[{k}].{n}");
        t.cmp(f("region"), "table", x(s.region as u64), x(region as u64));
        t.cmp(f("src"), "table", x(s.addr), x(src));
        t.cmp(f("dest"), "table", x(d.addr), x(dest));
        t.cmp(f("size"), "table", x(s.size as u64), x(size));
    }
    // The kernel's own view of what it registered agrees with skiboot's table.
    let kernel_in_table: Vec<(u64, u64, u64)> = q
        .mdst
        .iter()
        .zip(&q.mddt)
        .filter(|(s, _)| s.region == REGION_KERNEL)
        .map(|(s, d)| (s.addr, d.addr, s.size as u64))
        .collect();
    t.check(
        format!(
            "the kernel's opal_fadump_mem_struct regions {:x?} are skiboot's kernel entries",
            q.kernel_regions
        ),
        q.kernel_regions == kernel_in_table,
    );

    // The result table.
    t.cmp(
        "result entries",
        "result",
        q.mdrt.len().to_string(),
        o.results.len().to_string(),
    );
    for (qe, oe) in q.mdrt.iter().zip(&o.results) {
        let who = if qe.region == REGION_OPAL {
            "OPAL"
        } else {
            "kernel"
        };
        let f = |n: &str| format!("result[{who}].{n}");
        t.cmp(
            f("region"),
            &f("region"),
            x(qe.region as u64),
            x(oe.region as u64),
        );
        t.cmp(f("src"), &f("src"), x(qe.src), x(oe.src));
        t.cmp(f("dest"), &f("dest"), x(qe.dest), x(oe.dest));
        t.cmp(f("size"), &f("size"), x(qe.size), x(oe.size));
        t.cmp(
            f("dump_type"),
            &f("dump_type"),
            x(qe.dump_type as u64),
            x(oe.dump_type as u64),
        );
        // How far QEMU's recorded addresses are from the range's start.
        let chunks = qe.size.div_ceil(32 << 20);
        t.check(
            format!(
                "QEMU's MDRT {who} src/dest = start + {chunks} x 32 MiB ({:#x} + {:#x})",
                oe.src,
                chunks << 25
            ),
            qe.src == oe.src + (chunks << 25) && qe.dest == oe.dest + (chunks << 25),
        );
    }
    t.notes.push(format!(
        "note MDRT act_cnt in SPIRAH: {} (QEMU leaves skiboot's static value; skiboot walks all of \
         them and keeps region 0x03 entries)",
        q.mdrt_act_cnt
    ));

    // Tags.
    for (i, name) in ["TAG_CPU", "TAG_OPAL", "TAG_KERNEL", "TAG_BOOT_MEM"]
        .iter()
        .enumerate()
    {
        t.cmp(*name, name, x(q.tags[i]), x(o.tags[i]));
    }

    // opal_mpipl_fadump for TAG_CPU and TAG_OPAL.
    for (who, qm, om) in [
        ("cpu", &q.cpu_meta, &o.cpu_meta),
        ("opal", &q.opal_meta, &o.opal_meta),
    ] {
        let f = |n: &str| format!("{who}.{n}");
        t.cmp(
            f("version"),
            &f("version"),
            qm.version.to_string(),
            om.version.to_string(),
        );
        t.cmp(
            f("crashing_pir"),
            &f("crashing_pir"),
            x(qm.crashing_pir as u64),
            x(om.crashing_pir as u64),
        );
        t.cmp(
            f("cpu_data_version"),
            &f("cpu_data_version"),
            qm.cpu_data_version.to_string(),
            om.cpu_data_version.to_string(),
        );
        t.cmp(
            f("cpu_data_size"),
            &f("cpu_data_size"),
            x(qm.cpu_data_size as u64),
            x(om.cpu_data_size as u64),
        );
        t.cmp(
            f("region_cnt"),
            &f("region_cnt"),
            qm.regions.len().to_string(),
            om.regions.len().to_string(),
        );
        for (i, (qr, or)) in qm.regions.iter().zip(&om.regions).enumerate() {
            let g = |n: &str| format!("{who}.region[{i}].{n}");
            t.cmp(g("src"), &g("src"), x(qr.src), x(or.src));
            t.cmp(g("dest"), &g("dest"), x(qr.dest), x(or.dest));
            t.cmp(g("size"), &g("size"), x(qr.size), x(or.size));
        }
    }
    let q_threads = q.cpu_meta.regions[0].size / q.cpu_meta.cpu_data_size as u64;
    let o_threads = o.cpu_meta.regions[0].size / o.cpu_meta.cpu_data_size as u64;
    t.cmp(
        "threads (size / cpu_data_size)",
        "threads",
        q_threads.to_string(),
        o_threads.to_string(),
    );
    t.cmp(
        "crashing PIR",
        "crashing",
        x(q.opal_meta.crashing_pir as u64),
        x(o.crashing_pir as u64),
    );
    t.check(
        format!(
            "the kernel's crash info header names PIR {:#x} as crashing_cpu, OPAL's metadata {:#x}",
            q.crashing_cpu, q.opal_meta.crashing_pir
        ),
        q.crashing_cpu == q.opal_meta.crashing_pir,
    );
    t.check(
        format!(
            "skiboot's TAG_CPU comes from proc_dump_area (v{}, thread_size {:#x}, dest {:#x}, act_size {:#x})",
            q.pda.version, q.pda.thread_size, q.pda.dest_addr, q.pda.act_size
        ),
        q.cpu_meta.cpu_data_size == q.pda.thread_size
            && q.cpu_meta.regions[0].dest == q.pda.dest_addr
            && q.cpu_meta.regions[0].size == q.pda.act_size as u64,
    );

    // The register data, thread by thread.
    let qs = q.cpu_meta.cpu_data_size as usize;
    let os = o.cpu_meta.cpu_data_size as usize;
    let qt = threads(&q.regdata, qs);
    let ot = threads(&o.regdata, os);
    for (i, (a, b)) in qt.iter().zip(&ot).enumerate() {
        let f = |n: &str| format!("thread[{i}].{n}");
        let k = |n: &str| format!("thread.{n}");
        t.cmp(f("pir"), &k("pir"), x(a.pir as u64), x(b.pir as u64));
        t.cmp(
            f("core_state"),
            &k("core_state"),
            x(a.core_state as u64),
            x(b.core_state as u64),
        );
        t.cmp(
            f("offset"),
            &k("offset"),
            x(a.offset as u64),
            x(b.offset as u64),
        );
        t.cmp(
            f("ecnt"),
            &k("ecnt"),
            a.ecnt.to_string(),
            b.ecnt.to_string(),
        );
        t.cmp(
            f("esize"),
            &k("esize"),
            a.esize.to_string(),
            b.esize.to_string(),
        );
        t.cmp(
            f("eactsz"),
            &k("eactsz"),
            a.eactsz.to_string(),
            b.eactsz.to_string(),
        );
        let map = |th: &Thread| {
            let mut m: BTreeMap<(u32, u32), (u64, usize)> = BTreeMap::new();
            for &(ty, n, v) in &th.entries {
                let e = m.entry((ty, n)).or_insert((v, 0));
                *e = (v, e.1 + 1);
            }
            m
        };
        let (qa, ob) = (map(a), map(b));
        let dups: Vec<String> = qa
            .iter()
            .filter(|(_, (_, n))| *n > 1)
            .map(|((_, num), _)| num.to_string())
            .collect();
        let our_dups = ob.values().filter(|(_, n)| *n > 1).count();
        t.cmp(
            f("entries written twice"),
            "thread.entry duplicated in QEMU",
            if dups.is_empty() {
                "none".into()
            } else {
                format!("SPR {}", dups.join(","))
            },
            if our_dups == 0 {
                "none".into()
            } else {
                our_dups.to_string()
            },
        );
        let keys: std::collections::BTreeSet<_> = qa.keys().chain(ob.keys()).collect();
        for key in keys {
            let name = match key.0 {
                TYPE_GPR => format!("GPR{}", key.1),
                _ => format!("SPR {:#x}", key.1),
            };
            let field = format!("thread[{i}].entry {name}");
            match (qa.get(key), ob.get(key)) {
                (Some(&(qv, _)), Some(&(ov, _))) => t.cmp(field, "thread.entry", x(qv), x(ov)),
                (Some(&(qv, _)), None) => {
                    t.cmp(field, "thread.entry only in QEMU", x(qv), "absent".into())
                }
                (None, Some(&(ov, _))) => {
                    let k = if key.1 == 0x7d2 {
                        "thread.entry CR (0x7D2) only ours"
                    } else {
                        "thread.entry only ours"
                    };
                    t.cmp(field, k, "absent".into(), x(ov))
                }
                (None, None) => unreachable!(),
            }
        }
    }

    // What Linux builds from each side's data (opal_fadump_build_cpu_notes).
    let qv = linux_view(&q.regdata, qs, q.cpu_meta.regions[0].size as usize);
    let ov = linux_view(&o.regdata, os, o.cpu_meta.regions[0].size as usize);
    for (i, ((qpir, _, qr), (opir, _, or))) in qv.iter().zip(&ov).enumerate() {
        let f = |n: &str| format!("linux note[{i}] (PIR {qpir:#x}/{opir:#x}).{n}");
        for g in 0..32 {
            t.cmp(f(&format!("gpr{g}")), "linux", x(qr.gpr[g]), x(or.gpr[g]));
        }
        for (n, a, b) in [
            ("nip", qr.nip, or.nip),
            ("msr", qr.msr, or.msr),
            ("ctr", qr.ctr, or.ctr),
            ("link", qr.link, or.link),
            ("xer", qr.xer, or.xer),
            ("ccr", qr.ccr, or.ccr),
            ("dar", qr.dar, or.dar),
            ("dsisr", qr.dsisr, or.dsisr),
        ] {
            t.cmp(f(n), "linux", x(a), x(b));
        }
    }

    // /ibm,opal/dump on the MPIPL boot.
    let names: std::collections::BTreeSet<&String> =
        q.dt.keys()
            .chain(o.dt.keys())
            .filter(|k| !matches!(k.as_str(), "name" | "phandle"))
            .collect();
    for n in names {
        let show = |v: Option<&Vec<u8>>| match v {
            None => "absent".to_string(),
            Some(b) if b.is_empty() => "empty".into(),
            Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        };
        let (a, b) = (show(q.dt.get(n)), show(o.dt.get(n)));
        let (a, b) = if n == "fw-load-area" || n == "compatible" {
            // long values: equal or not is what matters
            let eq = a == b;
            (
                if eq { "same bytes".into() } else { a },
                if eq { "same bytes".into() } else { b },
            )
        } else {
            (a, b)
        };
        t.cmp(format!("dt.{n}"), &format!("dt.{n}"), a, b);
    }

    // The reservations of the dump areas carry skiboot's names (reserved-memory nodes the
    // capture kernel saw).
    let resmem = cap.j(&["console", "resmem", "capture"]);
    for (name, start, len) in o.reserved.iter().filter(|(n, _, _)| n != "ibm,opal") {
        let node = format!("{name}@{start:x}");
        let want = format!("{start:016x}{len:016x}");
        t.check(
            format!("skiboot reserves {node} with size {len:#x} too"),
            resmem[node.as_str()].as_str() == Some(want.as_str()),
        );
    }

    // Linux's own account of parsing QEMU's data (pr_debug via dyndbg in the capture kernel).
    let hdr = cap.j(&["console", "linux_hdr"]);
    t.check(
        format!(
            "capture kernel read the entries at thread + {} (8 + QEMU's offset {}): {} entries of {} bytes",
            hdr["regs_offset"], qt[0].offset, hdr["ecnt"], hdr["esize"]
        ),
        hdr["regs_offset"].as_u64() == Some(8 + qt[0].offset as u64)
            && hdr["ecnt"].as_u64() == Some(qt[0].ecnt as u64),
    );

    // The reference worked: Linux 6.12 accepted QEMU's dump.
    let vmcore: u64 = cap
        .j(&["console", "capture", "vmcore"])
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    t.check(
        format!("capture kernel exported /proc/vmcore ({vmcore} bytes)"),
        vmcore > 0,
    );
    let dmesg: Vec<String> = cap
        .j(&["console", "dmesg_capture"])
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    t.check(
        "capture kernel: \"Firmware-assisted dump is active\"",
        dmesg
            .iter()
            .any(|l| l.contains("Firmware-assisted dump is active")),
    );
    let notes = cap
        .j(&["console", "vmcore", "prstatus"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    t.check(
        format!(
            "vmcore has one PRSTATUS note per thread ({} for {q_threads})",
            notes.len()
        ),
        notes.len() as u64 == q_threads,
    );
    // Each non-crashing thread's note is what our model of Linux reads from QEMU's data (the
    // model is faithful), and our data gives Linux the same values.
    for (pir, _, regs) in qv.iter().filter(|(p, _, _)| *p != q.crashing_cpu) {
        let found = notes.iter().find(|n| {
            n["nip"].as_u64() == Some(regs.nip) && n["gpr1"].as_u64() == Some(regs.gpr[1])
        });
        t.check(
            format!(
                "vmcore note of PIR {pir:#x} (non-crashing) = Linux's reading of QEMU's data \
                 (nip {:#x}, r1 {:#x}, msr/link/ctr/ccr too)",
                regs.nip, regs.gpr[1]
            ),
            found.is_some_and(|n| {
                n["msr"].as_u64() == Some(regs.msr)
                    && n["link"].as_u64() == Some(regs.link)
                    && n["ctr"].as_u64() == Some(regs.ctr)
                    && n["ccr"].as_u64() == Some(regs.ccr)
            }),
        );
    }
    if let Some(checks) = cap.j(&["opal_copy_check"]).as_object() {
        for (k, v) in checks {
            t.notes.push(format!(
                "note {k}: first 256 bytes equal OPAL's image: {}",
                v["first_256_bytes_equal_opal_image"]
            ));
        }
    }
    t
}

fn main() {
    // `cargo test` passes harness flags (e.g. --nocapture, a filter): ignored.
    println!("OPAL MPIPL conformance: QEMU 11.1 powernv + skiboot vs firmware::opal");
    let cap = match Capture::load() {
        Ok(c) => c,
        Err(e) => {
            println!("no capture: {e}");
            println!("opal_conformance: 0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    println!(
        "capture: {} (skiboot {}, {})",
        cap.dir.display(),
        cap.j(&["console", "skiboot_version"])
            .as_str()
            .unwrap_or("?"),
        cap.j(&["console", "capture", "vmcore"])
            .as_str()
            .map(|v| format!("vmcore {v} bytes"))
            .unwrap_or_default()
    );
    let q = qemu_side(&cap);
    let o = replay(&q);
    let t = compare(&cap, &q, &o);
    t.print();
    let checks = t.rows.len() + t.notes.iter().filter(|n| !n.starts_with("note")).count();
    let failed = t.failures.len();
    if failed > 0 {
        println!();
        for f in &t.failures {
            println!("FAIL {f}");
        }
    }
    println!(
        "opal_conformance: {} passed, {failed} failed",
        checks - failed.min(checks)
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
