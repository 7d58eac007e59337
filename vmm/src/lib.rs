//! The ppc64 KVM VMM: boots an unmodified Linux pseries guest on KVM-HV.
//!
//! * [`kvm`]: ppc64 KVM bindings and ioctl wrappers (the only `unsafe` besides memory mapping).
//! * [`hcall`]: hypercalls that reach userspace (console, H_SET_MODE, MMU, RTAS).
//! * [`vcpu`]: one thread per vCPU ([`vcpu::thread`]), driven through its handle
//!   ([`vcpu::handle`]) and kicked with `SIGRTMIN` + `immediate_exit`; its state as enums
//!   ([`vcpu::state`]); the whole set at once ([`vcpu::set`]).
//! * [`partition`]: the state vCPU threads and the main thread share.
//! * [`events`]: what vCPU threads ask of the machine, tagged with the boot they belong to.
//! * [`machine`]: construction (named steps), the lifecycle ([`machine::MachineState`]),
//!   boot, reset, the run loop and the fadump crash sequence; also why the interrupt
//!   controller is KVM's in-kernel XICS.
//! * [`hash`]: the hash MMU (HPT sizing, allocation, clearing, reading it for a dump).
//! * [`config`], [`error`], [`memory`]: the configuration, the machine's error, guest memory.
//!
//! Imports point down (`tests/module_graph.rs` fails on a cycle): `machine` uses
//! `partition`, `vcpu::set`, `vcpu::thread`, `events`, `hash`; `vcpu::thread` uses
//! `partition`; `partition` holds `vcpu::handle`s, which use only `vcpu::state`.
//! * [`boot`], [`loader`], [`layout`], [`rtas_blob`]: what goes where in guest memory.
//! * [`ratelimit`]: `guest_warn!`, log lines a guest can trigger at will, limited per call site.
//! * [`cli`]: the `ppc-vmm` command line.
//! * [`hotplug`]: the memory hotplug window (`--memory hotplug_size=`), its KVM slots.

/// Most vCPUs the CLI accepts (each is one thread-per-core virtual CPU).
pub const MAX_CPUS: u32 = 256;

pub mod api;
pub mod boot;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod coredump;
pub mod devices;
pub mod error;
pub mod event_monitor;
pub mod events;
pub mod hash;
pub mod hcall;
pub mod hotplug;
pub mod kvm;
pub mod layout;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod partition;
pub mod prefault;
pub mod ratelimit;
pub mod remote;
pub mod rtas_blob;
pub mod vcpu;
