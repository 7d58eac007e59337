//! The guest's hash page table as the fadump firmware needs it: one full pass of KVM's HPT save
//! stream (`KVM_PPC_GET_HTAB_FD`) turned into [`firmware::fadump::HptEntry`]s.
//!
//! Stream format (Linux `Documentation/virt/kvm/api.rst`, `KVM_PPC_GET_HTAB_FD`): records of an
//! 8-byte header `{ index: u32, n_valid: u16, n_invalid: u16 }` in host byte order, followed by
//! `n_valid` HPTEs of 16 bytes each (two big-endian doublewords, as stored in the HPT); the
//! `n_invalid` entries after them are implicit. A read stops at the end of the table; the next
//! read on the same fd starts a new pass reporting only changed entries, so with every vCPU
//! stopped, reading until a read returns 0 bytes yields exactly one full pass. A radix guest's
//! stream is empty.

use std::fs::File;
use std::io::Read;

use firmware::fadump::{HptEntry, HptSource};
use thiserror::Error;

const HEADER_SIZE: usize = 8;
const HPTE_SIZE: usize = 16;
/// Most one pass may hold: guards the reader against a stream that never ends. A pass streams at
/// most the HPT itself plus one header per run of entries; 2 GiB is far above the HPTs our guests
/// get (KVM's default order for 1 GiB of RAM is 2^24 bytes).
const MAX_PASS_BYTES: usize = 1 << 31;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HtabError {
    #[error("HPT stream record at byte {0} is truncated")]
    Truncated(usize),
    #[error("HPT stream record at byte {at}: entries {index}..+{count} overflow the index space")]
    IndexOverflow { at: usize, index: u32, count: u32 },
    #[error("HPT stream longer than {MAX_PASS_BYTES} bytes")]
    TooLong,
    #[error("reading the HPT stream: {0}")]
    Read(String),
}

/// Decodes one pass of the stream into the valid entries, with their HPT indexes.
pub fn parse_stream(bytes: &[u8]) -> Result<Vec<HptEntry>, HtabError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes
            .get(at..at + HEADER_SIZE)
            .ok_or(HtabError::Truncated(at))?;
        let index = u32::from_ne_bytes(head[0..4].try_into().expect("4 bytes"));
        let n_valid = u16::from_ne_bytes(head[4..6].try_into().expect("2 bytes"));
        let n_invalid = u16::from_ne_bytes(head[6..8].try_into().expect("2 bytes"));
        let count = u32::from(n_valid) + u32::from(n_invalid);
        if index.checked_add(count).is_none() {
            return Err(HtabError::IndexOverflow { at, index, count });
        }
        let body_len = usize::from(n_valid) * HPTE_SIZE;
        let body = bytes
            .get(at + HEADER_SIZE..at + HEADER_SIZE + body_len)
            .ok_or(HtabError::Truncated(at))?;
        for (i, e) in body.chunks_exact(HPTE_SIZE).enumerate() {
            out.push(HptEntry {
                index: u64::from(index) + i as u64,
                dword0: u64::from_be_bytes(e[0..8].try_into().expect("8 bytes")),
                dword1: u64::from_be_bytes(e[8..16].try_into().expect("8 bytes")),
            });
        }
        at += HEADER_SIZE + body_len;
    }
    Ok(out)
}

/// Reads `r` until a read returns 0 bytes: one full pass when every vCPU is stopped.
pub fn read_pass(r: &mut impl Read) -> Result<Vec<u8>, HtabError> {
    let mut pass = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| HtabError::Read(e.to_string()))?;
        if n == 0 {
            return Ok(pass);
        }
        if pass.len() + n > MAX_PASS_BYTES {
            return Err(HtabError::TooLong);
        }
        pass.extend_from_slice(&buf[..n]);
    }
}

/// The firmware's view of a hash guest's HPT, over a fresh `KVM_PPC_GET_HTAB_FD` fd opened
/// after every vCPU stopped (`VmFd::get_htab_fd` with flags 0, start index 0).
pub struct KvmHpt {
    fd: File,
}

impl KvmHpt {
    pub fn new(fd: File) -> Self {
        Self { fd }
    }
}

impl HptSource for KvmHpt {
    fn valid_entries(&mut self) -> Result<Vec<HptEntry>, String> {
        let pass = read_pass(&mut self.fd).map_err(|e| e.to_string())?;
        parse_stream(&pass).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u32, valid: &[(u64, u64)], n_invalid: u16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&(valid.len() as u16).to_ne_bytes());
        b.extend_from_slice(&n_invalid.to_ne_bytes());
        for (v, r) in valid {
            b.extend_from_slice(&v.to_be_bytes());
            b.extend_from_slice(&r.to_be_bytes());
        }
        b
    }

    #[test]
    fn records_become_indexed_entries() {
        let mut s = record(0, &[(0x4000_0000_0000_0001, 0x190)], 7);
        s.extend(record(8, &[(0x11, 0x22), (0x33, 0x44)], 0));
        s.extend(record(0x1_0000, &[], 0xffff));
        let e = parse_stream(&s).unwrap();
        assert_eq!(
            e,
            vec![
                HptEntry {
                    index: 0,
                    dword0: 0x4000_0000_0000_0001,
                    dword1: 0x190
                },
                HptEntry {
                    index: 8,
                    dword0: 0x11,
                    dword1: 0x22
                },
                HptEntry {
                    index: 9,
                    dword0: 0x33,
                    dword1: 0x44
                },
            ]
        );
        assert_eq!(
            parse_stream(&[]).unwrap(),
            vec![],
            "radix guests: empty stream"
        );
    }

    #[test]
    fn truncation_and_overflow_are_errors_not_panics() {
        let s = record(4, &[(1, 2), (3, 4)], 0);
        for cut in 1..s.len() {
            assert!(parse_stream(&s[..cut]).is_err(), "cut at {cut}");
        }
        let bad = record(u32::MAX - 1, &[(1, 2), (3, 4)], 0);
        assert!(matches!(
            parse_stream(&bad),
            Err(HtabError::IndexOverflow { .. })
        ));
    }

    #[test]
    fn a_pass_ends_at_the_first_empty_read() {
        // A reader that hands out the pass in small pieces, then 0, then (a second pass) more.
        struct Pieces(Vec<Vec<u8>>);
        impl Read for Pieces {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                let p = self.0.remove(0);
                buf[..p.len()].copy_from_slice(&p);
                Ok(p.len())
            }
        }
        let r1 = record(0, &[(5, 6)], 0);
        let r2 = record(1, &[(7, 8)], 3);
        let mut src = Pieces(vec![
            r1.clone(),
            r2.clone(),
            vec![],
            record(9, &[(1, 1)], 0),
        ]);
        let pass = read_pass(&mut src).unwrap();
        assert_eq!(pass, [r1, r2].concat());
        assert_eq!(parse_stream(&pass).unwrap().len(), 2);
    }
}
