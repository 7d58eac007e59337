//! Events vCPU threads send to the machine's main thread, tagged with the boot they belong to.
//!
//! One wake-up (an eventfd write) may stand for several events: two vCPUs can ask for a reboot
//! and a power-off, or two `ibm,os-term`s, at nearly the same time, and eventfd writes merge.
//! The main thread therefore takes **every** queued event on each wake. And an event belongs
//! to the boot in which the guest asked for it: once the machine has reset and booted again,
//! a late power-off or os-term of the previous kernel must not end the capture kernel or
//! write into its memory. Every event carries the boot generation current when it was sent;
//! [`EventQueue::next`] drops those of an older boot (a vCPU's death is always reported).

use firmware::rtas::RtasArgs;
use log::warn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

/// What a vCPU asks of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineEvent {
    Reboot,
    PowerOff,
    /// `ibm,os-term` with no dump registered, from vCPU `cpu` (held): the machine writes a host
    /// dump if asked to (`--on-crash host-dump=`), then reboots.
    OsTerm {
        cpu: u32,
    },
    /// `ibm,os-term` with a dump registered, from vCPU `cpu`; `args` is its RTAS block.
    FadumpCrash {
        cpu: u32,
        args: RtasArgs,
    },
    /// A vCPU thread cannot go on (KVM_RUN failed, or it panicked).
    Fatal(String),
    /// `H_SIGNAL_SYS_RESET` from vCPU `caller` (already validated): deliver a system reset to
    /// the targets, each on its own thread.
    SignalSysReset {
        caller: u32,
        target: SysResetTarget,
    },
}

/// Whom a system reset (`H_SIGNAL_SYS_RESET`, an operator NMI) goes to. PAPR's hcall
/// argument: a vCPU id, -1 every vCPU, -2 every vCPU but the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysResetTarget {
    /// Every vCPU (-1).
    All,
    /// Every vCPU but the caller (-2).
    AllButSelf,
    /// One vCPU by id.
    Cpu(u32),
}

impl SysResetTarget {
    /// Decodes the hcall argument; `None` for anything below -2.
    pub fn from_arg(arg: u64) -> Option<Self> {
        match arg as i64 {
            -1 => Some(SysResetTarget::All),
            -2 => Some(SysResetTarget::AllButSelf),
            id if (0..=i64::from(u32::MAX)).contains(&id) => Some(SysResetTarget::Cpu(id as u32)),
            _ => None,
        }
    }

    /// Whether vCPU `cpu` is a target when `caller` signalled.
    pub fn includes(self, caller: u32, cpu: u32) -> bool {
        match self {
            SysResetTarget::All => true,
            SysResetTarget::AllButSelf => cpu != caller,
            SysResetTarget::Cpu(id) => cpu == id,
        }
    }
}

/// An event and the boot generation it was sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tagged {
    boot: u64,
    event: MachineEvent,
}

/// The sending side, shared by every vCPU thread.
#[derive(Debug)]
pub struct EventSender {
    tx: Mutex<Sender<Tagged>>,
    /// The current boot generation (0 before the first boot).
    boot: AtomicU64,
}

/// The main thread's side.
#[derive(Debug)]
pub struct EventQueue {
    rx: Receiver<Tagged>,
}

/// A connected sender and queue.
pub fn event_channel() -> (EventSender, EventQueue) {
    let (tx, rx) = channel();
    (
        EventSender {
            tx: Mutex::new(tx),
            boot: AtomicU64::new(0),
        },
        EventQueue { rx },
    )
}

impl EventSender {
    /// Queues `event` for the current boot. Returns false if the main thread is gone.
    pub fn send(&self, event: MachineEvent) -> bool {
        let boot = self.boot.load(Ordering::SeqCst);
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Tagged { boot, event })
            .is_ok()
    }

    /// A new boot starts (called with every vCPU stopped, before the boot vCPU runs): events
    /// queued from now on belong to it. Returns the new generation.
    pub fn next_boot(&self) -> u64 {
        self.boot.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The current boot generation.
    pub fn boot(&self) -> u64 {
        self.boot.load(Ordering::SeqCst)
    }
}

impl EventQueue {
    /// The next queued event that belongs to boot `current`, dropping (with a log line) those
    /// of earlier boots; `None` when the queue is empty. Call it until `None` on every wake.
    pub fn next(&self, current: u64) -> Option<MachineEvent> {
        loop {
            let Tagged { boot, event } = self.rx.try_recv().ok()?;
            if boot == current || matches!(event, MachineEvent::Fatal(_)) {
                return Some(event);
            }
            warn!("dropping {event:?} from boot #{boot}: the machine is at boot #{current}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_of_one_wake_is_taken() {
        let (tx, q) = event_channel();
        let boot = tx.next_boot();
        assert!(tx.send(MachineEvent::Reboot));
        assert!(tx.send(MachineEvent::PowerOff));
        assert_eq!(q.next(boot), Some(MachineEvent::Reboot));
        assert_eq!(q.next(boot), Some(MachineEvent::PowerOff));
        assert_eq!(q.next(boot), None);
    }

    #[test]
    fn a_late_event_of_the_previous_boot_never_hits_the_next_one() {
        let (tx, q) = event_channel();
        let first = tx.next_boot();
        // The crashed kernel's os-term and a power-off race; the os-term is handled first,
        // the machine dumps and boots the capture kernel.
        tx.send(MachineEvent::FadumpCrash {
            cpu: 0,
            args: RtasArgs {
                addr: 0x1000,
                token: 0x201f,
                nargs: 1,
                nret: 1,
                args: vec![0],
            },
        });
        tx.send(MachineEvent::PowerOff);
        assert!(matches!(
            q.next(first),
            Some(MachineEvent::FadumpCrash { .. })
        ));
        let capture = tx.next_boot();
        assert_eq!(capture, first + 1);
        // The old power-off is dropped; the capture kernel's own events get through.
        assert_eq!(q.next(capture), None);
        tx.send(MachineEvent::Reboot);
        assert_eq!(q.next(capture), Some(MachineEvent::Reboot));
    }

    #[test]
    fn a_dead_vcpu_is_reported_whatever_its_boot() {
        let (tx, q) = event_channel();
        let first = tx.next_boot();
        tx.send(MachineEvent::Fatal("vcpu 1: KVM_RUN: EFAULT".into()));
        let second = tx.next_boot();
        assert_eq!(
            q.next(second),
            Some(MachineEvent::Fatal("vcpu 1: KVM_RUN: EFAULT".into()))
        );
        assert!(first < second);
    }

    #[test]
    fn send_reports_a_gone_main_thread() {
        let (tx, q) = event_channel();
        drop(q);
        assert!(!tx.send(MachineEvent::PowerOff));
    }
}
