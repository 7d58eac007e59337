//! The hot-plug error log (PAPR v6 extended log with a "HP" section, QEMU's
//! `spapr_hotplug_req_event`) and the bounded queue `check-exception` drains.
//!
//! Byte layout, big-endian, 116 bytes:
//!
//! ```text
//! 0   summary 0x063460E5 (v6, severity EVENT, NOT_RECOVERED, extended log, HOTPLUG, type E5)
//! 4   extended length 108
//! 8   0x86 0x00 0x8E, 9 bytes 0, company "IBM\0" at 20       (rtas_ext_event_log_v6)
//! 24  "PH" section, 48 bytes: creation date/time BCD, creator 'H', 3 sections, plid at 64
//! 72  "UH" section, 24 bytes: subsystem 0x80
//! 96  "HP" section, 20 bytes: resource 2 (MEM), action, id type 4 (count+index),
//!     count at 108, index at 112
//! ```
//!
//! Linux (`get_pseries_errorlog`) walks the sections by their length fields: each is
//! nonzero here. Its `ras_hotplug_interrupt()` reads the log without looking at the status,
//! so the platform must raise the interrupt only while an event is queued, once per event.
//!
//! (Ops' generic check-exception queue replaces [`HotplugQueue`] when it lands; the log
//! builder stays.)

use std::collections::VecDeque;

/// `check-exception` event mask bit for hot-plug events (asm/rtas.h `RTAS_HOTPLUG_EVENTS`).
pub const EVENT_MASK_HOTPLUG: u32 = 0x1000_0000;
/// The XICS source of `/event-sources/hot-plug-events` (QEMU's `SPAPR_IRQ_HOTPLUG`).
pub const HOTPLUG_IRQ: u32 = 0x1001;
/// Bytes of one hot-plug log.
pub const LOG_LEN: usize = 116;
/// Most events queued at once: a host asking faster than the guest drains is refused.
pub const QUEUE_MAX: usize = 32;

/// What the event asks the guest to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotplugAction {
    /// Add the LMBs (`PSERIES_HP_ELOG_ACTION_ADD`).
    Add = 1,
    /// Remove them (`PSERIES_HP_ELOG_ACTION_REMOVE`).
    Remove = 2,
}

/// One memory hot-plug request, count-indexed: `count` LMBs from DRC index `index` up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotplugEvent {
    /// Add or remove.
    pub action: HotplugAction,
    /// How many LMBs.
    pub count: u32,
    /// The DRC index of the first.
    pub index: u32,
}

/// When a log was created (UTC), as the platform's clock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    /// The full year.
    pub year: u32,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
}

/// Two decimal digits as BCD (values above 99 keep their last two digits).
fn bcd2(v: u32) -> u32 {
    let v = v % 100;
    ((v / 10) << 4) | (v % 10)
}

/// The 116-byte log of `ev` with platform log id `plid`, created at `at`.
pub fn log_bytes(ev: &HotplugEvent, plid: u32, at: Timestamp) -> [u8; LOG_LEN] {
    let mut b = [0u8; LOG_LEN];
    let put32 = |b: &mut [u8; LOG_LEN], off: usize, v: u32| {
        b[off..off + 4].copy_from_slice(&v.to_be_bytes())
    };
    let put16 = |b: &mut [u8; LOG_LEN], off: usize, v: u16| {
        b[off..off + 2].copy_from_slice(&v.to_be_bytes())
    };
    put32(&mut b, 0, 0x0634_60E5);
    put32(&mut b, 4, (LOG_LEN - 8) as u32);
    // rtas_ext_event_log_v6: valid | new log | big-endian; PowerPC format, log format 14.
    b[8] = 0x86;
    b[10] = 0x8E;
    put32(&mut b, 20, 0x4942_4D00);
    // Main-A "PH".
    put16(&mut b, 24, 0x5048);
    put16(&mut b, 26, 48);
    let date =
        (bcd2(at.year / 100) << 24) | (bcd2(at.year) << 16) | (bcd2(at.month) << 8) | bcd2(at.day);
    let time = (bcd2(at.hour) << 24) | (bcd2(at.minute) << 16) | (bcd2(at.second) << 8);
    put32(&mut b, 32, date);
    put32(&mut b, 36, time);
    b[48] = b'H';
    b[51] = 3;
    put32(&mut b, 64, plid);
    // Main-B "UH".
    put16(&mut b, 72, 0x5548);
    put16(&mut b, 74, 24);
    b[80] = 0x80;
    // "HP": pseries_errorlog header + pseries_hp_errorlog.
    put16(&mut b, 96, 0x4850);
    put16(&mut b, 98, 20);
    b[100] = 1;
    b[104] = 2; // memory
    b[105] = ev.action as u8;
    b[106] = 4; // count and index
    put32(&mut b, 108, ev.count);
    put32(&mut b, 112, ev.index);
    b
}

/// Hot-plug events waiting for the guest's `check-exception`, oldest first, at most
/// [`QUEUE_MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotplugQueue {
    events: VecDeque<HotplugEvent>,
    next_plid: u32,
}

/// The queue holds [`QUEUE_MAX`] events already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{QUEUE_MAX} hot-plug events are already waiting for the guest")]
pub struct QueueFull;

impl HotplugQueue {
    /// Queues `ev`; the platform raises [`HOTPLUG_IRQ`] once for it.
    pub fn push(&mut self, ev: HotplugEvent) -> Result<(), QueueFull> {
        if self.events.len() >= QUEUE_MAX {
            return Err(QueueFull);
        }
        self.events.push_back(ev);
        Ok(())
    }

    /// The oldest event's log (without dequeuing it), with the plid it will carry.
    pub fn peek_log(&self, at: Timestamp) -> Option<[u8; LOG_LEN]> {
        self.events
            .front()
            .map(|ev| log_bytes(ev, self.next_plid, at))
    }

    /// Drops the oldest event once its log was delivered.
    pub fn pop(&mut self) -> Option<HotplugEvent> {
        let ev = self.events.pop_front()?;
        self.next_plid = self.next_plid.wrapping_add(1);
        Some(ev)
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Drops every event (at a reset, as QEMU's `spapr_clear_pending_events`).
    pub fn clear(&mut self) {
        self.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        Timestamp {
            year: 2026,
            month: 12,
            day: 7,
            hour: 23,
            minute: 5,
            second: 9,
        }
    }

    #[test]
    fn the_log_linux_parses() {
        let ev = HotplugEvent {
            action: HotplugAction::Add,
            count: 1,
            index: 0x8000_0007,
        };
        let b = log_bytes(&ev, 5, at());
        let u32_at = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
        let u16_at = |o: usize| u16::from_be_bytes(b[o..o + 2].try_into().unwrap());
        assert_eq!(u32_at(0), 0x0634_60E5);
        assert_eq!(u32_at(4), 108);
        assert_eq!(b[10] & 0x0f, 14, "log format 14");
        assert_eq!(u32_at(20), u32::from_be_bytes(*b"IBM\0"));
        // The sections, walked as get_pseries_errorlog does: from offset 24 by length.
        let mut off = 24;
        let mut ids = vec![];
        while off < LOG_LEN {
            let len = usize::from(u16_at(off + 2));
            assert!(len > 0, "a zero length loops Linux forever");
            ids.push(u16_at(off));
            off += len;
        }
        assert_eq!(off, LOG_LEN);
        assert_eq!(ids, [0x5048, 0x5548, 0x4850]);
        assert_eq!((u32_at(32), u32_at(36)), (0x2026_1207, 0x2305_0900));
        assert_eq!(u32_at(64), 5);
        assert_eq!(&b[104..108], [2, 1, 4, 0]);
        assert_eq!((u32_at(108), u32_at(112)), (1, 0x8000_0007));
        let rm = log_bytes(
            &HotplugEvent {
                action: HotplugAction::Remove,
                ..ev
            },
            6,
            at(),
        );
        assert_eq!(rm[105], 2);
    }

    #[test]
    fn the_queue_is_bounded_ordered_and_numbers_what_it_delivers() {
        let mut q = HotplugQueue::default();
        let ev = |index| HotplugEvent {
            action: HotplugAction::Add,
            count: 1,
            index,
        };
        for i in 0..QUEUE_MAX as u32 {
            q.push(ev(i)).unwrap();
        }
        assert_eq!(q.push(ev(99)), Err(QueueFull));
        let first = q.peek_log(at()).unwrap();
        assert_eq!(q.peek_log(at()), Some(first), "peeking delivers nothing");
        assert_eq!(q.pop(), Some(ev(0)));
        let second = q.peek_log(at()).unwrap();
        assert_eq!(
            (&second[64..68], &second[112..116]),
            (&[0, 0, 0, 1][..], &[0, 0, 0, 1][..])
        );
        q.clear();
        assert!(q.is_empty() && q.pop().is_none() && q.peek_log(at()).is_none());
    }
}
