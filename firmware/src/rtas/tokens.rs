//! RTAS call names and the tokens we publish for them under `/rtas`.
//!
//! Token values follow QEMU's numbering (`0x2000 + index`) so that our device tree can be diffed
//! line by line against QEMU's (see the reference run); the guest only ever learns them from the
//! device tree.

/// Every RTAS call this firmware knows by name.
///
/// The firmware implements twelve of them itself: `display-character`, `get-time-of-day`,
/// `power-off`, `system-reboot`, `query-cpu-stopped-state`, `start-cpu`, `stop-self`,
/// `check-exception`, `event-scan`, `ibm,os-term`, `os-term` and `ibm,configure-kernel-dump`.
/// Every other call is published only when the machine takes it over with
/// [`Rtas::enable_machine_call`](crate::rtas::Rtas::enable_machine_call); the argument counts
/// given below are the ones the firmware checks for its own calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RtasCall {
    /// `display-character(char)` (1 arg, 1 ret): write one character to the console. The firmware
    /// answers it with [`RtasAction::Console`](crate::rtas::RtasAction::Console).
    DisplayCharacter,
    /// `get-time-of-day` (0 args, 8 rets): the time-of-day clock as status, year, month, day, hour,
    /// minute, second, nanoseconds. The firmware asks
    /// [`Platform::time_of_day`](crate::rtas::Platform::time_of_day).
    GetTimeOfDay,
    /// `set-time-of-day`: set the time-of-day clock.
    SetTimeOfDay,
    /// `power-off(power_on_mask_hi, power_on_mask_lo)` (2 args, 1 ret): turn the partition off. The
    /// firmware ignores the masks.
    PowerOff,
    /// `system-reboot` (0 args, 1 ret): reset and reboot the partition.
    SystemReboot,
    /// `query-cpu-stopped-state(cpu)` (1 arg, 2 rets): status, then 0 when the CPU is in the RTAS
    /// stopped state or 2 when it runs.
    QueryCpuStoppedState,
    /// `start-cpu(cpu, start_addr, r3)` (3 args, 1 ret): start a stopped CPU at a real address with
    /// a value in r3.
    StartCpu,
    /// `stop-self` (0 args, 1 ret): put the calling CPU into the RTAS stopped state; it does not
    /// return.
    StopSelf,
    /// `ibm,get-system-parameter`: copy a system parameter (e.g. the shared-processor LPAR
    /// characteristics) into a guest buffer.
    IbmGetSystemParameter,
    /// `ibm,set-system-parameter`: change a system parameter.
    IbmSetSystemParameter,
    /// `ibm,set-xive`: set the server and priority of an XICS interrupt source.
    IbmSetXive,
    /// `ibm,get-xive`: read the server and priority of an XICS interrupt source.
    IbmGetXive,
    /// `ibm,int-off`: mask an XICS interrupt source.
    IbmIntOff,
    /// `ibm,int-on`: unmask an XICS interrupt source.
    IbmIntOn,
    /// `check-exception` (6 or 7 args, 1 ret): fetch the error log behind an exception:
    /// the oldest pending log of the mask's classes (see [`crate::rtas::events`]).
    CheckException,
    /// `event-scan` (4 args, 1 ret): poll for pending event and error logs of the
    /// classes without an event-source interrupt (see [`crate::rtas::events`]).
    EventScan,
    /// `ibm,set-tce-bypass`: turn TCE translation bypass on or off for a DMA window.
    IbmSetTceBypass,
    /// `quiesce`: the OS asks the firmware to stop its own use of I/O before the OS takes over.
    Quiesce,
    /// `nvram-fetch`: read bytes of NVRAM into a guest buffer.
    NvramFetch,
    /// `nvram-store`: write bytes of a guest buffer into NVRAM.
    NvramStore,
    /// `read-pci-config`: read PCI configuration space of the default host bridge.
    ReadPciConfig,
    /// `write-pci-config`: write PCI configuration space of the default host bridge.
    WritePciConfig,
    /// `ibm,read-pci-config`: read PCI configuration space of the host bridge a BUID names.
    IbmReadPciConfig,
    /// `ibm,write-pci-config`: write PCI configuration space of the host bridge a BUID names.
    IbmWritePciConfig,
    /// `ibm,query-interrupt-source-number`: the interrupt source number behind one MSI of a PCI
    /// function.
    IbmQueryInterruptSourceNumber,
    /// `ibm,change-msi`: set the number of MSI or MSI-X interrupts of a PCI function.
    IbmChangeMsi,
    /// `set-indicator`: set an indicator (e.g. the isolation or allocation state of a
    /// dynamic-reconfiguration connector).
    SetIndicator,
    /// `set-power-level`: set the power level of a power domain.
    SetPowerLevel,
    /// `get-power-level`: read the power level of a power domain.
    GetPowerLevel,
    /// `get-sensor-state`: read a sensor (e.g. whether a dynamic-reconfiguration connector is
    /// occupied).
    GetSensorState,
    /// `ibm,configure-connector`: hand out, piece by piece, the device-tree nodes behind a newly
    /// added dynamic-reconfiguration connector.
    IbmConfigureConnector,
    /// `ibm,os-term(message)` (1 arg, 1 ret): the OS has terminated (panic); the argument is the
    /// real address of a NUL-terminated message. With a dump registered this is the fadump trigger
    /// and does not return ([`RtasAction::FadumpCrash`](crate::rtas::RtasAction::FadumpCrash));
    /// otherwise it returns 0, as `ibm,extended-os-term` promises.
    IbmOsTerm,
    /// `ibm,set-eeh-option`: enable EEH for a PE, or re-enable its MMIO or DMA after a freeze.
    IbmSetEehOption,
    /// `ibm,get-config-addr-info2`: the PE configuration address, or the sharing mode, of a PCI
    /// function.
    IbmGetConfigAddrInfo2,
    /// `ibm,read-slot-reset-state2`: the EEH state (reset, frozen, available) of a PE.
    IbmReadSlotResetState2,
    /// `ibm,set-slot-reset`: assert or deassert the reset of a PE.
    IbmSetSlotReset,
    /// `ibm,configure-pe`: reconfigure the bridges and devices of a PE after a reset.
    IbmConfigurePe,
    /// `ibm,slot-error-detail`: the error log of a frozen PE.
    IbmSlotErrorDetail,
    /// `ibm,query-pe-dma-window`: how many dynamic DMA windows a PE can still create, and how
    /// large.
    IbmQueryPeDmaWindow,
    /// `ibm,create-pe-dma-window`: create a dynamic DMA window for a PE.
    IbmCreatePeDmaWindow,
    /// `ibm,remove-pe-dma-window`: remove a dynamic DMA window.
    IbmRemovePeDmaWindow,
    /// `ibm,reset-pe-dma-window`: remove the dynamic DMA windows of a PE and restore its default
    /// window.
    IbmResetPeDmaWindow,
    /// `ibm,suspend-me`: suspend the partition (for migration or hibernation).
    IbmSuspendMe,
    /// `ibm,nmi-register`: register the OS's system-reset and machine-check handlers (FWNMI).
    IbmNmiRegister,
    /// `ibm,nmi-interlock`: release the FWNMI interlock once the OS has handled a machine check.
    IbmNmiInterlock,
    /// `ibm,configure-kernel-dump(command, buffer, length)` (3 args, 1 ret): register, unregister
    /// or invalidate a firmware-assisted dump; see
    /// [`Fadump::configure_kernel_dump`](crate::fadump::Fadump::configure_kernel_dump).
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

    /// The token published for this call under `/rtas`: [`RTAS_TOKEN_BASE`] plus the call's
    /// index in [`RtasCall::ALL`] (0x2000 to 0x202e).
    pub fn token(self) -> u32 {
        let idx = Self::ALL
            .iter()
            .position(|c| *c == self)
            .expect("every call is in ALL");
        RTAS_TOKEN_BASE + idx as u32
    }

    /// The call `token` designates, or `None` outside 0x2000 to 0x202e. This says nothing about
    /// whether the call is published: [`Rtas::dispatch`](crate::rtas::Rtas::dispatch) checks
    /// that.
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
