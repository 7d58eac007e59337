//! A scratch file for a harness's disk: in /dev/shm when there is one (a tmpfs, so inputs
//! never wait on a real disk), unlinked at once so nothing is left behind.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// A new, empty, unlinked read-write file named after `tag` and this process.
pub fn file(tag: &str) -> File {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let path = format!("{dir}/ppc-vmm-fuzz-{tag}-{}", std::process::id());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("scratch file");
    let _ = std::fs::remove_file(&path);
    f
}

/// Everything `f` holds.
pub fn bytes(f: &File) -> Vec<u8> {
    let mut f = f;
    let mut v = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut v).unwrap();
    v
}
