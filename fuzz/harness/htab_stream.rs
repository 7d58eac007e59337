//! Fuzz harness: the HPT save stream KVM hands the VMM at crash time (`KVM_PPC_GET_HTAB_FD`),
//! decoded and written into a dump's HPTE section.
//!
//! The input builds a stream (raw bytes, or records with fuzzed indexes and counts), delivers
//! it through a reader that returns fuzzed chunk sizes and may fail, decodes it, and performs a
//! fadump whose HPTE section has a fuzzed capacity. Checked:
//!
//! * decoding never panics; on success there is one entry per valid HPTE in the stream, with
//!   the index its record gives, and nothing more (host memory is bounded by the stream);
//! * a pass read in chunks is the stream itself, and a read error is an error, not a short pass;
//! * the save area is header + 24 bytes per entry;
//! * the dump writes only inside registered destinations; the HPTE section holds exactly the
//!   entries when they fit (and `verify_hpte_section` agrees), and is flagged when they do not.

use std::io::Read;

use firmware::cpu::CpuState;
use firmware::fadump::{
    hpte, DumpSection, FadumpConfig, FadumpState, KernelDumpStructure, SectionType,
};
use firmware::rtas::Rtas;
use firmware::{memory, GuestRange};
use vmm::hash::stream::{
    parse_stream, pass_limit, read_pass, verify_hpte_section, HptSnapshot, HtabError,
};

use crate::input::Input;
use crate::ram;

const RAM: [(u64, usize); 1] = [(0, 0x4_0000)];
const STRUCT_AT: u64 = 0x1000;
const HPTE_DEST: u64 = 0x2_0000;

#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    pub decoded: u32,
    pub entries: u64,
    pub dumps_fitting: u32,
    pub dumps_overflowing: u32,
}

/// A reader over `data` that returns at most `chunks[i]` bytes per call and fails at call
/// `fail_at` (if any).
struct Chunked<'a> {
    data: &'a [u8],
    chunks: Vec<usize>,
    call: usize,
    fail_at: Option<usize>,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let i = self.call;
        self.call += 1;
        if Some(i) == self.fail_at {
            return Err(std::io::Error::from_raw_os_error(libc_eio()));
        }
        let want = self
            .chunks
            .get(i % self.chunks.len().max(1))
            .copied()
            .unwrap_or(usize::MAX)
            .max(1);
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn libc_eio() -> i32 {
    5
}

/// (index, dword0, dword1) of each valid entry.
type Entries = Vec<(u64, u64, u64)>;

/// The stream and what a correct decoder must make of it (None: it must refuse).
fn build_stream(input: &mut Input) -> (Vec<u8>, Option<Entries>) {
    if input.u8() & 1 == 0 {
        let raw = input.bytes(4096).to_vec();
        return (raw, None);
    }
    let mut s = Vec::new();
    let mut expect = Some(Vec::new());
    for _ in 0..(input.u8() % 16) {
        let index = match input.u8() % 4 {
            0 => input.u32(),
            _ => u32::from(input.u16()),
        };
        let n_valid = u16::from(input.u8() % 8);
        let n_invalid = input.u16();
        s.extend_from_slice(&index.to_ne_bytes());
        s.extend_from_slice(&n_valid.to_ne_bytes());
        s.extend_from_slice(&n_invalid.to_ne_bytes());
        let overflow = index
            .checked_add(u32::from(n_valid) + u32::from(n_invalid))
            .is_none();
        for i in 0..n_valid {
            let (d0, d1) = (input.u64(), input.u64());
            s.extend_from_slice(&d0.to_be_bytes());
            s.extend_from_slice(&d1.to_be_bytes());
            if let Some(e) = expect.as_mut() {
                e.push((u64::from(index) + u64::from(i), d0, d1));
            }
        }
        if overflow {
            expect = None;
        }
    }
    // Sometimes cut the stream short: it must then be refused.
    if input.u8() % 8 == 0 && !s.is_empty() {
        let cut = usize::from(input.u16()) % s.len();
        s.truncate(cut);
        expect = None;
    }
    (s, expect)
}

pub fn run(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mut input = Input::new(data);
    let (stream, expect) = build_stream(&mut input);

    // Decoding.
    let parsed = parse_stream(&stream);
    if let Some(want) = &expect {
        let got = parsed.as_ref().expect("a well-formed stream was refused");
        let got: Entries = got.iter().map(|e| (e.index, e.dword0, e.dword1)).collect();
        assert_eq!(&got, want);
    }
    if let Ok(e) = &parsed {
        assert!(
            e.len() * 16 <= stream.len(),
            "more entries than the stream holds"
        );
        reached.decoded += 1;
        reached.entries += e.len() as u64;
    } else if expect.is_none() {
        // A refusal names a byte inside the stream.
        match parsed.as_ref().unwrap_err() {
            HtabError::Truncated(at) | HtabError::IndexOverflow { at, .. } => {
                assert!(*at < stream.len())
            }
            other => panic!("unexpected decode error {other}"),
        }
    }

    // Reading in chunks.
    let chunks: Vec<usize> = (0..4).map(|_| usize::from(input.u16())).collect();
    let fail_at = (input.u8() % 4 == 0).then(|| usize::from(input.u8() % 8));
    let mut r = Chunked {
        data: &stream,
        chunks,
        call: 0,
        fail_at,
    };
    match read_pass(&mut r) {
        Ok(pass) => {
            assert_eq!(pass, stream, "a chunked pass differs from the stream");
            assert!(
                fail_at.is_none_or(|f| f >= r.call),
                "a read error was swallowed"
            );
        }
        Err(e) => {
            assert!(matches!(e, HtabError::Read(_)));
            assert!(fail_at.is_some());
        }
    }

    // Reading for a table of `capacity` entries: the host keeps at most one pass of that
    // table, and only entries inside it.
    let capacity = 1 + u64::from(input.u16() % 256);
    let mut r = Chunked {
        data: &stream,
        chunks: vec![4096],
        call: 0,
        fail_at: None,
    };
    match HptSnapshot::read_within(&mut r, capacity) {
        Ok(s) => {
            assert!(s.stream_len <= pass_limit(capacity));
            assert!(
                s.entries.iter().all(|e| e.index < capacity),
                "an entry beyond the table"
            );
            assert!(s.entries.len() * 16 <= s.stream_len);
        }
        Err(HtabError::TooLong(limit)) => assert!(stream.len() > limit),
        Err(HtabError::BeyondTable { index, count, .. }) => {
            assert!(u64::from(index) + u64::from(count) > capacity)
        }
        Err(_) => assert!(parsed.is_err(), "refused within the table but not without"),
    }

    let Ok(snap) = HptSnapshot::from_stream(&stream) else {
        return reached;
    };
    let area = snap.save_area();
    assert_eq!(
        area.len() as u64,
        hpte::HEADER_SIZE + 24 * snap.entries.len() as u64
    );

    // The dump: an HPTE section for `capacity` entries.
    // A hash guest's HPT has at least one entry (capacity 0 is a radix guest: no stream).
    let capacity = 1 + u64::from(input.u8() % 64);
    let mem = ram::new(&RAM);
    let config = FadumpConfig {
        max_cpus: 1,
        hpte_capacity: capacity,
        rma_size: 0x4_0000,
        firmware_reserved: vec![],
    };
    let cpu_len = config.cpu_state_size();
    let hpte_len = config.hpte_size();
    let mut rtas = Rtas::new(config);
    let sec = |t, src, len, dst| DumpSection::request(SectionType(t), src, len, dst);
    let structure = KernelDumpStructure::registration_bytes(&[
        sec(0x0001, 0, cpu_len, 0x3_0000),
        sec(0x0002, 0, hpte_len, HPTE_DEST),
        sec(0x0011, 0, 0x1000, 0x3_8000),
    ]);
    memory::write_bytes(&mem, STRUCT_AT, &structure).unwrap();
    if rtas
        .fadump_mut()
        .configure_kernel_dump(&mem, 1, STRUCT_AT as u32, structure.len() as u32)
        .is_err()
    {
        panic!("the template registration was refused");
    }
    let dests: Vec<GuestRange> = match rtas.fadump().state() {
        FadumpState::Registered(s) => s
            .sections()
            .iter()
            .filter_map(|x| x.destination_range())
            .collect(),
        _ => unreachable!(),
    };
    let before = ram::snapshot(&mem, &RAM);
    let mut cpus = vec![CpuState::new(0)];
    let mut entries = snap.entries.clone();
    let report = rtas
        .fadump_mut()
        .perform_dump(&mem, &mut cpus, Some(&mut entries))
        .expect("registered");
    let allowed: Vec<(u64, u64)> = dests.iter().map(|d| (d.start(), d.len())).collect();
    ram::assert_writes_within("the dump", &mem, &RAM, &before, &allowed);
    let hpte_outcome = report
        .sections
        .iter()
        .find(|s| s.data_type == SectionType::HPTE)
        .expect("HPTE section");
    let fits = snap.entries.len() as u64 <= capacity;
    if fits {
        reached.dumps_fitting += 1;
        assert_eq!(hpte_outcome.error_flags, 0, "fitting entries flagged");
        let check = verify_hpte_section(&mem, &report.kernel_dump, &snap)
            .expect("the HPTE section verifies");
        assert_eq!(check.area_len, area.len() as u64);
    } else {
        reached.dumps_overflowing += 1;
        assert_ne!(
            hpte_outcome.error_flags, 0,
            "entries beyond the capacity were not flagged"
        );
        assert!(verify_hpte_section(&mem, &report.kernel_dump, &snap).is_err());
    }
    reached
}
