//! One device's INTx line as the PHB and the device's own I/O thread both drive it.
//!
//! The level is `pending && !disabled`: `pending` is the device's interrupt condition (for
//! virtio, ISR != 0), `disabled` the command register's INTx Disable bit. Both the vCPU
//! threads (an ISR read clears it, a config write may set INTx Disable) and the device's
//! I/O thread (a completion sets ISR) recompute it, so the evaluation of `pending` and the
//! change of the line happen under one small lock: whoever comes last sees the latest
//! condition, and the line never stays high for a condition already cleared (or low for a
//! condition already set).

use std::sync::{Arc, Mutex};

use super::IrqLine;

#[derive(Debug, Default)]
struct State {
    /// The level last driven.
    level: bool,
    /// INTx Disable as last set by the PHB.
    disabled: bool,
}

/// The line of one PCI function (an XICS LSI).
pub struct IntxLine {
    irq: Arc<dyn IrqLine>,
    lsi: u32,
    state: Mutex<State>,
}

impl std::fmt::Debug for IntxLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntxLine")
            .field("lsi", &self.lsi)
            .field("state", &*self.lock())
            .finish()
    }
}

impl IntxLine {
    pub fn new(irq: Arc<dyn IrqLine>, lsi: u32) -> Self {
        Self {
            irq,
            lsi,
            state: Mutex::new(State::default()),
        }
    }

    /// The interrupt number driven.
    pub fn lsi(&self) -> u32 {
        self.lsi
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-evaluates `pending` under the line's lock and drives the line on a change; returns
    /// what `pending` said.
    pub fn refresh(&self, pending: impl FnOnce() -> bool) -> bool {
        let mut s = self.lock();
        let p = pending();
        let level = p && !s.disabled;
        if level != s.level {
            s.level = level;
            self.irq.set_level(self.lsi, level);
        }
        p
    }

    /// Records INTx Disable (the caller refreshes afterwards).
    pub fn set_disabled(&self, disabled: bool) {
        self.lock().disabled = disabled;
    }

    /// Power-on: the line is driven low (whatever was driven before) and enabled.
    pub fn reset(&self) {
        let mut s = self.lock();
        s.level = false;
        s.disabled = false;
        self.irq.set_level(self.lsi, false);
    }

    /// The level last driven.
    pub fn level(&self) -> bool {
        self.lock().level
    }
}
