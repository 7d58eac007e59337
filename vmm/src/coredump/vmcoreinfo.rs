//! Finding the guest kernel's VMCOREINFO note in its RAM, so a host-side core is a kernel core
//! for drgn and crash (pseries has no fw_cfg `vmcoreinfo` device to hand it over).
//!
//! Linux allocates the note page-aligned (`crash_save_vmcoreinfo_init()`: `alloc_pages_exact`)
//! and fills it at boot (`update_vmcoreinfo_note()`): an ELF note header `{namesz = 11,
//! descsz, type = 0}` in the kernel's byte order, `"VMCOREINFO\0"`, then text lines starting
//! with `OSRELEASE=`. Every 4 KiB of RAM is looked at. A candidate is confirmed by following
//! its own `SYMBOL(init_uts_ns)` (plus `OFFSET(uts_namespace.name)`) through the linear map to
//! the running kernel's release string, which must equal its `OSRELEASE`: a stale copy of
//! another kernel (the fadump destination, a previous boot) does not match.

use super::elf::{Endian, PAGE_OFFSET};
use firmware::memory;
use vm_memory::GuestMemoryBackend;

const NAME: &[u8; 12] = b"VMCOREINFO\0\0";
const SCAN_STEP: u64 = 4096;
/// The largest descriptor accepted (the kernel's `VMCOREINFO_BYTES` is one page, 64 KiB at
/// most on ppc64).
const DESC_MAX: u32 = 64 << 10;
const CHUNK: u64 = 1 << 20;
/// `struct new_utsname`: sysname, nodename, then release, 65 bytes each.
const UTS_FIELD: u64 = 65;

/// The note found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Guest physical address of the note header.
    pub addr: u64,
    /// The whole note (header, name, padded descriptor), as it goes into the core's PT_NOTE.
    pub note: Vec<u8>,
    /// Its `OSRELEASE`.
    pub release: String,
    /// Whether the running kernel's `init_uts_ns` confirmed it.
    pub confirmed: bool,
}

fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key))
}

/// The release string `init_uts_ns` holds, by the note's own symbols.
fn live_release<M: GuestMemoryBackend>(mem: &M, text: &str) -> Option<String> {
    let sym = u64::from_str_radix(value(text, "SYMBOL(init_uts_ns)=")?.trim(), 16).ok()?;
    let name_off: u64 = value(text, "OFFSET(uts_namespace.name)=")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let paddr = sym.checked_sub(PAGE_OFFSET)?;
    let at = paddr.checked_add(name_off)?.checked_add(2 * UTS_FIELD)?;
    let raw = memory::read_bytes(mem, at, UTS_FIELD as usize).ok()?;
    let end = raw.iter().position(|&b| b == 0)?;
    String::from_utf8(raw[..end].to_vec()).ok()
}

/// The note a header at `addr` starts, if it is a well-formed VMCOREINFO note.
fn candidate<M: GuestMemoryBackend>(mem: &M, e: Endian, addr: u64) -> Option<Found> {
    let head = memory::read_bytes(mem, addr, 24).ok()?;
    let w = |i: usize| e.read_u32(head[i..i + 4].try_into().unwrap());
    let (namesz, descsz, kind) = (w(0), w(4), w(8));
    if namesz != 11 || kind != 0 || descsz == 0 || descsz > DESC_MAX || head[12..24] != *NAME {
        return None;
    }
    let desc = memory::read_bytes(mem, addr + 24, descsz as usize).ok()?;
    let text = std::str::from_utf8(&desc).ok()?;
    let release = value(text, "OSRELEASE=")?.trim().to_string();
    if !text.starts_with("OSRELEASE=") || release.is_empty() {
        return None;
    }
    let confirmed = live_release(mem, text).is_some_and(|r| r == release);
    let mut note = head;
    note.extend_from_slice(&desc);
    note.resize(24 + (descsz as usize).div_ceil(4) * 4, 0);
    Some(Found {
        addr,
        note,
        release,
        confirmed,
    })
}

/// Scans RAM for the note; prefers the first confirmed one, else the first well-formed one.
pub fn find<M: GuestMemoryBackend>(mem: &M, e: Endian) -> Option<Found> {
    let mut first: Option<Found> = None;
    let mut want = [0u8; 24];
    want[..4].copy_from_slice(&e.u32(11));
    want[8..12].copy_from_slice(&e.u32(0));
    want[12..].copy_from_slice(NAME);
    for r in memory::ram_ranges(mem) {
        let mut at = r.start();
        while at < r.end() {
            let len = CHUNK.min(r.end() - at);
            let Ok(chunk) = memory::read_bytes(mem, at, len as usize) else {
                at += len;
                continue;
            };
            for off in (0..len).step_by(SCAN_STEP as usize) {
                let o = off as usize;
                let Some(h) = chunk.get(o..o + 24) else {
                    continue;
                };
                if h[..4] != want[..4] || h[8..24] != want[8..24] {
                    continue;
                }
                if let Some(f) = candidate(mem, e, at + off) {
                    if f.confirmed {
                        return Some(f);
                    }
                    first.get_or_insert(f);
                }
            }
            at += len;
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    const UTS: u64 = 0x20_0000;

    fn put_note(m: &GuestMemoryMmap<()>, at: u64, text: &str) {
        let e = Endian::Little;
        let mut n = Vec::new();
        n.extend_from_slice(&e.u32(11));
        n.extend_from_slice(&e.u32(text.len() as u32));
        n.extend_from_slice(&e.u32(0));
        n.extend_from_slice(NAME);
        n.extend_from_slice(text.as_bytes());
        memory::write_bytes(m, at, &n).unwrap();
    }

    fn text(release: &str) -> String {
        format!(
            "OSRELEASE={release}\nPAGESIZE=65536\nSYMBOL(init_uts_ns)={:x}\nOFFSET(uts_namespace.name)=0\n",
            PAGE_OFFSET | UTS
        )
    }

    #[test]
    fn the_note_confirmed_by_init_uts_ns_wins_over_a_stale_copy() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        memory::write_bytes(&m, UTS + 130, b"6.12.9\0").unwrap();
        put_note(&m, 0x3_0000, &text("6.1.0"));
        put_note(&m, 0x50_1000, &text("6.12.9"));
        let f = find(&m, Endian::Little).unwrap();
        assert_eq!(
            (f.addr, f.release.as_str(), f.confirmed),
            (0x50_1000, "6.12.9", true)
        );
        assert_eq!(f.note.len() % 4, 0);
        assert_eq!(&f.note[12..23], b"VMCOREINFO\0");
        assert!(f.note[24..].starts_with(b"OSRELEASE=6.12.9\n"));
        // Without the live one, the stale copy is what there is, unconfirmed.
        memory::write_bytes(&m, 0x50_1000, &[0; 24]).unwrap();
        let f = find(&m, Endian::Little).unwrap();
        assert_eq!((f.addr, f.confirmed), (0x3_0000, false));
    }

    #[test]
    fn malformed_or_absent_notes_are_not_taken() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        assert!(find(&m, Endian::Little).is_none());
        put_note(&m, 0x1000, "PAGESIZE=65536\n");
        assert!(find(&m, Endian::Little).is_none(), "no OSRELEASE first");
        put_note(&m, 0x2000, &text("6.12.9"));
        assert!(find(&m, Endian::Big).is_none(), "wrong byte order");
        memory::write_bytes(&m, 0x2000, &[0; 24]).unwrap();
        // descsz running off the end of RAM.
        put_note(&m, 0xf_f000, "OSRELEASE=x\n");
        memory::write_bytes(&m, 0xf_f004, &Endian::Little.u32(DESC_MAX)).unwrap();
        assert!(find(&m, Endian::Little).is_none());
    }
}
