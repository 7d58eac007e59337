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
//! Cross-check against QEMU 11.1's powernv MPIPL (`hw/ppc/pnv_mpipl.c`) under skiboot v7.1, from
//! a captured run: `integration-tests/nested/opal-conformance.sh` crashes a Linux 6.12 powernv
//! guest under QEMU, reads what the platform and skiboot recorded out of guest memory, and
//! `integration-tests/tests/opal_conformance.rs` replays the same registration and registers
//! through this engine and compares every field. QEMU emulates the SBE and hostboot under a real
//! skiboot; skiboot turns what QEMU writes into the tags. The differences, and which side Linux's
//! `opal-fadump` / `opal-core` agrees with:
//!
//! | Field | This firmware | QEMU 11.1 + skiboot | Linux |
//! |---|---|---|---|
//! | register-entry `offset` | 0x10 (entries follow the 24-byte header; counted from the offset field) | 0 | reads `thread + 8 + offset` (the capture kernel logs "Offset: 8"): with 0 it takes header bytes 8..23 as a type-0 entry (ignored) and drops the last real entry (HMEER); works by accident |
//! | CR | pseudo-SPR 0x7D2 | not written | reads 0x7D2 into `ccr`: QEMU's non-crashing threads show CR 0 in the vmcore |
//! | `core_state` | 0x00 (running) | 0xFF | skips only 0x0F: both accepted |
//! | entries per thread | 32 GPR + 28 SPR, each once (stride 984) | 32 GPR + 34 SPR, CTR/DAR/DSISR/CFAR twice, CTRL as 152 (the write number), HMEER (stride 1080) | reads GPRs, CTR, LR, XER, DAR, DSISR, NIP, MSR, CCR only; last value wins |
//! | TAG_CPU / TAG_OPAL metadata and register data | in the machine's dump area | skiboot heap / `ibm,firmware-arch-registers` | `__va()` of whatever QUERY_TAG returns |
//! | result table (MDRT) `src`/`dest` | start addresses | start + ceil(size / 32 MiB) x 32 MiB (recorded after the copy loop advanced them) | skiboot builds `TAG_OPAL` from the MDRT and `opal-core` reads OPAL's copy at `region.dest`: QEMU's points past the copy (its first bytes are not OPAL's image; the registered destination's are); the kernel's vmcore is unaffected (Linux uses its own metadata) |
//! | `mpipl-boot` | empty (skiboot's form) | u64 1 | presence only: both accepted |
//! | a kernel range whose source covers OPAL's own entry | accepted (OPAL's entry is copied first) | accepted | Linux registers boot memory from 0, which under skiboot covers its image and its copy |
//! | bad ranges (size over 32 bits, outside RAM, across holes, overlapping kernel destinations) | `OPAL_PARAMETER` at `ADD_RANGE` | accepted by skiboot, then truncated or failed at copy time | Linux never sends them |
//!
//! Equal in the run: the registration (table entries, tags), result regions/sizes/order, the
//! metadata versions, `cpu_data_version`, crashing PIR, thread PIRs, entry sizes, every shared
//! register value, `compatible`, `fw-load-area`, and what Linux builds for each thread's note.

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
