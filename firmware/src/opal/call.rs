//! The OPAL call layer: a call number and up to eight argument registers in, an `int64_t` in
//! r3 and possibly an action for the machine out.

use log::{info, warn};
use serde::{Deserialize, Serialize};
use vm_memory::GuestMemoryBackend;

use crate::memory;
use crate::opal::addr;
use crate::opal::engine::MpiplEngine;
use crate::opal::status::OpalStatus;
use crate::opal::token::{OpalToken, RebootType, OPAL_TOKEN_ABSENT, OPAL_TOKEN_PRESENT};

/// Longest `CEC_REBOOT2` diagnostic message we read (it is only logged).
pub const MAX_DIAG_LEN: usize = 256;

/// One OPAL call as the vCPU made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpalCall {
    /// r0.
    pub token: u64,
    /// r3..r10.
    pub args: [u64; 8],
    /// PIR of the calling thread (skiboot records it as the crashing PIR on an MPIPL).
    pub caller_pir: u32,
}

impl OpalCall {
    /// A call with number `token` (r0), the argument registers r3 upward in `args` (missing ones
    /// are 0, any past the eighth are dropped) and the caller's PIR.
    pub fn new(token: u64, args: &[u64], caller_pir: u32) -> Self {
        let mut a = [0u64; 8];
        for (d, s) in a.iter_mut().zip(args) {
            *d = *s;
        }
        Self {
            token,
            args: a,
            caller_pir,
        }
    }

    /// A 32-bit C parameter: the low word of its register.
    fn arg32(&self, i: usize) -> u32 {
        self.args[i] as u32
    }
}

/// What the machine must do after the call; the firmware never acts itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpalAction {
    /// `OPAL_CEC_POWER_DOWN`: power the machine off (the request argument is ignored).
    PowerOff,
    /// A reboot that does not preserve memory; call [`MpiplEngine::normal_boot`].
    Reboot,
    /// Stop every thread without resuming the caller, call [`MpiplEngine::preserve`], then
    /// reset and boot with [`MpiplEngine::dump_node_properties`].
    Mpipl {
        /// PIR of the thread that called `CEC_REBOOT2(MPIPL)`: pass it to
        /// [`MpiplEngine::preserve`].
        crashing_pir: u32,
    },
}

/// The result of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpalReturn {
    /// r3.
    pub r3: i64,
    /// What the machine must do next, if anything. With [`OpalAction::Mpipl`] the caller is not
    /// resumed, so r3 is never seen.
    pub action: Option<OpalAction>,
}

impl OpalReturn {
    /// A return of `s` in r3 and no action.
    pub fn status(s: OpalStatus) -> Self {
        Self {
            r3: s.code(),
            action: None,
        }
    }

    fn with_action(action: OpalAction) -> Self {
        Self {
            r3: OpalStatus::Success.code(),
            action: Some(action),
        }
    }

    /// r3 read as a status code (not meaningful for `OPAL_CHECK_TOKEN`).
    pub fn status_code(&self) -> Option<OpalStatus> {
        OpalStatus::from_code(self.r3)
    }
}

/// The OPAL firmware of a powernv machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opal {
    /// The engine behind the MPIPL calls. The machine also drives it directly:
    /// [`MpiplEngine::preserve`] after [`OpalAction::Mpipl`], [`MpiplEngine::normal_boot`] after
    /// [`OpalAction::Reboot`], and the device-tree properties on every boot.
    pub mpipl: MpiplEngine,
}

impl Opal {
    /// The OPAL firmware around an MPIPL engine.
    pub fn new(mpipl: MpiplEngine) -> Self {
        Self { mpipl }
    }

    /// Handles one OPAL call.
    ///
    /// A call number this firmware does not route answers `OPAL_UNSUPPORTED` (-7) with no
    /// action. `OPAL_CHECK_TOKEN` answers 1 (`OPAL_TOKEN_PRESENT`) for the numbers in
    /// [`OpalToken::ALL`] and 0 otherwise. `OPAL_CEC_REBOOT2` answers `OPAL_UNSUPPORTED` for an
    /// unknown reboot type, [`OpalAction::Mpipl`] for type 3 and [`OpalAction::Reboot`] for the
    /// others (its message is only logged, and a bad pointer does not stop the reboot). The MPIPL
    /// calls answer 0 or the [`MpiplError::status`](crate::opal::MpiplError::status) of their
    /// refusal. 32-bit C parameters (op, tag, reboot type) are the low word of their register.
    pub fn call<M: GuestMemoryBackend>(&mut self, mem: &M, call: &OpalCall) -> OpalReturn {
        let Some(token) = OpalToken::from_number(call.token) else {
            warn!(
                "OPAL: unsupported call {} from PIR {:#x}",
                call.token, call.caller_pir
            );
            return OpalReturn::status(OpalStatus::Unsupported);
        };
        let a = &call.args;
        let mpipl = |r: Result<(), crate::opal::MpiplError>| match r {
            Ok(()) => OpalReturn::status(OpalStatus::Success),
            Err(e) => {
                warn!("OPAL {token:?}: {e}");
                OpalReturn::status(e.status())
            }
        };
        match token {
            OpalToken::CecPowerDown => OpalReturn::with_action(OpalAction::PowerOff),
            OpalToken::CecReboot => OpalReturn::with_action(OpalAction::Reboot),
            OpalToken::CheckToken => OpalReturn {
                r3: if OpalToken::from_number(a[0]).is_some() {
                    OPAL_TOKEN_PRESENT
                } else {
                    OPAL_TOKEN_ABSENT
                } as i64,
                action: None,
            },
            OpalToken::CecReboot2 => self.cec_reboot2(mem, call),
            OpalToken::MpiplUpdate => {
                mpipl(self.mpipl.update(mem, call.arg32(0), a[1], a[2], a[3]))
            }
            OpalToken::MpiplRegisterTag => mpipl(self.mpipl.register_tag(mem, call.arg32(0), a[1])),
            OpalToken::MpiplQueryTag => {
                mpipl(self.mpipl.query_tag(mem, call.arg32(0), a[1]).map(|_| ()))
            }
        }
    }

    fn cec_reboot2<M: GuestMemoryBackend>(&mut self, mem: &M, call: &OpalCall) -> OpalReturn {
        let raw = call.arg32(0);
        let Some(kind) = RebootType::from_raw(raw) else {
            warn!("OPAL: CEC_REBOOT2 with unsupported reboot type {raw}");
            return OpalReturn::status(OpalStatus::Unsupported);
        };
        // The message is informational: a bad pointer does not stop the reboot.
        let diag = match call.args[1] {
            0 => String::new(),
            p => addr::real_addr(p, memory::top_of_ram(mem))
                .and_then(|real| memory::read_c_string(mem, real, MAX_DIAG_LEN).ok())
                .unwrap_or_else(|| format!("<unreadable message at {p:#x}>")),
        };
        info!(
            "OPAL: CEC_REBOOT2 {kind:?} from PIR {:#x}: {diag}",
            call.caller_pir
        );
        match kind {
            RebootType::Mpipl => OpalReturn::with_action(OpalAction::Mpipl {
                crashing_pir: call.caller_pir,
            }),
            _ => OpalReturn::with_action(OpalAction::Reboot),
        }
    }
}
