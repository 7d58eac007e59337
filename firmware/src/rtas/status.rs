//! RTAS status codes (PAPR, "RTAS Call Return Status"): the values live here and nowhere else.

/// Status written to `rets[0]` of an RTAS call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum RtasStatus {
    /// 0: the call succeeded.
    Success = 0,
    /// 1, `event-scan` / `check-exception`: no error or event found.
    NoEventFound = 1,
    /// -1: hardware error. Also what `start-cpu` answers for a vCPU that is already running,
    /// and what `ibm,configure-kernel-dump` answers when the guest's buffer cannot be read.
    HardwareError = -1,
    /// -2: busy, call again (Linux retries, waiting per `rtas_busy_delay()`). This firmware
    /// never answers it; it is here for machine calls.
    Busy = -2,
    /// -3: parameter error: unknown or unpublished token, wrong `nargs`/`nret`, an argument out
    /// of range, or (`ibm,configure-kernel-dump`) an invalid registration or command.
    ParameterError = -3,
    /// `ibm,configure-kernel-dump`: a dump is already registered (PAPR call table).
    DumpAlreadyRegistered = -9,
    /// `ibm,configure-kernel-dump`: a dump is active (PAPR call table).
    DumpActive = -10,
}

impl RtasStatus {
    /// The signed value PAPR defines (e.g. -3 for [`RtasStatus::ParameterError`]).
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The cell as the guest sees it (two's complement in a big-endian u32).
    pub fn cell(self) -> u32 {
        self.code() as u32
    }
}

impl From<&crate::fadump::FadumpRefusal> for RtasStatus {
    /// The PAPR status of a refused `ibm,configure-kernel-dump`: -9 already registered, -10 a
    /// dump is active, -1 when we could not read the guest's buffer (QEMU's choice for an
    /// access failure), -3 for every other parameter error.
    fn from(refusal: &crate::fadump::FadumpRefusal) -> Self {
        use crate::fadump::validate::RegistrationError;
        use crate::fadump::FadumpRefusal;
        match refusal {
            FadumpRefusal::AlreadyRegistered => RtasStatus::DumpAlreadyRegistered,
            FadumpRefusal::DumpActive => RtasStatus::DumpActive,
            FadumpRefusal::Invalid(RegistrationError::BufferUnreadable(_)) => {
                RtasStatus::HardwareError
            }
            FadumpRefusal::NoDumpActive
            | FadumpRefusal::UnknownCommand(_)
            | FadumpRefusal::Invalid(_) => RtasStatus::ParameterError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fadump::validate::RegistrationError;
    use crate::fadump::FadumpRefusal;

    #[test]
    fn each_refusal_has_its_papr_status() {
        let cases = [
            (FadumpRefusal::AlreadyRegistered, -9),
            (FadumpRefusal::DumpActive, -10),
            (FadumpRefusal::NoDumpActive, -3),
            (FadumpRefusal::UnknownCommand(7), -3),
            (FadumpRefusal::Invalid(RegistrationError::NullBuffer), -3),
            (
                FadumpRefusal::Invalid(RegistrationError::FormatVersion(2)),
                -3,
            ),
        ];
        for (refusal, code) in cases {
            assert_eq!(RtasStatus::from(&refusal).code(), code, "{refusal}");
        }
    }
}
