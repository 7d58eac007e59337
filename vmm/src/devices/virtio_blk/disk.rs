//! The backing file of a virtio-blk device: positional I/O on a `std::fs::File`, 512-byte
//! sectors, bounds checked on every access.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// virtio-blk sector size (fixed by the spec, whatever `blk_size` says).
pub const SECTOR_SIZE: u64 = 512;

/// An opened disk image.
#[derive(Debug)]
pub struct Disk {
    file: File,
    sectors: u64,
    readonly: bool,
}

impl Disk {
    /// Opens `path` (read-only when `readonly`). The capacity is the file size rounded down to
    /// whole sectors; a trailing partial sector is not visible to the guest.
    pub fn open(path: &Path, readonly: bool) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(!readonly).open(path)?;
        Self::from_file(file, readonly)
    }

    /// Wraps an opened file or block device. The size comes from seeking to the end, which a
    /// block device answers with its capacity (its metadata length is 0).
    pub fn from_file(mut file: File, readonly: bool) -> io::Result<Self> {
        let len = file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file,
            sectors: len / SECTOR_SIZE,
            readonly,
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

    /// Reads exactly `buf.len()` bytes at byte offset `at` (already bounds-checked).
    pub fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, at)
    }

    /// Writes `buf` at byte offset `at` (already bounds-checked); refused on a read-only disk.
    pub fn write_at(&self, buf: &[u8], at: u64) -> io::Result<()> {
        if self.readonly {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "read-only disk",
            ));
        }
        self.file.write_all_at(buf, at)
    }

    pub fn flush(&self) -> io::Result<()> {
        if self.readonly {
            return Ok(());
        }
        self.file.sync_data()
    }
}
