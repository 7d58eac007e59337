//! OPAL call numbers (tokens, passed in r0) this firmware knows, and the MPIPL sub-codes.

use serde::{Deserialize, Serialize};

/// OPAL calls routed to this firmware. Everything else answers `OPAL_UNSUPPORTED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpalToken {
    /// `OPAL_CEC_POWER_DOWN(u64 request)`.
    CecPowerDown,
    /// `OPAL_CEC_REBOOT()`.
    CecReboot,
    /// `OPAL_CHECK_TOKEN(u64 token)`: is a call implemented?
    CheckToken,
    /// `OPAL_CEC_REBOOT2(u32 reboot_type, char *diag)`.
    CecReboot2,
    /// `OPAL_MPIPL_UPDATE(op, u64 src, u64 dest, u64 size)`.
    MpiplUpdate,
    /// `OPAL_MPIPL_REGISTER_TAG(tag, u64 value)`.
    MpiplRegisterTag,
    /// `OPAL_MPIPL_QUERY_TAG(tag, __be64 *out)`.
    MpiplQueryTag,
}

impl OpalToken {
    /// Every call routed to this firmware.
    pub const ALL: [OpalToken; 7] = [
        OpalToken::CecPowerDown,
        OpalToken::CecReboot,
        OpalToken::CheckToken,
        OpalToken::CecReboot2,
        OpalToken::MpiplUpdate,
        OpalToken::MpiplRegisterTag,
        OpalToken::MpiplQueryTag,
    ];

    /// The call number in r0.
    pub fn number(self) -> u64 {
        match self {
            OpalToken::CecPowerDown => 5,
            OpalToken::CecReboot => 6,
            OpalToken::CheckToken => 80,
            OpalToken::CecReboot2 => 116,
            OpalToken::MpiplUpdate => 173,
            OpalToken::MpiplRegisterTag => 174,
            OpalToken::MpiplQueryTag => 175,
        }
    }

    /// The call with number `n` (r0), or `None` for one this firmware does not route.
    pub fn from_number(n: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.number() == n)
    }
}

/// `OPAL_CHECK_TOKEN` answer 0: the call is not implemented. (The answers are not status
/// codes.)
pub const OPAL_TOKEN_ABSENT: u64 = 0;
/// `OPAL_CHECK_TOKEN` answer 1: the call is implemented.
pub const OPAL_TOKEN_PRESENT: u64 = 1;

/// `OPAL_MPIPL_UPDATE` operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MpiplOp {
    /// 0, `OPAL_MPIPL_ADD_RANGE(src, dest, size)`: preserve `size` bytes at `src` by copying them
    /// to `dest` on the next MPIPL.
    AddRange,
    /// 1, `OPAL_MPIPL_REMOVE_RANGE(src, dest)`: drop the kernel range with these start
    /// addresses.
    RemoveRange,
    /// 2, `OPAL_MPIPL_REMOVE_ALL`: drop every kernel range (Linux's UNREGISTER).
    RemoveAll,
    /// 3, `OPAL_MPIPL_FREE_PRESERVED_MEMORY`: the capture kernel is done with the dump (Linux's
    /// INVALIDATE); the tags can no longer be queried this boot.
    FreePreservedMemory,
}

impl MpiplOp {
    /// The operation with this number, or `None` (the call then answers `OPAL_PARAMETER`).
    pub fn from_raw(op: u32) -> Option<Self> {
        Some(match op {
            0 => MpiplOp::AddRange,
            1 => MpiplOp::RemoveRange,
            2 => MpiplOp::RemoveAll,
            3 => MpiplOp::FreePreservedMemory,
            _ => return None,
        })
    }

    /// The operation's number (0 to 3).
    pub fn raw(self) -> u32 {
        self as u32
    }
}

/// MPIPL tags (`enum opal_mpipl_tags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MpiplTag {
    /// Firmware-owned: the CPU register data metadata (`struct opal_mpipl_fadump`).
    Cpu,
    /// Firmware-owned: OPAL's own memory dump metadata.
    Opal,
    /// Kernel-owned: the address of the kernel's metadata.
    Kernel,
    /// Kernel-owned: top of the memory the capture kernel may boot in.
    BootMem,
}

impl MpiplTag {
    /// `MAX_OPAL_MPIPL_TAGS`: tags 0..4 may be queried.
    pub const COUNT: u32 = 4;

    /// The tag with this number (0 to 3), or `None`.
    pub fn from_raw(tag: u32) -> Option<Self> {
        Some(match tag {
            0 => MpiplTag::Cpu,
            1 => MpiplTag::Opal,
            2 => MpiplTag::Kernel,
            3 => MpiplTag::BootMem,
            _ => return None,
        })
    }

    /// The tag's number: 0 CPU, 1 OPAL, 2 kernel, 3 boot memory.
    pub fn raw(self) -> u32 {
        self as u32
    }
}

/// `OPAL_CEC_REBOOT2` reboot types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RebootType {
    /// 0, `OPAL_REBOOT_NORMAL`: an ordinary reboot.
    Normal,
    /// 1, `OPAL_REBOOT_PLATFORM_ERROR`: reboot because of a platform error.
    PlatformError,
    /// 2, `OPAL_REBOOT_FULL_IPL`: reboot through a full initial program load.
    FullIpl,
    /// 3, `OPAL_REBOOT_MPIPL`: memory-preserving IPL, the fadump trigger.
    Mpipl,
    /// 4, `OPAL_REBOOT_FAST`: fast reboot, without a full IPL.
    Fast,
}

impl RebootType {
    /// The reboot type with this number, or `None` (`CEC_REBOOT2` then answers
    /// `OPAL_UNSUPPORTED`).
    pub fn from_raw(t: u32) -> Option<Self> {
        Some(match t {
            0 => RebootType::Normal,
            1 => RebootType::PlatformError,
            2 => RebootType::FullIpl,
            3 => RebootType::Mpipl,
            4 => RebootType::Fast,
            _ => return None,
        })
    }

    /// The reboot type's number (0 to 4).
    pub fn raw(self) -> u32 {
        self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for t in OpalToken::ALL {
            assert_eq!(OpalToken::from_number(t.number()), Some(t));
        }
        assert_eq!(OpalToken::MpiplUpdate.number(), 173);
        assert_eq!(OpalToken::MpiplRegisterTag.number(), 174);
        assert_eq!(OpalToken::MpiplQueryTag.number(), 175);
        assert_eq!(OpalToken::CecReboot2.number(), 116);
        assert_eq!(OpalToken::from_number(174 + 2), None);
        for op in 0..4 {
            assert_eq!(MpiplOp::from_raw(op).unwrap().raw(), op);
        }
        assert_eq!(MpiplOp::from_raw(4), None);
        for tag in 0..MpiplTag::COUNT {
            assert_eq!(MpiplTag::from_raw(tag).unwrap().raw(), tag);
        }
        assert_eq!(MpiplTag::from_raw(4), None);
        assert_eq!(RebootType::from_raw(3), Some(RebootType::Mpipl));
        assert_eq!(RebootType::from_raw(5), None);
    }
}
