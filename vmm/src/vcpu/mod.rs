//! vCPUs: one thread per vCPU, each owning its [`VcpuFd`](crate::kvm::VcpuFd) and running the
//! exit loop.
//!
//! A vCPU is either *stopped* (in the RTAS sense: never started, or after `stop-self`) or
//! *running*. Stopped vCPUs park on a condition variable and never enter `KVM_RUN`.
//! Other threads talk to a vCPU only through its [`VcpuControl`]: they set a request under the
//! lock and **kick** it (set `kvm_run.immediate_exit`, then send `SIGRTMIN` so a blocking
//! `KVM_RUN`, e.g. one sleeping in H_CEDE, returns with EINTR). The vCPU clears
//! `immediate_exit` before it re-reads its requests, so no kick is lost.
//!
//! Per-vCPU KVM state (registers, LPCR, VPA, ONLINE) is only ever changed by the vCPU's own
//! thread, between two `KVM_RUN`s.
//!
//! * [`handle`]: the cross-thread handle ([`VcpuControl`]): requests, kicks, waits; a leaf
//!   that the partition holds.
//! * [`thread`]: the vCPU thread itself (exit loop, hcalls, RTAS actions, reset, register
//!   snapshot); it uses the partition.

pub mod handle;
pub mod thread;

pub use handle::{register_kick_signal, StartRequest, VcpuControl};
pub use thread::{LPCR_MANAGED, MSR_SF_ME};
