//! ELF64 `vmlinux` loader for ppc64, implementing linux-loader's [`KernelLoader`] (whose own
//! ELF loader is x86-only).
//!
//! Each `PT_LOAD` segment is copied to its **physical** address (`p_paddr`, 0 for a ppc64
//! vmlinux whose virtual addresses start at 0xc000_0000_0000_0000) and its `p_memsz -
//! p_filesz` tail is zeroed. The entry point is `e_entry` translated through the segment that
//! contains it. Everything read from the file is validated with checked arithmetic.

use linux_loader::loader::{self, KernelLoader, KernelLoaderResult};
use log::debug;
use std::io::{Read, Seek, SeekFrom};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestUsize, ReadVolatile};

const ELFMAG: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_PPC64: u16 = 21;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// More program headers than any kernel has; bounds the work a hostile file can cause.
const MAX_PHDRS: u16 = 64;

/// Why an image cannot be loaded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("reading the kernel image failed: {0}")]
    Read(String),
    #[error("not an ELF file")]
    NotElf,
    #[error("not a 64-bit little-endian ppc64 executable (class {class}, data {data}, machine {machine}, type {etype})")]
    WrongKind {
        class: u8,
        data: u8,
        machine: u16,
        etype: u16,
    },
    #[error("bad program header table (count {0})")]
    BadPhdrs(u16),
    #[error("segment {index}: file size {filesz:#x} exceeds memory size {memsz:#x}")]
    BadSegment {
        index: usize,
        filesz: u64,
        memsz: u64,
    },
    #[error("segment {index} ({paddr:#x}+{memsz:#x}) does not fit in guest memory")]
    OutOfMemory {
        index: usize,
        paddr: u64,
        memsz: u64,
    },
    #[error("no PT_LOAD segment")]
    NoLoadSegment,
    #[error("entry point {0:#x} lies in no PT_LOAD segment")]
    EntryOutsideSegments(u64),
}

impl From<ElfError> for loader::Error {
    fn from(e: ElfError) -> Self {
        match e {
            ElfError::OutOfMemory { .. } => loader::Error::MemoryOverflow,
            _ => loader::Error::InvalidKernelStartAddress,
        }
    }
}

/// Where the kernel went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedKernel {
    /// Physical entry point (0 for vmlinux): the boot vCPU's `pc`.
    pub entry: GuestAddress,
    /// Lowest loaded physical address: r4 at entry (kernel base).
    pub base: GuestAddress,
    /// First byte after the highest segment (including its zeroed tail).
    pub end: GuestAddress,
    /// Bytes actually written: chunks guest memory already held unchanged are skipped.
    pub written: u64,
}

#[derive(Debug, Clone, Copy)]
struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn io(e: std::io::Error) -> ElfError {
    ElfError::Read(e.to_string())
}

/// The ppc64 ELF loader.
pub struct Ppc64Elf;

impl Ppc64Elf {
    /// Loads `image` into `mem`, optionally shifted up by `offset` bytes.
    pub fn load_kernel<F, M>(mem: &M, offset: u64, image: &mut F) -> Result<LoadedKernel, ElfError>
    where
        F: Read + ReadVolatile + Seek,
        M: GuestMemoryBackend,
    {
        let mut eh = [0u8; EHDR_SIZE];
        image.seek(SeekFrom::Start(0)).map_err(io)?;
        image.read_exact(&mut eh).map_err(|_| ElfError::NotElf)?;
        if eh[..4] != ELFMAG {
            return Err(ElfError::NotElf);
        }
        let (class, data, etype, machine) = (eh[4], eh[5], u16_at(&eh, 16), u16_at(&eh, 18));
        if class != ELFCLASS64
            || data != ELFDATA2LSB
            || machine != EM_PPC64
            || !(etype == ET_EXEC || etype == ET_DYN)
        {
            return Err(ElfError::WrongKind {
                class,
                data,
                machine,
                etype,
            });
        }
        let entry = u64_at(&eh, 24);
        let phoff = u64_at(&eh, 32);
        let phentsize = u16_at(&eh, 54);
        let phnum = u16_at(&eh, 56);
        if usize::from(phentsize) != PHDR_SIZE || phnum == 0 || phnum > MAX_PHDRS {
            return Err(ElfError::BadPhdrs(phnum));
        }
        let mut phdrs = Vec::with_capacity(phnum.into());
        for i in 0..u64::from(phnum) {
            let pos = i
                .checked_mul(PHDR_SIZE as u64)
                .and_then(|o| o.checked_add(phoff))
                .ok_or(ElfError::BadPhdrs(phnum))?;
            let mut ph = [0u8; PHDR_SIZE];
            image.seek(SeekFrom::Start(pos)).map_err(io)?;
            image
                .read_exact(&mut ph)
                .map_err(|_| ElfError::BadPhdrs(phnum))?;
            phdrs.push(Phdr {
                p_type: u32_at(&ph, 0),
                offset: u64_at(&ph, 8),
                vaddr: u64_at(&ph, 16),
                paddr: u64_at(&ph, 24),
                filesz: u64_at(&ph, 32),
                memsz: u64_at(&ph, 40),
            });
        }

        let mut base = u64::MAX;
        let mut end = 0u64;
        let mut written = 0u64;
        let mut entry_pa = None;
        for (index, ph) in phdrs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.p_type == PT_LOAD)
        {
            if ph.filesz > ph.memsz {
                return Err(ElfError::BadSegment {
                    index,
                    filesz: ph.filesz,
                    memsz: ph.memsz,
                });
            }
            let oom = ElfError::OutOfMemory {
                index,
                paddr: ph.paddr,
                memsz: ph.memsz,
            };
            let start = ph.paddr.checked_add(offset).ok_or(oom.clone())?;
            let seg_end = start.checked_add(ph.memsz).ok_or(oom.clone())?;
            // The whole segment must be backed by guest memory.
            if ph.memsz > 0 && !mem.check_range(GuestAddress(start), ph.memsz as usize) {
                return Err(oom);
            }
            if ph.memsz as u128 > usize::MAX as u128 {
                return Err(oom);
            }
            image.seek(SeekFrom::Start(ph.offset)).map_err(io)?;
            written +=
                write_changed(mem, start, ph.filesz, |buf| image.read_exact(buf)).map_err(|e| {
                    match e {
                        Changed::Source(e) => io(e),
                        Changed::Memory => oom.clone(),
                    }
                })?;
            written += write_changed(mem, start + ph.filesz, ph.memsz - ph.filesz, |buf| {
                buf.fill(0);
                Ok(())
            })
            .map_err(|_| oom)?;
            debug!(
                "elf: segment {index} -> {start:#x}..{seg_end:#x} ({:#x} from file)",
                ph.filesz
            );
            if entry >= ph.vaddr && entry - ph.vaddr < ph.memsz.max(1) {
                entry_pa = Some(start + (entry - ph.vaddr));
            }
            base = base.min(start);
            end = end.max(seg_end);
        }
        if end == 0 && base == u64::MAX {
            return Err(ElfError::NoLoadSegment);
        }
        let entry = entry_pa.ok_or(ElfError::EntryOutsideSegments(entry))?;
        Ok(LoadedKernel {
            entry: GuestAddress(entry),
            base: GuestAddress(base),
            end: GuestAddress(end),
            written,
        })
    }
}

/// Why [`write_changed`] stopped.
enum Changed {
    /// The source could not be read.
    Source(std::io::Error),
    /// Guest memory could not be read or written.
    Memory,
}

/// Writes `len` bytes, produced a 4 KiB page at a time by `fill`, at `addr`, skipping every
/// page guest memory already holds unchanged; returns the bytes written. A capture or reboot loads
/// the same kernel where the last one ran, and its text is unchanged: not writing it leaves
/// those pages clean (and, under an emulated L0, keeps the emulator from invalidating the
/// code it translated from them, which made the capture boot's kernel load 10x slower than
/// the first boot's).
fn write_changed<M: GuestMemoryBackend>(
    mem: &M,
    addr: u64,
    len: u64,
    mut fill: impl FnMut(&mut [u8]) -> std::io::Result<()>,
) -> Result<u64, Changed> {
    // A page: what the emulator invalidates at a time. The kernel patches its own text at
    // boot (feature fixups, static keys), so coarser chunks nearly all differ: of a 6.12
    // guest's 7 MB, 70 of 108 64 KiB chunks had changed by the crash, but 345 of 1,723 pages.
    const CHUNK: u64 = 4 << 10;
    let mut want = vec![0u8; CHUNK.min(len) as usize];
    let mut have = want.clone();
    let mut done = 0;
    let mut written = 0;
    while done < len {
        let n = (len - done).min(CHUNK) as usize;
        let at = GuestAddress(addr + done);
        fill(&mut want[..n]).map_err(Changed::Source)?;
        mem.read_slice(&mut have[..n], at)
            .map_err(|_| Changed::Memory)?;
        if have[..n] != want[..n] {
            mem.write_slice(&want[..n], at)
                .map_err(|_| Changed::Memory)?;
            written += n as u64;
        }
        done += n as u64;
    }
    Ok(written)
}

impl KernelLoader for Ppc64Elf {
    /// linux-loader's entry point. `kernel_offset` shifts every segment. `kernel_load` in the
    /// result is the kernel's physical base; for a ppc64 vmlinux this is also the entry point
    /// (use [`Ppc64Elf::load_kernel`] to get the entry separately).
    fn load<F, M: GuestMemoryBackend>(
        guest_mem: &M,
        kernel_offset: Option<GuestAddress>,
        kernel_image: &mut F,
        _highmem_start_address: Option<GuestAddress>,
    ) -> loader::Result<KernelLoaderResult>
    where
        F: Read + ReadVolatile + Seek,
    {
        let off = kernel_offset.map_or(0, |a| a.0);
        let k = Self::load_kernel(guest_mem, off, kernel_image)?;
        Ok(loader_result(k.base, k.end.0 as GuestUsize))
    }
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn loader_result(kernel_load: GuestAddress, kernel_end: GuestUsize) -> KernelLoaderResult {
    KernelLoaderResult {
        kernel_load,
        kernel_end,
    }
}

// On x86 hosts (unit tests) the struct carries x86 boot-protocol fields we leave empty.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn loader_result(kernel_load: GuestAddress, kernel_end: GuestUsize) -> KernelLoaderResult {
    KernelLoaderResult {
        kernel_load,
        kernel_end,
        setup_header: None,
        pvh_boot_cap: linux_loader::loader::elf::PvhBootCapability::PvhEntryNotPresent,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;
    use vm_memory::GuestMemoryMmap;

    /// A minimal ppc64le ELF: one PT_LOAD at vaddr 0xc000..., paddr `paddr`, with `code` as
    /// file contents and `bss` zero bytes after it, entry at vaddr + `entry_off`.
    pub(crate) fn make_elf(paddr: u64, code: &[u8], bss: u64, entry_off: u64) -> Vec<u8> {
        let vaddr = 0xc000_0000_0000_0000u64;
        let mut f = vec![0u8; 0x1000];
        f[..4].copy_from_slice(&ELFMAG);
        f[4] = ELFCLASS64;
        f[5] = ELFDATA2LSB;
        f[6] = 1;
        f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        f[18..20].copy_from_slice(&EM_PPC64.to_le_bytes());
        f[24..32].copy_from_slice(&(vaddr + entry_off).to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        // phdr 0: PT_LOAD
        let p = 64;
        f[p..p + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        f[p + 8..p + 16].copy_from_slice(&0x1000u64.to_le_bytes());
        f[p + 16..p + 24].copy_from_slice(&vaddr.to_le_bytes());
        f[p + 24..p + 32].copy_from_slice(&paddr.to_le_bytes());
        f[p + 32..p + 40].copy_from_slice(&(code.len() as u64).to_le_bytes());
        f[p + 40..p + 48].copy_from_slice(&(code.len() as u64 + bss).to_le_bytes());
        // phdr 1: PT_NOTE (ignored)
        let p = 64 + PHDR_SIZE;
        f[p..p + 4].copy_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(code);
        f
    }

    fn mem() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    #[test]
    fn loads_pt_load_at_its_physical_address_and_zeroes_bss() {
        let m = mem();
        m.write_slice(&[0xaa; 64], GuestAddress(0x2000 + 8))
            .unwrap();
        let elf = make_elf(0x2000, b"\x01\x02\x03\x04\x05\x06\x07\x08", 64, 4);
        let k = Ppc64Elf::load_kernel(&m, 0, &mut Cursor::new(elf)).unwrap();
        assert_eq!(
            k,
            LoadedKernel {
                entry: GuestAddress(0x2004),
                base: GuestAddress(0x2000),
                end: GuestAddress(0x2000 + 8 + 64),
                // The code, and the bss the 0xaa dirtied.
                written: 8 + 64,
            }
        );
        let mut b = [0u8; 80];
        m.read_slice(&mut b, GuestAddress(0x2000)).unwrap();
        assert_eq!(&b[..8], b"\x01\x02\x03\x04\x05\x06\x07\x08");
        assert!(b[8..72].iter().all(|&x| x == 0), "bss zeroed");
    }

    #[test]
    fn a_reload_writes_only_the_chunks_that_changed() {
        let m = mem();
        // Three 64 KiB of text and 64 KiB of bss.
        let text: Vec<u8> = (0..3 << 16).map(|i| (i % 251) as u8).collect();
        let elf = make_elf(0x4_0000, &text, 64 << 10, 0);
        let first = Ppc64Elf::load_kernel(&m, 0, &mut Cursor::new(&elf)).unwrap();
        // Fresh memory is zero, so the bss needed no write.
        assert_eq!(first.written, 3 << 16);
        let again = Ppc64Elf::load_kernel(&m, 0, &mut Cursor::new(&elf)).unwrap();
        assert_eq!(again.written, 0, "the same kernel where it already is");
        // The last kernel changed one byte of its text and one of its bss.
        m.write_slice(&[0x55], GuestAddress(0x4_0000 + (1 << 16) + 7))
            .unwrap();
        m.write_slice(&[0x66], GuestAddress(0x4_0000 + (3 << 16) + 9))
            .unwrap();
        let third = Ppc64Elf::load_kernel(&m, 0, &mut Cursor::new(&elf)).unwrap();
        assert_eq!(third.written, 2 << 12, "the two dirtied pages only");
        let mut b = vec![0u8; 4 << 16];
        m.read_slice(&mut b, GuestAddress(0x4_0000)).unwrap();
        assert_eq!(&b[..3 << 16], &text[..]);
        assert!(b[3 << 16..].iter().all(|&x| x == 0));
    }

    #[test]
    fn kernel_loader_trait_reports_base_and_end() {
        let m = mem();
        let elf = make_elf(0, &[0x60, 0, 0, 0], 12, 0);
        let r =
            Ppc64Elf::load(&m, Some(GuestAddress(0x10000)), &mut Cursor::new(elf), None).unwrap();
        assert_eq!(r.kernel_load, GuestAddress(0x10000));
        assert_eq!(r.kernel_end, 0x10000 + 16);
    }

    #[test]
    fn rejects_hostile_images() {
        let m = mem();
        let load = |f: Vec<u8>| Ppc64Elf::load_kernel(&m, 0, &mut Cursor::new(f));
        assert_eq!(
            load(b"not an elf at all, definitely not".repeat(4)),
            Err(ElfError::NotElf)
        );
        assert_eq!(load(vec![0x7f, b'E']), Err(ElfError::NotElf));
        let mut be = make_elf(0, &[0; 4], 0, 0);
        be[5] = 2;
        assert!(matches!(load(be), Err(ElfError::WrongKind { .. })));
        // Segment beyond the 1 MiB of memory.
        assert!(matches!(
            load(make_elf(0xff000, &[0; 4], 0x2000, 0)),
            Err(ElfError::OutOfMemory { .. })
        ));
        // Address overflow.
        assert!(matches!(
            load(make_elf(u64::MAX - 2, &[0; 4], 0, 0)),
            Err(ElfError::OutOfMemory { .. })
        ));
        // filesz > memsz.
        let mut e = make_elf(0, &[0; 8], 0, 0);
        e[64 + 40..64 + 48].copy_from_slice(&4u64.to_le_bytes());
        assert!(matches!(load(e), Err(ElfError::BadSegment { .. })));
        // Too many program headers.
        let mut e = make_elf(0, &[0; 8], 0, 0);
        e[56..58].copy_from_slice(&1000u16.to_le_bytes());
        assert_eq!(load(e), Err(ElfError::BadPhdrs(1000)));
        // Entry outside the segment.
        assert!(matches!(
            load(make_elf(0, &[0; 8], 0, 0x100)),
            Err(ElfError::EntryOutsideSegments(_))
        ));
        // Truncated file: segment data missing.
        let mut e = make_elf(0, &[0; 64], 0, 0);
        e.truncate(0x1010);
        assert!(matches!(load(e), Err(ElfError::Read(_))));
    }
}
