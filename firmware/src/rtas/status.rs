//! RTAS status codes (PAPR, "RTAS Call Return Status"): the values live here and nowhere else.

/// Status written to `rets[0]` of an RTAS call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum RtasStatus {
    Success = 0,
    /// `event-scan` / `check-exception`: no error or event found.
    NoEventFound = 1,
    HardwareError = -1,
    Busy = -2,
    ParameterError = -3,
    /// `ibm,configure-kernel-dump`: a dump is already registered (PAPR call table).
    DumpAlreadyRegistered = -9,
    /// `ibm,configure-kernel-dump`: a dump is active (PAPR call table).
    DumpActive = -10,
}

impl RtasStatus {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The cell as the guest sees it (two's complement in a big-endian u32).
    pub fn cell(self) -> u32 {
        self.code() as u32
    }
}
