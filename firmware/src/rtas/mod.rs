//! The RTAS call layer: read the guest's argument block, dispatch by token, write the status
//! back, and tell the machine what to do.
//!
//! The guest enters RTAS through a small stub that issues `H_RTAS` (hcall 0xf000) with the real
//! address of its argument block; the VMM hands that address to [`Rtas::dispatch`]. Calls that
//! need the machine to act (start a CPU, reboot, perform a dump) come back as an [`RtasAction`];
//! the firmware itself never touches vCPUs or devices.

pub mod args;
pub mod dlpar;
pub mod events;
pub mod status;
pub mod tokens;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use log::{debug, info, warn};
use vm_memory::GuestMemoryBackend;

pub use crate::dlpar::event::HotplugAction;
pub use args::{ArgsError, RtasArgs};
pub use events::{EventClass, EventQueue};
pub use status::RtasStatus;
pub use tokens::RtasCall;

use crate::dlpar::Dlpar;
use crate::fadump::{Fadump, FadumpConfig};
use crate::properties::{PropValue, Property};
use crate::range::GuestRange;
use dlpar::DLPAR_CALLS;

/// The longest `ibm,os-term` message we read (Linux formats it into a 2048-byte buffer).
pub const OS_TERM_MESSAGE_MAX: usize = 2048;

/// UTC wall-clock time as `get-time-of-day` returns it.
///
/// The fields go, in this order, into `rets[1..8]` of the call (after the status in `rets[0]`),
/// one big-endian cell each, exactly as the platform supplies them: the firmware does not check
/// the ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeOfDay {
    /// The full year, e.g. 2026 (`rets[1]`).
    pub year: u32,
    /// Month of the year, 1 to 12 (`rets[2]`).
    pub month: u32,
    /// Day of the month, 1 to 31 (`rets[3]`).
    pub day: u32,
    /// Hour, 0 to 23 (`rets[4]`).
    pub hour: u32,
    /// Minute, 0 to 59 (`rets[5]`).
    pub minute: u32,
    /// Second, 0 to 59 (`rets[6]`).
    pub second: u32,
    /// Nanoseconds into the second, 0 to 999 999 999 (`rets[7]`).
    pub nanosecond: u32,
}

/// Run state of a vCPU as RTAS reports it (`query-cpu-stopped-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuRunState {
    /// In the RTAS stopped state: never started, or called `stop-self`. `query-cpu-stopped-state`
    /// answers 0 and `start-cpu` may start it.
    Stopped,
    /// Running: `query-cpu-stopped-state` answers 2, and `start-cpu` refuses it with
    /// [`RtasStatus::HardwareError`].
    Running,
}

/// What the firmware needs to ask the machine.
pub trait Platform {
    /// The current UTC time, for `get-time-of-day`.
    fn time_of_day(&self) -> TimeOfDay;
    /// The run state of the vCPU whose id the guest passed to `query-cpu-stopped-state` or
    /// `start-cpu` (Linux passes the hardware thread id, i.e. the interrupt-server number);
    /// `None` when no vCPU has this id (the call then fails with
    /// [`RtasStatus::ParameterError`]).
    fn cpu_run_state(&self, cpu: u32) -> Option<CpuRunState>;
    /// Memory DLPAR: the guest acquired the LMB at `range` (`set-indicator` 9003 = 1); map it
    /// into the partition before the call returns. False fails the call with
    /// [`RtasStatus::HardwareError`] and leaves the LMB unacquired. The default maps nothing.
    fn map_memory(&self, range: GuestRange) -> bool {
        let _ = range;
        true
    }
    /// Memory DLPAR: the guest released the LMB at `range` (`set-indicator` 9003 = 0); its
    /// memory may be unmapped and discarded.
    fn unmap_memory(&self, range: GuestRange) {
        let _ = range;
    }
}

/// What the machine must do after a call. The status (if any) is already written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtasAction {
    /// Nothing: resume the caller.
    None,
    /// `display-character`: print this byte on the console.
    Console(u8),
    /// `start-cpu`: start the stopped vCPU `cpu` at real address `entry` with r3 = `r3`.
    /// Status 0 is already written; the platform said the vCPU was stopped.
    StartCpu {
        /// The vCPU id from `args[0]`, as [`Platform::cpu_run_state`] knows it.
        cpu: u32,
        /// Real address to start at: `args[1]`, zero-extended from 32 bits.
        entry: u64,
        /// Value for the started vCPU's r3: `args[2]`, zero-extended from 32 bits.
        r3: u64,
    },
    /// `stop-self`: put the calling vCPU in the RTAS stopped state; the call does not return.
    StopSelf,
    /// `system-reboot`: reset devices and vCPUs and boot again (RAM kept).
    SystemReboot,
    /// `power-off`.
    PowerOff,
    /// `ibm,os-term` with no dump to take: status 0 is written. The OS has terminated; the
    /// platform decides what follows (our VMM reboots the partition, keeping an active dump).
    OsTerm {
        /// The OS's message: at most [`OS_TERM_MESSAGE_MAX`] bytes of the NUL-terminated string
        /// at `args[0]` (lossy UTF-8); empty when the pointer is 0, `<unreadable>` when it does
        /// not point into RAM.
        message: String,
    },
    /// `ibm,os-term` while a dump is registered: stop every vCPU, call
    /// [`Fadump::perform_dump`], reset, and boot again with `ibm,kernel-dump`. No status was
    /// written (the call does not return); if the machine cannot preserve the dump it writes
    /// [`RtasStatus::HardwareError`] through `args` and resumes the caller.
    FadumpCrash {
        /// The OS's message, read as for [`RtasAction::OsTerm`]; informational only.
        message: String,
        /// The caller's argument block, for writing the status if the dump fails.
        args: RtasArgs,
    },
    /// `check-exception` or `event-scan` returned a log (status 0 written) and logs of these
    /// classes are still pending: the machine raises their event-source interrupts again.
    RaiseEvents(Vec<EventClass>),
    /// A call the VMM implements itself (registered with [`Rtas::enable_machine_call`]), e.g.
    /// PCI config space or interrupt-controller calls. The machine writes the return cells.
    Machine {
        /// The call the guest made.
        call: RtasCall,
        /// Its decoded argument block; answer with [`RtasArgs::write_rets`]. The counts are not
        /// checked: that is the machine's job ([`RtasArgs::has_counts`]).
        args: RtasArgs,
    },
}

/// Calls this crate implements itself.
const FIRMWARE_CALLS: [RtasCall; 12] = [
    RtasCall::DisplayCharacter,
    RtasCall::GetTimeOfDay,
    RtasCall::PowerOff,
    RtasCall::SystemReboot,
    RtasCall::QueryCpuStoppedState,
    RtasCall::StartCpu,
    RtasCall::StopSelf,
    RtasCall::CheckException,
    RtasCall::EventScan,
    RtasCall::IbmOsTerm,
    RtasCall::OsTerm,
    RtasCall::IbmConfigureKernelDump,
];

/// `query-cpu-stopped-state` results (PAPR).
const CPU_STATE_STOPPED: u32 = 0;
const CPU_STATE_RUNNING: u32 = 2;

/// The RTAS firmware of one partition.
#[derive(Debug)]
pub struct Rtas {
    fadump: Fadump,
    events: EventQueue,
    machine_calls: BTreeSet<RtasCall>,
    /// Memory DLPAR, when the partition has a hotplug window.
    dlpar: Option<Dlpar>,
}

impl Rtas {
    /// The RTAS of a freshly powered-on partition: a fadump engine in the idle state configured by
    /// `fadump`, and no machine calls enabled.
    pub fn new(fadump: FadumpConfig) -> Self {
        Self::with_fadump(Fadump::new(fadump))
    }

    /// Wraps an existing engine (e.g. one restored from saved state).
    pub fn with_fadump(fadump: Fadump) -> Self {
        Self {
            fadump,
            events: EventQueue::new(),
            machine_calls: BTreeSet::new(),
            dlpar: None,
        }
    }

    /// Gives the partition memory DLPAR over `dlpar`'s hotplug window: publishes
    /// `get-sensor-state`, `set-indicator` and `ibm,configure-connector`, adds
    /// `ibm,lrdr-capacity` to `/rtas`; [`Rtas::memory_hotplug`] queues its hot-plug events.
    pub fn set_dlpar(&mut self, dlpar: Dlpar) {
        self.dlpar = Some(dlpar);
    }

    /// Memory DLPAR, when the partition has a hotplug window.
    pub fn dlpar(&self) -> Option<&Dlpar> {
        self.dlpar.as_ref()
    }

    /// Memory DLPAR, for the platform's add, remove and reset.
    pub fn dlpar_mut(&mut self) -> Option<&mut Dlpar> {
        self.dlpar.as_mut()
    }

    fn dlpar_calls(&self) -> &'static [RtasCall] {
        if self.dlpar.is_some() {
            &DLPAR_CALLS
        } else {
            &[]
        }
    }

    /// The pending event logs `check-exception` and `event-scan` hand out.
    pub fn events(&self) -> &EventQueue {
        &self.events
    }

    /// The event queue, for the machine to [`EventQueue::queue`] a log (then it raises the
    /// class's event-source interrupt) or clear it on reset.
    pub fn events_mut(&mut self) -> &mut EventQueue {
        &mut self.events
    }

    /// The fadump engine behind `ibm,configure-kernel-dump`.
    pub fn fadump(&self) -> &Fadump {
        &self.fadump
    }

    /// The fadump engine, for the machine's side of the crash: [`Fadump::perform_dump`] after
    /// [`RtasAction::FadumpCrash`], [`Fadump::on_partition_reset`] on `system-reboot`.
    pub fn fadump_mut(&mut self) -> &mut Fadump {
        &mut self.fadump
    }

    /// Publishes `call` and forwards it to the machine as [`RtasAction::Machine`].
    ///
    /// Enabling one of the calls the firmware implements itself hands it to the machine instead:
    /// [`Rtas::dispatch`] checks the machine's calls first.
    pub fn enable_machine_call(&mut self, call: RtasCall) {
        self.machine_calls.insert(call);
    }

    /// Every call the guest may use, firmware's and machine's.
    pub fn published_calls(&self) -> BTreeSet<RtasCall> {
        FIRMWARE_CALLS
            .iter()
            .chain(self.dlpar_calls())
            .copied()
            .chain(self.machine_calls.iter().copied())
            .collect()
    }

    /// The `/rtas` properties the firmware contributes: one token per published call,
    /// `ibm,extended-os-term`, and the fadump properties (sizes, version, and `ibm,kernel-dump`
    /// while a dump is active).
    pub fn properties(&self) -> Vec<Property> {
        let mut props: Vec<Property> = self
            .published_calls()
            .into_iter()
            .map(|c| Property::u32(c.name(), c.token()))
            .collect();
        // Linux's rtas_os_term() only calls ibm,os-term when this boolean is present.
        props.push(Property::new("ibm,extended-os-term", PropValue::Empty));
        props.extend(self.fadump.rtas_properties());
        if let Some(d) = &self.dlpar {
            props.push(crate::dlpar::tree::lrdr_capacity(
                d.table(),
                self.fadump.config().max_cpus,
            ));
        }
        props
    }

    /// Handles one `H_RTAS` call whose argument block is at `args_addr`.
    ///
    /// Returns `Err` only when the block itself cannot be read (then there is nowhere to write
    /// a status; the VMM answers the hcall with `H_PARAMETER`).
    ///
    /// A token that is unknown or not published, and a firmware call whose `nargs`/`nret` differ
    /// from what PAPR defines for it (`check-exception` takes 6 or 7 arguments), get
    /// [`RtasStatus::ParameterError`] and [`RtasAction::None`]. Machine calls are forwarded
    /// without checking their counts.
    pub fn dispatch<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        args_addr: u64,
        platform: &dyn Platform,
    ) -> Result<RtasAction, ArgsError> {
        let args = RtasArgs::read(mem, args_addr).inspect_err(|e| warn!("rtas: {e}"))?;
        let Some(call) = RtasCall::from_token(args.token).filter(|c| {
            FIRMWARE_CALLS.contains(c)
                || self.dlpar_calls().contains(c)
                || self.machine_calls.contains(c)
        }) else {
            warn!("rtas: unknown or unpublished token {:#x}", args.token);
            args.write_status(mem, RtasStatus::ParameterError);
            return Ok(RtasAction::None);
        };
        debug!("rtas: {} args {:x?}", call.name(), args.args);
        if self.machine_calls.contains(&call) {
            return Ok(RtasAction::Machine { call, args });
        }
        Ok(self.firmware_call(mem, call, args, platform))
    }

    fn firmware_call<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        call: RtasCall,
        args: RtasArgs,
        platform: &dyn Platform,
    ) -> RtasAction {
        // (nargs, nret) PAPR defines for each call; check-exception has an optional 7th arg.
        let counts_ok = match call {
            RtasCall::DisplayCharacter => args.has_counts(1, 1),
            RtasCall::GetTimeOfDay => args.has_counts(0, 8),
            RtasCall::PowerOff => args.has_counts(2, 1),
            RtasCall::SystemReboot => args.has_counts(0, 1),
            RtasCall::QueryCpuStoppedState => args.has_counts(1, 2),
            RtasCall::StartCpu => args.has_counts(3, 1),
            RtasCall::StopSelf => args.has_counts(0, 1),
            RtasCall::EventScan => args.has_counts(4, 1),
            RtasCall::CheckException => (args.nargs == 6 || args.nargs == 7) && args.nret == 1,
            RtasCall::IbmOsTerm | RtasCall::OsTerm => args.has_counts(1, 1),
            RtasCall::IbmConfigureKernelDump => args.has_counts(3, 1),
            RtasCall::GetSensorState => args.has_counts(2, 2),
            RtasCall::SetIndicator => args.has_counts(3, 1),
            RtasCall::IbmConfigureConnector => args.has_counts(2, 1),
            _ => false,
        };
        if !counts_ok {
            warn!(
                "rtas: {}: bad counts nargs={} nret={}",
                call.name(),
                args.nargs,
                args.nret
            );
            args.write_status(mem, RtasStatus::ParameterError);
            return RtasAction::None;
        }
        let status = |s| {
            args.write_status(mem, s);
        };
        match call {
            RtasCall::DisplayCharacter => {
                status(RtasStatus::Success);
                RtasAction::Console(args.arg(0) as u8)
            }
            RtasCall::GetTimeOfDay => {
                let t = platform.time_of_day();
                let rets = [
                    RtasStatus::Success.cell(),
                    t.year,
                    t.month,
                    t.day,
                    t.hour,
                    t.minute,
                    t.second,
                    t.nanosecond,
                ];
                if let Err(e) = args.write_rets(mem, &rets) {
                    warn!("rtas: get-time-of-day: {e}");
                }
                RtasAction::None
            }
            RtasCall::PowerOff => {
                status(RtasStatus::Success);
                info!("rtas: power-off requested");
                RtasAction::PowerOff
            }
            RtasCall::SystemReboot => {
                status(RtasStatus::Success);
                info!("rtas: system-reboot requested");
                RtasAction::SystemReboot
            }
            RtasCall::QueryCpuStoppedState => {
                let cpu = args.arg(0);
                match platform.cpu_run_state(cpu) {
                    None => {
                        warn!("rtas: query-cpu-stopped-state: no cpu {cpu}");
                        status(RtasStatus::ParameterError);
                    }
                    Some(s) => {
                        let state = match s {
                            CpuRunState::Stopped => CPU_STATE_STOPPED,
                            CpuRunState::Running => CPU_STATE_RUNNING,
                        };
                        if let Err(e) = args.write_rets(mem, &[RtasStatus::Success.cell(), state]) {
                            warn!("rtas: query-cpu-stopped-state: {e}");
                        }
                    }
                }
                RtasAction::None
            }
            RtasCall::StartCpu => {
                let cpu = args.arg(0);
                match platform.cpu_run_state(cpu) {
                    None => {
                        warn!("rtas: start-cpu: no cpu {cpu}");
                        status(RtasStatus::ParameterError);
                        RtasAction::None
                    }
                    Some(CpuRunState::Running) => {
                        warn!("rtas: start-cpu: cpu {cpu} is already running");
                        status(RtasStatus::HardwareError);
                        RtasAction::None
                    }
                    Some(CpuRunState::Stopped) => {
                        status(RtasStatus::Success);
                        RtasAction::StartCpu {
                            cpu,
                            entry: u64::from(args.arg(1)),
                            r3: u64::from(args.arg(2)),
                        }
                    }
                }
            }
            RtasCall::StopSelf => RtasAction::StopSelf,
            RtasCall::EventScan | RtasCall::CheckException => {
                let outcome = if call == RtasCall::EventScan {
                    self.events.event_scan(mem, &args)
                } else {
                    self.events.check_exception(mem, &args)
                };
                if outcome.still_pending.is_empty() {
                    RtasAction::None
                } else {
                    RtasAction::RaiseEvents(outcome.still_pending)
                }
            }
            RtasCall::GetSensorState | RtasCall::SetIndicator | RtasCall::IbmConfigureConnector => {
                // Published only with DLPAR.
                if let Some(d) = self.dlpar.as_mut() {
                    dlpar::call(d, mem, call, &args, platform);
                }
                RtasAction::None
            }
            RtasCall::IbmOsTerm | RtasCall::OsTerm => self.os_term(mem, args),
            RtasCall::IbmConfigureKernelDump => {
                let result =
                    self.fadump
                        .configure_kernel_dump(mem, args.arg(0), args.arg(1), args.arg(2));
                status(
                    result
                        .as_ref()
                        .map_or_else(RtasStatus::from, |()| RtasStatus::Success),
                );
                RtasAction::None
            }
            _ => unreachable!("counts_ok is false for calls not handled here"),
        }
    }

    fn os_term<M: GuestMemoryBackend>(&mut self, mem: &M, args: RtasArgs) -> RtasAction {
        // The message is informational only: an unreadable pointer must not stop a dump.
        // Linux since its lock-free os-term (v6.5) passes the NULL meant for rtas_call()'s
        // `outputs` parameter as args[0], so the pointer is 0: there is no message to read.
        let message = match args.arg(0) {
            0 => String::new(),
            ptr => crate::memory::read_c_string(mem, u64::from(ptr), OS_TERM_MESSAGE_MAX)
                .unwrap_or_else(|e| {
                    warn!("rtas: ibm,os-term: message unreadable ({e})");
                    String::from("<unreadable>")
                }),
        };
        if self.fadump.is_registered() {
            info!("rtas: ibm,os-term with fadump registered: {message}");
            RtasAction::FadumpCrash { message, args }
        } else {
            info!("rtas: ibm,os-term (no dump registered): {message}");
            args.write_status(mem, RtasStatus::Success);
            RtasAction::OsTerm { message }
        }
    }
}
