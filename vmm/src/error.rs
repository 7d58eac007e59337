//! Why the machine could not be built or run.

use crate::layout::LayoutError;
use crate::loader::ElfError;
use std::path::PathBuf;

/// Why the machine could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot open /dev/kvm: {0} (is this a POWER host with KVM, and are you allowed to use it?)"
    )]
    OpenKvm(vmm_sys_util::errno::Error),
    #[error("KVM API version {0}, expected 12 ({1})")]
    ApiVersion(i32, std::io::Error),
    #[error("cannot create a KVM-HV virtual machine: {0} (is the kvm_hv module loaded? on a nested host the parent must allow nesting)")]
    CreateVm(vmm_sys_util::errno::Error),
    #[error("KVM lacks a required capability: {0}")]
    MissingCap(&'static str),
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("KVM {what}: {err}")]
    Kvm {
        what: &'static str,
        err: vmm_sys_util::errno::Error,
    },
    #[error("kernel {path}: {err}")]
    Kernel { path: PathBuf, err: ElfError },
    #[error("cannot read {path}: {err}")]
    File { path: PathBuf, err: std::io::Error },
    #[error("memory layout: {0}")]
    Layout(#[from] LayoutError),
    #[error("device tree: {0}")]
    DeviceTree(String),
    #[error("console: {0}")]
    Console(std::io::Error),
    #[error("threads/events: {0}")]
    Runtime(String),
    #[error("disks: {0}")]
    Disk(#[from] crate::devices::disk_spec::BuildError),
    #[error("the guest stopped: {0}")]
    Guest(String),
    #[error(transparent)]
    Lifecycle(#[from] crate::machine::state::InvalidTransition),
}

pub(crate) fn kvm_err(what: &'static str) -> impl FnOnce(vmm_sys_util::errno::Error) -> Error {
    move |err| Error::Kvm { what, err }
}
