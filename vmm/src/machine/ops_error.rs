//! Why an operator request on the machine (NMI, core dump, power button, memory resize) was
//! not carried out. The API maps each variant to one HTTP status, in one place.

use thiserror::Error;

/// An operator request the machine refused or could not carry out.
#[derive(Debug, Error)]
pub enum OpError {
    /// The machine is doing something that must finish first (e.g. a dump is being written);
    /// nothing was changed, the guest keeps running. HTTP 409.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// The request itself is wrong (a bad path, a size out of range). HTTP 400.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// This machine cannot do it. HTTP 400/409.
    #[error("not supported: {0}")]
    NotSupported(&'static str),
    /// A host I/O error, e.g. writing a core file. HTTP 500.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Anything else that failed on the way (a vCPU did not answer). HTTP 500.
    #[error("{0}")]
    Failed(String),
}
