//! Command-line parsing on clap, in the style of cloud-hypervisor (`--kernel`,
//! `--memory size=…`, `--disk path=…`, `--api-socket path=…`). Every value is checked here,
//! with a message naming the option; `--opt value` and `--opt=value` both work, and a repeated
//! single-valued option takes its last value.

use crate::config::{MmuMode, OnCrash, PreserveMode, VmConfig};
use crate::console::SerialMode;
use crate::devices::disk_spec::DiskSpec;
use crate::hotplug::MemorySpec;
use clap::{CommandFactory, Parser};
use std::path::PathBuf;

pub const DEFAULT_MEMORY: u64 = 512 << 20;
pub const DEFAULT_CMDLINE: &str = "console=hvc0";

const ABOUT: &str =
    "ppc-vmm: boot an unmodified Linux pseries guest on ppc64 KVM-HV (POWER9/POWER10 \
host, or a nested KVM-HV L1).";

const AFTER_HELP: &str = "\
The guest powering off ends ppc-vmm with status 0; a guest reboot boots again in the same
process. Example:
    ppc-vmm --kernel vmlinux --initramfs initramfs.cpio.gz --cpus 2 --memory 1G \\
            --cmdline \"console=hvc0 rdinit=/init\" --api-socket path=/tmp/vmm.sock";

/// The command line as clap reads it (values already checked by their parsers).
#[derive(Debug, Parser)]
#[command(
    name = "ppc-vmm",
    about = ABOUT,
    after_help = AFTER_HELP,
    version,
    args_override_self = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
struct Args {
    /// Guest kernel: an uncompressed ppc64le ELF `vmlinux` (required). Loaded at its physical
    /// address and entered directly with a flattened device tree (no SLOF/OpenFirmware).
    #[arg(long, value_name = "vmlinux")]
    kernel: Option<PathBuf>,
    /// Initial ramdisk (e.g. a gzip'd cpio archive).
    #[arg(long, value_name = "path")]
    initramfs: Option<PathBuf>,
    /// Kernel command line [default: "console=hvc0"].
    #[arg(long, value_name = "string", allow_hyphen_values = true)]
    cmdline: Option<String>,
    /// Guest RAM: `512M`, `2G`, or cloud-hypervisor style `size=512M` [default: 512M; minimum
    /// 64M; a multiple of 64K]. `size=1536M,hotplug_size=512M` adds a memory hotplug window of
    /// 256M LMBs after boot RAM: the guest may add them itself (/sys/kernel/dlpar) or be given
    /// them (vm.resize desired_ram). `prefault=on` makes boot RAM resident on the host from
    /// the start (in the background), so a fadump capture kernel finds its memory backed.
    #[arg(long, value_name = "size", value_parser = memory_arg)]
    memory: Option<MemorySpec>,
    /// vCPUs: `2` or `boot=2` [default: 1]. Secondary vCPUs stay stopped until the guest
    /// starts them with RTAS start-cpu.
    #[arg(long, value_name = "n", value_parser = cpus_arg)]
    cpus: Option<u32>,
    /// Guest MMU: `radix` (default) or `hash` (hash page table sized RAM/128 or more; needs a
    /// bare-metal POWER9 KVM-HV host, e.g. a powernv L1: a nested pseries KVM runs radix
    /// guests only).
    #[arg(long, value_name = "mode", value_parser = mmu_arg)]
    mmu: Option<MmuMode>,
    /// How a fadump crash preserves boot memory: `copy` (default), `remap` (move its host
    /// pages under the guest mapping instead) or `remap-zero` (the same, boot memory refaults
    /// as zero pages).
    #[arg(long = "fadump-preserve", value_name = "how", value_parser = preserve_arg)]
    fadump_preserve: Option<PreserveMode>,
    /// When the guest terminates (ibm,os-term) with no dump registered: `reboot` (default) or
    /// `host-dump=<path>` (write an ELF core of the guest there first, for drgn/crash; then
    /// reboot).
    #[arg(long = "on-crash", value_name = "action", value_parser = OnCrash::parse)]
    on_crash: Option<OnCrash>,
    /// Guest console (hvc0): `tty` (stdout/stdin, default), `file=<path>` (append output to a
    /// file; at 64 MiB it moves to `<path>.1` and a new one starts), or `off`.
    #[arg(long, value_name = "mode", value_parser = serial_arg)]
    serial: Option<SerialMode>,
    /// A virtio-blk disk (modern virtio-pci behind a PAPR PCI host bridge) backed by <file>;
    /// repeat for more disks (at most 31). The guest sees them as /dev/vda, /dev/vdb, … in
    /// order.
    #[arg(long, value_name = "path=FILE[,readonly=on]", value_parser = disk_arg)]
    disk: Vec<DiskSpec>,
    /// Serve the operator API: HTTP over a Unix socket (mode 0600) with cloud-hypervisor's
    /// /api/v1/ paths (vm.info, vm.fadump, vm.reboot, …); see `ppc-remote`.
    #[arg(long = "api-socket", value_name = "path=FILE", value_parser = path_arg)]
    api_socket: Option<PathBuf>,
    /// Write lifecycle events (boot, reboot, guest panic, fadump registered / started /
    /// written, power-off) to <file> as JSON lines, as cloud-hypervisor's event monitor.
    #[arg(long = "event-monitor", value_name = "path=FILE", value_parser = path_arg)]
    event_monitor: Option<PathBuf>,
    /// VMM log level on stderr: error, warn, info, debug, trace [default: warn].
    #[arg(long = "log-level", value_name = "level", value_parser = level_arg)]
    log_level: Option<log::LevelFilter>,
}

/// The full `--help` text.
pub fn help() -> String {
    Args::command().render_help().to_string()
}

/// Parsed command line.
// One value per process, moved once: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run {
        config: VmConfig,
        log_level: log::LevelFilter,
        /// `--api-socket path=FILE`.
        api_socket: Option<PathBuf>,
        /// `--event-monitor path=FILE`.
        event_monitor: Option<PathBuf>,
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
    crate::hotplug::spec::parse_size(s.strip_prefix("size=").unwrap_or(s))
        .map_err(|e| CliError(e.to_string()))
}

fn memory_arg(s: &str) -> Result<MemorySpec, String> {
    MemorySpec::parse(s, DEFAULT_MEMORY).map_err(|e| e.to_string())
}

fn cpus_arg(s: &str) -> Result<u32, String> {
    let v = s.strip_prefix("boot=").unwrap_or(s);
    match v.parse::<u32>() {
        Ok(n) if (1..=crate::MAX_CPUS).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid --cpus `{s}`: expected a number from 1 to {}",
            crate::MAX_CPUS
        )),
    }
}

fn serial_arg(s: &str) -> Result<SerialMode, String> {
    match s {
        "tty" => Ok(SerialMode::Tty),
        "off" => Ok(SerialMode::Off),
        _ => match s.strip_prefix("file=") {
            Some(p) if !p.is_empty() => Ok(SerialMode::File(PathBuf::from(p))),
            _ => Err(format!(
                "invalid --serial `{s}`: expected tty, off or file=<path>"
            )),
        },
    }
}

fn mmu_arg(s: &str) -> Result<MmuMode, String> {
    match s {
        "radix" => Ok(MmuMode::Radix),
        "hash" => Ok(MmuMode::Hash),
        other => Err(format!("invalid --mmu `{other}`: expected radix or hash")),
    }
}

fn preserve_arg(s: &str) -> Result<PreserveMode, String> {
    match s {
        "copy" => Ok(PreserveMode::Copy),
        "remap" => Ok(PreserveMode::Remap),
        "remap-zero" => Ok(PreserveMode::RemapZero),
        other => Err(format!(
            "invalid --fadump-preserve `{other}`: expected copy, remap or remap-zero"
        )),
    }
}

fn disk_arg(s: &str) -> Result<DiskSpec, String> {
    DiskSpec::parse(s).map_err(|e| e.to_string())
}

/// `path=FILE` (or a bare `FILE`), as `--api-socket` and `--event-monitor` take it.
fn path_arg(s: &str) -> Result<PathBuf, String> {
    match s.strip_prefix("path=").unwrap_or(s) {
        "" => Err("expected path=<file>".into()),
        p if s.starts_with("fd=") => Err(format!(
            "`{p}`: file descriptors are not supported, give path=<file>"
        )),
        p => Ok(PathBuf::from(p)),
    }
}

fn level_arg(s: &str) -> Result<log::LevelFilter, String> {
    s.parse().map_err(|_| format!("invalid --log-level `{s}`"))
}

/// clap's message without its `error: ` prefix and usage lines.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let a = match Args::try_parse_from(std::iter::once("ppc-vmm".to_string()).chain(args)) {
        Ok(a) => a,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp => Ok(Command::Help),
                clap::error::ErrorKind::DisplayVersion => Ok(Command::Version),
                _ => err(clap_message(&e)),
            }
        }
    };
    let Some(kernel) = a.kernel else {
        return err("--kernel <vmlinux> is required");
    };
    let MemorySpec {
        size: memory,
        hotplug_size,
        prefault,
    } = a.memory.unwrap_or(MemorySpec {
        size: DEFAULT_MEMORY,
        hotplug_size: 0,
        prefault: false,
    });
    if memory < crate::layout::MIN_RAM || memory % crate::layout::HOST_PAGE_MAX != 0 {
        return err(format!(
            "--memory {memory} bytes: need at least 64M and a multiple of 64K"
        ));
    }
    let mut line = linux_loader::cmdline::Cmdline::new(4096).expect("capacity is nonzero");
    line.insert_str(a.cmdline.as_deref().unwrap_or(DEFAULT_CMDLINE))
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
            initramfs: a.initramfs,
            cmdline,
            memory,
            hotplug_size,
            prefault,
            cpus: a.cpus.unwrap_or(1),
            serial: a.serial.unwrap_or(SerialMode::Tty),
            disks: a.disk,
            mmu: a.mmu.unwrap_or_default(),
            preserve: a.fadump_preserve.unwrap_or_default(),
            on_crash: a.on_crash.unwrap_or_default(),
        },
        log_level: a.log_level.unwrap_or(log::LevelFilter::Warn),
        api_socket: a.api_socket,
        event_monitor: a.event_monitor,
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
            "--on-crash=host-dump=/tmp/core",
            "--api-socket",
            "path=/tmp/api.sock",
            "--event-monitor=path=/tmp/events.json",
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
                    hotplug_size: 0,
                    prefault: false,
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
                    on_crash: OnCrash::HostDump("/tmp/core".into()),
                },
                log_level: log::LevelFilter::Debug,
                api_socket: Some("/tmp/api.sock".into()),
                event_monitor: Some("/tmp/events.json".into()),
            }
        );
    }

    /// The command line `integration-tests/nested/boot-our-vmm.sh` writes to `vmm-args`,
    /// with its optional parts.
    #[test]
    fn the_nested_scripts_command_line_parses() {
        let line = "--kernel /payload/guest/vmlinux --initramfs /payload/guest/initrd.cpio.gz \
                    --cpus 2 --memory 1G --serial tty --log-level info --disk path=/tmp/disk0.img \
                    --disk path=/tmp/disk1.img,readonly=on --mmu hash --fadump-preserve remap-zero";
        let mut args: Vec<String> = line.split_whitespace().map(String::from).collect();
        args.extend([
            "--cmdline".into(),
            "console=hvc0 fadump=on -- rdinit=/init".into(),
        ]);
        let Command::Run {
            config, log_level, ..
        } = parse(args).unwrap()
        else {
            panic!()
        };
        assert_eq!((config.cpus, config.memory), (2, 1 << 30));
        assert_eq!(config.disks.len(), 2);
        assert!(config.disks[1].readonly);
        assert_eq!(config.mmu, MmuMode::Hash);
        assert_eq!(config.preserve, PreserveMode::RemapZero);
        assert_eq!(log_level, log::LevelFilter::Info);
        assert_eq!(config.cmdline, "console=hvc0 fadump=on -- rdinit=/init");
    }

    #[test]
    fn defaults() {
        let Command::Run {
            config,
            api_socket,
            event_monitor,
            ..
        } = p(&["--kernel", "k"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (config.memory, config.cpus, config.cmdline.as_str()),
            (512 << 20, 1, "console=hvc0")
        );
        assert_eq!(config.serial, SerialMode::Tty);
        assert!(config.disks.is_empty());
        assert_eq!(config.mmu, MmuMode::Radix);
        assert_eq!(config.preserve, PreserveMode::Copy);
        assert_eq!((api_socket, event_monitor), (None, None));
    }

    #[test]
    fn a_repeated_option_takes_its_last_value_and_disks_add_up() {
        let Command::Run { config, .. } = p(&[
            "--kernel", "a", "--kernel", "b", "--memory", "1G", "--memory", "2G", "--disk",
            "path=x", "--disk", "path=y",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(config.kernel, PathBuf::from("b"));
        assert_eq!(config.memory, 2 << 30);
        assert_eq!(config.disks.len(), 2);
    }

    #[test]
    fn api_socket_and_event_monitor_take_path_or_a_bare_file() {
        let run = |a: &[&str]| match p(a).unwrap() {
            Command::Run {
                api_socket,
                event_monitor,
                ..
            } => (api_socket, event_monitor),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            run(&["--kernel", "k", "--api-socket", "path=/tmp/a.sock"]).0,
            Some("/tmp/a.sock".into())
        );
        assert_eq!(
            run(&["--kernel", "k", "--api-socket=/tmp/b.sock"]).0,
            Some("/tmp/b.sock".into())
        );
        assert_eq!(
            run(&["--kernel", "k", "--event-monitor", "path=/tmp/e"]).1,
            Some("/tmp/e".into())
        );
        assert!(p(&["--kernel", "k", "--api-socket", "path="]).is_err());
        let e = p(&["--kernel", "k", "--event-monitor", "fd=3"]).unwrap_err();
        assert!(e.0.contains("not supported"), "{}", e.0);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p(&["--help"]).unwrap(), Command::Help);
        assert_eq!(p(&["--kernel", "k", "-h"]).unwrap(), Command::Help);
        assert_eq!(p(&["-V"]).unwrap(), Command::Version);
        assert_eq!(p(&["--version"]).unwrap(), Command::Version);
        let h = help();
        for flag in [
            "--kernel",
            "--initramfs",
            "--cmdline",
            "--memory",
            "--cpus",
            "--serial",
            "--disk",
            "--mmu",
            "--fadump-preserve",
            "--on-crash",
            "--api-socket",
            "--event-monitor",
            "--log-level",
            "--help",
            "--version",
        ] {
            assert!(h.contains(flag), "{flag} documented:\n{h}");
        }
        // Every option's description starts in the same column (the old help misaligned
        // --disk).
        let options = h.split("Options:\n").nth(1).unwrap();
        let options = options.split("\n\n").next().unwrap();
        let columns: Vec<usize> = options
            .lines()
            .filter(|l| l.trim_start().starts_with('-'))
            .map(|l| {
                let flag_end =
                    l.trim_start().find("  ").unwrap() + (l.len() - l.trim_start().len());
                flag_end + l[flag_end..].len() - l[flag_end..].trim_start().len()
            })
            .collect();
        assert_eq!(columns.len(), 15, "{h}");
        assert!(columns.iter().all(|c| *c == columns[0]), "{columns:?}\n{h}");
        assert!(h.lines().all(|l| l.chars().count() <= 100), "{h}");
    }

    #[test]
    fn memory_with_a_hotplug_window() {
        let Command::Run { config, .. } =
            p(&["--kernel", "k", "--memory", "size=1536M,hotplug_size=512M"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (config.memory, config.hotplug_size),
            (1536 << 20, 512 << 20)
        );
    }

    #[test]
    fn bad_arguments_have_clear_messages() {
        let msg = |a: &[&str]| p(a).unwrap_err().0;
        assert_eq!(msg(&[]), "--kernel <vmlinux> is required");
        assert!(msg(&["--kernel"]).contains("--kernel"));
        assert!(msg(&["--kernel"]).contains("value is required"));
        let m = msg(&["--kernel", "k", "--frobnicate"]);
        assert!(m.contains("unexpected argument '--frobnicate'"), "{m}");
        assert!(msg(&["--kernel", "k", "--memory", "lots"]).contains("invalid size `lots`"));
        assert!(msg(&["--kernel", "k", "--memory", "16M"]).contains("at least 64M"));
        assert!(msg(&["--kernel", "k", "--memory", "99999999999G"]).contains("invalid size"));
        assert!(
            msg(&["--kernel", "k", "--memory", "size=1G,hotplug_size=1M"])
                .contains("multiple of 256M")
        );
        assert!(msg(&["--kernel", "k", "--cpus", "0"]).contains("invalid --cpus"));
        assert!(msg(&["--kernel", "k", "--cpus", "257"]).contains("from 1 to 256"));
        assert!(msg(&["--kernel", "k", "--serial", "pty"]).contains("invalid --serial"));
        assert!(msg(&["--kernel", "k", "--serial", "file="]).contains("invalid --serial"));
        assert!(msg(&["--kernel", "k", "--log-level", "loud"]).contains("invalid --log-level"));
        assert!(msg(&["--kernel", "k", "--disk", "a.img"]).contains("path=<file>"));
        assert!(msg(&["--kernel", "k", "--disk", "path=a,ro=on"]).contains("unknown key"));
        assert!(msg(&["--kernel", "k", "--disk"]).contains("--disk"));
        assert!(msg(&["--kernel", "k", "--mmu", "segmented"]).contains("invalid --mmu `segmented`"));
        assert!(msg(&["--kernel", "k", "--on-crash", "host-dump="]).contains("--on-crash"));
        assert!(msg(&["--kernel", "k", "--on-crash", "dump"]).contains("--on-crash"));
        assert!(msg(&["--kernel", "k", "--fadump-preserve", "move"])
            .contains("invalid --fadump-preserve `move`"));
        assert!(
            !msg(&["--kernel", "k", "--frobnicate"]).contains('\x1b'),
            "no colours"
        );
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
