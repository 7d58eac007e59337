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
//! * [`state`]: the vCPU's state ([`state::VcpuState`]: free, held, dead, with the guest's run
//!   state inside) and the machine's request slot ([`state::Mailbox`]), as pure enums with
//!   their transitions.
//! * [`handle`]: the cross-thread handle ([`VcpuControl`]): requests, kicks, bounded waits; a
//!   leaf that the partition holds.
//! * [`thread`]: the vCPU thread itself (exit loop, hcalls, RTAS actions, reset, register
//!   snapshot); it uses the partition.
//! * [`set`]: all vCPUs at once: stop and snapshot (in parallel, one deadline), resume,
//!   reset, quit.
//! * [`regs`]: KVM's registers turned into the firmware's [`firmware::CpuState`].

pub mod handle;
pub mod regs;
pub mod set;
pub mod state;
pub mod thread;

pub use handle::{register_kick_signal, VcpuControl, WaitError, ANSWER_TIMEOUT};
pub use state::StartRequest;
pub use thread::{LPCR_MANAGED, MSR_SF_ME};
