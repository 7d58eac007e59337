//! OPAL (powernv) firmware: the call layer and the MPIPL engine behind Linux's powernv fadump.
//!
//! * [`call`]: [`Opal::call`] takes a call number and argument registers, returns r3 and an
//!   [`OpalAction`] for the machine. Unknown calls answer `OPAL_UNSUPPORTED`.
//! * [`engine`]: [`MpiplEngine`]: `OPAL_MPIPL_UPDATE`, `REGISTER_TAG`, `QUERY_TAG`, the
//!   preservation an MPIPL performs, and the state the next boot presents.
//! * [`table`]: the range table (skiboot's MDST/MDDT); [`regdata`]: the HDAT architected
//!   register data; [`metadata`]: `struct opal_mpipl_fadump`; [`dt`]: `/ibm,opal/dump`;
//!   [`config`]: where the firmware keeps its data in guest memory.
//!
//! The crash, as the machine drives it:
//!
//! 1. The crashing thread calls `OPAL_CEC_REBOOT2(MPIPL, msg)`; [`Opal::call`] returns
//!    [`OpalAction::Mpipl`] with the caller's PIR and the machine does not resume the caller.
//! 2. The machine stops every thread and calls [`MpiplEngine::preserve`] with their registers.
//! 3. The machine resets devices and threads without clearing RAM, then boots with
//!    [`MpiplEngine::dump_node_properties`] (now with `mpipl-boot`) and
//!    [`MpiplEngine::reserved_ranges`] in the device tree.
//!
//! Differences from QEMU 11.1's powernv MPIPL (`hw/ppc/pnv_mpipl.c`), which emulates the SBE and
//! hostboot under a real skiboot instead of being the firmware:
//!
//! * Register-entry offset: we write 0x10 (entries right after the 24-byte header, counted
//!   from the offset field as Linux does); QEMU writes 0, so Linux reads one pseudo-entry made of
//!   header bytes and loses the last real entry.
//! * CR: we write it as pseudo-SPR 0x7D2 (Linux reads it into `ccr`); QEMU does not write CR.
//! * Core state: we write 0x00 (running) for every saved thread; QEMU writes 0xFF.
//! * Each SPR is written once; QEMU writes some twice.
//! * `mpipl-boot` is an empty property (skiboot's form); QEMU writes a u64 1. Linux only tests
//!   presence, so both work.
//! * We refuse ranges skiboot and QEMU accept and then mishandle (sizes over 32 bits, ranges
//!   outside RAM or across holes, overlapping destinations) with `OPAL_PARAMETER`.

pub mod addr;
pub mod call;
pub mod config;
pub mod dt;
pub mod engine;
pub mod error;
pub mod metadata;
pub mod regdata;
pub mod status;
pub mod table;
pub mod token;

pub use call::{Opal, OpalAction, OpalCall, OpalReturn};
pub use config::{MpiplConfig, OpalMemory};
pub use engine::{MpiplEngine, MpiplState, PresentedTags, PreservedDump, Registration};
pub use error::MpiplError;
pub use status::OpalStatus;
pub use token::{MpiplOp, MpiplTag, OpalToken, RebootType};

#[cfg(test)]
mod tests;
