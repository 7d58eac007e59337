//! Command-line parsing, in the style of cloud-hypervisor (`--kernel`, `--memory size=…`).

use crate::config::{MmuMode, PreserveMode, VmConfig};
use crate::console::SerialMode;
use crate::devices::disk_spec::{DiskSpec, DISK_HELP};
use std::path::PathBuf;

pub const DEFAULT_MEMORY: u64 = 512 << 20;
pub const DEFAULT_CMDLINE: &str = "console=hvc0";

pub const HELP: &str = "\
ppc-vmm: boot an unmodified Linux pseries guest on ppc64 KVM-HV (POWER9/POWER10 host,
or a nested KVM-HV L1).

USAGE:
    ppc-vmm --kernel <vmlinux> [OPTIONS]

OPTIONS:
    --kernel <path>        Guest kernel: an uncompressed ppc64le ELF `vmlinux` (required).
                           Loaded at its physical address and entered directly with a
                           flattened device tree (no SLOF/OpenFirmware).
    --initramfs <path>     Initial ramdisk (e.g. a gzip'd cpio archive).
    --cmdline <string>     Kernel command line [default: \"console=hvc0\"].
    --memory <size>        Guest RAM: `512M`, `2G`, or cloud-hypervisor style `size=512M`
                           [default: 512M; minimum 64M; a multiple of 64K].
    --cpus <n>             vCPUs: `2` or `boot=2` [default: 1]. Secondary vCPUs stay stopped
                           until the guest starts them with RTAS start-cpu.
    --mmu <mode>           Guest MMU: `radix` (default) or `hash` (hash page table sized
                           RAM/128 or more; needs a bare-metal POWER9 KVM-HV host, e.g. a
                           powernv L1: a nested pseries KVM runs radix guests only).
    --fadump-preserve <how>
                           How a fadump crash preserves boot memory: `copy` (default),
                           `remap` (move its host pages under the guest mapping instead) or
                           `remap-zero` (the same, boot memory refaults as zero pages).
    --serial <mode>        Guest console (hvc0): `tty` (stdout/stdin, default),
                           `file=<path>` (append output to a file), or `off`.
    --api-socket path=<file>
                           Serve the operator API (HTTP over a Unix socket, mode 0600;
                           cloud-hypervisor's /api/v1/ paths; see ppc-remote).
    --log-level <level>    VMM log level on stderr: error, warn, info, debug, trace
                           [default: warn].
    -h, --help             Show this help.
    -V, --version          Show the version.

The guest powering off ends ppc-vmm with status 0; a guest reboot boots again in the same
process. Example:
    ppc-vmm --kernel vmlinux --initramfs initramfs.cpio.gz --cpus 2 --memory 1G \\
            --cmdline \"console=hvc0 rdinit=/init\"
";

/// The full `--help` text: [`HELP`] with the `--disk` option inserted before `--log-level`.
pub fn help() -> String {
    let at = HELP.find("    --log-level").unwrap_or(HELP.len());
    format!("{}{DISK_HELP}\n{}", &HELP[..at], &HELP[at..])
}

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run {
        config: VmConfig,
        log_level: log::LevelFilter,
        /// `--api-socket path=FILE`.
        api_socket: Option<PathBuf>,
    },
    Help,
    Version,
}

/// A bad command line, with a message meant for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}\nRun `ppc-vmm --help` for usage.")]
pub struct CliError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError(msg.into()))
}

/// `512M`, `2G`, `1048576`, `64K`, optionally with a `size=` prefix.
pub fn parse_size(s: &str) -> Result<u64, CliError> {
    let v = s.strip_prefix("size=").unwrap_or(s);
    let (num, shift) = match v.chars().last() {
        Some('K' | 'k') => (&v[..v.len() - 1], 10),
        Some('M' | 'm') => (&v[..v.len() - 1], 20),
        Some('G' | 'g') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| CliError(format!("invalid size `{s}` (try 512M or 2G)")))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| CliError(format!("size `{s}` is too large")))
}

fn parse_cpus(s: &str) -> Result<u32, CliError> {
    let v = s.strip_prefix("boot=").unwrap_or(s);
    match v.parse::<u32>() {
        Ok(n) if (1..=crate::MAX_CPUS).contains(&n) => Ok(n),
        _ => err(format!(
            "invalid --cpus `{s}`: expected a number from 1 to {}",
            crate::MAX_CPUS
        )),
    }
}

fn parse_serial(s: &str) -> Result<SerialMode, CliError> {
    match s {
        "tty" => Ok(SerialMode::Tty),
        "off" => Ok(SerialMode::Off),
        _ => match s.strip_prefix("file=") {
            Some(p) if !p.is_empty() => Ok(SerialMode::File(PathBuf::from(p))),
            _ => err(format!(
                "invalid --serial `{s}`: expected tty, off or file=<path>"
            )),
        },
    }
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let mut kernel = None;
    let mut initramfs = None;
    let mut cmdline = None;
    let mut memory = DEFAULT_MEMORY;
    let mut cpus = 1;
    let mut serial = SerialMode::Tty;
    let mut log_level = log::LevelFilter::Warn;
    let mut disks = Vec::new();
    let mut mmu = MmuMode::Radix;
    let mut preserve = PreserveMode::default();
    let mut api_socket = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, CliError> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => err(format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--kernel" => kernel = Some(PathBuf::from(value("--kernel")?)),
            "--initramfs" => initramfs = Some(PathBuf::from(value("--initramfs")?)),
            "--cmdline" => cmdline = Some(value("--cmdline")?),
            "--memory" => memory = parse_size(&value("--memory")?)?,
            "--cpus" => cpus = parse_cpus(&value("--cpus")?)?,
            "--serial" => serial = parse_serial(&value("--serial")?)?,
            "--mmu" => {
                mmu = match value("--mmu")?.as_str() {
                    "radix" => MmuMode::Radix,
                    "hash" => MmuMode::Hash,
                    other => {
                        return err(format!("invalid --mmu `{other}`: expected radix or hash"))
                    }
                }
            }
            "--fadump-preserve" => {
                preserve = match value("--fadump-preserve")?.as_str() {
                    "copy" => PreserveMode::Copy,
                    "remap" => PreserveMode::Remap,
                    "remap-zero" => PreserveMode::RemapZero,
                    other => {
                        return err(format!(
                            "invalid --fadump-preserve `{other}`: expected copy, remap or \
                             remap-zero"
                        ))
                    }
                }
            }
            "--api-socket" => {
                let v = value("--api-socket")?;
                match v.strip_prefix("path=").unwrap_or(&v) {
                    "" => return err("--api-socket needs path=<file>"),
                    p => api_socket = Some(PathBuf::from(p)),
                }
            }
            "--disk" => {
                let v = value("--disk")?;
                disks.push(DiskSpec::parse(&v).map_err(|e| CliError(e.to_string()))?);
            }
            "--log-level" => {
                let v = value("--log-level")?;
                log_level = v
                    .parse()
                    .map_err(|_| CliError(format!("invalid --log-level `{v}`")))?;
            }
            other => return err(format!("unknown argument `{other}`")),
        }
    }
    let Some(kernel) = kernel else {
        return err("--kernel <vmlinux> is required");
    };
    if memory < crate::layout::MIN_RAM || memory % crate::layout::HOST_PAGE_MAX != 0 {
        return err(format!(
            "--memory {memory} bytes: need at least 64M and a multiple of 64K"
        ));
    }
    let mut line = linux_loader::cmdline::Cmdline::new(4096).expect("capacity is nonzero");
    line.insert_str(cmdline.as_deref().unwrap_or(DEFAULT_CMDLINE))
        .map_err(|e| CliError(format!("invalid --cmdline: {e}")))?;
    let cmdline = line
        .as_cstring()
        .map_err(|e| CliError(format!("invalid --cmdline: {e}")))?;
    let cmdline = cmdline
        .into_string()
        .map_err(|_| CliError("--cmdline is not UTF-8".into()))?;
    Ok(Command::Run {
        config: VmConfig {
            kernel,
            initramfs,
            cmdline,
            memory,
            cpus,
            serial,
            disks,
            mmu,
            preserve,
        },
        log_level,
        api_socket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn full_command_line() {
        let c = p(&[
            "--kernel",
            "vmlinux",
            "--initramfs=i.cpio.gz",
            "--cmdline",
            "console=hvc0 quiet",
            "--memory",
            "size=1G",
            "--cpus",
            "boot=2",
            "--serial",
            "file=/tmp/c.log",
            "--log-level",
            "debug",
            "--disk",
            "path=/tmp/a.img",
            "--disk=path=/tmp/b.img,readonly=on",
            "--mmu",
            "hash",
            "--fadump-preserve=copy",
        ])
        .unwrap();
        assert_eq!(
            c,
            Command::Run {
                config: VmConfig {
                    kernel: "vmlinux".into(),
                    initramfs: Some("i.cpio.gz".into()),
                    cmdline: "console=hvc0 quiet".into(),
                    memory: 1 << 30,
                    cpus: 2,
                    serial: SerialMode::File("/tmp/c.log".into()),
                    disks: vec![
                        DiskSpec {
                            path: "/tmp/a.img".into(),
                            readonly: false
                        },
                        DiskSpec {
                            path: "/tmp/b.img".into(),
                            readonly: true
                        },
                    ],
                    mmu: MmuMode::Hash,
                    preserve: PreserveMode::Copy,
                },
                log_level: log::LevelFilter::Debug,
                api_socket: None,
            }
        );
    }

    #[test]
    fn defaults() {
        let Command::Run { config, .. } = p(&["--kernel", "k"]).unwrap() else {
            panic!()
        };
        assert_eq!(
            (config.memory, config.cpus, config.cmdline.as_str()),
            (512 << 20, 1, "console=hvc0")
        );
        assert_eq!(config.serial, SerialMode::Tty);
        assert!(config.disks.is_empty());
        assert_eq!(config.mmu, MmuMode::Radix);
    }

    #[test]
    fn api_socket() {
        let run = |a: &[&str]| match p(a).unwrap() {
            Command::Run { api_socket, .. } => api_socket,
            other => panic!("{other:?}"),
        };
        assert_eq!(run(&["--kernel", "k"]), None);
        assert_eq!(
            run(&["--kernel", "k", "--api-socket", "path=/tmp/a.sock"]),
            Some("/tmp/a.sock".into())
        );
        assert_eq!(
            run(&["--kernel", "k", "--api-socket=/tmp/b.sock"]),
            Some("/tmp/b.sock".into())
        );
        assert!(p(&["--kernel", "k", "--api-socket", "path="]).is_err());
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p(&["--help"]).unwrap(), Command::Help);
        assert_eq!(p(&["--kernel", "k", "-h"]).unwrap(), Command::Help);
        assert_eq!(p(&["-V"]).unwrap(), Command::Version);
        for flag in [
            "--kernel",
            "--initramfs",
            "--cmdline",
            "--memory",
            "--cpus",
            "--serial",
            "--disk",
            "--mmu",
            "--log-level",
        ] {
            assert!(help().contains(flag), "{flag} documented");
        }
    }

    #[test]
    fn bad_arguments_have_clear_messages() {
        let msg = |a: &[&str]| p(a).unwrap_err().0;
        assert_eq!(msg(&[]), "--kernel <vmlinux> is required");
        assert_eq!(msg(&["--kernel"]), "--kernel needs a value");
        assert_eq!(
            msg(&["--kernel", "k", "--frobnicate"]),
            "unknown argument `--frobnicate`"
        );
        assert!(msg(&["--kernel", "k", "--memory", "lots"]).contains("invalid size `lots`"));
        assert!(msg(&["--kernel", "k", "--memory", "16M"]).contains("at least 64M"));
        assert!(msg(&["--kernel", "k", "--memory", "99999999999G"]).contains("too large"));
        assert!(msg(&["--kernel", "k", "--cpus", "0"]).contains("invalid --cpus"));
        assert!(msg(&["--kernel", "k", "--serial", "pty"]).contains("invalid --serial"));
        assert!(msg(&["--kernel", "k", "--log-level", "loud"]).contains("invalid --log-level"));
        assert!(msg(&["--kernel", "k", "--disk", "a.img"]).contains("path=<file>"));
        assert!(msg(&["--kernel", "k", "--disk", "path=a,ro=on"]).contains("unknown key"));
        assert_eq!(msg(&["--kernel", "k", "--disk"]), "--disk needs a value");
        assert!(msg(&["--kernel", "k", "--mmu", "segmented"]).contains("invalid --mmu `segmented`"));
        assert!(msg(&["--kernel", "k", "--fadump-preserve", "move"])
            .contains("invalid --fadump-preserve `move`"));
        assert!(p(&["--kernel", "k"]).is_ok());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
    }
}
