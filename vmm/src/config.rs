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

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub cmdline: String,
    pub memory: u64,
    pub cpus: u32,
    pub serial: crate::console::SerialMode,
    /// `--disk` options, in order (disk `i` is `/dev/vd<a+i>` in the guest).
    pub disks: Vec<crate::devices::disk_spec::DiskSpec>,
    pub mmu: MmuMode,
}
