//! The RTAS argument block the guest passes in r4 of `H_RTAS` (PAPR "RTAS Argument Call Buffer").
//!
//! Layout, all big-endian 32-bit cells: `token`, `nargs`, `nret`, `args[nargs]`, `rets[nret]`.

use log::warn;
use thiserror::Error;
use vm_memory::GuestMemoryBackend;

use crate::memory::{self, MemoryError};
use crate::rtas::status::RtasStatus;

/// Most cells a block may carry (Linux's `struct rtas_args` holds 16 in total).
pub const MAX_CELLS: u32 = 16;

/// Why an argument block could not be read, or its return cells not written.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// The 12-byte head (`token`, `nargs`, `nret`), or the whole block with its
    /// `nargs + nret` cells, is not in guest RAM.
    #[error("RTAS argument block unreadable: {0}")]
    Unreadable(MemoryError),
    /// `nargs + nret` is above [`MAX_CELLS`] (or overflows 32 bits): nothing past the head is
    /// read.
    #[error(
        "RTAS argument block at {addr:#x} claims {nargs} args + {nret} rets (max {MAX_CELLS})"
    )]
    TooManyCells {
        /// Guest real address of the block.
        addr: u64,
        /// The `nargs` cell as the guest wrote it.
        nargs: u32,
        /// The `nret` cell as the guest wrote it.
        nret: u32,
    },
    /// The return cells could not be written ([`RtasArgs::write_rets`]).
    #[error("RTAS return cells unwritable: {0}")]
    Unwritable(MemoryError),
}

/// A decoded argument block, remembering where its return cells live.
///
/// [`RtasArgs::read`] guarantees `args.len() == nargs` and `nargs + nret <= MAX_CELLS`.
/// [`RtasArgs::write_rets`] writes where `addr`, `nargs` and `nret` say, so a value built by hand
/// must describe the guest's block; return cells past the end of the address space or outside
/// RAM are refused ([`ArgsError::Unwritable`]), never wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtasArgs {
    /// Guest real address of the block (the `H_RTAS` argument in r4). The return cells start at
    /// `addr + 12 + 4 * nargs`.
    pub addr: u64,
    /// Cell 0: the token of the call ([`crate::rtas::RtasCall::from_token`] names it).
    pub token: u32,
    /// Cell 1: the number of argument cells.
    pub nargs: u32,
    /// Cell 2: the number of return cells the caller provides.
    pub nret: u32,
    /// The `nargs` argument cells, in order, converted from big-endian.
    pub args: Vec<u32>,
}

impl RtasArgs {
    /// Reads the block at `addr`. The whole block, return cells included, must be RAM.
    pub fn read<M: GuestMemoryBackend>(mem: &M, addr: u64) -> Result<Self, ArgsError> {
        let head = memory::read_bytes(mem, addr, 12).map_err(ArgsError::Unreadable)?;
        let cell = |i: usize| u32::from_be_bytes(head[i * 4..i * 4 + 4].try_into().unwrap());
        let (token, nargs, nret) = (cell(0), cell(1), cell(2));
        if nargs.checked_add(nret).is_none_or(|n| n > MAX_CELLS) {
            return Err(ArgsError::TooManyCells { addr, nargs, nret });
        }
        let total = 12 + 4 * (nargs + nret) as usize;
        let all = memory::read_bytes(mem, addr, total).map_err(ArgsError::Unreadable)?;
        let args = all[12..12 + 4 * nargs as usize]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Self {
            addr,
            token,
            nargs,
            nret,
            args,
        })
    }

    /// The big-endian bytes of an argument block as a caller builds it (Linux's `rtas_call()`,
    /// a test bench): `token`, `nargs`, `nret`, the arguments, then `nret` return cells holding
    /// `fill` (a marker makes a return the firmware never wrote visible).
    pub fn block_bytes(token: u32, args: &[u32], nret: u32, fill: u32) -> Vec<u8> {
        [token, args.len() as u32, nret]
            .into_iter()
            .chain(args.iter().copied())
            .chain(std::iter::repeat_n(fill, nret as usize))
            .flat_map(u32::to_be_bytes)
            .collect()
    }

    /// Argument `i` (0 when absent; callers check `nargs` first).
    pub fn arg(&self, i: usize) -> u32 {
        self.args.get(i).copied().unwrap_or(0)
    }

    /// True when the call carries exactly the counts PAPR defines for it.
    pub fn has_counts(&self, nargs: u32, nret: u32) -> bool {
        self.nargs == nargs && self.nret == nret
    }

    /// Writes `rets[0..]`. Extra values beyond `nret` are dropped; missing ones stay untouched.
    pub fn write_rets<M: GuestMemoryBackend>(
        &self,
        mem: &M,
        rets: &[u32],
    ) -> Result<(), ArgsError> {
        let n = rets.len().min(self.nret as usize);
        if n == 0 {
            return Ok(());
        }
        let bytes: Vec<u8> = rets[..n].iter().flat_map(|v| v.to_be_bytes()).collect();
        // 12 + 4 * nargs fits in 64 bits; the sum with a hand-built `addr` may not.
        let skip = 12 + 4 * u64::from(self.nargs);
        let at =
            self.addr
                .checked_add(skip)
                .ok_or(ArgsError::Unwritable(MemoryError::Overflow {
                    addr: self.addr,
                    len: skip,
                }))?;
        memory::write_bytes(mem, at, &bytes).map_err(ArgsError::Unwritable)
    }

    /// Writes the status into `rets[0]` (when the caller asked for at least one return cell).
    pub fn write_status<M: GuestMemoryBackend>(&self, mem: &M, status: RtasStatus) {
        if let Err(e) = self.write_rets(mem, &[status.cell()]) {
            warn!("rtas: token {:#x}: cannot write status: {e}", self.token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap()
    }

    fn put(m: &GuestMemoryMmap, addr: u64, cells: &[u32]) {
        let b: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        memory::write_bytes(m, addr, &b).unwrap();
    }

    #[test]
    fn reads_args_and_writes_rets_after_them() {
        let m = mem();
        put(&m, 0x100, &[0x202d, 3, 1, 1, 0x2000, 160, 0xdead]);
        let a = RtasArgs::read(&m, 0x100).unwrap();
        assert_eq!((a.token, a.args.clone()), (0x202d, vec![1, 0x2000, 160]));
        a.write_status(&m, RtasStatus::DumpActive);
        assert_eq!(
            memory::read_bytes(&m, 0x118, 4).unwrap(),
            (-10i32).to_be_bytes()
        );
    }

    #[test]
    fn an_encoded_block_reads_back_with_its_marker_in_the_returns() {
        let m = mem();
        let b = RtasArgs::block_bytes(0x202d, &[1, 0x2000, 160], 2, 0xdead_beef);
        assert_eq!(b.len(), 4 * (3 + 3 + 2));
        memory::write_bytes(&m, 0x100, &b).unwrap();
        let a = RtasArgs::read(&m, 0x100).unwrap();
        assert_eq!((a.token, a.nargs, a.nret), (0x202d, 3, 2));
        assert_eq!(a.args, [1, 0x2000, 160]);
        assert_eq!(&b[24..28], &0xdead_beef_u32.to_be_bytes());
    }

    #[test]
    fn refuses_blocks_that_are_too_big_or_off_the_end() {
        let m = mem();
        put(&m, 0x100, &[0x2000, 15, 2]);
        assert!(matches!(
            RtasArgs::read(&m, 0x100),
            Err(ArgsError::TooManyCells { .. })
        ));
        put(&m, 0x100, &[0x2000, u32::MAX, 2]);
        assert!(matches!(
            RtasArgs::read(&m, 0x100),
            Err(ArgsError::TooManyCells { .. })
        ));
        put(&m, 0xff0, &[0x2000, 3, 1]);
        assert!(matches!(
            RtasArgs::read(&m, 0xff0),
            Err(ArgsError::Unreadable(_))
        ));
        assert!(matches!(
            RtasArgs::read(&m, 0xffc),
            Err(ArgsError::Unreadable(_))
        ));
        assert!(matches!(
            RtasArgs::read(&m, u64::MAX - 3),
            Err(ArgsError::Unreadable(_))
        ));
    }

    #[test]
    fn hand_built_block_at_the_top_of_the_address_space_is_refused() {
        let m = mem();
        for (addr, nargs) in [(u64::MAX - 4, 3), (u64::MAX - 11, 0), (0x100, u32::MAX)] {
            let a = RtasArgs {
                addr,
                token: 0x2000,
                nargs,
                nret: 1,
                args: vec![],
            };
            assert!(
                matches!(a.write_rets(&m, &[0]), Err(ArgsError::Unwritable(_))),
                "{addr:#x} + {nargs} args"
            );
            a.write_status(&m, RtasStatus::Success);
        }
    }

    #[test]
    fn nret_zero_writes_nothing() {
        let m = mem();
        put(&m, 0x100, &[0x2000, 1, 0, 0x41, 0x77]);
        let a = RtasArgs::read(&m, 0x100).unwrap();
        a.write_status(&m, RtasStatus::Success);
        assert_eq!(
            memory::read_bytes(&m, 0x110, 4).unwrap(),
            0x77u32.to_be_bytes()
        );
    }
}
