//! OPAL return codes (skiboot `opal-api.h`): the values live here and nowhere else.

use serde::{Deserialize, Serialize};

/// The `int64_t` an OPAL call returns in r3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(i64)]
pub enum OpalStatus {
    Success = 0,
    Parameter = -1,
    Busy = -2,
    Partial = -3,
    Constrained = -4,
    Closed = -5,
    Hardware = -6,
    Unsupported = -7,
    Permission = -8,
    NoMem = -9,
    Resource = -10,
    InternalError = -11,
    BusyEvent = -12,
    HardwareFrozen = -13,
    WrongState = -14,
    AsyncCompletion = -15,
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
