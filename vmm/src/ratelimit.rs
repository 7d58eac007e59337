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

/// Lines one call site may log per [`SITE_WINDOW_MS`] through the process logger.
pub const SITE_BURST: u64 = 200;
/// The logger's window, in milliseconds.
pub const SITE_WINDOW_MS: u64 = 10_000;
/// Call sites the logger tracks; lines from sites past this many are not limited (the
/// program has a few hundred, so this only bounds the table).
pub const SITES_MAX: usize = 4096;

/// The process logger's bound on every call site, guest-triggered or not (the firmware's
/// RTAS and fadump lines come from a crate without `guest_warn!`: a guest looping
/// REGISTER/UNREGISTER or calling a bad token would otherwise log two lines per call): at
/// most [`SITE_BURST`] lines per [`SITE_WINDOW_MS`] per site, then a count of those dropped
/// when the next window opens. Time comes from the caller, so it is tested without a clock.
#[derive(Debug, Default)]
pub struct SiteBudget {
    sites: std::sync::Mutex<std::collections::HashMap<(&'static str, u32), Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: u64,
    logged: u64,
    dropped: u64,
}

/// The logger's verdict on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `dropped` lines from this site were left out before it.
    Log { dropped: u64 },
    /// Leave it out.
    Drop,
}

impl SiteBudget {
    /// Whether a line from `site` (file, line) at `now_ms` is logged.
    pub fn admit(&self, site: (&'static str, u32), now_ms: u64) -> Verdict {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let full = sites.len() >= SITES_MAX;
        let w = match sites.get_mut(&site) {
            Some(w) => w,
            None if full => return Verdict::Log { dropped: 0 },
            None => sites.entry(site).or_insert(Window {
                start_ms: now_ms,
                logged: 0,
                dropped: 0,
            }),
        };
        if now_ms.saturating_sub(w.start_ms) >= SITE_WINDOW_MS {
            let dropped = w.dropped;
            *w = Window {
                start_ms: now_ms,
                logged: 1,
                dropped: 0,
            };
            return Verdict::Log { dropped };
        }
        if w.logged < SITE_BURST {
            w.logged += 1;
            Verdict::Log { dropped: 0 }
        } else {
            w.dropped += 1;
            Verdict::Drop
        }
    }
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

    /// A guest looping REGISTER/UNREGISTER a million times in 10 s (two firmware lines per
    /// loop) gets a bounded number of lines; a site logging once a second is never limited.
    #[test]
    fn the_logger_bounds_each_call_site_per_window() {
        let b = SiteBudget::default();
        let (register, unregister) = (
            ("firmware/src/fadump/mod.rs", 337),
            ("firmware/src/fadump/mod.rs", 293),
        );
        let mut logged = 0;
        for i in 0..1_000_000u64 {
            let now = i / 100; // 100 calls per millisecond
            for site in [register, unregister] {
                if matches!(b.admit(site, now), Verdict::Log { .. }) {
                    logged += 1;
                }
            }
        }
        // 10 s of calls: one window of each site.
        assert_eq!(logged, 2 * SITE_BURST, "{logged} lines");
        assert_eq!(
            b.admit(register, 20_000),
            Verdict::Log {
                dropped: 1_000_000 - SITE_BURST
            }
        );
        let calm = SiteBudget::default();
        for s in 0..1000 {
            assert_eq!(
                calm.admit(("src/machine/mod.rs", 1), s * 1000),
                Verdict::Log { dropped: 0 }
            );
        }
    }

    #[test]
    fn the_site_table_is_bounded() {
        let b = SiteBudget::default();
        let files: Vec<&'static str> = (0..SITES_MAX + 10)
            .map(|i| &*Box::leak(format!("f{i}").into_boxed_str()))
            .collect();
        for f in &files {
            b.admit((f, 1), 0);
        }
        assert_eq!(b.sites.lock().unwrap().len(), SITES_MAX);
        assert_eq!(
            b.admit((files[SITES_MAX + 5], 1), 0),
            Verdict::Log { dropped: 0 }
        );
    }
}
