//! Rate-limited log lines for what a guest can trigger at will.
//!
//! A hostile or broken guest can repeat a bad MMIO access, a malformed virtio request or a bad
//! hcall millions of times; one warn line each would grow the log without bound and, since
//! logging is synchronous, slow the vCPU threads that write it. `guest_warn!` keeps the
//! first [`FIRST`] lines of each call site, then one in every [`EVERY`] with the count of
//! those left out. Counting instead of a clock keeps it deterministic and cheap.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lines a call site logs before it is limited.
pub const FIRST: u64 = 10;
/// After that, one line in this many.
pub const EVERY: u64 = 10_000;

/// Whether the next occurrence at a call site (counted in `seen`) is logged, and with what
/// suffix: `Some("")` for the first [`FIRST`], `Some(" (N more like this not logged)")` for one
/// in [`EVERY`] after that, `None` otherwise.
pub fn admit(seen: &AtomicU64) -> Option<String> {
    let n = seen.fetch_add(1, Ordering::Relaxed);
    if n < FIRST {
        Some(String::new())
    } else if (n - FIRST) % EVERY == 0 {
        let skipped = if n == FIRST { 0 } else { EVERY - 1 };
        Some(format!(
            " (occurrence #{}; {skipped} more like this not logged; further ones limited to 1 in {EVERY})",
            n + 1
        ))
    } else {
        None
    }
}

/// `log::warn!` for guest-triggered events, limited per call site (see the module docs).
#[macro_export]
macro_rules! guest_warn {
    ($($arg:tt)+) => {{
        static SEEN: ::std::sync::atomic::AtomicU64 = ::std::sync::atomic::AtomicU64::new(0);
        if let Some(note) = $crate::ratelimit::admit(&SEEN) {
            ::log::warn!("{}{}", format_args!($($arg)+), note);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_then_one_in_every() {
        let seen = AtomicU64::new(0);
        let logged: Vec<u64> = (0..3 * EVERY + FIRST)
            .filter(|_| admit(&seen).is_some())
            .collect();
        // 10 at first, then occurrences FIRST, FIRST + EVERY, FIRST + 2 * EVERY.
        assert_eq!(logged.len() as u64, FIRST + 3);
        let seen = AtomicU64::new(FIRST + EVERY);
        let note = admit(&seen).unwrap();
        assert!(note.contains("9999 more like this not logged"), "{note}");
    }

    #[test]
    fn a_million_bad_requests_log_a_bounded_number_of_lines() {
        let seen = AtomicU64::new(0);
        let lines = (0..1_000_000).filter(|_| admit(&seen).is_some()).count();
        assert!(lines <= (FIRST + 1_000_000 / EVERY + 1) as usize, "{lines}");
    }
}
