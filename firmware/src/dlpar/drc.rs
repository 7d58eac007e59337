//! One logical dynamic-reconfiguration connector (DRC) of an LMB and its PAPR state machine.
//!
//! The states are those of QEMU's `spapr_drc.c` for logical DRCs: UNUSABLE → AVAILABLE →
//! UNISOLATE → CONFIGURED. Beside the state a DRC carries two flags the platform sets:
//! `attached` (the VMM has granted the LMB: the guest may acquire it) and `unplug_requested`
//! (the VMM wants it back). The guest moves the state with `set-indicator` (9003 allocation,
//! 9001 isolation) and `ibm,configure-connector`; `get-sensor-state` 9003 reads it.
//!
//! | guest call | precondition → result |
//! |---|---|
//! | sense 9003 | UNUSABLE → 2 (unusable); else → 1 (present) |
//! | 9003 = 1 | UNUSABLE, attached, no unplug pending → AVAILABLE ([`Change::Acquired`]); not attached or unplug pending → -3; other states → no-op |
//! | 9001 = 1 | AVAILABLE → UNISOLATE; UNUSABLE → -3; UNISOLATE/CONFIGURED → no-op, or the guest's rollback of a pending unplug ([`Change::RolledBack`]) |
//! | configure-connector | UNISOLATE or CONFIGURED only (else -9003); the last piece → CONFIGURED |
//! | 9001 = 0 | CONFIGURED → AVAILABLE; UNISOLATE → -3; AVAILABLE/UNUSABLE → no-op |
//! | 9003 = 0 | AVAILABLE → UNUSABLE ([`Change::Released`]; with an unplug pending the LMB is also detached); UNISOLATE/CONFIGURED → -3; UNUSABLE → no-op |
//!
//! Unlike QEMU, isolating an LMB without an unplug request is allowed: PAPR lets the OS give
//! logical resources back (`echo "memory remove ..." > /sys/kernel/dlpar`).

use thiserror::Error;

/// `get-sensor-state` 9003 (dr-entity-sense) value for an LMB the guest may acquire.
pub const SENSE_UNUSABLE: u32 = 2;
/// `get-sensor-state` 9003 value for an LMB the guest holds in some state.
pub const SENSE_PRESENT: u32 = 1;

/// The logical state of a DRC (QEMU's `SpaprDrcState` values 1 to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrcState {
    /// Not allocated to the guest.
    #[default]
    Unusable,
    /// Allocated (`set-indicator` 9003 = 1), still isolated.
    Available,
    /// Unisolated (`set-indicator` 9001 = 1): the guest reads its node with
    /// `ibm,configure-connector`.
    Unisolated,
    /// The guest has the whole node: the LMB is the guest's memory.
    Configured,
}

impl DrcState {
    /// True in the states where the guest owns the LMB's memory (it may have onlined it):
    /// UNISOLATE and CONFIGURED.
    pub fn guest_owned(self) -> bool {
        matches!(self, DrcState::Unisolated | DrcState::Configured)
    }
}

/// Why a guest transition was refused; each has its PAPR status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DrcError {
    /// -3: the transition is not allowed from this state, the LMB is not granted, or the
    /// value is not one PAPR defines for the indicator.
    #[error("transition not allowed from {0:?}")]
    NotAllowed(DrcState),
    /// -9003 (`ibm,configure-connector`): the DRC is not unisolated.
    #[error("not configurable in {0:?}")]
    NotConfigurable(DrcState),
}

/// What a successful guest transition means for the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed that the platform must act on.
    None,
    /// 9003 = 1: the guest took the LMB; its memory must be mapped before the call returns.
    Acquired,
    /// 9003 = 0: the guest gave the LMB back; its memory may be unmapped and discarded.
    /// `detached` when the platform had asked for it (the grant ends too).
    Released {
        /// The platform's unplug request completed: the LMB is no longer granted.
        detached: bool,
    },
    /// The guest refused a pending unplug (unisolated or configured again): the platform's
    /// request is dropped and the LMB stays the guest's.
    RolledBack,
    /// The last piece of the node was handed out: the LMB is CONFIGURED.
    Configured,
}

/// One LMB's connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drc {
    state: DrcState,
    attached: bool,
    unplug_requested: bool,
    /// The next piece `ibm,configure-connector` hands out (0: the node itself).
    cc_step: u8,
}

/// The pieces of an LMB's node, in the order `ibm,configure-connector` hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcPiece {
    /// Response 2, next child: the node `memory@<addr>`.
    Node,
    /// Response 3, next property: the property at this index of the node's list.
    Property(usize),
    /// Response 0, complete.
    Complete,
}

/// How many properties the LMB node has (`device_type`, `reg`, `ibm,associativity`).
pub const CC_PROPERTIES: usize = 3;

impl Drc {
    /// The DRC's logical state.
    pub fn state(&self) -> DrcState {
        self.state
    }

    /// True when the platform has granted the LMB.
    pub fn attached(&self) -> bool {
        self.attached
    }

    /// True when the platform wants the LMB back.
    pub fn unplug_requested(&self) -> bool {
        self.unplug_requested
    }

    /// `get-sensor-state` 9003.
    pub fn sense(&self) -> u32 {
        match self.state {
            DrcState::Unusable => SENSE_UNUSABLE,
            _ => SENSE_PRESENT,
        }
    }

    /// The platform grants the LMB (the guest may now acquire it).
    pub(crate) fn attach(&mut self) {
        self.attached = true;
    }

    /// The platform asks for the LMB back (the guest is told by a hot-plug event).
    pub(crate) fn request_unplug(&mut self) {
        self.unplug_requested = true;
    }

    /// Puts the DRC in `state` with the platform's flags, as a reset does.
    pub(crate) fn reset_to(&mut self, state: DrcState, attached: bool) {
        *self = Drc {
            state,
            attached,
            unplug_requested: false,
            cc_step: 0,
        };
    }

    /// `set-indicator` 9003 (allocation state) = `value`.
    pub fn set_allocation(&mut self, value: u32) -> Result<Change, DrcError> {
        match (value, self.state) {
            (1, DrcState::Unusable) if self.attached && !self.unplug_requested => {
                self.state = DrcState::Available;
                Ok(Change::Acquired)
            }
            (1, DrcState::Unusable) => Err(DrcError::NotAllowed(self.state)),
            (1, _) => Ok(Change::None),
            (0, DrcState::Available) => {
                self.state = DrcState::Unusable;
                let detached = std::mem::take(&mut self.unplug_requested);
                if detached {
                    self.attached = false;
                }
                Ok(Change::Released { detached })
            }
            (0, DrcState::Unusable) => Ok(Change::None),
            // Exchange (2), recover (3) and anything else: not for logical DRCs.
            _ => Err(DrcError::NotAllowed(self.state)),
        }
    }

    /// `set-indicator` 9001 (isolation state) = `value`.
    pub fn set_isolation(&mut self, value: u32) -> Result<Change, DrcError> {
        match (value, self.state) {
            (1, DrcState::Available) => {
                self.state = DrcState::Unisolated;
                self.cc_step = 0;
                Ok(Change::None)
            }
            (1, DrcState::Unisolated | DrcState::Configured) => Ok(self.rollback()),
            (0, DrcState::Configured) => {
                self.state = DrcState::Available;
                self.cc_step = 0;
                Ok(Change::None)
            }
            (0, DrcState::Available | DrcState::Unusable) => Ok(Change::None),
            _ => Err(DrcError::NotAllowed(self.state)),
        }
    }

    fn rollback(&mut self) -> Change {
        if std::mem::take(&mut self.unplug_requested) {
            Change::RolledBack
        } else {
            Change::None
        }
    }

    /// One `ibm,configure-connector` call: the piece to hand out now, and what it changed.
    /// A CONFIGURED DRC streams its node again from the start (Linux re-adds an LMB whose
    /// removal failed); a call on a DRC with an unplug pending is the guest's rollback.
    pub fn configure_step(&mut self) -> Result<(CcPiece, Change), DrcError> {
        if !self.state.guest_owned() {
            return Err(DrcError::NotConfigurable(self.state));
        }
        let mut change = self.rollback();
        let piece = match self.cc_step as usize {
            0 => CcPiece::Node,
            n if n <= CC_PROPERTIES => CcPiece::Property(n - 1),
            _ => CcPiece::Complete,
        };
        if piece == CcPiece::Complete {
            self.cc_step = 0;
            if self.state != DrcState::Configured && change == Change::None {
                change = Change::Configured;
            }
            self.state = DrcState::Configured;
        } else {
            self.cc_step += 1;
        }
        Ok((piece, change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted() -> Drc {
        let mut d = Drc::default();
        d.attach();
        d
    }

    /// Linux's add: sense 2, 9003=1, 9001=1, configure-connector to the end; then its remove:
    /// sense 1, 9001=0, 9003=0.
    #[test]
    fn linux_add_then_remove() {
        let mut d = granted();
        assert_eq!(d.sense(), SENSE_UNUSABLE);
        assert_eq!(d.set_allocation(1), Ok(Change::Acquired));
        assert_eq!(d.set_isolation(1), Ok(Change::None));
        let mut pieces = vec![];
        loop {
            let (p, c) = d.configure_step().unwrap();
            pieces.push(p);
            if p == CcPiece::Complete {
                assert_eq!(c, Change::Configured);
                break;
            }
            assert_eq!(c, Change::None);
        }
        assert_eq!(
            pieces,
            [
                CcPiece::Node,
                CcPiece::Property(0),
                CcPiece::Property(1),
                CcPiece::Property(2),
                CcPiece::Complete
            ]
        );
        assert_eq!(d.state(), DrcState::Configured);
        assert_eq!(d.sense(), SENSE_PRESENT);
        assert_eq!(d.set_isolation(0), Ok(Change::None));
        assert_eq!(
            d.set_allocation(0),
            Ok(Change::Released { detached: false })
        );
        assert_eq!(d.state(), DrcState::Unusable);
        assert!(d.attached(), "a removal the guest started keeps the grant");
    }

    #[test]
    fn an_ungranted_or_unplugging_lmb_cannot_be_acquired() {
        let mut d = Drc::default();
        assert_eq!(
            d.set_allocation(1),
            Err(DrcError::NotAllowed(DrcState::Unusable))
        );
        let mut d = granted();
        d.request_unplug();
        assert_eq!(
            d.set_allocation(1),
            Err(DrcError::NotAllowed(DrcState::Unusable))
        );
        assert_eq!(
            Drc::default().set_isolation(1),
            Err(DrcError::NotAllowed(DrcState::Unusable))
        );
        assert_eq!(
            Drc::default().configure_step(),
            Err(DrcError::NotConfigurable(DrcState::Unusable))
        );
        for v in [2, 3, 7] {
            assert!(granted().set_allocation(v).is_err(), "{v}");
            assert!(granted().set_isolation(v).is_err(), "{v}");
        }
    }

    fn configured() -> Drc {
        let mut d = granted();
        d.set_allocation(1).unwrap();
        d.set_isolation(1).unwrap();
        while d.configure_step().unwrap().0 != CcPiece::Complete {}
        d
    }

    #[test]
    fn an_unplug_the_platform_asked_for_detaches_and_a_refused_one_rolls_back() {
        let mut d = configured();
        d.request_unplug();
        assert_eq!(d.set_isolation(0), Ok(Change::None));
        assert_eq!(d.set_allocation(0), Ok(Change::Released { detached: true }));
        assert!(!d.attached() && !d.unplug_requested());
        assert_eq!(
            d.set_allocation(1),
            Err(DrcError::NotAllowed(DrcState::Unusable))
        );

        // The guest could not offline it: unisolate again (Linux's hint) or re-read the node.
        let mut d = configured();
        d.request_unplug();
        assert_eq!(d.set_isolation(1), Ok(Change::RolledBack));
        assert!(!d.unplug_requested() && d.state() == DrcState::Configured);
        let mut d = configured();
        d.request_unplug();
        assert_eq!(
            d.configure_step().unwrap(),
            (CcPiece::Node, Change::RolledBack)
        );
    }

    #[test]
    fn isolating_an_unconfigured_lmb_and_releasing_an_owned_one_are_refused() {
        let mut d = granted();
        d.set_allocation(1).unwrap();
        d.set_isolation(1).unwrap();
        assert_eq!(
            d.set_isolation(0),
            Err(DrcError::NotAllowed(DrcState::Unisolated))
        );
        assert_eq!(
            d.set_allocation(0),
            Err(DrcError::NotAllowed(DrcState::Unisolated))
        );
        let mut c = configured();
        assert_eq!(
            c.set_allocation(0),
            Err(DrcError::NotAllowed(DrcState::Configured))
        );
        // A configured node streams again from the start.
        assert_eq!(c.configure_step().unwrap(), (CcPiece::Node, Change::None));
    }
}
