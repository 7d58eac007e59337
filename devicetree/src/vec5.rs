//! `/chosen/ibm,architecture-vec-5`: the result of the client-architecture negotiation,
//! which a direct-FDT boot must provide itself.
//!
//! Normally Linux's `prom_init` negotiates option vector 5 with firmware
//! (`ibm,client-architecture-support`) and the firmware records the outcome in
//! `/chosen/ibm,architecture-vec-5`. Entering the kernel with r5 = 0 skips `prom_init`, so the
//! VMM must write the outcome directly. Format (as QEMU writes it and Linux indexes it): byte 0
//! is the number of vector bytes minus one, then the vector bytes, so that property byte `i` is
//! PAPR option-vector-5 byte `i`.
//!
//! Who reads which byte:
//! * `early_check_vec5()` (arch/powerpc/mm/init_64.c, only when not running as hypervisor):
//!   no property, or one of 24 bytes or fewer, turns radix **off**. Byte 24 masked with 0xC0:
//!   0x00 hash only, 0x40 radix only, 0x80/0xC0 either (then `ibm,pa-features` decides). With
//!   radix, byte 26 bit 0x40 grants GTSE (the guest may `tlbie` itself); without it Linux needs
//!   `hcall-rpt-invalidate` or panics.
//! * Byte 23 is the interrupt mode: 0x00 legacy XICS, 0x40 XIVE exploitation, 0x80 either.
//!   Linux's pseries XIVE probe also needs an `ibm,power-ivpe` node, which we never create.
//! * `fw_vec5_feature_init()` (platforms/pseries/firmware.c) derives FORM1/FORM2 NUMA
//!   affinity, PRRN, DRMEM_V2 and DRC_INFO from bytes 5, 22 and 23: we advertise none of them
//!   (no NUMA, no dynamic reconfiguration), so those bytes stay zero.

use crate::description::{InterruptController, Mmu};

/// Property length: the header byte plus option-vector-5 bytes 1..=26.
pub const VEC5_LEN: usize = 27;
/// Byte holding the interrupt-controller mode.
pub const VEC5_INTC_BYTE: usize = 23;
/// Byte holding the MMU mode.
pub const VEC5_MMU_BYTE: usize = 24;
/// Byte holding radix GTSE.
pub const VEC5_RADIX_GTSE_BYTE: usize = 26;
/// MMU byte value: radix only.
pub const VEC5_MMU_RADIX: u8 = 0x40;
/// MMU byte value: hash only.
pub const VEC5_MMU_HASH: u8 = 0x00;
/// Radix GTSE granted.
pub const VEC5_RADIX_GTSE: u8 = 0x40;
/// Interrupt byte value: legacy XICS.
pub const VEC5_INTC_XICS: u8 = 0x00;

/// The property bytes for this machine.
pub fn architecture_vec5(mmu: Mmu, intc: InterruptController) -> Vec<u8> {
    let mut v = vec![0u8; VEC5_LEN];
    v[0] = (VEC5_LEN - 2) as u8;
    v[VEC5_INTC_BYTE] = match intc {
        InterruptController::KvmXics => VEC5_INTC_XICS,
    };
    match mmu {
        Mmu::Radix { gtse } => {
            v[VEC5_MMU_BYTE] = VEC5_MMU_RADIX;
            if gtse {
                v[VEC5_RADIX_GTSE_BYTE] = VEC5_RADIX_GTSE;
            }
        }
        Mmu::Hash { .. } => v[VEC5_MMU_BYTE] = VEC5_MMU_HASH,
    }
    v
}

/// `OV5_DRCONF_MEMORY` (byte 2, 0x20): dynamic-reconfiguration memory.
pub const VEC5_DRCONF_MEMORY: (usize, u8) = (2, 0x20);
/// `OV5_HP_EVT` (byte 6, 0x04): hot-plug events on their own event source.
pub const VEC5_HP_EVT: (usize, u8) = (6, 0x04);
/// `OV5_DRMEM_V2` (byte 22, 0x80): `ibm,dynamic-memory-v2`.
pub const VEC5_DRMEM_V2: (usize, u8) = (22, 0x80);

/// Sets the three memory-DLPAR bits Linux's `prom_init` negotiates with QEMU, so a guest with
/// a hotplug window sees what it would have negotiated. (Linux's drconf parsing does not read
/// them; `pseries_probe_fw_features` turns `OV5_DRMEM_V2` into `FW_FEATURE_DRMEM_V2`.)
pub fn set_drconf_bits(vec5: &mut [u8]) {
    for (byte, bit) in [VEC5_DRCONF_MEMORY, VEC5_HP_EVT, VEC5_DRMEM_V2] {
        if let Some(b) = vec5.get_mut(byte) {
            *b |= bit;
        }
    }
}
