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
//! Cross-check against QEMU's powernv MPIPL (`hw/ppc/pnv_mpipl.c`, the series merged for 11.1;
//! compared from its source, field by field, not from a captured run). QEMU emulates the SBE and
//! hostboot under a real skiboot; skiboot turns what QEMU writes into the tags. Differences, and
//! which side Linux's `opal-fadump` agrees with:
//!
//! | Field | This firmware | QEMU | Linux |
//! |---|---|---|---|
//! | register-entry `offset` | 0x10 (entries follow the 24-byte header; counted from the offset field) | 0 | reads `thread + 8 + offset`: with 0 it takes header bytes 8..23 as a type-0 entry (ignored) and drops the last real entry; works by accident |
//! | CR | pseudo-SPR 0x7D2 | not written | reads 0x7D2 into `ccr`: QEMU's non-crashing threads show CR 0 |
//! | `core_state` | 0x00 (running) | 0xFF | skips only 0x0F: both accepted |
//! | entries per thread | 32 GPR + 28 SPR, each once (stride 984) | 32 GPR + 34 SPR, CTR/DAR/DSISR/CFAR twice (stride 1080) | last value wins, so QEMU's duplicates are harmless |
//! | threads saved | every thread the machine reports | every vCPU | `num_cpus = size / stride` |
//! | result table (MDRT) | start addresses | `src`/`dest` recorded after the copy loop advanced them, i.e. start + chunks x 32 MiB | skiboot builds `TAG_OPAL` regions from the MDRT, so QEMU's OPAL core (`/sys/firmware/opal/mpipl/core`) points past OPAL's copy; the kernel's vmcore is unaffected (Linux uses its own metadata) |
//! | end of the range table | `act_cnt` (our table length) | first all-zero entry | n/a |
//! | `mpipl-boot` | empty (skiboot's form) | u64 1 | presence only: both accepted |
//! | bad ranges (size over 32 bits, outside RAM, across holes, overlapping destinations) | `OPAL_PARAMETER` at `ADD_RANGE` | accepted by skiboot, then truncated or failed at copy time | Linux never sends them |

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
