//! One virtio-blk request: parse a descriptor chain, validate everything, then do the I/O.
//!
//! Layout (virtio 1.x, 5.2.6): device-readable `virtio_blk_outhdr` (`type: le32`,
//! `ioprio: le32`, `sector: le64`), then the data (device-readable for OUT, device-writable for
//! IN and GET_ID), then one device-writable status byte. With VERSION_1 the driver may split
//! these across descriptors any way it likes, so the header and data are gathered from the
//! readable/writable runs, not from particular descriptors.
//!
//! Every check happens before any I/O: descriptor directions (all readable descriptors before
//! all writable ones), a chain that ends properly (no loop, no index past the table), every
//! buffer inside guest RAM, lengths summed with checked arithmetic, the sector range inside the
//! disk, writes refused on a read-only disk. A rejected request gets `VIRTIO_BLK_S_IOERR` (or
//! `UNSUPP` for an unknown type) when it has a writable status byte, and one `log` line. So
//! does a request the host's file fails (`EIO`, `ENOSPC`): it is counted on the disk
//! ([`Disk::io_errors`]), logged on a rate-limited line of its own, and the next request is
//! tried afresh.

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::disk::{Disk, TransferError, SECTOR_SIZE};

/// Size of `virtio_blk_outhdr`.
pub const HEADER_LEN: u64 = 16;
/// Largest data transfer accepted in one request: bounds the host work one notify can cause.
/// Linux's block layer splits I/O far below this (`max_sectors_kb`, about a megabyte by
/// default), so a well-behaved guest never reaches it.
pub const MAX_DATA_LEN: u64 = 64 << 20;

/// A guest buffer: address and length, already checked to lie in RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    addr: GuestAddress,
    len: u64,
}

/// Why a request was refused (logged; the guest sees IOERR or UNSUPP).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("descriptor chain does not end (loop, bad index or unreadable descriptor)")]
    BrokenChain,
    #[error("device-readable descriptor after a device-writable one")]
    WrongDirection,
    #[error("no device-writable status byte")]
    NoStatus,
    #[error("buffer {addr:#x}+{len:#x} is not guest RAM")]
    OutsideRam { addr: u64, len: u64 },
    #[error("lengths overflow")]
    Overflow,
    #[error("header is {0} bytes, need 16")]
    ShortHeader(u64),
    #[error("request type {kind} with {readable} readable / {writable} writable data bytes")]
    BadDataDirection {
        kind: u32,
        readable: u64,
        writable: u64,
    },
    #[error("data length {0:#x} is not a multiple of 512 or exceeds the per-request limit")]
    BadLength(u64),
    #[error("sectors {sector}+{len:#x} bytes are past the end of the disk ({sectors} sectors)")]
    PastEnd { sector: u64, len: u64, sectors: u64 },
    #[error("write to a read-only disk")]
    ReadOnly,
    #[error("unsupported request type {0}")]
    Unsupported(u32),
    #[error("host I/O error: {0}")]
    Io(String),
    #[error("guest memory access failed at {0:#x}")]
    Memory(u64),
}

impl RequestError {
    fn status(&self) -> u8 {
        match self {
            RequestError::Unsupported(_) => VIRTIO_BLK_S_UNSUPP as u8,
            _ => VIRTIO_BLK_S_IOERR as u8,
        }
    }
}

/// What executing a request produced: bytes written into the chain's device-writable part
/// (the used-ring length) and the status given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub used_len: u32,
    pub status: u8,
}

/// Splits a chain into its readable and writable runs, checking directions and RAM.
struct Parsed {
    readable: Vec<Segment>,
    /// Writable data, the status byte excluded.
    writable: Vec<Segment>,
    status: Option<GuestAddress>,
}

fn parse<M: GuestMemoryBackend>(
    mem: &M,
    descs: &[Descriptor],
    complete: bool,
) -> Result<Parsed, (RequestError, Option<GuestAddress>)> {
    // The status byte is the last byte of the last descriptor if that one is writable and in
    // RAM; it is found first so that even a rejected request can be answered.
    let status = descs
        .last()
        .filter(|d| d.is_write_only() && d.len() > 0)
        .and_then(|d| d.addr().0.checked_add(u64::from(d.len()) - 1))
        .map(GuestAddress)
        .filter(|a| GuestMemoryBackend::check_range(mem, *a, 1));
    if !complete {
        return Err((RequestError::BrokenChain, status));
    }
    let Some(status_addr) = status else {
        return Err((RequestError::NoStatus, None));
    };
    let mut readable = Vec::new();
    let mut writable = Vec::new();
    let last = descs.len() - 1;
    // Whether a device-writable descriptor came before: a flag, not a rescan of the chain so
    // far (a rescan made a 65,535-descriptor indirect table cost 2 * 10^9 steps).
    let mut seen_write = false;
    for (i, d) in descs.iter().enumerate() {
        let mut len = u64::from(d.len());
        if i == last {
            len -= 1; // the status byte
        }
        let seg = Segment {
            addr: d.addr(),
            len,
        };
        let in_ram = d.addr().0.checked_add(len).is_some_and(|_| {
            len == 0 || GuestMemoryBackend::check_range(mem, d.addr(), len as usize)
        });
        if !in_ram {
            return Err((
                RequestError::OutsideRam {
                    addr: d.addr().0,
                    len,
                },
                Some(status_addr),
            ));
        }
        if d.is_write_only() {
            seen_write = true;
            if len > 0 {
                writable.push(seg);
            }
        } else if seen_write {
            return Err((RequestError::WrongDirection, Some(status_addr)));
        } else if len > 0 {
            readable.push(seg);
        }
    }
    Ok(Parsed {
        readable,
        writable,
        status: Some(status_addr),
    })
}

fn total(segs: &[Segment]) -> Result<u64, RequestError> {
    segs.iter()
        .try_fold(0u64, |acc, s| acc.checked_add(s.len))
        .ok_or(RequestError::Overflow)
}

/// Reads the 16-byte header from the start of `segs`, returning it and the segments after it.
fn take_header<M: GuestMemoryBackend>(
    mem: &M,
    segs: &[Segment],
) -> Result<([u8; HEADER_LEN as usize], Vec<Segment>), RequestError> {
    let mut hdr = [0u8; HEADER_LEN as usize];
    let mut got = 0usize;
    let mut rest = Vec::new();
    for s in segs {
        if got < hdr.len() {
            let n = (hdr.len() - got).min(s.len as usize);
            mem.read_slice(&mut hdr[got..got + n], s.addr)
                .map_err(|_| RequestError::Memory(s.addr.0))?;
            got += n;
            if (n as u64) < s.len {
                rest.push(Segment {
                    addr: GuestAddress(s.addr.0 + n as u64),
                    len: s.len - n as u64,
                });
            }
        } else {
            rest.push(*s);
        }
    }
    if got < hdr.len() {
        return Err(RequestError::ShortHeader(got as u64));
    }
    Ok((hdr, rest))
}

/// Executes the request made of `descs` on lane `lane` of the disk. `complete` is false when the chain was cut short
/// (the last descriptor still had NEXT set). Never panics on guest input; writes to the disk
/// only after every check passed.
pub fn execute<M: GuestMemoryBackend>(
    mem: &M,
    disk: &Disk,
    lane: usize,
    serial: &[u8; VIRTIO_BLK_ID_BYTES as usize],
    descs: &[Descriptor],
    complete: bool,
) -> Completion {
    let (result, status_addr) = match parse(mem, descs, complete) {
        Err((e, status)) => (Err(e), status),
        Ok(p) => {
            let status = p.status;
            (run(mem, disk, lane, serial, p), status)
        }
    };
    let (status, data_len) = match result {
        Ok(n) => (VIRTIO_BLK_S_OK as u8, n),
        // The host's file failed (EIO from a dying disk, ENOSPC from a full file system): not
        // the guest's doing, so a line of its own, with the count. The request completes with
        // IOERR like any other failure; the thread and the device carry on, and a later
        // request is tried afresh (the fault may clear).
        Err(e @ RequestError::Io(_)) => {
            let before = disk.count_io_error();
            crate::guest_warn!(
                "virtio-blk: host I/O failed, request completed with IOERR ({} so far): {e}",
                before + 1
            );
            (e.status(), 0)
        }
        Err(e) => {
            crate::guest_warn!("virtio-blk: request refused: {e}");
            (e.status(), 0)
        }
    };
    let Some(status_addr) = status_addr else {
        return Completion {
            used_len: 0,
            status,
        };
    };
    if mem.write_obj(status, status_addr).is_err() {
        crate::guest_warn!("virtio-blk: status byte at {:#x} unwritable", status_addr.0);
        return Completion {
            used_len: 0,
            status,
        };
    }
    Completion {
        // data_len ≤ MAX_DATA_LEN or ≤ 20, so it fits.
        used_len: u32::try_from(data_len + 1).unwrap_or(u32::MAX),
        status,
    }
}

/// Runs a parsed request; returns the bytes written to the guest's data buffers.
fn run<M: GuestMemoryBackend>(
    mem: &M,
    disk: &Disk,
    lane: usize,
    serial: &[u8; VIRTIO_BLK_ID_BYTES as usize],
    p: Parsed,
) -> Result<u64, RequestError> {
    let (hdr, data_in) = take_header(mem, &p.readable)?;
    let kind = u32::from_le_bytes(hdr[0..4].try_into().unwrap_or_default());
    let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or_default());
    let readable = total(&data_in)?;
    let writable = total(&p.writable)?;
    let bad_dir = || RequestError::BadDataDirection {
        kind,
        readable,
        writable,
    };
    match kind {
        VIRTIO_BLK_T_IN => {
            if readable != 0 {
                return Err(bad_dir());
            }
            let mut at = check_range(disk, sector, writable)?;
            for s in &p.writable {
                // Each segment is inside RAM (checked by `parse`) and at most MAX_DATA_LEN.
                disk.read_to_guest(lane, mem, s.addr, s.len as usize, at)
                    .map_err(transfer_error)?;
                at += s.len;
            }
            Ok(writable)
        }
        VIRTIO_BLK_T_OUT => {
            if writable != 0 {
                return Err(bad_dir());
            }
            if disk.readonly() {
                return Err(RequestError::ReadOnly);
            }
            let mut at = check_range(disk, sector, readable)?;
            for s in &data_in {
                disk.write_from_guest(lane, mem, s.addr, s.len as usize, at)
                    .map_err(transfer_error)?;
                at += s.len;
            }
            Ok(0)
        }
        VIRTIO_BLK_T_FLUSH => {
            if readable != 0 || writable != 0 {
                return Err(bad_dir());
            }
            disk.flush().map_err(|e| RequestError::Io(e.to_string()))?;
            Ok(0)
        }
        VIRTIO_BLK_T_GET_ID => {
            if readable != 0 || writable == 0 {
                return Err(bad_dir());
            }
            let mut left = serial.len().min(writable as usize);
            let mut from = 0usize;
            for s in &p.writable {
                if left == 0 {
                    break;
                }
                let n = left.min(s.len as usize);
                mem.write_slice(&serial[from..from + n], s.addr)
                    .map_err(|_| RequestError::Memory(s.addr.0))?;
                from += n;
                left -= n;
            }
            Ok(from as u64)
        }
        other => Err(RequestError::Unsupported(other)),
    }
}

fn transfer_error(e: TransferError) -> RequestError {
    match e {
        TransferError::Io(e) => RequestError::Io(e.to_string()),
        TransferError::Memory(at, _) => RequestError::Memory(at),
    }
}

fn check_range(disk: &Disk, sector: u64, len: u64) -> Result<u64, RequestError> {
    if len % SECTOR_SIZE != 0 || len > MAX_DATA_LEN {
        return Err(RequestError::BadLength(len));
    }
    disk.checked_range(sector, len)
        .ok_or(RequestError::PastEnd {
            sector,
            len,
            sectors: disk.sectors(),
        })
}
