//! `ppc-remote`: the operator API's command-line client, with ch-remote's subcommands.
//!
//! * [`client`]: one request over the Unix socket and its response, read under bounds.
//! * here: the clap command line and what each subcommand sends ([`Cli::request`]).

pub mod client;

use crate::api::types::{CoredumpData, ResizeData};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Control a running ppc-vmm through its --api-socket.
#[derive(Debug, Parser, PartialEq, Eq)]
#[command(name = "ppc-remote", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// The VMM's API socket (its `--api-socket path=`).
    #[arg(long, value_name = "PATH")]
    pub api_socket: PathBuf,
    /// Seconds to wait for the answer (a coredump of a large guest takes a while).
    #[arg(long, value_name = "SECS", default_value_t = 620)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: RemoteCommand,
}

/// One subcommand per endpoint, as ch-remote names them.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum RemoteCommand {
    /// Is the VMM alive? (version, pid)
    Ping,
    /// The VM's configuration, state and boot count.
    Info,
    /// Per-vCPU exit, hcall, RTAS and MMIO counts.
    Counters,
    /// The firmware-assisted dump: idle, registered (sections), dumping, dump active; the last
    /// dump's report and phase times.
    Fadump,
    /// Stop the VM (the VMM exits with status 0).
    Shutdown,
    /// Stop the VMM (the same as shutdown here: one VMM runs one VM).
    ShutdownVmm,
    /// Reset every vCPU and device and boot again.
    Reboot,
    /// Press the power button (the guest is asked to shut down).
    PowerButton,
    /// Inject a system reset (NMI) into every vCPU: a guest with fadump registered dumps.
    Nmi,
    /// Write the guest's memory as an ELF core file, from the host.
    Coredump {
        /// `file:///absolute/path`, or an absolute path.
        destination_url: String,
    },
    /// Resize the guest's memory.
    Resize {
        /// The new RAM size: `2G`, `1536M`, bytes.
        #[arg(long, value_parser = parse_memory)]
        memory: u64,
    },
}

fn parse_memory(s: &str) -> Result<u64, String> {
    crate::cli::parse_size(s).map_err(|e| e.0)
}

/// What a subcommand sends: method, endpoint under `/api/v1/`, JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRequest {
    pub method: &'static str,
    pub endpoint: &'static str,
    pub body: Option<String>,
}

impl RemoteCommand {
    /// The request this subcommand sends, or why its arguments are refused.
    pub fn request(&self) -> Result<RemoteRequest, String> {
        let (method, endpoint) = match self {
            RemoteCommand::Ping => ("GET", "vmm.ping"),
            RemoteCommand::Info => ("GET", "vm.info"),
            RemoteCommand::Counters => ("GET", "vm.counters"),
            RemoteCommand::Fadump => ("GET", "vm.fadump"),
            RemoteCommand::Shutdown => ("PUT", "vm.shutdown"),
            RemoteCommand::ShutdownVmm => ("PUT", "vmm.shutdown"),
            RemoteCommand::Reboot => ("PUT", "vm.reboot"),
            RemoteCommand::PowerButton => ("PUT", "vm.power-button"),
            RemoteCommand::Nmi => ("PUT", "vm.nmi"),
            RemoteCommand::Coredump { .. } => ("PUT", "vm.coredump"),
            RemoteCommand::Resize { .. } => ("PUT", "vm.resize"),
        };
        let body = match self {
            RemoteCommand::Coredump { destination_url } => {
                let url = if destination_url.starts_with('/') {
                    format!("file://{destination_url}")
                } else if destination_url.starts_with("file:///") {
                    destination_url.clone()
                } else {
                    return Err(format!(
                        "coredump: {destination_url:?} is neither file:///path nor an absolute \
                         path"
                    ));
                };
                Some(to_json(&CoredumpData {
                    destination_url: url,
                })?)
            }
            RemoteCommand::Resize { memory } => Some(to_json(&ResizeData {
                desired_ram: Some(*memory),
                ..ResizeData::default()
            })?),
            _ => None,
        };
        Ok(RemoteRequest {
            method,
            endpoint,
            body,
        })
    }
}

fn to_json(v: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}

/// Runs `ppc-remote` with `args` (program name first); prints the answer's JSON on stdout,
/// an error on stderr. Exit status: 0 answered 2xx, 1 answered otherwise or no answer, 2 a
/// bad command line.
pub fn main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let req = match cli.command.request() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ppc-remote: {e}");
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_secs(cli.timeout.max(1));
    match client::send(&cli.api_socket, &req, timeout) {
        Ok(resp) => {
            let pretty = resp.pretty_body();
            if (200..300).contains(&resp.status) {
                if !pretty.is_empty() {
                    println!("{pretty}");
                }
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "ppc-remote: {} {}: {} {}",
                    req.method,
                    req.endpoint,
                    resp.status,
                    resp.error_message().unwrap_or(pretty)
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("ppc-remote: {}: {e}", cli.api_socket.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ppc-remote").chain(a.iter().copied()))
    }

    fn req(a: &[&str]) -> RemoteRequest {
        parse(a).unwrap().command.request().unwrap()
    }

    #[test]
    fn every_subcommand_sends_its_endpoint_and_verb() {
        let s = ["--api-socket", "/tmp/s"];
        for (cmd, method, endpoint) in [
            ("ping", "GET", "vmm.ping"),
            ("info", "GET", "vm.info"),
            ("counters", "GET", "vm.counters"),
            ("fadump", "GET", "vm.fadump"),
            ("shutdown", "PUT", "vm.shutdown"),
            ("shutdown-vmm", "PUT", "vmm.shutdown"),
            ("reboot", "PUT", "vm.reboot"),
            ("power-button", "PUT", "vm.power-button"),
            ("nmi", "PUT", "vm.nmi"),
        ] {
            let r = req(&[s[0], s[1], cmd]);
            assert_eq!(
                (r.method, r.endpoint, r.body),
                (method, endpoint, None),
                "{cmd}"
            );
        }
    }

    #[test]
    fn coredump_and_resize_send_cloud_hypervisor_bodies() {
        let r = req(&["--api-socket", "/s", "coredump", "/var/tmp/guest.core"]);
        assert_eq!(
            r.body.as_deref(),
            Some(r#"{"destination_url":"file:///var/tmp/guest.core"}"#)
        );
        let r = req(&["--api-socket", "/s", "coredump", "file:///x"]);
        assert_eq!(
            r.body.as_deref(),
            Some(r#"{"destination_url":"file:///x"}"#)
        );
        let bad = parse(&["--api-socket", "/s", "coredump", "rel/path"]).unwrap();
        assert!(bad.command.request().is_err());
        let r = req(&["--api-socket", "/s", "resize", "--memory", "2G"]);
        assert_eq!((r.method, r.endpoint), ("PUT", "vm.resize"));
        assert_eq!(r.body.as_deref(), Some(r#"{"desired_ram":2147483648}"#));
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(parse(&["ping"]).is_err(), "--api-socket is required");
        assert!(
            parse(&["--api-socket", "/s"]).is_err(),
            "a subcommand is required"
        );
        assert!(parse(&["--api-socket", "/s", "frobnicate"]).is_err());
        assert!(parse(&["--api-socket", "/s", "resize"]).is_err());
        assert!(parse(&["--api-socket", "/s", "resize", "--memory", "lots"]).is_err());
        assert!(parse(&["--api-socket", "/s", "coredump"]).is_err());
        let c = parse(&["--api-socket=/s", "--timeout", "5", "info"]).unwrap();
        assert_eq!((c.timeout, c.command), (5, RemoteCommand::Info));
    }
}
