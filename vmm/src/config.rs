//! What the user asked for: the machine's configuration, as the CLI builds it.

use std::path::PathBuf;

/// How the guest translates addresses (`--mmu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MmuMode {
    /// Radix (POWER9+): no hash page table; the only mode a nested (pseries) L1 supports.
    #[default]
    Radix,
    /// Hash page table allocated by the VMM (`KVM_PPC_ALLOCATE_HTAB`); needs a bare-metal
    /// (powernv) KVM-HV host.
    Hash,
}

/// How a fadump crash preserves boot memory (`--fadump-preserve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreserveMode {
    /// Copy it (`firmware::fadump::CopyPreserver`).
    #[default]
    Copy,
    /// Move its host pages under the fixed guest mapping, the capture kernel's boot memory
    /// getting the destination's old (pre-faulted) pages (`memory::remap`, swap). The firmware
    /// pads the advertised CPU state so Linux's destination is huge-page aligned.
    Remap,
    /// As `Remap`, but boot memory is left to refault as zero pages (move only).
    RemapZero,
}

/// What the VMM does when the guest terminates (`ibm,os-term`) with no dump registered
/// (`--on-crash`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OnCrash {
    /// Reboot the partition (PAPR leaves the action to the platform).
    #[default]
    Reboot,
    /// Write an ELF core of the guest to this path (`host-dump=PATH`), then reboot.
    HostDump(PathBuf),
}

impl OnCrash {
    /// Parses `reboot` or `host-dump=PATH`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            None if s == "reboot" => Ok(OnCrash::Reboot),
            Some(("host-dump", p)) if !p.is_empty() => Ok(OnCrash::HostDump(PathBuf::from(p))),
            _ => Err(format!(
                "invalid --on-crash `{s}`: expected reboot or host-dump=<path>"
            )),
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub cmdline: String,
    pub memory: u64,
    /// Bytes of memory hotplug window beside boot RAM (`--memory hotplug_size=`; 0: none).
    pub hotplug_size: u64,
    /// `--memory prefault=on`: boot RAM made resident on the host from the start.
    pub prefault: bool,
    pub cpus: u32,
    pub serial: crate::console::SerialMode,
    /// `--disk` options, in order (disk `i` is `/dev/vd<a+i>` in the guest).
    pub disks: Vec<crate::devices::disk_spec::DiskSpec>,
    pub mmu: MmuMode,
    pub preserve: PreserveMode,
    /// `--on-crash`.
    pub on_crash: OnCrash,
}
