//! RTAS call names and the tokens we publish for them under `/rtas`.
//!
//! Token values follow QEMU's numbering (`0x2000 + index`) so that our device tree can be diffed
//! line by line against QEMU's (see the reference run); the guest only ever learns them from the
//! device tree.

/// Every RTAS call this firmware knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RtasCall {
    DisplayCharacter,
    GetTimeOfDay,
    SetTimeOfDay,
    PowerOff,
    SystemReboot,
    QueryCpuStoppedState,
    StartCpu,
    StopSelf,
    IbmGetSystemParameter,
    IbmSetSystemParameter,
    IbmSetXive,
    IbmGetXive,
    IbmIntOff,
    IbmIntOn,
    CheckException,
    EventScan,
    IbmSetTceBypass,
    Quiesce,
    NvramFetch,
    NvramStore,
    ReadPciConfig,
    WritePciConfig,
    IbmReadPciConfig,
    IbmWritePciConfig,
    IbmQueryInterruptSourceNumber,
    IbmChangeMsi,
    SetIndicator,
    SetPowerLevel,
    GetPowerLevel,
    GetSensorState,
    IbmConfigureConnector,
    IbmOsTerm,
    IbmSetEehOption,
    IbmGetConfigAddrInfo2,
    IbmReadSlotResetState2,
    IbmSetSlotReset,
    IbmConfigurePe,
    IbmSlotErrorDetail,
    IbmQueryPeDmaWindow,
    IbmCreatePeDmaWindow,
    IbmRemovePeDmaWindow,
    IbmResetPeDmaWindow,
    IbmSuspendMe,
    IbmNmiRegister,
    IbmNmiInterlock,
    IbmConfigureKernelDump,
    /// Older name of `ibm,os-term` some OSes use.
    OsTerm,
}

/// The first token; token = base + index in [`RtasCall::ALL`].
pub const RTAS_TOKEN_BASE: u32 = 0x2000;

impl RtasCall {
    /// In token order.
    pub const ALL: [RtasCall; 47] = [
        RtasCall::DisplayCharacter,
        RtasCall::GetTimeOfDay,
        RtasCall::SetTimeOfDay,
        RtasCall::PowerOff,
        RtasCall::SystemReboot,
        RtasCall::QueryCpuStoppedState,
        RtasCall::StartCpu,
        RtasCall::StopSelf,
        RtasCall::IbmGetSystemParameter,
        RtasCall::IbmSetSystemParameter,
        RtasCall::IbmSetXive,
        RtasCall::IbmGetXive,
        RtasCall::IbmIntOff,
        RtasCall::IbmIntOn,
        RtasCall::CheckException,
        RtasCall::EventScan,
        RtasCall::IbmSetTceBypass,
        RtasCall::Quiesce,
        RtasCall::NvramFetch,
        RtasCall::NvramStore,
        RtasCall::ReadPciConfig,
        RtasCall::WritePciConfig,
        RtasCall::IbmReadPciConfig,
        RtasCall::IbmWritePciConfig,
        RtasCall::IbmQueryInterruptSourceNumber,
        RtasCall::IbmChangeMsi,
        RtasCall::SetIndicator,
        RtasCall::SetPowerLevel,
        RtasCall::GetPowerLevel,
        RtasCall::GetSensorState,
        RtasCall::IbmConfigureConnector,
        RtasCall::IbmOsTerm,
        RtasCall::IbmSetEehOption,
        RtasCall::IbmGetConfigAddrInfo2,
        RtasCall::IbmReadSlotResetState2,
        RtasCall::IbmSetSlotReset,
        RtasCall::IbmConfigurePe,
        RtasCall::IbmSlotErrorDetail,
        RtasCall::IbmQueryPeDmaWindow,
        RtasCall::IbmCreatePeDmaWindow,
        RtasCall::IbmRemovePeDmaWindow,
        RtasCall::IbmResetPeDmaWindow,
        RtasCall::IbmSuspendMe,
        RtasCall::IbmNmiRegister,
        RtasCall::IbmNmiInterlock,
        RtasCall::IbmConfigureKernelDump,
        RtasCall::OsTerm,
    ];

    pub fn token(self) -> u32 {
        let idx = Self::ALL
            .iter()
            .position(|c| *c == self)
            .expect("every call is in ALL");
        RTAS_TOKEN_BASE + idx as u32
    }

    pub fn from_token(token: u32) -> Option<Self> {
        let idx = token.checked_sub(RTAS_TOKEN_BASE)? as usize;
        Self::ALL.get(idx).copied()
    }

    /// The property name under `/rtas` that carries the token.
    pub fn name(self) -> &'static str {
        match self {
            RtasCall::DisplayCharacter => "display-character",
            RtasCall::GetTimeOfDay => "get-time-of-day",
            RtasCall::SetTimeOfDay => "set-time-of-day",
            RtasCall::PowerOff => "power-off",
            RtasCall::SystemReboot => "system-reboot",
            RtasCall::QueryCpuStoppedState => "query-cpu-stopped-state",
            RtasCall::StartCpu => "start-cpu",
            RtasCall::StopSelf => "stop-self",
            RtasCall::IbmGetSystemParameter => "ibm,get-system-parameter",
            RtasCall::IbmSetSystemParameter => "ibm,set-system-parameter",
            RtasCall::IbmSetXive => "ibm,set-xive",
            RtasCall::IbmGetXive => "ibm,get-xive",
            RtasCall::IbmIntOff => "ibm,int-off",
            RtasCall::IbmIntOn => "ibm,int-on",
            RtasCall::CheckException => "check-exception",
            RtasCall::EventScan => "event-scan",
            RtasCall::IbmSetTceBypass => "ibm,set-tce-bypass",
            RtasCall::Quiesce => "quiesce",
            RtasCall::NvramFetch => "nvram-fetch",
            RtasCall::NvramStore => "nvram-store",
            RtasCall::ReadPciConfig => "read-pci-config",
            RtasCall::WritePciConfig => "write-pci-config",
            RtasCall::IbmReadPciConfig => "ibm,read-pci-config",
            RtasCall::IbmWritePciConfig => "ibm,write-pci-config",
            RtasCall::IbmQueryInterruptSourceNumber => "ibm,query-interrupt-source-number",
            RtasCall::IbmChangeMsi => "ibm,change-msi",
            RtasCall::SetIndicator => "set-indicator",
            RtasCall::SetPowerLevel => "set-power-level",
            RtasCall::GetPowerLevel => "get-power-level",
            RtasCall::GetSensorState => "get-sensor-state",
            RtasCall::IbmConfigureConnector => "ibm,configure-connector",
            RtasCall::IbmOsTerm => "ibm,os-term",
            RtasCall::IbmSetEehOption => "ibm,set-eeh-option",
            RtasCall::IbmGetConfigAddrInfo2 => "ibm,get-config-addr-info2",
            RtasCall::IbmReadSlotResetState2 => "ibm,read-slot-reset-state2",
            RtasCall::IbmSetSlotReset => "ibm,set-slot-reset",
            RtasCall::IbmConfigurePe => "ibm,configure-pe",
            RtasCall::IbmSlotErrorDetail => "ibm,slot-error-detail",
            RtasCall::IbmQueryPeDmaWindow => "ibm,query-pe-dma-window",
            RtasCall::IbmCreatePeDmaWindow => "ibm,create-pe-dma-window",
            RtasCall::IbmRemovePeDmaWindow => "ibm,remove-pe-dma-window",
            RtasCall::IbmResetPeDmaWindow => "ibm,reset-pe-dma-window",
            RtasCall::IbmSuspendMe => "ibm,suspend-me",
            RtasCall::IbmNmiRegister => "ibm,nmi-register",
            RtasCall::IbmNmiInterlock => "ibm,nmi-interlock",
            RtasCall::IbmConfigureKernelDump => "ibm,configure-kernel-dump",
            RtasCall::OsTerm => "os-term",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_the_reference_device_tree() {
        // Values from QEMU 11.1's /rtas in the reference run.
        assert_eq!(RtasCall::DisplayCharacter.token(), 0x2000);
        assert_eq!(RtasCall::StartCpu.token(), 0x2006);
        assert_eq!(RtasCall::EventScan.token(), 0x200f);
        assert_eq!(RtasCall::IbmWritePciConfig.token(), 0x2017);
        assert_eq!(RtasCall::IbmOsTerm.token(), 0x201f);
        assert_eq!(RtasCall::IbmNmiInterlock.token(), 0x202c);
        assert_eq!(RtasCall::IbmConfigureKernelDump.token(), 0x202d);
    }

    #[test]
    fn tokens_round_trip_and_reject_strangers() {
        for c in RtasCall::ALL {
            assert_eq!(RtasCall::from_token(c.token()), Some(c));
        }
        assert_eq!(RtasCall::from_token(0), None);
        assert_eq!(RtasCall::from_token(0x1fff), None);
        assert_eq!(
            RtasCall::from_token(0x2000 + RtasCall::ALL.len() as u32),
            None
        );
        assert_eq!(RtasCall::from_token(u32::MAX), None);
    }
}
