//! The in-guest RTAS entry stub.
//!
//! Linux enters RTAS (in real mode, big-endian, 32-bit) at `linux,rtas-entry` with r3 = the
//! real address of its argument block. The stub turns that into `H_RTAS`:
//! r4 = r3, r3 = 0xf000 (KVMPPC_H_RTAS), `sc 1`, `blr`. The VMM handles the hcall (status
//! in the argument block) and the stub returns to the caller. Instructions are stored
//! big-endian because RTAS always runs big-endian.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryError};

/// `mr r4,r3; lis r3,0; ori r3,r3,0xf000; sc 1; blr`.
pub const RTAS_STUB: [u32; 5] = [
    0x7c64_1b78,
    0x3c60_0000,
    0x6063_f000,
    0x4400_0022,
    0x4e80_0020,
];

/// Bytes the stub occupies.
pub const RTAS_STUB_SIZE: u64 = RTAS_STUB.len() as u64 * 4;

/// Writes the stub at `addr`.
pub fn write_rtas_stub<M: GuestMemoryBackend>(
    mem: &M,
    addr: GuestAddress,
) -> Result<(), GuestMemoryError> {
    let bytes: Vec<u8> = RTAS_STUB.iter().flat_map(|i| i.to_be_bytes()).collect();
    mem.write_slice(&bytes, addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hcall::H_RTAS;
    use vm_memory::GuestMemoryMmap;

    #[test]
    fn stub_is_big_endian_and_issues_h_rtas() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        write_rtas_stub(&m, GuestAddress(0x100)).unwrap();
        let mut b = [0u8; 20];
        m.read_slice(&mut b, GuestAddress(0x100)).unwrap();
        // ori r3,r3,IMM: low 16 bits of the third instruction are the hcall number.
        assert_eq!(u64::from(u16::from_be_bytes([b[10], b[11]])), H_RTAS);
        // sc with LEV=1 (hypervisor call): 0x44000022.
        assert_eq!(&b[12..16], &[0x44, 0x00, 0x00, 0x22]);
        assert_eq!(&b[16..20], &[0x4e, 0x80, 0x00, 0x20]);
        assert!(write_rtas_stub(&m, GuestAddress(0x10000 - 8)).is_err());
    }
}
