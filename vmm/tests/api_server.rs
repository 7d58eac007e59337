//! The operator API end to end over a Unix socket: the real server and routes, a fake machine
//! (tests/support) answering with the real body builders. Hostile input gets its 4xx, the
//! server keeps serving, the machine is not touched, nothing grows without bound.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use support::*;
use vmm::api::http::Limits;
use vmm::api::{Action, ServerConfig};
use vmm::machine::MachineState;

fn quick() -> ServerConfig {
    ServerConfig {
        limits: Limits {
            max_header_bytes: 4096,
            max_body_bytes: 1024,
            request_timeout: Duration::from_millis(400),
        },
        workers: 2,
        backlog: 2,
        take_timeout: Duration::from_millis(300),
        op_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(2),
    }
}

#[test]
fn ping_info_counters_and_fadump_answer_with_their_bodies() {
    let r = rig("routes", quick());
    let (st, body) = call(&r.sock, "GET", "vmm.ping", None);
    assert_eq!(st, 200);
    let ping = json(&body);
    assert_eq!(ping["pid"], std::process::id());
    assert_eq!(ping["version"], env!("CARGO_PKG_VERSION"));

    let (st, body) = call(&r.sock, "GET", "vm.info", None);
    assert_eq!(st, 200, "{body}");
    let info = json(&body);
    assert_eq!(info["state"], "running");
    assert_eq!(info["boot_count"], 1);
    assert_eq!(info["config"]["cpus"], 2);
    assert_eq!(info["config"]["memory"], 1u64 << 30);
    assert_eq!(info["config"]["mmu"], "radix");
    assert_eq!(info["config"]["disks"][0]["path"], "/tmp/disk0.img");

    let (st, body) = call(&r.sock, "GET", "vm.counters", None);
    assert_eq!(st, 200);
    assert_eq!(json(&body)["vcpu0"]["exits"], 42);

    let (st, body) = call(&r.sock, "GET", "vm.fadump", None);
    assert_eq!(st, 200);
    let f = json(&body);
    assert_eq!(f["state"], "idle");
    assert!(f.get("last_dump").is_none());

    // Registered, then a dump: sections, boot memory and the last report with its phases.
    r.machine.state.lock().unwrap().fadump = registered_engine();
    let f = json(&call(&r.sock, "GET", "vm.fadump", None).1);
    assert_eq!(f["state"], "registered");
    assert_eq!(f["sections"].as_array().unwrap().len(), 2);
    assert_eq!(f["sections"][1]["kind"], "boot-memory");
    assert_eq!(f["boot_memory"], 256u64 << 20);
    r.machine.state.lock().unwrap().last_dump = Some(dumped_outcome());
    let f = json(&call(&r.sock, "GET", "vm.fadump", None).1);
    assert_eq!(f["last_dump"]["outcome"], "dumped");
    assert_eq!(f["last_dump"]["status"], "0xc000");
    assert_eq!(f["last_dump"]["phases_ms"]["dump"], 40.0);
    assert!(r.machine.applied().is_empty());
}

#[test]
fn reboot_and_shutdown_reach_the_machine_and_answer_204() {
    let r = rig("actions", quick());
    assert_eq!(call(&r.sock, "PUT", "vm.reboot", None).0, 204);
    assert_eq!(
        json(&call(&r.sock, "GET", "vm.info", None).1)["boot_count"],
        2
    );
    assert_eq!(call(&r.sock, "PUT", "vm.shutdown", None).0, 204);
    assert_eq!(r.machine.applied(), vec![Action::Reboot, Action::Shutdown]);
    // The VM has stopped: machine requests are refused, ping still answers.
    assert_eq!(call(&r.sock, "GET", "vm.info", None).0, 503);
    assert_eq!(call(&r.sock, "GET", "vmm.ping", None).0, 200);
}

#[test]
fn the_socket_is_private_a_stale_one_is_replaced_and_a_live_one_kept() {
    let r = rig("perm", quick());
    let meta = std::fs::symlink_metadata(&r.sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // A second server on the same path is refused while the first serves.
    let (link, _q) = vmm::api::machine_channel(1).unwrap();
    let e = vmm::api::ApiServer::start(&r.sock, link, quick()).unwrap_err();
    assert!(e.to_string().contains("another process"), "{e}");
    assert_eq!(call(&r.sock, "GET", "vmm.ping", None).0, 200);
    // A stale socket (its listener gone) is replaced; a regular file is not touched.
    let dir = temp_dir("stale");
    let stale = dir.join("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (link, _q) = vmm::api::machine_channel(1).unwrap();
    let mut s = vmm::api::ApiServer::start(&stale, link, quick()).unwrap();
    assert_eq!(call(&stale, "GET", "vmm.ping", None).0, 200);
    s.stop(Duration::ZERO);
    assert!(!stale.exists(), "stop removes the socket");
    let file = dir.join("f");
    std::fs::write(&file, b"keep").unwrap();
    let (link, _q) = vmm::api::machine_channel(1).unwrap();
    assert!(vmm::api::ApiServer::start(&file, link, quick()).is_err());
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_requests_get_4xx_and_the_server_and_guest_carry_on() {
    let r = rig("bad", quick());
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n".to_vec(), 400),
        (b"GET /api/v1/vm.info HTTP/9\r\n\r\n".to_vec(), 400),
        (b"GET /nope HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"GET /api/v1/vm.frobnicate HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"PUT /api/v1/vm.pause HTTP/1.1\r\n\r\n".to_vec(), 501),
        (b"GET /api/v1/vm.reboot HTTP/1.1\r\n\r\n".to_vec(), 405),
        (b"POST /api/v1/vm.nmi HTTP/1.1\r\n\r\n".to_vec(), 405),
        (
            b"PUT /api/v1/vm.coredump HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n{".to_vec(),
            413,
        ),
        (
            b"PUT /api/v1/vm.coredump HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            411,
        ),
        (
            format!(
                "GET /api/v1/vm.info HTTP/1.1\r\nX: {}\r\n\r\n",
                "y".repeat(5000)
            )
            .into_bytes(),
            431,
        ),
        (
            b"PUT /api/v1/vm.coredump HTTP/1.1\r\nContent-Length: 9\r\n\r\nnot json!".to_vec(),
            400,
        ),
        (
            b"PUT /api/v1/vm.resize HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            400,
        ),
    ];
    for (req, want) in &cases {
        let (st, body) = raw(&r.sock, req);
        assert_eq!(st, *want, "{:?} -> {body}", String::from_utf8_lossy(req));
        assert!(json(&body)["error"].is_string(), "{body}");
    }
    // An oversized body is refused from its Content-Length: the server never reads it.
    let mut s = UnixStream::connect(&r.sock).unwrap();
    s.write_all(b"PUT /api/v1/vm.coredump HTTP/1.1\r\nContent-Length: 4294967296\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(parse_response(&out).0, 413);
    assert!(
        r.machine.applied().is_empty(),
        "no bad request reached the guest"
    );
    assert_eq!(call(&r.sock, "GET", "vm.info", None).0, 200);
}

#[test]
fn a_silent_client_is_dropped_with_408_while_others_are_served() {
    let r = rig("silent", quick());
    let mut silent = UnixStream::connect(&r.sock).unwrap();
    // Another client is served while the silent one holds a worker.
    assert_eq!(call(&r.sock, "GET", "vmm.ping", None).0, 200);
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = Vec::new();
    silent.read_to_end(&mut out).unwrap();
    assert_eq!(parse_response(&out).0, 408);
    assert_eq!(call(&r.sock, "GET", "vm.info", None).0, 200);
}

#[test]
fn many_clients_at_once_are_served_or_refused_503_never_hung() {
    let mut config = quick();
    // Long enough that every connection below arrives while the first ones are still held.
    config.limits.request_timeout = Duration::from_secs(2);
    let r = rig("many", config);
    // Twice as many silent connections as workers + backlog (4), then a ping: at most 4 are
    // held at once, the others are answered 503 at once; the held ones get 408 in the end.
    let mut conns: Vec<UnixStream> = (0..8)
        .map(|_| UnixStream::connect(&r.sock).unwrap())
        .collect();
    let mut ping = UnixStream::connect(&r.sock).unwrap();
    ping.write_all(b"GET /api/v1/vmm.ping HTTP/1.1\r\n\r\n")
        .unwrap();
    conns.push(ping);
    let answers: Vec<u16> = conns
        .into_iter()
        .map(|mut h| {
            h.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut out = Vec::new();
            let _ = h.read_to_end(&mut out);
            parse_response(&out).0
        })
        .collect();
    assert!(
        answers[..8].iter().all(|s| *s == 408 || *s == 503),
        "{answers:?}"
    );
    assert!(matches!(answers[8], 200 | 503), "{answers:?}");
    assert!(
        answers.iter().filter(|s| **s == 503).count() >= 5,
        "{answers:?}"
    );
    // 40 clients at once: each gets a whole answer, 200 or 503.
    let sock = r.sock.clone();
    let answers: Vec<u16> = (0..40)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || call(&sock, "GET", "vm.info", None).0)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 503),
        "{answers:?}"
    );
    assert!(answers.contains(&200), "{answers:?}");
    // The silent holders timed out; the server answers again.
    let mut ok = false;
    for _ in 0..100 {
        if call(&r.sock, "GET", "vm.info", None).0 == 200 {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok);
}

#[test]
fn nmi_and_coredump_while_a_dump_is_being_written_are_refused_409() {
    let r = rig("dumping", quick());
    r.machine.set_state(MachineState::Dumping);
    let (st, body) = call(&r.sock, "PUT", "vm.nmi", None);
    assert_eq!(st, 409, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("dump is being written"));
    let (st, _) = call(
        &r.sock,
        "PUT",
        "vm.coredump",
        Some(r#"{"destination_url":"file:///tmp/x.core"}"#),
    );
    assert_eq!(st, 409);
    assert_eq!(call(&r.sock, "PUT", "vm.reboot", None).0, 409);
    // Reading the fadump state does not wait for the busy machine.
    let f = json(&call(&r.sock, "GET", "vm.fadump", None).1);
    assert_eq!(f["state"], "dumping");
    r.machine.set_state(MachineState::Running);
    assert!(r.machine.applied().is_empty());
    assert_eq!(call(&r.sock, "PUT", "vm.nmi", None).0, 204);
    assert_eq!(r.machine.applied(), vec![Action::Nmi]);
}

#[test]
fn a_request_the_busy_machine_did_not_take_in_time_is_never_applied() {
    let r = rig("busy", quick());
    r.machine
        .paused
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (st, body) = call(&r.sock, "PUT", "vm.nmi", None);
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("not applied"), "{body}");
    r.machine
        .paused
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // The machine is free again: the given-up NMI is dropped, a new request is served.
    assert_eq!(call(&r.sock, "GET", "vm.info", None).0, 200);
    assert!(r.machine.applied().is_empty(), "{:?}", r.machine.applied());
}

#[test]
fn a_request_from_before_a_crash_or_reboot_is_not_applied_to_the_next_boot() {
    let mut config = quick();
    config.take_timeout = Duration::from_secs(30);
    let r = rig("stale", config);
    r.machine
        .paused
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let sock = r.sock.clone();
    let t = std::thread::spawn(move || call(&sock, "PUT", "vm.nmi", None));
    while r.server.requests_waiting() == 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    // The guest crashes into the capture kernel before the machine takes the NMI.
    r.machine.next_boot();
    r.machine
        .paused
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (st, body) = t.join().unwrap();
    assert_eq!(st, 409, "{body}");
    assert!(body.contains("booted again"), "{body}");
    assert!(r.machine.applied().is_empty());
}

#[test]
fn ppc_vmm_refuses_an_api_socket_or_event_monitor_it_cannot_use_before_building_the_vm() {
    let dir = temp_dir("vmm-bin");
    let kernel = dir.join("vmlinux");
    std::fs::write(&kernel, b"not looked at before the options are checked").unwrap();
    let file = dir.join("regular");
    std::fs::write(&file, b"keep").unwrap();
    let run = |extra: &[String]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ppc-vmm"))
            .arg("--kernel")
            .arg(&kernel)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&[format!("--api-socket=path={}", file.display())]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--api-socket") && err.contains("not a socket"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    let (code, err) = run(&[
        "--event-monitor".into(),
        format!("path={}", dir.join("no/such/dir/events").display()),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--event-monitor"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
