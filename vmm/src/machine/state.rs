//! The machine's lifecycle as an explicit state with its valid transitions (cloud-hypervisor's
//! `VmState::valid_transition`, for our lifecycle).
//!
//! ```text
//!   Created ──boot──▶ Running ──os-term with a dump──▶ Dumping ──dump written──▶ Resetting
//!                     ▲  │  ▲                            │                          │
//!                     │  │  └──── dump refused (resume) ─┘                          │
//!                     │  └──reboot──▶ Resetting ──boot───────────────────────────────┘
//!                     └───────────────────────────────────────────────(boot)───────┘
//!   Running ──power-off / signal──▶ Off          any ──fatal error──▶ Failed
//! ```

use std::fmt;

/// Where the machine is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineState {
    /// Built (memory, vCPU threads, devices), not booted.
    Created,
    /// A kernel runs.
    Running,
    /// Every vCPU is being stopped and the fadump firmware writes the dump.
    Dumping,
    /// vCPUs and devices are reset; the next boot (a reboot's, or the capture kernel's)
    /// follows.
    Resetting,
    /// Powered off or ended by a signal: the run is over.
    Off,
    /// A fatal error ended the run.
    Failed,
}

/// A transition the lifecycle does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("machine state {from} cannot go to {to}")]
pub struct InvalidTransition {
    /// The state the machine was in.
    pub from: MachineState,
    /// The state asked for.
    pub to: MachineState,
}

impl MachineState {
    /// Whether `self → to` is a transition of the lifecycle.
    pub fn can_go_to(self, to: MachineState) -> bool {
        use MachineState::*;
        match (self, to) {
            (Off | Failed, _) => false,
            (_, Failed) => true,
            (Created, Running | Off) => true,
            (Running, Dumping | Resetting | Off) => true,
            (Dumping, Resetting | Running) => true,
            (Resetting, Running) => true,
            _ => false,
        }
    }

    /// `to`, if the lifecycle allows it from here.
    pub fn go_to(self, to: MachineState) -> Result<MachineState, InvalidTransition> {
        if self.can_go_to(to) {
            Ok(to)
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(self, MachineState::Off | MachineState::Failed)
    }

    /// Lower-case name, as the API and the logs show it.
    pub fn name(self) -> &'static str {
        match self {
            MachineState::Created => "created",
            MachineState::Running => "running",
            MachineState::Dumping => "dumping",
            MachineState::Resetting => "resetting",
            MachineState::Off => "off",
            MachineState::Failed => "failed",
        }
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::MachineState::*;
    use super::*;

    const ALL: [MachineState; 6] = [Created, Running, Dumping, Resetting, Off, Failed];

    #[test]
    fn the_lifecycle_has_exactly_these_transitions() {
        let valid = [
            (Created, Running),
            (Created, Off),
            (Created, Failed),
            (Running, Dumping),
            (Running, Resetting),
            (Running, Off),
            (Running, Failed),
            (Dumping, Resetting),
            (Dumping, Running),
            (Dumping, Failed),
            (Resetting, Running),
            (Resetting, Failed),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.can_go_to(to),
                    valid.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn a_crash_and_a_reboot_walk_the_lifecycle_and_the_end_is_final() {
        let mut s = Created;
        for to in [
            Running, Dumping, Resetting, Running, Resetting, Running, Off,
        ] {
            s = s.go_to(to).unwrap();
        }
        assert!(s.is_final());
        assert_eq!(
            s.go_to(Running),
            Err(InvalidTransition {
                from: Off,
                to: Running
            })
        );
        // A dump that cannot be taken goes back to running; a dump cannot start mid-reset.
        assert_eq!(Dumping.go_to(Running), Ok(Running));
        assert!(Resetting.go_to(Dumping).is_err());
        assert_eq!(
            Resetting.go_to(Dumping).unwrap_err().to_string(),
            "machine state resetting cannot go to dumping"
        );
    }
}
