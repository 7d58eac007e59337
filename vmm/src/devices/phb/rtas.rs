//! The PCI configuration RTAS calls: `ibm,read-pci-config`, `ibm,write-pci-config`,
//! `read-pci-config`, `write-pci-config`.
//!
//! Arguments (PAPR; what Linux's `rtas_pci.c` passes):
//! * `ibm,read-pci-config`: `config_addr, buid_hi, buid_lo, size` → `status, value`
//! * `ibm,write-pci-config`: `config_addr, buid_hi, buid_lo, size, value` → `status`
//! * `read-pci-config`: `config_addr, size` → `status, value` (the first PHB)
//! * `write-pci-config`: `config_addr, size, value` → `status` (the first PHB)
//!
//! `config_addr` = `ext_reg[31:28] | bus[23:16] | devfn[15:8] | reg[7:0]`: the register number
//! is `(ext_reg << 8) | reg` (Linux's `rtas_config_addr()`, QEMU's `rtas_pci_cfgaddr()`).
//!
//! Statuses: a size other than 1/2/4, a misaligned register or an unknown BUID is a
//! parameter error (-3), as are wrong argument counts. An absent device (or a register beyond
//! its 256-byte header) is not an error: reads return all-ones with status 0, writes are
//! dropped — master-abort semantics, which is also what Linux ends up with when it gets an
//! error (`rtas_read_config()` copies rets\[1\] into the value whatever the status, then the
//! PCI core sets all-ones on failure).

use firmware::rtas::{RtasArgs, RtasCall, RtasStatus};

use vm_memory::GuestMemoryBackend;

use super::Phb;

/// A decoded `config_addr` cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigAddr {
    pub bus: u8,
    pub devfn: u8,
    pub reg: u32,
}

impl ConfigAddr {
    pub fn decode(cell: u32) -> Self {
        Self {
            bus: (cell >> 16) as u8,
            devfn: (cell >> 8) as u8,
            reg: ((cell >> 20) & 0xf00) | (cell & 0xff),
        }
    }

    /// The inverse of [`ConfigAddr::decode`] (what the guest computes).
    pub fn encode(bus: u8, devfn: u8, reg: u32) -> u32 {
        ((reg & 0xf00) << 20) | (u32::from(bus) << 16) | (u32::from(devfn) << 8) | (reg & 0xff)
    }
}

/// The calls this module implements; the machine enables them with
/// `Rtas::enable_machine_call` when it has at least one PHB.
pub const PCI_CONFIG_CALLS: [RtasCall; 4] = [
    RtasCall::IbmReadPciConfig,
    RtasCall::IbmWritePciConfig,
    RtasCall::ReadPciConfig,
    RtasCall::WritePciConfig,
];

/// What a call asks for, once decoded and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write(u32),
}

/// Handles one of [`PCI_CONFIG_CALLS`] for the PHBs `phbs`, writing the return cells.
/// Returns false (and writes nothing) for any other call.
pub fn handle_config_call<M: GuestMemoryBackend>(
    phbs: &mut [Phb],
    mem: &M,
    call: RtasCall,
    args: &RtasArgs,
) -> bool {
    let (rets, what) = match decode(phbs, call, args) {
        None => return false,
        Some(Err(status)) => (vec![status.cell(), u32::MAX], "rejected"),
        Some(Ok((phb, addr, size, access))) => {
            let phb = &mut phbs[phb];
            match access {
                Access::Read => {
                    let v = phb.config_read(addr.bus, addr.devfn, addr.reg, size);
                    (vec![RtasStatus::Success.cell(), v], "ok")
                }
                Access::Write(v) => {
                    phb.config_write(addr.bus, addr.devfn, addr.reg, size, v);
                    (vec![RtasStatus::Success.cell()], "ok")
                }
            }
        }
    };
    if let Err(e) = args.write_rets(mem, &rets) {
        crate::guest_warn!(
            "rtas: {} ({what}): cannot write return cells: {e}",
            call.name()
        );
    }
    true
}

type Decoded = Result<(usize, ConfigAddr, usize, Access), RtasStatus>;

fn decode(phbs: &[Phb], call: RtasCall, args: &RtasArgs) -> Option<Decoded> {
    let (nargs, nret) = match call {
        RtasCall::IbmReadPciConfig => (4, 2),
        RtasCall::IbmWritePciConfig => (5, 1),
        RtasCall::ReadPciConfig => (2, 2),
        RtasCall::WritePciConfig => (3, 1),
        _ => return None,
    };
    Some(decode_checked(phbs, call, args, nargs, nret))
}

fn decode_checked(phbs: &[Phb], call: RtasCall, args: &RtasArgs, nargs: u32, nret: u32) -> Decoded {
    let name = call.name();
    if !args.has_counts(nargs, nret) {
        crate::guest_warn!(
            "rtas: {name}: {} args / {} rets, expected {nargs}/{nret}",
            args.nargs,
            args.nret
        );
        return Err(RtasStatus::ParameterError);
    }
    let ibm = matches!(
        call,
        RtasCall::IbmReadPciConfig | RtasCall::IbmWritePciConfig
    );
    let addr = ConfigAddr::decode(args.arg(0));
    let (phb, size_idx) = if ibm {
        let buid = (u64::from(args.arg(1)) << 32) | u64::from(args.arg(2));
        match phbs.iter().position(|p| p.config().buid == buid) {
            Some(i) => (i, 3),
            None => {
                crate::guest_warn!("rtas: {name}: no PHB with BUID {buid:#x}");
                return Err(RtasStatus::ParameterError);
            }
        }
    } else if phbs.is_empty() {
        crate::guest_warn!("rtas: {name}: no PHB");
        return Err(RtasStatus::ParameterError);
    } else {
        (0, 1)
    };
    let size = args.arg(size_idx) as usize;
    if !matches!(size, 1 | 2 | 4) || addr.reg as usize % size != 0 {
        crate::guest_warn!(
            "rtas: {name}: bad access of {size} bytes at register {:#x}",
            addr.reg
        );
        return Err(RtasStatus::ParameterError);
    }
    let access = match call {
        RtasCall::IbmWritePciConfig | RtasCall::WritePciConfig => {
            Access::Write(args.arg(size_idx + 1))
        }
        _ => Access::Read,
    };
    Ok((phb, addr, size, access))
}
