//! Fuzz harness: one virtio-blk request from an arbitrary descriptor chain
//! (`request::execute`), over a small guest memory and a 64 KiB disk in a tmpfs file.
//!
//! The chain is either up to 8 fuzzed descriptors (addresses near RAM, any length and
//! direction) or a long run of one repeated descriptor (up to 65,535: an indirect table's worth)
//! before a fuzzed tail, with a header the input writes into RAM first. Checked:
//!
//! * guest memory changes only inside the chain's device-writable buffers and its status byte;
//! * the disk changes only for an accepted OUT request on a writable disk;
//! * the status is OK, IOERR or UNSUPP, and the used length is at most the writable bytes + 1
//!   (0 when there is no status byte);
//! * no input takes long (the campaign's per-input timeout): the work is linear in the chain.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::sync::OnceLock;

use virtio_bindings::virtio_blk::{VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP};
use virtio_queue::desc::split::Descriptor;
use vmm::devices::virtio_blk::disk::Disk;
use vmm::devices::virtio_blk::request::execute;

use crate::input::Input;
use crate::ram;
use crate::scratch;

const RAM: [(u64, usize); 1] = [(0, 0x1_0000)];
const DISK_LEN: u64 = 0x1_0000;
const WRITE: u16 = 2; // VIRTQ_DESC_F_WRITE
const NEXT: u16 = 1; // VIRTQ_DESC_F_NEXT

#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    pub ok: u32,
    pub disk_writes: u32,
    pub reads: u32,
    pub long_chains: u32,
}

/// The disk's backing file, one per process, emptied before each input.
fn backing() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| scratch::file("disk"))
}

fn disk_bytes(f: &File) -> Vec<u8> {
    scratch::bytes(f)
}

fn desc(input: &mut Input) -> Descriptor {
    let addr = match input.u8() % 4 {
        0 => input.u64(),
        _ => u64::from(input.u16()) & 0xffff,
    };
    let len = match input.u8() % 4 {
        0 => input.u32(),
        1 => 1,
        2 => 16,
        _ => u32::from(input.u16()) & 0x1fff,
    };
    let flags = if input.bool() { WRITE } else { 0 } | NEXT;
    Descriptor::new(addr, len, flags, 0)
}

pub fn run(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mut input = Input::new(data);
    let mem = ram::new(&RAM);
    // A header and some data the chain may point at.
    let at = u64::from(input.u16()) & 0xfff0;
    let hdr = input.bytes(32).to_vec();
    firmware::memory::write_bytes(&mem, at, &hdr).ok();

    let f = backing();
    f.set_len(0).unwrap();
    f.set_len(DISK_LEN).unwrap();
    (&*f).seek(SeekFrom::Start(0)).unwrap();
    (&*f).write_all(b"disk marker").unwrap();
    let readonly = input.bool();
    let disk = Disk::from_file(f.try_clone().unwrap(), readonly).unwrap();

    let mut descs = Vec::new();
    let mode = input.u8();
    if mode & 0x80 != 0 {
        let n = usize::from(input.u16());
        let d = desc(&mut input);
        descs.extend(std::iter::repeat_n(d, n));
        reached.long_chains += u32::from(n > 1000);
    }
    for _ in 0..(mode % 8) {
        descs.push(desc(&mut input));
    }
    if descs.is_empty() {
        return reached;
    }
    let complete = input.u8() % 16 != 0;
    let serial = [b's'; 20];

    let before = ram::snapshot(&mem, &RAM);
    let disk_before = disk_bytes(f);
    let c = execute(&mem, &disk, 0, &serial, &descs, complete);

    assert!(
        [VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP].contains(&u32::from(c.status)),
        "status {}",
        c.status
    );
    let writable: Vec<(u64, u64)> = descs
        .iter()
        .filter(|d| d.is_write_only())
        .map(|d| (d.addr().0, u64::from(d.len())))
        .collect();
    ram::assert_writes_within("a virtio-blk request", &mem, &RAM, &before, &writable);
    let writable_bytes: u64 = writable.iter().map(|(_, l)| l).sum();
    assert!(
        u64::from(c.used_len) <= writable_bytes,
        "used {} of {writable_bytes}",
        c.used_len
    );
    if disk_bytes(f) != disk_before {
        assert_eq!(
            u32::from(c.status),
            VIRTIO_BLK_S_OK,
            "a refused request wrote the disk"
        );
        assert!(!readonly, "a read-only disk was written");
        reached.disk_writes += 1;
    }
    if u32::from(c.status) == VIRTIO_BLK_S_OK {
        reached.ok += 1;
        if c.used_len > 1 {
            reached.reads += 1;
        }
    }
    reached
}
