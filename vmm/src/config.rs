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

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub cmdline: String,
    pub memory: u64,
    /// Bytes of memory hotplug window beside boot RAM (`--memory hotplug_size=`; 0: none).
    pub hotplug_size: u64,
    pub cpus: u32,
    pub serial: crate::console::SerialMode,
    /// `--disk` options, in order (disk `i` is `/dev/vd<a+i>` in the guest).
    pub disks: Vec<crate::devices::disk_spec::DiskSpec>,
    pub mmu: MmuMode,
    pub preserve: PreserveMode,
}
