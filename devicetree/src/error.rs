//! Why a machine description was refused or a blob could not be produced.

use thiserror::Error;

/// Every way [`crate::build`] can fail. A bad description is always an `Err`, never a panic.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Error {
    #[error("the machine has no vCPUs")]
    NoCpus,
    #[error("{0} vCPUs is more than the {max} this builder accepts", max = crate::MAX_VCPUS)]
    TooManyCpus(u32),
    #[error("threads per core must be 1, 2, 4 or 8 (Linux needs a power of two), got {0}")]
    BadThreadsPerCore(u32),
    #[error("{vcpus} vCPUs do not fill whole cores of {threads} threads")]
    PartialCore { vcpus: u32, threads: u32 },
    #[error("boot vCPU {boot} does not exist (vCPU ids are 0..{vcpus})")]
    BootCpuMissing { boot: u32, vcpus: u32 },
    #[error("CPU model name {0:?} is not usable in a node name (PowerPC,<name>@<id>)")]
    BadCpuModelName(String),
    #[error("{0} frequency must not be zero")]
    ZeroFrequency(&'static str),
    #[error("{what} must be a power of two and non-zero, got {value}")]
    BadCacheGeometry { what: &'static str, value: u32 },
    #[error("hash page table order {0} is outside 18..=46")]
    BadHtabShift(u32),
    #[error(
        "radix without GTSE needs the hcall-rpt-invalidate hypertas function, \
         or Linux panics at boot"
    )]
    RadixNeedsTlbInvalidation,
    #[error("the machine has no memory")]
    NoMemory,
    #[error("memory range {0} is empty")]
    EmptyMemoryRange(String),
    #[error("memory ranges {0} and {1} overlap")]
    OverlappingMemory(String, String),
    #[error("no memory range starts at guest address 0 (the kernel runs from there)")]
    NoMemoryAtZero,
    #[error("{what} {range} is not inside guest memory")]
    OutsideMemory { what: &'static str, range: String },
    #[error("{what} {range} is empty")]
    EmptyRange { what: &'static str, range: String },
    #[error("the RTAS region {0} does not fit in the 32-bit cells of /rtas (must end at or below 4 GiB)")]
    RtasAbove4GiB(String),
    #[error("{a} overlaps {b}")]
    Overlap { a: String, b: String },
    #[error("the kernel command line is {0} bytes; Linux on powerpc takes at most 2047")]
    CmdlineTooLong(usize),
    #[error("{what} contains a NUL byte")]
    NulInString { what: &'static str },
    #[error("property name {0:?} is not a valid device-tree property name")]
    BadPropertyName(String),
    #[error("property {name:?} appears twice in {node}")]
    DuplicateProperty { node: String, name: String },
    #[error("PCI host bridge {0}")]
    Pci(String),
    #[error("device-tree writer: {0}")]
    Fdt(#[from] vm_fdt::Error),
    #[error("internal error while finishing the blob: {0}")]
    Blob(&'static str),
}
