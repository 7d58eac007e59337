//! OPAL return codes (skiboot `opal-api.h`): the values live here and nowhere else.

use serde::{Deserialize, Serialize};

/// The `int64_t` an OPAL call returns in r3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(i64)]
pub enum OpalStatus {
    /// 0, `OPAL_SUCCESS`.
    Success = 0,
    /// -1, `OPAL_PARAMETER`: an argument is invalid. Every MPIPL refusal but a full table.
    Parameter = -1,
    /// -2, `OPAL_BUSY`: try again later.
    Busy = -2,
    /// -3, `OPAL_PARTIAL`: only part of the request was done.
    Partial = -3,
    /// -4, `OPAL_CONSTRAINED`: the request was adjusted to what is possible.
    Constrained = -4,
    /// -5, `OPAL_CLOSED`: the resource (e.g. a console) is closed.
    Closed = -5,
    /// -6, `OPAL_HARDWARE`: a hardware problem, or no backend for the function. Linux disables
    /// powernv fadump when `MPIPL_UPDATE` answers it.
    Hardware = -6,
    /// -7, `OPAL_UNSUPPORTED`: the call, or an argument value such as a reboot type, is not
    /// supported. Every call number this firmware does not route answers it.
    Unsupported = -7,
    /// -8, `OPAL_PERMISSION`: the caller may not do this.
    Permission = -8,
    /// -9, `OPAL_NO_MEM`: out of memory.
    NoMem = -9,
    /// -10, `OPAL_RESOURCE`: out of a resource. `ADD_RANGE` answers it when the range table is
    /// full; Linux keeps the ranges registered so far.
    Resource = -10,
    /// -11, `OPAL_INTERNAL_ERROR`: a firmware-internal failure.
    InternalError = -11,
    /// -12, `OPAL_BUSY_EVENT`: busy; poll OPAL events, then try again.
    BusyEvent = -12,
    /// -13, `OPAL_HARDWARE_FROZEN`: the hardware is frozen (e.g. an EEH freeze).
    HardwareFrozen = -13,
    /// -14, `OPAL_WRONG_STATE`: the target is in the wrong state for the request.
    WrongState = -14,
    /// -15, `OPAL_ASYNC_COMPLETION`: accepted; completion is reported later by an asynchronous
    /// message.
    AsyncCompletion = -15,
    /// -16, `OPAL_EMPTY`: there is nothing to return.
    Empty = -16,
}

impl OpalStatus {
    /// Every code, for lookups from a raw value.
    pub const ALL: [OpalStatus; 17] = [
        OpalStatus::Success,
        OpalStatus::Parameter,
        OpalStatus::Busy,
        OpalStatus::Partial,
        OpalStatus::Constrained,
        OpalStatus::Closed,
        OpalStatus::Hardware,
        OpalStatus::Unsupported,
        OpalStatus::Permission,
        OpalStatus::NoMem,
        OpalStatus::Resource,
        OpalStatus::InternalError,
        OpalStatus::BusyEvent,
        OpalStatus::HardwareFrozen,
        OpalStatus::WrongState,
        OpalStatus::AsyncCompletion,
        OpalStatus::Empty,
    ];

    /// The signed value skiboot defines (e.g. -1 for [`OpalStatus::Parameter`]).
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The status with this code, if it is one.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// r3 as the guest sees it (two's complement).
    pub fn r3(self) -> u64 {
        self.code() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_opal_api() {
        assert_eq!(OpalStatus::Success.code(), 0);
        assert_eq!(OpalStatus::Parameter.code(), -1);
        assert_eq!(OpalStatus::Hardware.code(), -6);
        assert_eq!(OpalStatus::Unsupported.code(), -7);
        assert_eq!(OpalStatus::Resource.code(), -10);
        assert_eq!(OpalStatus::Empty.code(), -16);
        assert_eq!(OpalStatus::Parameter.r3(), u64::MAX);
        for s in OpalStatus::ALL {
            assert_eq!(OpalStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(OpalStatus::from_code(-17), None);
        assert_eq!(OpalStatus::from_code(1), None);
    }
}
