//! The PAPR Register Save Area ("Firmware Assisted Dump Data Format"), written into the CPU
//! state section's destination.
//!
//! ```text
//! 0x00  u64  magic "REGSAVE\0"
//! 0x08  u32  version 0
//! 0x0c  u32  NumCpusOffset = 0x1c   (PAPR; Linux honours the offset)
//! 0x10  12   padding, zero
//! 0x1c  u32  NumCpus
//! 0x20  16·k register entries: per CPU CPUSTRT, registers, CPUEND
//! ```
//! Entry: `reg_id` (ASCII name, left-justified, NUL-padded, 8 bytes) + `reg_value` (BE u64;
//! 4-byte registers such as CR and the CPUSTRT/CPUEND id occupy the low half).

use crate::cpu::{CpuState, Reg};

/// Bytes 0x00..0x08: the magic "REGSAVE\0" (0x5245475341564500 as a big-endian u64); Linux
/// refuses the CPU notes without it.
pub const MAGIC: &[u8; 8] = b"REGSAVE\0";
/// Bytes of the header before the first register entry: 32.
pub const HEADER_SIZE: u64 = 0x20;
/// The value written at 0x0C (`num_cpu_offset` in Linux's
/// `struct rtas_fadump_reg_save_area_header`): `NumCpus` is at 0x1C and the entries start 4 bytes
/// later, at 0x20 (PAPR's layout; Linux honours whatever offset is written).
pub const NUM_CPUS_OFFSET: u32 = 0x1c;
/// Bytes of one register entry (`struct rtas_fadump_reg_entry`): `reg_id` and `reg_value`, a
/// big-endian u64 each.
pub const ENTRY_SIZE: u64 = 16;
/// CPUSTRT + 32 GPRs + the named registers + CPUEND.
pub const ENTRIES_PER_CPU: u64 = 1 + 32 + Reg::PAPR_SAVED.len() as u64 + 1;
/// Bytes of one CPU's block of entries: 79 × 16 = 1264, as QEMU's for the same register set.
pub const BYTES_PER_CPU: u64 = ENTRIES_PER_CPU * ENTRY_SIZE;

/// Bytes the area needs for `cpus` CPUs (what `ibm,configure-kernel-dump-sizes` advertises for
/// the maximum vCPU count). Saturates at `u64::MAX` (no section is that long) instead of
/// wrapping; a `u32` vCPU count never gets near it.
pub fn area_size(cpus: u64) -> u64 {
    HEADER_SIZE.saturating_add(cpus.saturating_mul(BYTES_PER_CPU))
}

/// The 8-byte identifier for `name`, as Linux's `fadump_str_to_u64()` builds it.
pub fn reg_id(name: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = name.len().min(8);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

fn gpr_name(n: usize) -> String {
    format!("GPR{n:02}")
}

/// One CPU's entries in PAPR order: CPUSTRT, then every register by ascending ASCII name with
/// the 32 GPRs kept together in index order, then CPUEND.
fn cpu_entries(cpu: &CpuState) -> Vec<(u64, u64)> {
    let mut named: Vec<(String, u64)> = Reg::PAPR_SAVED
        .iter()
        .map(|r| (r.papr_name().to_string(), cpu.get(*r)))
        .collect();
    // "GPR00".."GPR31" sort as one block because they share the prefix and have two digits.
    named.extend((0..32).map(|n| (gpr_name(n), cpu.gpr[n])));
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(ENTRIES_PER_CPU as usize);
    out.push((reg_id("CPUSTRT"), u64::from(cpu.id)));
    out.extend(named.into_iter().map(|(name, v)| (reg_id(&name), v)));
    out.push((reg_id("CPUEND"), u64::from(cpu.id)));
    out
}

/// Builds the area for `cpus` (exactly [`area_size`] bytes; the caller zero-fills the rest of the
/// section). Returns `None` when the CPUs do not fit in `size` bytes.
pub fn build(cpus: &[CpuState], size: u64) -> Option<Vec<u8>> {
    let needed = area_size(cpus.len() as u64);
    if needed > size {
        return None;
    }
    let mut out = vec![0u8; usize::try_from(needed).ok()?];
    out[0..8].copy_from_slice(MAGIC);
    out[0x08..0x0c].copy_from_slice(&0u32.to_be_bytes());
    out[0x0c..0x10].copy_from_slice(&NUM_CPUS_OFFSET.to_be_bytes());
    let nc = NUM_CPUS_OFFSET as usize;
    out[nc..nc + 4].copy_from_slice(&(cpus.len() as u32).to_be_bytes());
    let mut off = HEADER_SIZE as usize;
    for cpu in cpus {
        for (id, value) in cpu_entries(cpu) {
            out[off..off + 8].copy_from_slice(&id.to_be_bytes());
            out[off + 8..off + 16].copy_from_slice(&value.to_be_bytes());
            off += ENTRY_SIZE as usize;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_match_papr_values() {
        assert_eq!(reg_id("CPUSTRT"), 0x4350555354525400);
        assert_eq!(reg_id("CPUEND"), 0x435055454E440000);
        assert_eq!(reg_id("GPR09"), 0x4750523039000000);
        assert_eq!(reg_id("GPR10"), 0x4750523130000000);
        assert_eq!(reg_id("NIA"), 0x4E49410000000000);
        assert_eq!(reg_id("DSISR"), 0x4453495352000000);
        assert_eq!(reg_id("DAWRX1"), 0x4441575258310000);
    }

    #[test]
    fn size_matches_qemu_for_the_same_register_set() {
        assert_eq!(ENTRIES_PER_CPU, 79);
        assert_eq!(
            area_size(2),
            0xa00,
            "reference run: 2 vCPUs advertise 0xa00"
        );
        assert_eq!(area_size(1), 0x510);
        assert_eq!(area_size(4), 0x13e0);
        assert_eq!(area_size(u64::MAX), u64::MAX, "saturates");
    }

    #[test]
    fn gprs_are_contiguous_and_ordered() {
        let mut c = CpuState::new(7);
        for (i, g) in c.gpr.iter_mut().enumerate() {
            *g = 0x100 + i as u64;
        }
        c.set(Reg::Cr, 0x4400_0088);
        let e = cpu_entries(&c);
        assert_eq!(e.len() as u64, ENTRIES_PER_CPU);
        assert_eq!(e[0], (reg_id("CPUSTRT"), 7));
        assert_eq!(*e.last().unwrap(), (reg_id("CPUEND"), 7));
        let first = e.iter().position(|x| x.0 == reg_id("GPR00")).unwrap();
        for i in 0..32 {
            assert_eq!(e[first + i], (reg_id(&gpr_name(i)), 0x100 + i as u64));
        }
        assert!(e.contains(&(reg_id("CR"), 0x4400_0088)));
    }

    #[test]
    fn header_and_padding() {
        let area = build(&[CpuState::new(0), CpuState::new(1)], 0x1000).unwrap();
        assert_eq!(area.len(), 0xa00);
        assert_eq!(&area[0..8], MAGIC);
        assert_eq!(&area[0x0c..0x10], &[0, 0, 0, 0x1c]);
        assert_eq!(&area[0x10..0x1c], &[0; 12]);
        assert_eq!(&area[0x1c..0x20], &[0, 0, 0, 2]);
        assert!(build(&[CpuState::new(0), CpuState::new(1)], 0x9ff).is_none());
    }
}
