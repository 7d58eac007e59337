//! The ppc64 KVM VMM: boots an unmodified Linux pseries guest on KVM-HV.
//!
//! * [`kvm`]: ppc64 KVM bindings and ioctl wrappers (the only `unsafe` besides memory mapping).

pub mod kvm;
