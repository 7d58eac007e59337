//! The backing file of a virtio-blk device: positional I/O on a `std::fs::File`, 512-byte
//! sectors, bounds checked on every access.
//!
//! Data moves between the file and guest memory directly (`read(2)`/`write(2)` on the guest
//! pages through vm-memory's volatile slices), with no bounce buffer. A block device is also
//! opened with `O_DIRECT` (what QEMU's `cache=none` does): transfers whose guest buffer, offset
//! and length suit it bypass the host page cache, which would otherwise copy every byte once
//! more and write it back later; a transfer the kernel refuses that way (`EINVAL`, an
//! unaligned buffer) goes through the ordinary handle. Only the disk's I/O thread and its lane
//! workers use a `Disk`, one request per lane at a time, so each lane's file positions are
//! its own.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use log::{debug, info};
use vm_memory::{Bytes, GuestAddress};

/// virtio-blk sector size (fixed by the spec, whatever `blk_size` says).
pub const SECTOR_SIZE: u64 = 512;

/// Requests one disk serves at the same time (its I/O thread keeps up to this many running,
/// each on a persistent worker thread of its own lane, with the lane's own handles).
pub const LANES: usize = 16;

/// One set of handles on the file, with a file position of its own (an `open`, not a
/// `dup`): transfers are a seek and a read or write, so two at once need two lanes.
#[derive(Debug)]
struct Lane {
    file: File,
    /// The same file opened with `O_DIRECT` (block devices), for aligned transfers.
    direct: Option<File>,
}

/// An opened disk image.
#[derive(Debug)]
pub struct Disk {
    lanes: Vec<Lane>,
    sectors: u64,
    readonly: bool,
    /// Transfers the direct handle refused (then done through the page-cached one).
    direct_refused: AtomicU64,
    /// Requests the host's file failed (EIO, ENOSPC, ...): each was completed with IOERR.
    /// Shared, so the device can tell while its I/O thread owns the disk.
    io_errors: Arc<AtomicU64>,
}

/// A transfer between guest memory and the disk failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The file said no (or ended early).
    #[error("host I/O: {0}")]
    Io(#[from] io::Error),
    /// Guest memory could not be reached (checked before, so a bug or a race with a remap).
    #[error("guest memory at {0:#x}: {1}")]
    Memory(u64, String),
}

fn split(e: vm_memory::GuestMemoryError, at: GuestAddress) -> TransferError {
    match e {
        vm_memory::GuestMemoryError::IOError(e) => TransferError::Io(e),
        vm_memory::GuestMemoryError::PartialBuffer {
            expected,
            completed,
        } => TransferError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{completed} of {expected} bytes"),
        )),
        other => TransferError::Memory(at.0, other.to_string()),
    }
}

impl Disk {
    /// Opens `path` (read-only when `readonly`). The capacity is the file size rounded down to
    /// whole sectors; a trailing partial sector is not visible to the guest.
    pub fn open(path: &Path, readonly: bool) -> io::Result<Self> {
        let block = std::fs::metadata(path)?.file_type().is_block_device();
        let disk = Self::open_lanes(path, readonly, block)?;
        match (block, disk.is_direct()) {
            (true, true) => info!(
                "disk {}: block device, aligned I/O with O_DIRECT, {LANES} requests at a time",
                path.display()
            ),
            (true, false) => info!("disk {}: no O_DIRECT: page-cached I/O", path.display()),
            _ => {}
        }
        Ok(disk)
    }

    /// [`Disk::open`] with aligned transfers through `O_DIRECT` whatever the file is (an
    /// error where the file system has no direct I/O).
    pub fn open_direct(path: &Path, readonly: bool) -> io::Result<Self> {
        let disk = Self::open_lanes(path, readonly, true)?;
        if !disk.is_direct() {
            return Err(io::Error::other("no O_DIRECT here"));
        }
        Ok(disk)
    }

    /// [`LANES`] lanes on `path`, with direct handles when `direct` and the file takes them.
    fn open_lanes(path: &Path, readonly: bool, direct: bool) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(!readonly).open(path)?;
        let mut disk = Self::from_file(file, readonly)?;
        for i in 0..LANES {
            if i > 0 {
                let file = OpenOptions::new().read(true).write(!readonly).open(path)?;
                disk.lanes.push(Lane { file, direct: None });
            }
            if direct {
                match Self::open_o_direct(path, readonly) {
                    Ok(f) => disk.lanes[i].direct = Some(f),
                    Err(e) if i == 0 => {
                        debug!("disk {}: O_DIRECT refused: {e}", path.display());
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(disk)
    }

    fn open_o_direct(path: &Path, readonly: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(!readonly)
            .custom_flags(libc::O_DIRECT)
            .open(path)
    }

    /// How many transfers may run at once (one per lane).
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Transfers the direct handle refused so far (they went through the page cache).
    pub fn direct_refused(&self) -> u64 {
        self.direct_refused.load(Ordering::Relaxed)
    }

    /// Wraps an opened file or block device. The size comes from seeking to the end, which a
    /// block device answers with its capacity (its metadata length is 0).
    pub fn from_file(mut file: File, readonly: bool) -> io::Result<Self> {
        let len = file.seek(SeekFrom::End(0))?;
        Ok(Self {
            lanes: vec![Lane { file, direct: None }],
            sectors: len / SECTOR_SIZE,
            readonly,
            direct_refused: AtomicU64::new(0),
            io_errors: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Counts one request the host's file failed; returns how many there were before it.
    pub fn count_io_error(&self) -> u64 {
        self.io_errors.fetch_add(1, Ordering::Relaxed)
    }

    /// Requests the host's file failed so far (each completed with `VIRTIO_BLK_S_IOERR`).
    pub fn io_errors(&self) -> u64 {
        self.io_errors.load(Ordering::Relaxed)
    }

    /// The counter behind [`Disk::io_errors`], for whoever keeps watching after the disk
    /// moved to its I/O thread.
    pub fn io_error_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.io_errors)
    }

    /// A disk of `sectors` on `file`, whatever the file says its size is: for backing files
    /// whose size means nothing (`/dev/full`, `/proc/self/mem`, in tests).
    #[cfg(test)]
    pub(crate) fn sized(file: File, sectors: u64, readonly: bool) -> Self {
        Self {
            lanes: vec![Lane { file, direct: None }],
            sectors,
            readonly,
            direct_refused: AtomicU64::new(0),
            io_errors: Arc::new(AtomicU64::new(0)),
        }
    }

    /// True when aligned transfers bypass the host page cache.
    pub fn is_direct(&self) -> bool {
        self.lanes[0].direct.is_some()
    }

    /// Runs `op` on lane `lane`'s direct handle when there is one, and again on its ordinary
    /// handle if the direct one refuses (`EINVAL`: the kernel's alignment rules); each time
    /// at `at`. Each lane is used by one thread at a time.
    fn on_file<T>(
        &self,
        lane: usize,
        at: u64,
        mut op: impl FnMut(&File) -> Result<T, TransferError>,
    ) -> Result<T, TransferError> {
        let lane = &self.lanes[lane % self.lanes.len()];
        if let Some(d) = &lane.direct {
            let mut f = d;
            f.seek(SeekFrom::Start(at))?;
            match op(d) {
                Err(TransferError::Io(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                    let n = self.direct_refused.fetch_add(1, Ordering::Relaxed);
                    if n < 4 || n % 10_000 == 0 {
                        debug!("disk: O_DIRECT refused a transfer at {at:#x} (#{n}): buffered");
                    }
                }
                r => return r,
            }
        }
        let mut f = &lane.file;
        f.seek(SeekFrom::Start(at))?;
        op(&lane.file)
    }

    /// Reads `len` bytes at byte offset `at` (already bounds-checked) into guest memory at
    /// `addr` (checked to be RAM), on lane `lane`.
    pub fn read_to_guest<M: Bytes<GuestAddress, E = vm_memory::GuestMemoryError>>(
        &self,
        lane: usize,
        mem: &M,
        addr: GuestAddress,
        len: usize,
        at: u64,
    ) -> Result<(), TransferError> {
        self.on_file(lane, at, |f| {
            let mut f = f;
            mem.read_exact_volatile_from(addr, &mut f, len)
                .map_err(|e| split(e, addr))
        })
    }

    /// Writes `len` bytes of guest memory at `addr` to byte offset `at` (both checked);
    /// refused on a read-only disk.
    pub fn write_from_guest<M: Bytes<GuestAddress, E = vm_memory::GuestMemoryError>>(
        &self,
        lane: usize,
        mem: &M,
        addr: GuestAddress,
        len: usize,
        at: u64,
    ) -> Result<(), TransferError> {
        if self.readonly {
            return Err(TransferError::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "read-only disk",
            )));
        }
        self.on_file(lane, at, |f| {
            let mut f = f;
            mem.write_all_volatile_to(addr, &mut f, len)
                .map_err(|e| split(e, addr))
        })
    }

    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Byte offset of `sector` if `len` bytes from there stay inside the disk.
    pub fn checked_range(&self, sector: u64, len: u64) -> Option<u64> {
        let start = sector.checked_mul(SECTOR_SIZE)?;
        let end = start.checked_add(len)?;
        (end <= self.sectors.checked_mul(SECTOR_SIZE)?).then_some(start)
    }

    pub fn flush(&self) -> io::Result<()> {
        if self.readonly {
            return Ok(());
        }
        self.lanes[0].file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    struct Temp(std::path::PathBuf);
    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Aligned transfers go through O_DIRECT; one the kernel refuses for its alignment is
    /// done through the page cache, with the same result.
    #[test]
    fn direct_transfers_fall_back_to_the_page_cache_when_unaligned() {
        let t = Temp(std::env::temp_dir().join(format!("vmm-direct-{}.img", std::process::id())));
        let image: Vec<u8> = (0..64 * 512u32).map(|i| (i % 249) as u8).collect();
        std::fs::write(&t.0, &image).unwrap();
        let Ok(disk) = Disk::open_direct(&t.0, false) else {
            // A file system without direct I/O: the fallback is all there is to see.
            assert!(!Disk::open(&t.0, false).unwrap().is_direct());
            return;
        };
        assert!(disk.is_direct());
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let mut got = vec![0u8; 4096];

        // Page-aligned buffer, offset and length: direct.
        disk.read_to_guest(0, &mem, GuestAddress(0x1_0000), 4096, 8 * 512)
            .unwrap();
        mem.read_slice(&mut got, GuestAddress(0x1_0000)).unwrap();
        assert_eq!(got, image[8 * 512..8 * 512 + 4096]);
        assert_eq!(disk.direct_refused(), 0);

        // A buffer at an odd address: refused by O_DIRECT, served buffered.
        disk.read_to_guest(0, &mem, GuestAddress(0x2_0001), 4096, 16 * 512)
            .unwrap();
        mem.read_slice(&mut got, GuestAddress(0x2_0001)).unwrap();
        assert_eq!(got, image[16 * 512..16 * 512 + 4096]);
        assert_eq!(disk.direct_refused(), 1);

        // Writes both ways land in the file, and reads see them whichever handle they use.
        mem.write_slice(&[0xa5; 4096], GuestAddress(0x3_0000))
            .unwrap();
        disk.write_from_guest(0, &mem, GuestAddress(0x3_0000), 4096, 0)
            .unwrap();
        mem.write_slice(&[0x5a; 512], GuestAddress(0x4_0003))
            .unwrap();
        disk.write_from_guest(0, &mem, GuestAddress(0x4_0003), 512, 40 * 512)
            .unwrap();
        // (A file system may take an unaligned direct write itself, as ext4 does.)
        assert!(disk.direct_refused() >= 1);
        disk.flush().unwrap();
        let file = std::fs::read(&t.0).unwrap();
        assert_eq!(file[..4096], [0xa5; 4096]);
        assert_eq!(file[40 * 512..41 * 512], [0x5a; 512]);
        disk.read_to_guest(0, &mem, GuestAddress(0x5_0000), 512, 40 * 512)
            .unwrap();
        mem.read_slice(&mut got[..512], GuestAddress(0x5_0000))
            .unwrap();
        assert_eq!(got[..512], [0x5a; 512]);

        // Past the end of the file: an error, not a short read.
        assert!(matches!(
            disk.read_to_guest(0, &mem, GuestAddress(0x6_0000), 4096, 63 * 512),
            Err(TransferError::Io(_))
        ));
        // A read-only disk writes nothing.
        let ro = Disk::open_direct(&t.0, true).unwrap();
        assert!(ro
            .write_from_guest(0, &mem, GuestAddress(0x3_0000), 512, 0)
            .is_err());
    }
}
