//! Test doubles for the operator API: a fake machine answering [`ApiRequest`]s the way the
//! real one does (the same body builders, a real firmware fadump engine), and a raw HTTP
//! client. No KVM: the server, the routes and `ppc-remote` are tested end to end on any host.
#![allow(dead_code)]

use firmware::fadump::layout::{DumpSection, KernelDumpStructure, SectionType};
use firmware::fadump::{DumpReport, Fadump, FadumpConfig, FadumpState};
use firmware::GuestRange;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vmm::api::types::Counters;
use vmm::api::{machine_channel, Action, ApiQueue, ApiServer, MachineLink, Reply, ServerConfig};
use vmm::config::{MmuMode, PreserveMode, VmConfig};
use vmm::machine::api_ops::{fadump_info, vm_info};
use vmm::machine::{CrashOutcome, MachineState, Phases};

/// What the fake machine is and has done.
pub struct FakeState {
    pub state: MachineState,
    pub boots: u32,
    pub fadump: Fadump,
    pub last_dump: Option<CrashOutcome>,
    /// Every mutating action it acted on, in order.
    pub applied: Vec<Action>,
}

pub struct FakeMachine {
    pub state: Arc<Mutex<FakeState>>,
    /// While set the machine takes no request (it is "busy").
    pub paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    queue_status: Arc<vmm::api::MachineStatus>,
}

pub fn config() -> VmConfig {
    VmConfig {
        kernel: "/payload/guest/vmlinux".into(),
        initramfs: Some("/payload/guest/initrd.cpio.gz".into()),
        cmdline: "console=hvc0 fadump=on".into(),
        memory: 1 << 30,
        hotplug_size: 0,
        prefault: false,
        cpus: 2,
        serial: vmm::console::SerialMode::Off,
        disks: vec![vmm::devices::disk_spec::DiskSpec {
            path: "/tmp/disk0.img".into(),
            readonly: false,
        }],
        mmu: MmuMode::Radix,
        preserve: PreserveMode::Copy,
        on_crash: Default::default(),
    }
}

pub fn fadump_config() -> FadumpConfig {
    FadumpConfig {
        max_cpus: 2,
        hpte_capacity: 0,
        rma_size: 1 << 30,
        firmware_reserved: vec![GuestRange::new(0x7000_0000, 0x10_0000).unwrap()],
    }
}

/// A structure as Linux registers it: CPU state, 256 MiB of boot memory copied to 512 MiB.
pub fn registration() -> KernelDumpStructure {
    let cpu = fadump_config().cpu_state_size();
    let bytes = KernelDumpStructure::registration_bytes(&[
        DumpSection::request(SectionType::CPU_STATE, 0, cpu, 0x2000_0000),
        DumpSection::request(SectionType::REAL_MODE_REGION, 0, 256 << 20, 0x2010_0000),
    ]);
    KernelDumpStructure::decode(&bytes).unwrap()
}

pub fn registered_engine() -> Fadump {
    Fadump::restore(fadump_config(), FadumpState::Registered(registration())).unwrap()
}

pub fn dumped_outcome() -> CrashOutcome {
    CrashOutcome::Dumped {
        report: DumpReport {
            sections: Vec::new(),
            status: 0xc000,
            cpus_saved: 2,
            bytes_copied: 256 << 20,
            bytes_remapped: 0,
            kernel_dump: Vec::new(),
        },
        phases: Phases {
            stop: Duration::from_micros(300),
            dump: Duration::from_millis(40),
            reset: Duration::from_millis(2),
            boot: Duration::from_millis(5),
        },
        missing: Vec::new(),
    }
}

impl FakeMachine {
    /// A running fake machine (boot #1) serving `queue`.
    pub fn start(queue: ApiQueue) -> FakeMachine {
        let state = Arc::new(Mutex::new(FakeState {
            state: MachineState::Running,
            boots: 1,
            fadump: Fadump::new(fadump_config()),
            last_dump: None,
            applied: Vec::new(),
        }));
        queue.status.set_state(MachineState::Running);
        queue.status.set_boots(1);
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let queue_status = queue.status.clone();
        let thread = {
            let (state, paused, stop) = (state.clone(), paused.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if paused.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    let Some(req) = queue.next() else {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    let mut s = state.lock().unwrap();
                    let reply = answer(&mut s, &req.action, &queue);
                    let _ = req.reply.try_send(reply);
                }
            })
        };
        FakeMachine {
            state,
            paused,
            stop,
            thread: Some(thread),
            queue_status,
        }
    }

    /// Changes the state the API threads see (e.g. `Dumping`) and the fake's own.
    pub fn set_state(&self, st: MachineState) {
        self.state.lock().unwrap().state = st;
        self.queue_status.set_state(st);
    }

    /// A new boot (as a crash or a reboot makes).
    pub fn next_boot(&self) {
        let mut s = self.state.lock().unwrap();
        s.boots += 1;
        self.queue_status.set_boots(s.boots);
    }

    pub fn applied(&self) -> Vec<Action> {
        self.state.lock().unwrap().applied.clone()
    }
}

impl Drop for FakeMachine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(s: &mut FakeState, action: &Action, q: &ApiQueue) -> Reply {
    match action {
        Action::Info => Reply::json(vm_info(&config(), s.state, s.boots)),
        Action::Counters => {
            let mut c = Counters::new();
            c.insert(
                "vcpu0".into(),
                [("exits".to_string(), 42), ("hcalls".to_string(), 7)]
                    .into_iter()
                    .collect(),
            );
            Reply::json(c)
        }
        Action::Fadump => Reply::json(fadump_info(&s.fadump, s.last_dump.as_ref())),
        Action::Reboot => {
            s.applied.push(action.clone());
            s.boots += 1;
            q.status.set_boots(s.boots);
            Reply::no_content()
        }
        Action::Shutdown => {
            s.applied.push(action.clone());
            s.state = MachineState::Off;
            q.status.set_state(MachineState::Off);
            Reply::no_content()
        }
        other => {
            s.applied.push(other.clone());
            Reply::no_content()
        }
    }
}

/// A server on a fresh socket in a fresh directory, over a fake machine.
pub struct Rig {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub server: ApiServer,
    pub machine: FakeMachine,
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ppc-vmm-api-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn rig(tag: &str, config: ServerConfig) -> Rig {
    let dir = temp_dir(tag);
    let sock = dir.join("api.sock");
    let (link, queue): (MachineLink, ApiQueue) = machine_channel(8).unwrap();
    let machine = FakeMachine::start(queue);
    let server = ApiServer::start(&sock, link, config).unwrap();
    Rig {
        dir,
        sock,
        server,
        machine,
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.server.stop(Duration::ZERO);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `raw` and returns (status, body) of the answer (status 0: the server closed
/// without one).
pub fn raw(sock: &Path, raw: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_response(&out)
}

pub fn parse_response(out: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `METHOD /api/v1/ENDPOINT` with an optional JSON body.
pub fn call(sock: &Path, method: &str, endpoint: &str, body: Option<&str>) -> (u16, String) {
    let mut req =
        format!("{method} /api/v1/{endpoint} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    raw(sock, req.as_bytes())
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}
