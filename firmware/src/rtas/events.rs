//! Pending RTAS event logs and the two calls that hand them to the guest: `check-exception`
//! (after an event-source interrupt) and `event-scan` (the periodic poll of Linux's `rtasd`).
//!
//! The machine queues a complete error log under its PAPR event class with
//! [`EventQueue::queue`] and raises that class's event-source interrupt (the `/event-sources`
//! node the device tree describes). Linux's handler (`ras_epow_interrupt`,
//! `ras_hotplug_interrupt` in `arch/powerpc/platforms/pseries/ras.c`) then calls
//! `check-exception` with the class's mask (`RTAS_EPOW_WARNING`, `RTAS_HOTPLUG_EVENTS`) and a
//! buffer of `rtas-error-log-max` bytes, and parses the log with `get_pseries_errorlog()`.
//!
//! Logs of classes that have an event-source interrupt ([`EventClass::has_interrupt`]) are
//! returned by `check-exception` only: `rtasd` logs what `event-scan` returns and acts on
//! nothing but PRRN, so a shutdown request it dequeued would be lost (QEMU's `event-scan`
//! returns nothing for the same reason).
//!
//! [`ErrorLog`] builds the log format those parsers expect: the 8-byte fixed part
//! (`struct rtas_error_log`), the 16-byte version 6 extended header
//! (`struct rtas_ext_event_log_v6`: valid, new log, big-endian, PowerPC format, platform event
//! log, company "IBM\0"), then the sections: Main-A ("PH"), Main-B ("UH") and the caller's own
//! (e.g. "EP" for EPOW, "HP" for hot-plug), each with the 8-byte section header of
//! `struct pseries_errorlog`.

use std::collections::VecDeque;

use log::{debug, warn};
use thiserror::Error;
use vm_memory::GuestMemoryBackend;

use crate::memory;
use crate::rtas::args::RtasArgs;
use crate::rtas::status::RtasStatus;
use crate::rtas::TimeOfDay;

/// Most logs pending at once, all classes together; [`EventQueue::queue`] refuses more.
pub const MAX_PENDING_LOGS: usize = 64;
/// Longest log the queue accepts: PAPR's and Linux's `RTAS_ERROR_LOG_MAX`.
pub const MAX_LOG_LEN: usize = 2048;
/// The fixed part of every log (`struct rtas_error_log` without its buffer).
pub const FIXED_PART_LEN: usize = 8;
/// The version 6 extended-log header (`struct rtas_ext_event_log_v6` without `vendor_log`).
pub const V6_HEADER_LEN: usize = 16;
/// The header every section starts with (`struct pseries_errorlog` without `data`).
pub const SECTION_HEADER_LEN: usize = 8;
/// Main-A ("PH") section length, header included.
pub const MAIN_A_LEN: usize = 48;
/// Main-B ("UH") section length, header included.
pub const MAIN_B_LEN: usize = 24;

/// Summary byte 0: log version 6.
const LOG_VERSION_6: u8 = 6;
/// Summary byte 1, bit 2 (`rtas_error_extended()`): an extended log follows.
const EXTENDED_PRESENT: u8 = 0x04;
/// Extended header byte 0: valid, new log, big-endian.
const V6_B0: u8 = 0x80 | 0x04 | 0x02;
/// Extended header byte 2: PowerPC format, log format 14 (`RTAS_V6EXT_LOG_FORMAT_EVENT_LOG`).
const V6_B2: u8 = 0x80 | 0x0e;
/// `RTAS_V6EXT_COMPANY_ID_IBM`.
const COMPANY_IBM: u32 = u32::from_be_bytes(*b"IBM\0");

/// A PAPR event class: which bit of the `check-exception` / `event-scan` event mask selects it
/// (class `n` is bit `1 << (31 - n)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventClass {
    /// Class 0, internal errors (`RTAS_INTERNAL_ERROR`, mask 0x8000_0000).
    InternalErrors,
    /// Class 1, environmental and power warnings (`RTAS_EPOW_WARNING`, mask 0x4000_0000).
    Epow,
    /// Class 3, hot-plug events (`RTAS_HOTPLUG_EVENTS`, mask 0x1000_0000).
    HotPlug,
    /// Class 4, I/O events (`RTAS_IO_EVENTS`, mask 0x0800_0000).
    Io,
}

impl EventClass {
    /// Every class, in PAPR order.
    pub const ALL: [EventClass; 4] = [
        EventClass::InternalErrors,
        EventClass::Epow,
        EventClass::HotPlug,
        EventClass::Io,
    ];

    /// The PAPR class number.
    pub fn number(self) -> u32 {
        match self {
            EventClass::InternalErrors => 0,
            EventClass::Epow => 1,
            EventClass::HotPlug => 3,
            EventClass::Io => 4,
        }
    }

    /// The class's bit in an event mask.
    pub fn mask(self) -> u32 {
        1 << (31 - self.number())
    }

    /// True for classes signalled by an `/event-sources` interrupt and fetched with
    /// `check-exception` only (EPOW and hot-plug).
    pub fn has_interrupt(self) -> bool {
        matches!(self, EventClass::Epow | EventClass::HotPlug)
    }
}

/// Why a log was not queued.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// [`MAX_PENDING_LOGS`] logs are already waiting for the guest.
    #[error("{MAX_PENDING_LOGS} RTAS event logs already pending; {0:?} log dropped")]
    Full(EventClass),
    /// The log is shorter than its fixed part or longer than [`MAX_LOG_LEN`].
    #[error("RTAS event log of {0} bytes (must be {FIXED_PART_LEN}..={MAX_LOG_LEN})")]
    BadLength(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingLog {
    class: EventClass,
    log: Vec<u8>,
}

/// The logs the guest has not fetched yet, oldest first.
#[derive(Debug, Default)]
pub struct EventQueue {
    pending: VecDeque<PendingLog>,
    next_plid: u32,
}

/// What a `check-exception` or `event-scan` call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCallOutcome {
    /// The status written to `rets[0]`.
    pub status: RtasStatus,
    /// Classes that still have logs pending after the call, whose interrupts the machine must
    /// raise again (PAPR keeps the interrupt asserted while events are pending; our sources
    /// are edge-triggered, so they are pulsed again). Empty unless a log was returned.
    pub still_pending: Vec<EventClass>,
}

impl EventQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a complete log (as [`ErrorLog::build`] makes it) under `class`. The caller then
    /// raises the class's event-source interrupt.
    pub fn queue(&mut self, class: EventClass, log: Vec<u8>) -> Result<(), QueueError> {
        if !(FIXED_PART_LEN..=MAX_LOG_LEN).contains(&log.len()) {
            return Err(QueueError::BadLength(log.len()));
        }
        if self.pending.len() >= MAX_PENDING_LOGS {
            return Err(QueueError::Full(class));
        }
        debug!("rtas events: queued a {}-byte {class:?} log", log.len());
        self.pending.push_back(PendingLog { class, log });
        Ok(())
    }

    /// True when a log of `class` waits.
    pub fn has_pending(&self, class: EventClass) -> bool {
        self.pending.iter().any(|p| p.class == class)
    }

    /// Classes with logs waiting, in PAPR order.
    pub fn pending_classes(&self) -> Vec<EventClass> {
        EventClass::ALL
            .into_iter()
            .filter(|c| self.has_pending(*c))
            .collect()
    }

    /// Number of logs waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Drops every pending log (partition reset: the new OS instance did not ask for them).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// A fresh platform log id for [`ErrorLog::build`].
    pub fn next_plid(&mut self) -> u32 {
        self.next_plid = self.next_plid.wrapping_add(1);
        self.next_plid
    }

    /// `check-exception` (`args`: vector offset, additional information (the interrupt
    /// source), event mask, critical, buffer real address, buffer length, optional extended
    /// information): copies the oldest log of a class in the mask into the buffer.
    ///
    /// Status 0 when a log was returned, 1 when none of the mask's classes has one; -3 (nothing
    /// dequeued) when the buffer is shorter than a log's fixed part or (up to
    /// [`MAX_LOG_LEN`] bytes of it) not in guest RAM. A
    /// log longer than the buffer is truncated to it, as QEMU does.
    pub fn check_exception<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        args: &RtasArgs,
    ) -> EventCallOutcome {
        self.fetch(
            mem,
            args,
            "check-exception",
            args.arg(2),
            args.arg(4),
            args.arg(5),
            |_| true,
        )
    }

    /// `event-scan` (`args`: event mask, critical, buffer real address, buffer length): like
    /// [`EventQueue::check_exception`], but only for classes without an event-source interrupt.
    pub fn event_scan<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        args: &RtasArgs,
    ) -> EventCallOutcome {
        self.fetch(
            mem,
            args,
            "event-scan",
            args.arg(0),
            args.arg(2),
            args.arg(3),
            |c| !c.has_interrupt(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn fetch<M: GuestMemoryBackend>(
        &mut self,
        mem: &M,
        args: &RtasArgs,
        call: &str,
        mask: u32,
        buf: u32,
        len: u32,
        eligible: impl Fn(EventClass) -> bool,
    ) -> EventCallOutcome {
        let outcome = |status| EventCallOutcome {
            status,
            still_pending: Vec::new(),
        };
        let buf_len = len as usize;
        // Only what a log can fill must be RAM: a caller may offer a longer buffer.
        let needed = u64::from(len).min(MAX_LOG_LEN as u64);
        if buf_len < FIXED_PART_LEN
            || memory::range(u64::from(buf), needed)
                .map(|r| !memory::is_backed(mem, &r))
                .unwrap_or(true)
        {
            warn!("rtas: {call}: bad buffer {buf:#x} + {len:#x}");
            args.write_status(mem, RtasStatus::ParameterError);
            return outcome(RtasStatus::ParameterError);
        }
        let Some(at) = self
            .pending
            .iter()
            .position(|p| p.class.mask() & mask != 0 && eligible(p.class))
        else {
            args.write_status(mem, RtasStatus::NoEventFound);
            return outcome(RtasStatus::NoEventFound);
        };
        let entry = &self.pending[at];
        let n = entry.log.len().min(buf_len);
        if let Err(e) = memory::write_bytes(mem, u64::from(buf), &entry.log[..n]) {
            // Checked as backed above; keep the log if the write still failed.
            warn!("rtas: {call}: writing the log: {e}");
            args.write_status(mem, RtasStatus::HardwareError);
            return outcome(RtasStatus::HardwareError);
        }
        let class = entry.class;
        if n < entry.log.len() {
            warn!(
                "rtas: {call}: {class:?} log of {} bytes truncated to the guest's {n}",
                entry.log.len()
            );
        }
        self.pending.remove(at);
        debug!("rtas: {call}: returned a {class:?} log ({n} bytes)");
        args.write_status(mem, RtasStatus::Success);
        EventCallOutcome {
            status: RtasStatus::Success,
            still_pending: self
                .pending_classes()
                .into_iter()
                .filter(|c| c.has_interrupt())
                .collect(),
        }
    }
}

/// Summary severity (`rtas_error_severity()`, byte 1 bits 7..5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// 0: no error.
    NoError = 0,
    /// 1: an event (EPOW, hot-plug).
    Event = 1,
    /// 2: warning.
    Warning = 2,
    /// 4: error.
    Error = 4,
    /// 5: fatal.
    Fatal = 5,
}

/// Summary disposition (`rtas_error_disposition()`, byte 1 bits 4..3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// 0: fully recovered.
    FullyRecovered = 0,
    /// 1: limited recovery.
    LimitedRecovery = 1,
    /// 2: not recovered.
    NotRecovered = 2,
}

/// Summary log type (byte 3, `rtas_error_type()`).
pub mod log_type {
    /// `RTAS_TYPE_EPOW`.
    pub const EPOW: u8 = 0x40;
    /// `RTAS_TYPE_HOTPLUG`.
    pub const HOTPLUG: u8 = 0xe5;
}

/// A section of the extended log after Main-A and Main-B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Two ASCII characters (`PSERIES_ELOG_SECT_ID_*`, e.g. `*b"EP"`).
    pub id: [u8; 2],
    /// Section version.
    pub version: u8,
    /// Section subtype.
    pub subtype: u8,
    /// Creator component id.
    pub creator_component: u16,
    /// The bytes after the 8-byte header.
    pub data: Vec<u8>,
}

impl Section {
    /// Section `id`, version `version`, subtype and creator 0, carrying `data`.
    pub fn new(id: [u8; 2], version: u8, data: Vec<u8>) -> Self {
        Self {
            id,
            version,
            subtype: 0,
            creator_component: 0,
            data,
        }
    }

    /// Header plus data.
    pub fn len(&self) -> usize {
        SECTION_HEADER_LEN + self.data.len()
    }

    /// Never true: a section has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&(self.len() as u16).to_be_bytes());
        out.push(self.version);
        out.push(self.subtype);
        out.extend_from_slice(&self.creator_component.to_be_bytes());
        out.extend_from_slice(&self.data);
    }
}

/// A version 6 extended error log: fixed part, extended header, Main-A, Main-B, then
/// [`ErrorLog::sections`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLog {
    /// Summary severity.
    pub severity: Severity,
    /// Summary disposition.
    pub disposition: Disposition,
    /// Summary type ([`log_type`]).
    pub log_type: u8,
    /// Main-B subsystem id (e.g. 0xa0 external environment).
    pub subsystem_id: u8,
    /// Main-B event severity (0 informational).
    pub event_severity: u8,
    /// Main-B event subtype (e.g. 0xd0 normal shutdown).
    pub event_subtype: u8,
    /// Main-B action flags.
    pub action_flags: u16,
    /// The sections after Main-B.
    pub sections: Vec<Section>,
}

/// Packs `v` (0..=99) as two BCD digits.
fn bcd(v: u32) -> u32 {
    let v = v % 100;
    ((v / 10) << 4) | (v % 10)
}

impl ErrorLog {
    /// An event log of type `log_type` (severity event, not recovered, as QEMU's EPOW and
    /// hot-plug logs) with Main-B all zero and no sections yet.
    pub fn event(log_type: u8) -> Self {
        Self {
            severity: Severity::Event,
            disposition: Disposition::NotRecovered,
            log_type,
            subsystem_id: 0,
            event_severity: 0,
            event_subtype: 0,
            action_flags: 0,
            sections: Vec::new(),
        }
    }

    /// Appends a section.
    pub fn with_section(mut self, s: Section) -> Self {
        self.sections.push(s);
        self
    }

    /// The log's bytes. `created` goes into Main-A (BCD date and time), `plid` is its platform
    /// log id ([`EventQueue::next_plid`]).
    pub fn build(&self, created: TimeOfDay, plid: u32) -> Vec<u8> {
        let sections_len: usize = self.sections.iter().map(Section::len).sum();
        let ext_len = V6_HEADER_LEN + MAIN_A_LEN + MAIN_B_LEN + sections_len;
        let mut out = Vec::with_capacity(FIXED_PART_LEN + ext_len);
        // Fixed part.
        out.push(LOG_VERSION_6);
        out.push(
            ((self.severity as u8) << 5) | ((self.disposition as u8 & 3) << 3) | EXTENDED_PRESENT,
        );
        out.push(0); // initiator, target: unknown
        out.push(self.log_type);
        out.extend_from_slice(&(ext_len as u32).to_be_bytes());
        // Version 6 extended header.
        out.push(V6_B0);
        out.push(0);
        out.push(V6_B2);
        out.extend_from_slice(&[0; 9]);
        out.extend_from_slice(&COMPANY_IBM.to_be_bytes());
        // Main-A.
        let t = created;
        let date =
            (bcd(t.year / 100) << 24) | (bcd(t.year) << 16) | (bcd(t.month) << 8) | bcd(t.day);
        let time = (bcd(t.hour) << 24) | (bcd(t.minute) << 16) | (bcd(t.second) << 8);
        let mut main_a = Vec::with_capacity(MAIN_A_LEN - SECTION_HEADER_LEN);
        main_a.extend_from_slice(&date.to_be_bytes());
        main_a.extend_from_slice(&time.to_be_bytes());
        main_a.extend_from_slice(&[0; 8]); // platform
        main_a.push(b'H'); // creator: hypervisor
        main_a.extend_from_slice(&[0; 2]);
        main_a.push((2 + self.sections.len()).min(255) as u8); // section count
        main_a.extend_from_slice(&[0; 4]);
        main_a.extend_from_slice(&[0; 8]); // platform
        main_a.extend_from_slice(&plid.to_be_bytes());
        main_a.extend_from_slice(&[0; 4]); // platform
        Section::new(*b"PH", 1, main_a).write_to(&mut out);
        // Main-B.
        let mut main_b = vec![
            self.subsystem_id,
            0,
            self.event_severity,
            self.event_subtype,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        main_b.extend_from_slice(&self.action_flags.to_be_bytes());
        main_b.extend_from_slice(&[0; 4]);
        Section::new(*b"UH", 1, main_b).write_to(&mut out);
        for s in &self.sections {
            s.write_to(&mut out);
        }
        out
    }
}

/// EPOW section action codes (`sensor_value`, low 4 bits; Linux `EPOW_*`).
pub mod epow_action {
    /// `EPOW_SYSTEM_SHUTDOWN`: orderly shutdown.
    pub const SYSTEM_SHUTDOWN: u8 = 3;
}

/// EPOW modifier for [`epow_action::SYSTEM_SHUTDOWN`]: `EPOW_SHUTDOWN_NORMAL`.
pub const EPOW_MODIFIER_NORMAL: u8 = 1;

/// The log of a power-button press: EPOW, system shutdown, normal (Linux's
/// `handle_system_shutdown()` calls `orderly_poweroff()`), partition-specific, with Main-B
/// "external environment, informational, normal shutdown" as QEMU sends for
/// `system_powerdown`.
pub fn power_button_log(created: TimeOfDay, plid: u32) -> Vec<u8> {
    let mut epow = vec![
        epow_action::SYSTEM_SHUTDOWN,
        EPOW_MODIFIER_NORMAL,
        1, // extended modifier: partition specific
        0,
    ];
    epow.extend_from_slice(&0u64.to_be_bytes()); // reason code
    let mut log = ErrorLog::event(log_type::EPOW).with_section(Section::new(*b"EP", 2, epow));
    log.subsystem_id = 0xa0;
    log.event_subtype = 0xd0;
    log.build(created, plid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtas::RtasCall;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    const ARGS: u64 = 0x100;
    const BUF: u32 = 0x1000;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x4000)]).unwrap()
    }

    fn t() -> TimeOfDay {
        TimeOfDay {
            year: 2026,
            month: 12,
            day: 7,
            hour: 23,
            minute: 5,
            second: 9,
            nanosecond: 0,
        }
    }

    fn args(m: &GuestMemoryMmap, call: RtasCall, a: &[u32]) -> RtasArgs {
        memory::write_bytes(m, ARGS, &RtasArgs::block_bytes(call.token(), a, 1, 0xdead)).unwrap();
        RtasArgs::read(m, ARGS).unwrap()
    }

    fn status(m: &GuestMemoryMmap, a: &RtasArgs) -> i32 {
        let at = ARGS + 12 + 4 * u64::from(a.nargs);
        i32::from_be_bytes(memory::read_bytes(m, at, 4).unwrap().try_into().unwrap())
    }

    fn check(m: &GuestMemoryMmap, q: &mut EventQueue, mask: u32, len: u32) -> EventCallOutcome {
        let a = args(
            m,
            RtasCall::CheckException,
            &[0x500, 0x1000, mask, 0, BUF, len],
        );
        let o = q.check_exception(m, &a);
        assert_eq!(status(m, &a), o.status.code(), "status written");
        o
    }

    /// Walks the sections the way Linux's `get_pseries_errorlog()` does.
    fn find_section(log: &[u8], id: [u8; 2]) -> Option<&[u8]> {
        let ext_len = u32::from_be_bytes(log[4..8].try_into().unwrap()) as usize;
        let ext = &log[FIXED_PART_LEN..FIXED_PART_LEN + ext_len];
        if ext_len < V6_HEADER_LEN || ext[2] & 0x0f != 14 || ext[12..16] != *b"IBM\0" {
            return None;
        }
        let mut p = V6_HEADER_LEN;
        while p < ext.len() {
            let len = u16::from_be_bytes(ext[p + 2..p + 4].try_into().unwrap()) as usize;
            assert!(
                len >= SECTION_HEADER_LEN,
                "a zero-length section loops Linux"
            );
            if ext[p..p + 2] == id {
                return Some(&ext[p..p + len]);
            }
            p += len;
        }
        None
    }

    #[test]
    fn power_button_log_parses_as_linux_does() {
        let log = power_button_log(t(), 7);
        assert_eq!(log[0], 6, "version 6");
        assert_eq!((log[1] & 0xe0) >> 5, 1, "severity event");
        assert_eq!(log[1] & 0x04, 0x04, "extended log present");
        assert_eq!(log[3], log_type::EPOW);
        let ext_len = u32::from_be_bytes(log[4..8].try_into().unwrap()) as usize;
        assert_eq!(log.len(), FIXED_PART_LEN + ext_len);
        let main_a = find_section(&log, *b"PH").unwrap();
        assert_eq!(main_a.len(), MAIN_A_LEN);
        assert_eq!(&main_a[8..12], &[0x20, 0x26, 0x12, 0x07], "BCD date");
        assert_eq!(&main_a[12..16], &[0x23, 0x05, 0x09, 0x00], "BCD time");
        assert_eq!(main_a[27], 3, "three sections");
        assert_eq!(&main_a[40..44], &7u32.to_be_bytes(), "plid");
        assert_eq!(find_section(&log, *b"UH").unwrap().len(), MAIN_B_LEN);
        let ep = find_section(&log, *b"EP").unwrap();
        assert_eq!(ep[8] & 0xf, epow_action::SYSTEM_SHUTDOWN);
        assert_eq!(ep[9] & 0xf, EPOW_MODIFIER_NORMAL);
        assert!(find_section(&log, *b"HP").is_none());
    }

    #[test]
    fn check_exception_returns_by_mask_oldest_first() {
        let m = mem();
        let mut q = EventQueue::new();
        let epow = power_button_log(t(), 1);
        let hp = ErrorLog::event(log_type::HOTPLUG)
            .with_section(Section::new(*b"HP", 1, vec![1, 2, 3, 4, 0, 0, 0, 5]))
            .build(t(), 2);
        q.queue(EventClass::HotPlug, hp.clone()).unwrap();
        q.queue(EventClass::Epow, epow.clone()).unwrap();
        q.queue(EventClass::Epow, epow.clone()).unwrap();

        let o = check(&m, &mut q, EventClass::Epow.mask(), 2048);
        assert_eq!(o.status, RtasStatus::Success);
        assert_eq!(
            o.still_pending,
            vec![EventClass::Epow, EventClass::HotPlug],
            "re-raise both"
        );
        assert_eq!(
            memory::read_bytes(&m, BUF.into(), epow.len()).unwrap(),
            epow
        );
        check(&m, &mut q, EventClass::Epow.mask(), 2048);
        let o = check(&m, &mut q, EventClass::Epow.mask(), 2048);
        assert_eq!(o.status, RtasStatus::NoEventFound, "both EPOW logs taken");
        assert!(o.still_pending.is_empty());
        assert!(q.has_pending(EventClass::HotPlug));

        let o = check(&m, &mut q, EventClass::HotPlug.mask(), 2048);
        assert_eq!(o.status, RtasStatus::Success);
        assert!(o.still_pending.is_empty());
        assert_eq!(memory::read_bytes(&m, BUF.into(), hp.len()).unwrap(), hp);
        let hp_sect = find_section(&hp, *b"HP").unwrap();
        assert_eq!(&hp_sect[8..], &[1, 2, 3, 4, 0, 0, 0, 5]);
        assert!(q.is_empty());
    }

    #[test]
    fn bad_buffers_are_refused_and_keep_the_log() {
        let m = mem();
        let mut q = EventQueue::new();
        q.queue(EventClass::Epow, power_button_log(t(), 1)).unwrap();
        let mask = EventClass::Epow.mask();
        for (buf, len) in [(BUF, 0), (BUF, 7), (0x3ff0, 0x100), (0xffff_fff0, 0x100)] {
            let a = args(&m, RtasCall::CheckException, &[0x500, 0, mask, 0, buf, len]);
            assert_eq!(q.check_exception(&m, &a).status, RtasStatus::ParameterError);
            assert_eq!(status(&m, &a), -3);
        }
        assert_eq!(q.len(), 1, "nothing lost");
        // A buffer longer than any log only needs RAM for what a log can fill.
        let o = check(&m, &mut q, mask, 0x1000_0000);
        assert_eq!(o.status, RtasStatus::Success);
        q.queue(EventClass::Epow, power_button_log(t(), 2)).unwrap();
        let o = check(&m, &mut q, mask, 16);
        assert_eq!(o.status, RtasStatus::Success, "truncated to the buffer");
        assert!(q.is_empty());
    }

    #[test]
    fn event_scan_leaves_interrupt_classes_to_check_exception() {
        let m = mem();
        let mut q = EventQueue::new();
        q.queue(EventClass::Epow, power_button_log(t(), 1)).unwrap();
        let a = args(&m, RtasCall::EventScan, &[0xffff_ffff, 0, BUF, 2048]);
        assert_eq!(q.event_scan(&m, &a).status, RtasStatus::NoEventFound);
        assert_eq!(status(&m, &a), 1);
        assert_eq!(q.len(), 1);
        let internal = ErrorLog::event(0).build(t(), 3);
        q.queue(EventClass::InternalErrors, internal.clone())
            .unwrap();
        assert_eq!(q.event_scan(&m, &a).status, RtasStatus::Success);
        assert_eq!(
            memory::read_bytes(&m, BUF.into(), internal.len()).unwrap(),
            internal
        );
        assert_eq!(q.pending_classes(), vec![EventClass::Epow]);
    }

    #[test]
    fn queue_is_bounded() {
        let mut q = EventQueue::new();
        assert_eq!(
            q.queue(EventClass::Epow, vec![0; 4]),
            Err(QueueError::BadLength(4))
        );
        assert_eq!(
            q.queue(EventClass::Epow, vec![0; MAX_LOG_LEN + 1]),
            Err(QueueError::BadLength(MAX_LOG_LEN + 1))
        );
        for _ in 0..MAX_PENDING_LOGS {
            q.queue(EventClass::HotPlug, vec![0; 8]).unwrap();
        }
        assert_eq!(
            q.queue(EventClass::Epow, vec![0; 8]),
            Err(QueueError::Full(EventClass::Epow))
        );
        q.clear();
        assert!(q.is_empty());
    }

    #[test]
    fn class_masks_match_linux() {
        assert_eq!(EventClass::InternalErrors.mask(), 0x8000_0000);
        assert_eq!(EventClass::Epow.mask(), 0x4000_0000);
        assert_eq!(EventClass::HotPlug.mask(), 0x1000_0000);
        assert_eq!(EventClass::Io.mask(), 0x0800_0000);
    }
}
