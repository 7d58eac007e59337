//! Why an MPIPL call was refused, and the OPAL code each reason maps to.

use thiserror::Error;

use crate::opal::status::OpalStatus;
use crate::opal::token::MpiplTag;
use crate::range::GuestRange;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MpiplError {
    #[error("unknown MPIPL_UPDATE operation {0}")]
    UnknownOp(u32),
    #[error("{what} address {raw:#x} is not a valid OPAL real address")]
    BadAddress { what: &'static str, raw: u64 },
    #[error("range size is 0")]
    ZeroSize,
    #[error("range size {0:#x} does not fit the 32-bit size field")]
    SizeTooLarge(u64),
    #[error("{what} range at {addr:#x} + {size:#x} overflows 64 bits")]
    Overflow {
        what: &'static str,
        addr: u64,
        size: u64,
    },
    #[error("{what} range {range} is not RAM (beyond RAM or across a hole)")]
    NotBacked {
        what: &'static str,
        range: GuestRange,
    },
    #[error("the range table is full ({0} entries)")]
    TableFull(usize),
    #[error("source {0:#x} is already registered")]
    DuplicateSource(u64),
    #[error("destination {0:#x} is already registered")]
    DuplicateDestination(u64),
    #[error("destination {dest} overlaps registered range {other}")]
    DestinationOverlap { dest: GuestRange, other: GuestRange },
    #[error("source {src} overlaps registered destination {dest}")]
    SourceOverlapsDestination { src: GuestRange, dest: GuestRange },
    #[error("destination {dest} overlaps firmware-owned memory {fw}")]
    FirmwareOwned { dest: GuestRange, fw: GuestRange },
    #[error("no kernel range with source {src:#x} and destination {dest:#x}")]
    NoSuchRange { src: u64, dest: u64 },
    #[error("unknown MPIPL tag {0}")]
    UnknownTag(u32),
    #[error("tag {0:?} is owned by the firmware")]
    FirmwareTag(MpiplTag),
    #[error("boot memory top {value:#x} is 0 or above the top of RAM {top:#x}")]
    BadBootMem { value: u64, top: u64 },
    #[error("tag {0} cannot be queried (unknown, or preserved memory already freed)")]
    TagNotQueryable(u32),
    #[error("output pointer {0:#x} is not writable RAM")]
    BadOutput(u64),
}

impl MpiplError {
    /// The OPAL code Linux expects for this refusal.
    pub fn status(&self) -> OpalStatus {
        match self {
            MpiplError::TableFull(_) => OpalStatus::Resource,
            _ => OpalStatus::Parameter,
        }
    }
}
