//! A host-side ELF core of the paused guest (`vm.coredump`, `--on-crash host-dump=PATH`):
//! [`elf`] lays the file out, [`vmcoreinfo`] finds the guest kernel's VMCOREINFO note so
//! drgn treats the core as a kernel core, and [`write_core`] streams guest RAM into it,
//! leaving a hole wherever a 64 KiB block is all zero (never-touched guest pages read as the
//! zero page), so the file is sparse.

pub mod elf;
pub mod vmcoreinfo;

use elf::{Endian, DATA_ALIGN};
use firmware::{memory, CpuState};
use std::fs::File;
use std::os::unix::fs::FileExt;
use vm_memory::GuestMemoryBackend;

/// How much RAM is read at a time.
const CHUNK: u64 = 4 << 20;

/// What [`write_core`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreStats {
    /// The file's size (holes included).
    pub file_bytes: u64,
    /// Bytes of RAM actually written (non-zero blocks).
    pub data_bytes: u64,
    /// RAM bytes covered by the `PT_LOAD`s.
    pub ram_bytes: u64,
    /// `NT_PRSTATUS` notes written (one per vCPU).
    pub cpus: usize,
    /// The guest kernel's release from its VMCOREINFO note, if one was found, and whether
    /// `init_uts_ns` confirmed it.
    pub vmcoreinfo: Option<(String, bool)>,
}

/// A vCPU caught inside an RTAS call (our stub's `sc 1`, entered by Linux's `enter_rtas`:
/// real mode, 32-bit, big-endian, LR = the real address of `rtas_return_loc`, r1 still the
/// kernel stack of `enter_rtas`'s frame) as the kernel will be when the call returns: NIP and
/// LR = that return point in the linear map, MSR 64-bit kernel mode with translation on
/// (SF, IR, DR, RI, ME; LE if `le`). Debuggers can then unwind it from `rtas_return_loc`
/// through `rtas_call` into its caller (`ibm,os-term` from `panic()` in a host dump).
/// `None` for a vCPU that is not in that state.
pub fn rtas_caller_view(s: &CpuState, le: bool) -> Option<CpuState> {
    use firmware::Reg;
    const MSR_SF: u64 = 1 << 63;
    const MSR_IR: u64 = 1 << 5;
    const MSR_DR: u64 = 1 << 4;
    const MSR_RI: u64 = 1 << 1;
    const MSR_ME: u64 = 1 << 12;
    let msr = s.get(Reg::Msr);
    let lr = s.get(Reg::Lr);
    let real = msr & (MSR_IR | MSR_DR) == 0;
    if !real || msr & 1 != 0 || lr == 0 || lr >= 1 << 60 || s.gpr[1] < elf::PAGE_OFFSET {
        return None;
    }
    let ret = elf::PAGE_OFFSET | lr;
    let mut v = s.clone();
    v.set(Reg::Nia, ret).set(Reg::Lr, ret).set(
        Reg::Msr,
        MSR_SF | MSR_ME | MSR_IR | MSR_DR | MSR_RI | u64::from(le),
    );
    Some(v)
}

/// The notes of a core: one `NT_PRSTATUS` per entry of `cpus` (vCPU order; `None` = registers
/// unknown, written as zeros to keep the order), then the VMCOREINFO note if given.
pub fn notes(e: Endian, cpus: &[Option<CpuState>], vmcoreinfo: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cpus {
        out.extend(elf::note(
            e,
            "CORE",
            elf::NT_PRSTATUS,
            &elf::prstatus(e, c.as_ref()),
        ));
    }
    if let Some(v) = vmcoreinfo {
        out.extend_from_slice(v);
    }
    out
}

/// Writes the core of `mem` with `cpus`' registers into `file` (truncated first).
/// `between_chunks` runs after every few MiB (the machine answers operator requests there).
pub fn write_core<M: GuestMemoryBackend>(
    mem: &M,
    e: Endian,
    cpus: &[Option<CpuState>],
    file: &File,
    between_chunks: &mut dyn FnMut(),
) -> std::io::Result<CoreStats> {
    let found = vmcoreinfo::find(mem, e);
    match &found {
        Some(f) => log::info!(
            "coredump: VMCOREINFO of {} at {:#x}{}",
            f.release,
            f.addr,
            if f.confirmed {
                ""
            } else {
                " (not confirmed by init_uts_ns)"
            }
        ),
        None => {
            log::warn!("coredump: no VMCOREINFO note in guest RAM; drgn will not see a kernel core")
        }
    }
    let ram = memory::ram_ranges(mem);
    let notes = notes(e, cpus, found.as_ref().map(|f| f.note.as_slice()));
    let layout = elf::layout(e, &notes, &ram);
    // A regular file gets holes; anything else (a block device such as a test's export disk)
    // cannot be truncated and may hold old data, so every byte is written there.
    let sparse = file.metadata()?.is_file();
    if sparse {
        file.set_len(0)?;
        file.set_len(layout.file_len)?;
    }
    file.write_all_at(&layout.head, 0)?;
    if !sparse {
        let gap = layout.loads.first().map_or(0, |(o, _)| *o) - layout.head.len() as u64;
        file.write_all_at(&vec![0; gap as usize], layout.head.len() as u64)?;
    }
    let mut data_bytes = 0;
    for (off, r) in &layout.loads {
        let mut at = r.start();
        while at < r.end() {
            let len = CHUNK.min(r.end() - at);
            let buf = memory::read_bytes(mem, at, len as usize)
                .map_err(|e| std::io::Error::other(format!("reading guest RAM: {e}")))?;
            for (i, block) in buf.chunks(DATA_ALIGN as usize).enumerate() {
                if sparse && is_zero(block) {
                    continue;
                }
                let file_at = off + (at - r.start()) + i as u64 * DATA_ALIGN;
                file.write_all_at(block, file_at)?;
                data_bytes += block.len() as u64;
            }
            at += len;
            between_chunks();
        }
    }
    // Character devices cannot be synced (EINVAL); anything else that fails to reach storage
    // is an error.
    if let Err(e) = file.sync_data() {
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    Ok(CoreStats {
        file_bytes: layout.file_len,
        data_bytes,
        ram_bytes: ram.iter().map(|r| r.len()).sum(),
        cpus: cpus.len(),
        vmcoreinfo: found.map(|f| (f.release, f.confirmed)),
    })
}

fn is_zero(b: &[u8]) -> bool {
    let words = b.chunks_exact(8);
    let rest = words.remainder();
    rest.iter().all(|&x| x == 0)
        && words
            .into_iter()
            .all(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::Reg;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ppc-vmm-core-{}-{name}", std::process::id()))
    }

    #[test]
    fn core_holds_ram_registers_and_vmcoreinfo_and_skips_zero_blocks() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x100_0000),
            (GuestAddress(0x2000_0000), 0x20_0000),
        ])
        .unwrap();
        memory::write_bytes(&m, 0x12_3456, b"pattern at 0x123456").unwrap();
        memory::write_bytes(&m, 0x2010_0000, b"second range").unwrap();
        let e = Endian::Little;
        let text = b"OSRELEASE=6.12.9\nPAGESIZE=65536\n";
        let mut n = Vec::new();
        n.extend_from_slice(&e.u32(11));
        n.extend_from_slice(&e.u32(text.len() as u32));
        n.extend_from_slice(&e.u32(0));
        n.extend_from_slice(b"VMCOREINFO\0\0");
        n.extend_from_slice(text);
        memory::write_bytes(&m, 0x80_0000, &n).unwrap();
        let mut c1 = CpuState::new(1);
        c1.gpr[1] = 0xc000_0000_0123_0000;
        c1.set(Reg::Nia, 0xc000_0000_0000_4444);
        let cpus = vec![None, Some(c1)];
        let path = tmp("a");
        let f = File::create(&path).unwrap();
        let mut ticks = 0;
        let s = write_core(&m, e, &cpus, &f, &mut || ticks += 1).unwrap();
        assert!(ticks >= 4, "called between chunks");
        assert_eq!(s.cpus, 2);
        assert_eq!(s.vmcoreinfo, Some(("6.12.9".into(), false)));
        assert_eq!(s.ram_bytes, 0x120_0000);
        // Three non-zero 64 KiB blocks: the pattern, the note, the second range's text.
        assert_eq!(s.data_bytes, 3 * DATA_ALIGN);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), s.file_bytes);
        assert!(
            meta.blocks() * 512 < s.file_bytes / 2,
            "sparse: {} blocks",
            meta.blocks()
        );
        let mut bytes = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut bytes).unwrap();
        let notes = notes(e, &cpus, Some(&n));
        let l = elf::layout(e, &notes, &memory::ram_ranges(&m));
        assert_eq!(&bytes[..l.head.len()], &l.head[..]);
        let at = |gpa: u64| {
            let (off, r) = l.loads.iter().find(|(_, r)| r.contains_addr(gpa)).unwrap();
            (off + gpa - r.start()) as usize
        };
        assert_eq!(
            &bytes[at(0x12_3456)..at(0x12_3456) + 19],
            b"pattern at 0x123456"
        );
        assert_eq!(
            &bytes[at(0x2010_0000)..at(0x2010_0000) + 12],
            b"second range"
        );
        // The second PRSTATUS (cpu 1) carries r1 and nip.
        let pr = l.head.len() - notes.len() + (12 + 8 + elf::PRSTATUS_LEN) + 20;
        assert_eq!(
            &bytes[pr + 112 + 8..pr + 120 + 8],
            &e.u64(0xc000_0000_0123_0000)
        );
        assert_eq!(
            &bytes[pr + 112 + 256..pr + 112 + 264],
            &e.u64(0xc000_0000_0000_4444)
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn an_rtas_caller_is_shown_at_its_return_point() {
        let mut s = CpuState::new(0);
        s.gpr[1] = 0xc000_0000_0345_0000;
        s.set(Reg::Nia, 0x7fff_0010)
            .set(Reg::Msr, 0x1000)
            .set(Reg::Lr, 0x0012_3450);
        let v = rtas_caller_view(&s, true).unwrap();
        assert_eq!(v.get(Reg::Nia), 0xc000_0000_0012_3450);
        assert_eq!(v.get(Reg::Lr), 0xc000_0000_0012_3450);
        assert_eq!(v.get(Reg::Msr), 0x8000_0000_0000_1033);
        assert_eq!(v.gpr[1], s.gpr[1]);
        // In kernel mode (translation on) or with a real-mode stack: left alone.
        let mut k = s.clone();
        k.set(Reg::Msr, 0x8000_0000_0000_1033);
        assert!(rtas_caller_view(&k, true).is_none());
        let mut r = s.clone();
        r.gpr[1] = 0x345_0000;
        assert!(rtas_caller_view(&r, true).is_none());
    }

    #[test]
    fn a_block_device_style_target_gets_every_byte() {
        // Not a regular file (as a block device): no holes, every RAM byte written.
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap();
        memory::write_bytes(&m, 0x1000, b"x").unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let s = write_core(&m, Endian::Little, &[None], &f, &mut || ()).unwrap();
        assert_eq!(s.data_bytes, 0x20_0000, "zero blocks written too");
    }

    #[test]
    fn zero_check_sees_every_byte() {
        let mut b = vec![0u8; 65536 + 3];
        assert!(is_zero(&b));
        for i in [0, 7, 8, 65535, 65538] {
            b[i] = 1;
            assert!(!is_zero(&b), "{i}");
            b[i] = 0;
        }
    }
}
