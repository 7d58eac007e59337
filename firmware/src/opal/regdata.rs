//! CPU register data in the HDAT "architected register data" format (P9, version 1): what the
//! capture kernel reads through `TAG_CPU`.
//!
//! One record per thread, all records the same size (`thread_size`, the stride Linux gets as
//! `cpu_data_size`):
//!
//! | Off  | Size | Field |
//! |------|------|-------|
//! | 0x00 | 4    | PIR |
//! | 0x04 | 1    | core state (stop level 0x0..0xF; 0x0F = core inactive, skipped by Linux) |
//! | 0x05 | 3    | reserved |
//! | 0x08 | 4    | offset of the entry array, counted **from this field** (Linux: `thread + 8 + offset`) |
//! | 0x0C | 4    | number of entries |
//! | 0x10 | 4    | allocated size of one entry |
//! | 0x14 | 4    | used size of one entry |
//! | 0x18 | 16·n | entries: type (1 GPR, 2 SPR), number, value — all big-endian |
//!
//! The entries start right after the 24-byte header, so the offset is 0x10. Every thread record
//! carries all 32 GPRs and every register of [`Reg::OPAL_SAVED`] once, CR as pseudo-SPR 0x7D2.

use thiserror::Error;

use crate::be::{BeReader, BeWriter};
use crate::cpu::{CpuState, Reg};

/// Bytes of a thread record's header (Linux `struct hdat_fadump_thread_hdr`): 24.
pub const THREAD_HEADER_SIZE: usize = 0x18;
/// Bytes of one register entry (Linux `struct hdat_fadump_reg_entry`): 16. Written as both the
/// allocated and the used entry size.
pub const ENTRY_SIZE: usize = 0x10;
/// Where the `offset` field sits in the header; the offset counts from here.
pub const OFFSET_FIELD: usize = 0x08;
/// `offset` value: entries follow the header.
pub const ENTRY_OFFSET: u32 = (THREAD_HEADER_SIZE - OFFSET_FIELD) as u32;
/// `reg_type` of a general-purpose register: `reg_num` is 0 to 31 (`HDAT_FADUMP_REG_TYPE_GPR`).
pub const REG_TYPE_GPR: u32 = 1;
/// `reg_type` of a special-purpose register: `reg_num` is the SPR number, or an OPAL
/// pseudo-number for NIP, MSR and CR (`HDAT_FADUMP_REG_TYPE_SPR`).
pub const REG_TYPE_SPR: u32 = 2;
/// Core state of a thread that was running (stop level 0).
pub const CORE_STATE_RUNNING: u8 = 0x00;
/// Core state Linux skips.
pub const CORE_STATE_INACTIVE: u8 = 0x0f;
/// `cpu_data_version` for this format (HDAT P9).
pub const CPU_DATA_VERSION: u32 = 1;

/// Entries per thread: 32 GPRs and the OPAL SPR set.
pub const ENTRY_COUNT: usize = 32 + Reg::OPAL_SAVED.len();
/// Bytes per thread record (`thread_size`).
pub const THREAD_SIZE: usize = THREAD_HEADER_SIZE + ENTRY_COUNT * ENTRY_SIZE;

/// One register entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegEntry {
    /// [`REG_TYPE_GPR`] or [`REG_TYPE_SPR`] (BE32 at +0).
    pub reg_type: u32,
    /// The GPR index or the SPR number (BE32 at +4).
    pub reg_num: u32,
    /// The register's value (BE64 at +8, `reg_val` in Linux).
    pub value: u64,
}

/// The entries written for `cpu`, in order: GPR 0..31, then [`Reg::OPAL_SAVED`].
pub fn entries(cpu: &CpuState) -> Vec<RegEntry> {
    let gprs = cpu.gpr.iter().enumerate().map(|(n, &value)| RegEntry {
        reg_type: REG_TYPE_GPR,
        reg_num: n as u32,
        value,
    });
    let sprs = Reg::OPAL_SAVED.iter().filter_map(|&reg| {
        reg.spr_number().map(|reg_num| RegEntry {
            reg_type: REG_TYPE_SPR,
            reg_num,
            value: cpu.get(reg),
        })
    });
    gprs.chain(sprs).collect()
}

/// The record of one running thread, exactly [`THREAD_SIZE`] bytes.
pub fn encode_thread(cpu: &CpuState) -> Vec<u8> {
    let entries = entries(cpu);
    debug_assert_eq!(entries.len(), ENTRY_COUNT);
    let mut out = vec![0u8; THREAD_SIZE];
    let mut w = BeWriter::new(&mut out);
    w.u32(0x00, cpu.id);
    w.u8(0x04, CORE_STATE_RUNNING);
    w.u32(OFFSET_FIELD, ENTRY_OFFSET);
    w.u32(0x0c, entries.len() as u32);
    w.u32(0x10, ENTRY_SIZE as u32);
    w.u32(0x14, ENTRY_SIZE as u32);
    for (i, e) in entries.iter().enumerate() {
        let off = THREAD_HEADER_SIZE + i * ENTRY_SIZE;
        w.u32(off, e.reg_type);
        w.u32(off + 4, e.reg_num);
        w.u64(off + 8, e.value);
    }
    out
}

/// The records of every thread, back to back.
pub fn encode(cpus: &[CpuState]) -> Vec<u8> {
    cpus.iter().flat_map(encode_thread).collect()
}

/// Why [`decode_thread`] refused a record.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RegDataError {
    /// The record (its length carried here) is shorter than the 24-byte header.
    #[error("thread record of {0} bytes is shorter than its header")]
    Short(usize),
    /// The entry array the header describes does not lie inside the record.
    #[error("entry array [{start:#x}, +{count} x {esize}) runs past the {len}-byte record")]
    EntriesOutside {
        /// Offset of the first entry in the record (`8 + offset`; `usize::MAX` on overflow).
        start: usize,
        /// `ecnt`: number of entries.
        count: u32,
        /// `esize`: allocated bytes per entry.
        esize: u32,
        /// Bytes in the record.
        len: usize,
    },
    /// `esize` (carried here) is below the 16 bytes of an entry.
    #[error("entry size {0} is smaller than an entry")]
    EntrySize(u32),
}

/// A decoded thread record (used by tests and by tools that inspect a dump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRecord {
    /// 0x00: the thread's PIR.
    pub pir: u32,
    /// 0x04: the core's stop state; [`CORE_STATE_INACTIVE`] means Linux skips the thread.
    pub core_state: u8,
    /// The `ecnt` entries, read `esize` bytes apart.
    pub entries: Vec<RegEntry>,
}

/// Decodes one record strictly: the entry array must lie inside `bytes`.
pub fn decode_thread(bytes: &[u8]) -> Result<ThreadRecord, RegDataError> {
    if bytes.len() < THREAD_HEADER_SIZE {
        return Err(RegDataError::Short(bytes.len()));
    }
    let r = BeReader::new(bytes);
    let (offset, count, esize) = (r.u32(OFFSET_FIELD), r.u32(0x0c), r.u32(0x10));
    if (esize as usize) < ENTRY_SIZE {
        return Err(RegDataError::EntrySize(esize));
    }
    let start = OFFSET_FIELD.checked_add(offset as usize);
    let end = start.and_then(|s| s.checked_add((count as usize).checked_mul(esize as usize)?));
    let (Some(start), Some(end)) = (start, end) else {
        return Err(RegDataError::EntriesOutside {
            start: usize::MAX,
            count,
            esize,
            len: bytes.len(),
        });
    };
    if end > bytes.len() {
        return Err(RegDataError::EntriesOutside {
            start,
            count,
            esize,
            len: bytes.len(),
        });
    }
    let entries = (0..count as usize)
        .map(|i| {
            let off = start + i * esize as usize;
            RegEntry {
                reg_type: r.u32(off),
                reg_num: r.u32(off + 4),
                value: r.u64(off + 8),
            }
        })
        .collect();
    Ok(ThreadRecord {
        pir: r.u32(0),
        core_state: bytes[4],
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(pir: u32) -> CpuState {
        let mut c = CpuState::new(pir);
        for (i, g) in c.gpr.iter_mut().enumerate() {
            *g = ((pir as u64) << 32) | (i as u64 + 1);
        }
        for (i, reg) in Reg::OPAL_SAVED.iter().enumerate() {
            c.set(*reg, 0xa000_0000 + ((pir as u64) << 8) + i as u64);
        }
        c
    }

    #[test]
    fn layout_is_the_one_linux_reads() {
        let c = cpu(0x23);
        let rec = encode_thread(&c);
        assert_eq!(rec.len(), THREAD_SIZE);
        assert_eq!(&rec[0..4], &0x23u32.to_be_bytes());
        assert_ne!(rec[4], CORE_STATE_INACTIVE);
        // Linux: regs = thread + offsetof(offset) + offset
        let offset = u32::from_be_bytes(rec[8..12].try_into().unwrap()) as usize;
        assert_eq!(offset, 0x10);
        let first = OFFSET_FIELD + offset;
        assert_eq!(first, THREAD_HEADER_SIZE);
        assert_eq!(&rec[first..first + 4], &REG_TYPE_GPR.to_be_bytes());
        assert_eq!(&rec[first + 4..first + 8], &0u32.to_be_bytes());
        assert_eq!(&rec[first + 8..first + 16], &c.gpr[0].to_be_bytes());
        // the last entry is inside the record
        let ecnt = u32::from_be_bytes(rec[12..16].try_into().unwrap()) as usize;
        assert_eq!(first + ecnt * ENTRY_SIZE, rec.len());
    }

    #[test]
    fn every_register_once_with_cr_as_pseudo_spr() {
        let c = cpu(7);
        let rec = decode_thread(&encode_thread(&c)).unwrap();
        assert_eq!(rec.pir, 7);
        assert_eq!(rec.entries.len(), ENTRY_COUNT);
        for n in 0..32u32 {
            let e: Vec<_> = rec
                .entries
                .iter()
                .filter(|e| e.reg_type == REG_TYPE_GPR && e.reg_num == n)
                .collect();
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].value, c.gpr[n as usize]);
        }
        for reg in Reg::OPAL_SAVED {
            let num = reg.spr_number().unwrap();
            let e: Vec<_> = rec
                .entries
                .iter()
                .filter(|e| e.reg_type == REG_TYPE_SPR && e.reg_num == num)
                .collect();
            assert_eq!(e.len(), 1, "{reg:?}");
            assert_eq!(e[0].value, c.get(reg), "{reg:?}");
        }
        assert!(rec
            .entries
            .iter()
            .any(|e| e.reg_type == REG_TYPE_SPR && e.reg_num == 0x7d2));
    }

    #[test]
    fn decode_refuses_entries_outside_the_record() {
        let mut rec = encode_thread(&cpu(1));
        rec[0x0c..0x10].copy_from_slice(&(ENTRY_COUNT as u32 + 1).to_be_bytes());
        assert!(matches!(
            decode_thread(&rec),
            Err(RegDataError::EntriesOutside { .. })
        ));
        assert_eq!(decode_thread(&rec[..10]), Err(RegDataError::Short(10)));
    }

    #[test]
    fn threads_are_back_to_back() {
        let all = encode(&[cpu(0), cpu(1), cpu(2), cpu(3)]);
        assert_eq!(all.len(), 4 * THREAD_SIZE);
        for i in 0..4 {
            let rec = decode_thread(&all[i * THREAD_SIZE..(i + 1) * THREAD_SIZE]).unwrap();
            assert_eq!(rec.pir, i as u32);
        }
    }
}
