//! The ppc64 KVM VMM: boots an unmodified Linux pseries guest on KVM-HV.
//!
//! * [`kvm`]: ppc64 KVM bindings and ioctl wrappers (the only `unsafe` besides memory mapping).
//! * [`hcall`]: hypercalls that reach userspace (console, H_SET_MODE, MMU, RTAS).

pub mod hcall;
pub mod kvm;
pub mod loader;
pub mod rtas_blob;
