//! Why an MPIPL call was refused, and the OPAL code each reason maps to.

use thiserror::Error;

use crate::opal::status::OpalStatus;
use crate::opal::token::MpiplTag;
use crate::range::GuestRange;

/// Why an MPIPL call (`MPIPL_UPDATE`, `REGISTER_TAG`, `QUERY_TAG`) was refused. A refusal
/// changes nothing. Every reason answers `OPAL_PARAMETER` (-1) except
/// [`MpiplError::TableFull`], which answers `OPAL_RESOURCE` (-10); see [`MpiplError::status`].
/// Addresses in ranges are real addresses, after the top-nibble masking of
/// [`real_addr`](crate::opal::addr::real_addr).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MpiplError {
    /// `MPIPL_UPDATE` with an operation other than 0 to 3.
    #[error("unknown MPIPL_UPDATE operation {0}")]
    UnknownOp(u32),
    /// `ADD_RANGE`: an address fails skiboot's `opal_addr_valid` (top nibble not 0x0 or 0xC, or
    /// above the top of RAM).
    #[error("{what} address {raw:#x} is not a valid OPAL real address")]
    BadAddress {
        /// `"source"` or `"destination"`.
        what: &'static str,
        /// The address as the kernel passed it.
        raw: u64,
    },
    /// `ADD_RANGE` with size 0.
    #[error("range size is 0")]
    ZeroSize,
    /// `ADD_RANGE` with a size above `u32::MAX`, which skiboot's 32-bit size field would
    /// truncate (Linux splits larger regions).
    #[error("range size {0:#x} does not fit the 32-bit size field")]
    SizeTooLarge(u64),
    /// `ADD_RANGE`: address + size overflows 64 bits.
    #[error("{what} range at {addr:#x} + {size:#x} overflows 64 bits")]
    Overflow {
        /// `"source"` or `"destination"`.
        what: &'static str,
        /// The real address.
        addr: u64,
        /// The size in bytes.
        size: u64,
    },
    /// `ADD_RANGE`: a range is not entirely RAM (beyond RAM or across a hole).
    #[error("{what} range {range} is not RAM (beyond RAM or across a hole)")]
    NotBacked {
        /// `"source"` or `"destination"`.
        what: &'static str,
        /// The range that is not RAM.
        range: GuestRange,
    },
    /// `ADD_RANGE` with the table full: 63 kernel ranges, or 64 entries in all (the value
    /// carried is the table size, 64).
    #[error("the range table is full ({0} entries)")]
    TableFull(usize),
    /// `ADD_RANGE`: an entry (OPAL's included) already starts at this source.
    #[error("source {0:#x} is already registered")]
    DuplicateSource(u64),
    /// `ADD_RANGE`: an entry (OPAL's included) already starts at this destination.
    #[error("destination {0:#x} is already registered")]
    DuplicateDestination(u64),
    /// `ADD_RANGE`: the new destination overlaps its own source, or the source or destination of
    /// an existing entry.
    #[error("destination {dest} overlaps registered range {other}")]
    DestinationOverlap {
        /// The new destination range.
        dest: GuestRange,
        /// The range it overlaps.
        other: GuestRange,
    },
    /// `ADD_RANGE`: the new source overlaps an existing kernel range's destination, which would
    /// make the copies depend on their order. OPAL's own entry is exempt.
    #[error("source {src} overlaps registered destination {dest}")]
    SourceOverlapsDestination {
        /// The new source range.
        src: GuestRange,
        /// The registered destination it overlaps.
        dest: GuestRange,
    },
    /// `ADD_RANGE`: the new destination overlaps memory the firmware owns
    /// ([`MpiplConfig::firmware_owned`](crate::opal::MpiplConfig::firmware_owned)).
    #[error("destination {dest} overlaps firmware-owned memory {fw}")]
    FirmwareOwned {
        /// The new destination range.
        dest: GuestRange,
        /// The firmware area it overlaps.
        fw: GuestRange,
    },
    /// `REMOVE_RANGE`: no kernel range starts at both these addresses.
    #[error("no kernel range with source {src:#x} and destination {dest:#x}")]
    NoSuchRange {
        /// The source as the kernel passed it.
        src: u64,
        /// The destination as the kernel passed it.
        dest: u64,
    },
    /// `REGISTER_TAG` with a tag other than 0 to 3.
    #[error("unknown MPIPL tag {0}")]
    UnknownTag(u32),
    /// `REGISTER_TAG` of `TAG_CPU` or `TAG_OPAL`, which only the firmware sets.
    #[error("tag {0:?} is owned by the firmware")]
    FirmwareTag(MpiplTag),
    /// `REGISTER_TAG(BOOT_MEM)` with 0 or a value above the top of RAM.
    #[error("boot memory top {value:#x} is 0 or above the top of RAM {top:#x}")]
    BadBootMem {
        /// The value the kernel passed.
        value: u64,
        /// One past the highest RAM address.
        top: u64,
    },
    /// `QUERY_TAG` with a tag of 4 or more, or after `FREE_PRESERVED_MEMORY` in this boot.
    #[error("tag {0} cannot be queried (unknown, or preserved memory already freed)")]
    TagNotQueryable(u32),
    /// `QUERY_TAG`: the output pointer (as passed) fails `opal_addr_valid`, or the 8 bytes at it
    /// are not RAM.
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
