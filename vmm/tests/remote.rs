//! `ppc-remote` (the built binary) against the API server over a fake machine: every
//! subcommand end to end, its output and exit status.

mod support;

use std::process::Command;
use support::*;
use vmm::api::{Action, ServerConfig};
use vmm::machine::MachineState;

fn remote(sock: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ppc-remote"))
        .arg("--api-socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn queries_print_the_answer_as_json() {
    let r = rig("remote-q", ServerConfig::default());
    let (code, out, err) = remote(&r.sock, &["ping"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["pid"], std::process::id());
    let (code, out, _) = remote(&r.sock, &["info"]);
    assert_eq!(code, 0);
    let info = json(&out);
    assert_eq!(
        (info["state"].as_str(), info["boot_count"].as_u64()),
        (Some("running"), Some(1))
    );
    assert_eq!(
        json(&remote(&r.sock, &["counters"]).1)["vcpu0"]["hcalls"],
        7
    );
    r.machine.state.lock().unwrap().fadump = registered_engine();
    r.machine.state.lock().unwrap().last_dump = Some(dumped_outcome());
    let (code, out, _) = remote(&r.sock, &["fadump"]);
    assert_eq!(code, 0);
    let f = json(&out);
    assert_eq!(f["state"], "registered");
    assert_eq!(f["boot_memory"], 256u64 << 20);
    assert_eq!(f["last_dump"]["phases_ms"]["total"], 47.3);
    assert!(out.contains("\n  \"state\""), "indented: {out}");
}

#[test]
fn actions_reach_the_machine_and_print_nothing() {
    let r = rig("remote-a", ServerConfig::default());
    for cmd in [&["reboot"][..], &["nmi"], &["power-button"]] {
        let (code, out, err) = remote(&r.sock, cmd);
        assert_eq!((code, out.as_str()), (0, ""), "{cmd:?}: {err}");
    }
    let (code, _, err) = remote(&r.sock, &["coredump", "/var/tmp/g.core"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = remote(&r.sock, &["resize", "--memory", "2G"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(remote(&r.sock, &["shutdown"]).0, 0);
    assert_eq!(
        r.machine.applied(),
        vec![
            Action::Reboot,
            Action::Nmi,
            Action::PowerButton,
            Action::Coredump {
                path: "/var/tmp/g.core".into()
            },
            Action::Resize {
                desired_ram: 2 << 30
            },
            Action::Shutdown,
        ]
    );
}

#[test]
fn refusals_and_failures_exit_nonzero_with_the_servers_words() {
    let r = rig("remote-f", ServerConfig::default());
    r.machine.set_state(MachineState::Dumping);
    let (code, out, err) = remote(&r.sock, &["nmi"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("409") && err.contains("a dump is being written"),
        "{err}"
    );
    assert_eq!(json(&remote(&r.sock, &["fadump"]).1)["state"], "dumping");
    // Bad arguments never reach the server.
    assert_eq!(remote(&r.sock, &["coredump", "relative"]).0, 2);
    assert_eq!(remote(&r.sock, &["resize", "--memory", "lots"]).0, 2);
    assert_eq!(remote(&r.sock, &["bogus"]).0, 2);
    // No server there.
    let gone = r.dir.join("none.sock");
    let (code, _, err) = remote(&gone, &["ping"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(r.machine.applied().is_empty());
}

#[test]
fn a_server_that_never_answers_is_given_up_on_after_the_timeout() {
    let dir = temp_dir("remote-t");
    let sock = dir.join("mute.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ppc-remote"))
        .args(["--timeout", "1", "--api-socket"])
        .arg(&sock)
        .arg("info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no answer within"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn help_lists_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_ppc-remote"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "ping",
        "info",
        "counters",
        "fadump",
        "shutdown",
        "reboot",
        "power-button",
        "nmi",
        "coredump",
        "resize",
    ] {
        assert!(help.contains(sub), "{sub}: {help}");
    }
}
