//! The test bench: models of the Linux guest's side of firmware-assisted dump, written from the
//! kernel's behaviour, that drive the `firmware` crate exactly as Linux does.
//!
//! * [`pseries`]: PAPR RTAS fadump (Linux 6.1-style and 6.12-style registrations, the second
//!   kernel's checks, the vmcore view).
//! * [`powernv`]: OPAL MPIPL (powernv fadump).

pub mod bench;
pub mod bytes;
pub mod linux;
pub mod pattern;
pub mod powernv;
pub mod pseries;
