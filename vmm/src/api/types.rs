//! The JSON bodies of the API (what the server answers and `ppc-remote` sends), in
//! cloud-hypervisor's shapes where it has one (`VmmPingResponse`, `VmInfo`, the counters map,
//! `VmCoredumpData`, `VmResizeData`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET vmm.ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResponse {
    pub version: String,
    pub build_version: String,
    pub pid: u32,
    pub features: Vec<String>,
}

impl PingResponse {
    /// This process's answer.
    pub fn current() -> Self {
        PingResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            build_version: format!("ppc-vmm {}", env!("CARGO_PKG_VERSION")),
            pid: std::process::id(),
            features: vec!["fadump".into()],
        }
    }
}

/// One disk of [`InfoConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    pub path: String,
    pub readonly: bool,
}

/// The configuration part of `GET vm.info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoConfig {
    pub cpus: u32,
    /// Guest RAM, bytes.
    pub memory: u64,
    pub disks: Vec<DiskInfo>,
    /// `radix` or `hash`.
    pub mmu: String,
    pub kernel: String,
    pub initramfs: Option<String>,
    pub cmdline: String,
    /// `copy`, `remap` or `remap-zero`.
    pub fadump_preserve: String,
}

/// `GET vm.info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    pub config: InfoConfig,
    /// The machine's lifecycle state (`running`, `dumping`, ...).
    pub state: String,
    /// Boots so far in this process (a reboot or a capture boot adds one).
    pub boot_count: u32,
    pub memory_actual_size: u64,
}

/// `GET vm.counters`: device (or `vcpuN`) to counter to value, as cloud-hypervisor's.
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

/// One section of a registered or performed dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FadumpSectionInfo {
    /// The PAPR `source_data_type`, e.g. `0x0011`.
    pub data_type: String,
    /// `cpu-state`, `hpte`, `boot-memory`, `param-area`, `os-defined`, ...
    pub kind: String,
    pub source: u64,
    pub size: u64,
    pub destination: u64,
    /// After a dump: bytes the firmware dumped and its error flags.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes_dumped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_flags: Option<u16>,
}

/// The VMM's phase times of a dump, milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhasesMs {
    pub stop: f64,
    pub dump: f64,
    pub reset: f64,
    pub boot: f64,
    pub total: f64,
}

/// How the last crash with a registered dump ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDump {
    /// `dumped` or `refused`.
    pub outcome: String,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// The header status written (`0xc000`, `0xe000` when a section failed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpus_saved: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes_preserved: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes_remapped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phases_ms: Option<PhasesMs>,
    /// vCPUs whose registers are missing (their thread had ended).
    #[serde(default)]
    pub missing_cpus: Vec<u32>,
}

/// `GET vm.fadump`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FadumpInfo {
    /// `idle`, `registered`, `dumping` (being written now) or `dump-active` (the capture
    /// kernel has it, until it invalidates).
    pub state: String,
    /// The registered or dumped sections.
    #[serde(default)]
    pub sections: Vec<FadumpSectionInfo>,
    /// Bytes of boot memory (real mode region sections) preserved by the dump.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub boot_memory: Option<u64>,
    /// While a dump is active: the top of the capture kernel's boot memory.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub boot_mem_top: Option<u64>,
    /// CPU state and HPTE sizes this partition advertises.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpu_state_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hpte_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_dump: Option<LastDump>,
}

impl FadumpInfo {
    /// The answer while the machine is busy writing a dump.
    pub fn dumping() -> Self {
        FadumpInfo {
            state: "dumping".into(),
            sections: Vec::new(),
            boot_memory: None,
            boot_mem_top: None,
            cpu_state_size: None,
            hpte_size: None,
            last_dump: None,
        }
    }
}

/// `PUT vm.coredump`, cloud-hypervisor's `VmCoredumpData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoredumpData {
    /// `file:///absolute/path`.
    pub destination_url: String,
}

/// `PUT vm.resize`, cloud-hypervisor's `VmResizeData` (only `desired_ram` is supported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResizeData {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub desired_vcpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub desired_ram: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub desired_balloon: Option<u64>,
}
