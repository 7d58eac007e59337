//! `--event-monitor path=FILE`: lifecycle events as JSON lines, in cloud-hypervisor's shape
//! (`timestamp` since the VMM started as `{secs, nanos}`, `source`, `event`, `properties`),
//! one object per line so `tail -f` and line-oriented tools read it.
//!
//! Events: `vmm/starting`; `vm/booted` (`boot`, `kind`: boot, reboot or capture);
//! `vm/rebooting`; `guest/panic` (`ibm,os-term`: `message`, `fadump`); `vm/fadump-registered`
//! (`sections`, `boot_memory`), `vm/fadump-unregistered`, `vm/fadump-invalidated`;
//! `vm/fadump-dump-started`, `vm/fadump-dump-written` (report and `phases_ms`),
//! `vm/fadump-dump-refused`; `vm/nmi` (`vcpus` reached), `vm/power-button`,
//! `vm/coredump-written` (`trigger`, `path`, sizes, `paused_ms`); `vm/shutdown` (`reason`). Other parts of the VMM add theirs
//! through [`emit`] / [`emit_from`]; both do nothing when no monitor is configured.
//!
//! A guest can repeat what causes an event (register and unregister in a loop, reboot
//! forever): each event name is limited as `guest_warn!` lines are ([`crate::ratelimit`]), so
//! the file cannot grow without bound. A write that fails is dropped (and logged, limited):
//! the guest never waits for the monitor (the file is opened non-blocking, as
//! cloud-hypervisor does, so a FIFO without a reader drops events instead of stalling).

use firmware::fadump::layout::SectionType;
use firmware::fadump::{Fadump, FadumpState};
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One event as written.
#[derive(Debug, Serialize)]
struct Event<'a> {
    timestamp: Duration,
    source: &'a str,
    event: &'a str,
    properties: &'a serde_json::Value,
}

/// A monitor writing to one file.
#[derive(Debug)]
pub struct Monitor {
    file: Mutex<File>,
    start: Instant,
    /// Per event name: how many were seen (for the limit).
    seen: Mutex<HashMap<String, &'static AtomicU64>>,
}

impl Monitor {
    /// Opens (creates, appends to) `path`.
    pub fn open(path: &Path) -> std::io::Result<Monitor> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        Ok(Monitor {
            file: Mutex::new(file),
            start: Instant::now(),
            seen: Mutex::new(HashMap::new()),
        })
    }

    fn counter(&self, event: &str) -> &'static AtomicU64 {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = seen.get(event) {
            return c;
        }
        // One counter per distinct event name (the names are the VMM's, a handful): leaked
        // so the limiter can hold it without the lock.
        let c: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        seen.insert(event.to_string(), c);
        c
    }

    /// Writes one event (subject to the per-name limit).
    pub fn emit(&self, source: &str, event: &str, properties: serde_json::Value) {
        let Some(note) = crate::ratelimit::admit(self.counter(event)) else {
            return;
        };
        let mut properties = properties;
        if !note.is_empty() {
            if let serde_json::Value::Object(m) = &mut properties {
                m.insert("limited".into(), note.trim().into());
            }
        }
        let e = Event {
            timestamp: self.start.elapsed(),
            source,
            event,
            properties: &properties,
        };
        let Ok(mut line) = serde_json::to_vec(&e) else {
            return;
        };
        line.push(b'\n');
        // One write of the whole line: lines of concurrent writers never interleave.
        let r = self
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&line);
        if let Err(e) = r {
            crate::guest_warn!("event monitor: {source}/{event} dropped: {e}");
        }
    }
}

static MONITOR: OnceLock<Monitor> = OnceLock::new();

/// Sends every event from now on to `path` (once per process); emits `vmm/starting`.
pub fn set_monitor(path: &Path) -> std::io::Result<()> {
    let m = Monitor::open(path)?;
    if MONITOR.set(m).is_err() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "an event monitor is already set",
        ));
    }
    emit_from(
        "vmm",
        "starting",
        serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "pid": std::process::id() }),
    );
    Ok(())
}

/// An event of the VM (source `vm`).
pub fn emit(event: &str, properties: serde_json::Value) {
    emit_from("vm", event, properties);
}

/// An event from `source` (`vmm`, `vm`, `guest`, a device).
pub fn emit_from(source: &str, event: &str, properties: serde_json::Value) {
    if let Some(m) = MONITOR.get() {
        m.emit(source, event, properties);
    }
}

/// Whether a monitor is configured (callers skip building costly properties otherwise).
pub fn enabled() -> bool {
    MONITOR.get().is_some()
}

/// The properties of a registration: its sections and the boot memory they preserve.
pub fn registration_properties(f: &Fadump) -> serde_json::Value {
    let (FadumpState::Registered(s) | FadumpState::DumpActive(s)) = f.state() else {
        return serde_json::json!({});
    };
    let boot_memory: u64 = s
        .sections()
        .iter()
        .filter(|x| x.data_type == SectionType::REAL_MODE_REGION)
        .map(|x| x.source_len)
        .sum();
    let types: Vec<String> = s
        .sections()
        .iter()
        .map(|x| format!("{:#06x}", x.data_type.0))
        .collect();
    serde_json::json!({ "sections": types, "boot_memory": boot_memory })
}

/// The fadump events of one RTAS call that moved the engine from `before` to `after`
/// (registered, unregistered, invalidated); `None` when its state kind did not change.
pub fn fadump_transition(before: &FadumpState, after: &Fadump) -> Option<&'static str> {
    match (before, after.state()) {
        (FadumpState::Idle, FadumpState::Registered(_)) => Some("fadump-registered"),
        (FadumpState::Registered(_), FadumpState::Idle) => Some("fadump-unregistered"),
        (FadumpState::DumpActive(_), FadumpState::Idle) => Some("fadump-invalidated"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("ppc-vmm-events-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn lines(p: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn events_are_json_lines_in_cloud_hypervisors_shape() {
        let p = temp("shape");
        let m = Monitor::open(&p).unwrap();
        m.emit(
            "vm",
            "booted",
            serde_json::json!({ "boot": 1, "kind": "boot" }),
        );
        m.emit(
            "guest",
            "panic",
            serde_json::json!({ "message": "sysrq\ttriggered\n" }),
        );
        m.emit("vm", "shutdown", serde_json::Value::Null);
        let l = lines(&p);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0]["source"], "vm");
        assert_eq!(l[0]["event"], "booted");
        assert_eq!(l[0]["properties"]["boot"], 1);
        assert!(l[0]["timestamp"]["secs"].is_u64() && l[0]["timestamp"]["nanos"].is_u64());
        assert_eq!(l[1]["properties"]["message"], "sysrq\ttriggered\n");
        assert!(l[2]["properties"].is_null());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn a_guest_repeating_an_event_cannot_grow_the_file_without_bound() {
        let p = temp("limit");
        let m = Monitor::open(&p).unwrap();
        for _ in 0..50_000 {
            m.emit("vm", "fadump-registered", serde_json::json!({}));
        }
        m.emit("vm", "shutdown", serde_json::json!({}));
        let l = lines(&p);
        let registered = l
            .iter()
            .filter(|e| e["event"] == "fadump-registered")
            .count();
        assert!(registered <= 20, "{registered}");
        assert!(l.iter().any(|e| e["properties"]["limited"].is_string()));
        // Another event is not limited by the first one's count.
        assert_eq!(l.last().unwrap()["event"], "shutdown");
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn registrations_and_their_transitions_are_described() {
        use firmware::fadump::layout::{DumpSection, KernelDumpStructure};
        use firmware::fadump::FadumpConfig;
        let config = FadumpConfig {
            max_cpus: 1,
            hpte_capacity: 0,
            rma_size: 1 << 30,
            firmware_reserved: Vec::new(),
        };
        let bytes = KernelDumpStructure::registration_bytes(&[
            DumpSection::request(SectionType::CPU_STATE, 0, config.cpu_state_size(), 1 << 28),
            DumpSection::request(SectionType::REAL_MODE_REGION, 0, 32 << 20, 1 << 29),
        ]);
        let s = KernelDumpStructure::decode(&bytes).unwrap();
        let reg = Fadump::restore(config.clone(), FadumpState::Registered(s.clone())).unwrap();
        let props = registration_properties(&reg);
        assert_eq!(props["boot_memory"], 32u64 << 20);
        assert_eq!(props["sections"], serde_json::json!(["0x0001", "0x0011"]));
        let idle = Fadump::new(config.clone());
        assert_eq!(
            fadump_transition(&FadumpState::Idle, &reg),
            Some("fadump-registered")
        );
        assert_eq!(
            fadump_transition(&FadumpState::Registered(s.clone()), &idle),
            Some("fadump-unregistered")
        );
        assert_eq!(
            fadump_transition(&FadumpState::DumpActive(s.clone()), &idle),
            Some("fadump-invalidated")
        );
        assert_eq!(fadump_transition(&FadumpState::Registered(s), &reg), None);
        assert_eq!(fadump_transition(&FadumpState::Idle, &idle), None);
    }
}
