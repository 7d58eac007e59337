//! ppc64 (book3s) KVM bindings and ioctl wrappers in the style of `kvm-bindings` and
//! `kvm-ioctls`, which have no powerpc support (trap 4 of test-environment.md).
//!
//! * [`bindings`]: `repr(C)` structs and constants, layout-checked against the kernel headers.
//! * [`ioctls`]: request numbers with the powerpc encoding.
//! * [`Kvm`], [`VmFd`], [`VcpuFd`], [`DeviceFd`]: safe wrappers named after kvm-ioctls'.
//!
//! This module (and guest memory mapping) is the only place with `unsafe`.

pub mod bindings;
pub mod ioctls;
mod system;
mod vcpu;
mod vm;

#[cfg(test)]
mod layout_tests;

pub use system::Kvm;
pub use vcpu::{ImmediateExit, VcpuExit, VcpuFd};
pub use vm::{DeviceFd, VmFd};

/// Errors are errno values, as in kvm-ioctls.
pub type Result<T> = std::result::Result<T, vmm_sys_util::errno::Error>;
