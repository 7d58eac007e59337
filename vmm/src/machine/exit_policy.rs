//! What SIGINT/SIGTERM do while a dump exists.
//!
//! A fadump dump lives only in guest memory until the capture kernel has saved `/proc/vmcore`
//! and released it (`ibm,configure-kernel-dump` INVALIDATE). The rules:
//!
//! * **While the dump is being written** (`Dumping`): the firmware's copy runs to its end on the
//!   main thread, which looks at signals only between events, so a signal never leaves a
//!   half-written dump; it is acted on as below once the dump is complete.
//! * **While a preserved dump waits for the capture kernel**: the first signal is refused, and
//!   the log says why and what happens next; the VMM exits by itself as soon as the capture
//!   kernel releases the dump. A second signal exits at once, and the log says the unsaved dump
//!   was discarded.
//! * **Otherwise**: the signal ends the run.

use std::sync::atomic::{AtomicBool, Ordering};

/// What the event loop does with a signal, or after an event while an exit is deferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnSignal {
    /// End the run now.
    Exit,
    /// Keep running: a dump waits to be saved; exit when it is released.
    Defer,
    /// End the run now although a dump was not saved (the operator insisted).
    ExitDiscardingDump,
}

/// The signal state of one run.
#[derive(Debug, Default)]
pub(crate) struct ExitPolicy {
    /// A signal was refused because a dump was unsaved; the run ends when it is released.
    deferred: bool,
}

impl ExitPolicy {
    /// A signal arrived; `dump_unsaved` says whether a preserved dump waits for the capture
    /// kernel.
    pub(crate) fn on_signal(&mut self, dump_unsaved: bool) -> OnSignal {
        match (dump_unsaved, self.deferred) {
            (false, _) => OnSignal::Exit,
            (true, false) => {
                self.deferred = true;
                OnSignal::Defer
            }
            (true, true) => OnSignal::ExitDiscardingDump,
        }
    }

    /// Whether an exit was deferred (the loop then polls for the release).
    pub(crate) fn deferred(&self) -> bool {
        self.deferred
    }

    /// Whether a deferred exit is now due: the dump it waited for is no longer unsaved.
    pub(crate) fn due(&self, dump_unsaved: bool) -> bool {
        self.deferred && !dump_unsaved
    }

    /// The event loop's check between events: takes a signal the handler recorded in
    /// `signalled`, if any, and decides.
    pub(crate) fn take_signal(
        &mut self,
        signalled: &AtomicBool,
        dump_unsaved: bool,
    ) -> Option<OnSignal> {
        signalled
            .swap(false, Ordering::SeqCst)
            .then(|| self.on_signal(dump_unsaved))
    }
}

/// The log line for a refused signal.
pub(crate) const DEFER_MESSAGE: &str = "signal received while a fadump dump waits in guest memory \
     for the capture kernel to save it: not exiting now, which would lose the dump; the VMM \
     exits by itself once the capture kernel releases the dump, or at once on a second signal";

/// The log line for a second signal.
pub(crate) const DISCARD_MESSAGE: &str = "second signal: exiting; the fadump dump in guest memory \
     was never saved by the capture kernel and is discarded";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_dump_means_exit() {
        let mut p = ExitPolicy::default();
        assert_eq!(p.on_signal(false), OnSignal::Exit);
        assert!(!p.deferred());
    }

    #[test]
    fn an_unsaved_dump_refuses_once_then_exits_on_release_or_a_second_signal() {
        let mut p = ExitPolicy::default();
        assert_eq!(p.on_signal(true), OnSignal::Defer);
        assert!(p.deferred());
        assert!(!p.due(true), "the dump is still unsaved");
        assert!(p.due(false), "released: the deferred exit is due");
        let mut q = ExitPolicy::default();
        assert_eq!(q.on_signal(true), OnSignal::Defer);
        assert_eq!(q.on_signal(true), OnSignal::ExitDiscardingDump);
    }

    #[test]
    fn a_dump_released_before_the_second_signal_exits_cleanly() {
        let mut p = ExitPolicy::default();
        assert_eq!(p.on_signal(true), OnSignal::Defer);
        assert_eq!(p.on_signal(false), OnSignal::Exit);
    }
}
