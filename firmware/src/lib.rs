//! Firmware for ppc64 guests, as an embeddable library.
//!
//! * [`rtas`]: the PAPR RTAS call layer a pseries guest talks to (argument blocks, tokens,
//!   dispatch), including `ibm,os-term` and `ibm,configure-kernel-dump`.
//! * [`fadump`]: the PAPR firmware-assisted dump engine: registration state machine,
//!   validation, and the dump itself (Register Save Area, HPTE area, boot-memory copies).
//! * [`dlpar`]: memory DLPAR (LMB hot-add and hot-remove): the DRC state machine, the LMB
//!   table, its device-tree encoding and the hot-plug event log.
//! * [`opal`]: the OPAL call layer and the MPIPL engine (powernv fadump).
//!
//! The crate is pure: no KVM, no threads, no files, no `unsafe`. Guest memory is accessed only
//! through `vm-memory`'s checked accessors ([`memory`]); vCPU state and the hash page table come
//! in through small traits ([`cpu::CpuStateSource`], [`fadump::HptSource`]); and the firmware
//! never acts on the machine itself: it returns what the machine should do
//! ([`rtas::RtasAction`]).
//!
//! `cargo run -p firmware --example fadump_cycle` runs one register → crash → dump cycle over
//! plain guest memory, driving the crate the way a VMM or a test bench embeds it
//! (`firmware/examples/fadump_cycle.rs`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod be;
pub mod cpu;
pub mod dlpar;
pub mod fadump;
pub mod memory;
pub mod opal;
pub mod properties;
pub mod range;
pub mod rtas;

pub use cpu::{CpuState, CpuStateSource, Reg};
pub use properties::{PropValue, Property};
pub use range::GuestRange;
