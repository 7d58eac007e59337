//! `--disk path=FILE[,readonly=on]`: the value of one `--disk` option, and the PCI bus the
//! machine builds from all of them.

use std::path::PathBuf;
use std::sync::Arc;

use vm_memory::GuestMemoryMmap;

use super::phb::{IrqLine, Phb, PhbConfig, PhbError, SLOTS};
use super::virtio_blk::disk::Disk;
use super::virtio_blk::VirtioBlk;

/// Text for `--help`.
pub const DISK_HELP: &str = "\
    --disk path=<file>[,readonly=on]
                           A virtio-blk disk (modern virtio-pci behind a PAPR PCI host
                           bridge) backed by <file>; repeat for more disks (at most 31).
                           The guest sees them as /dev/vda, /dev/vdb, … in order.
                           Each disk has an I/O thread; a block device is also opened
                           with O_DIRECT, used for aligned transfers (like QEMU's
                           cache=none).";

/// One parsed `--disk` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DiskSpecError {
    #[error("--disk {0:?}: expected path=<file>[,readonly=on|off]")]
    Syntax(String),
    #[error("--disk {0:?}: unknown key {1:?} (known: path, readonly)")]
    UnknownKey(String, String),
    #[error("--disk {0:?}: {1} given twice")]
    Repeated(String, &'static str),
    #[error("--disk {0:?}: readonly must be on or off")]
    BadBool(String),
    #[error("--disk {0:?}: no path")]
    NoPath(String),
}

impl DiskSpec {
    /// Parses `path=FILE[,readonly=on|off]` (keys in any order; a path cannot contain a comma).
    pub fn parse(s: &str) -> Result<Self, DiskSpecError> {
        let mut path = None;
        let mut readonly = None;
        for item in s.split(',') {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| DiskSpecError::Syntax(s.into()))?;
            match k {
                "path" => {
                    if path.replace(v).is_some() {
                        return Err(DiskSpecError::Repeated(s.into(), "path"));
                    }
                }
                "readonly" => {
                    let b = match v {
                        "on" | "true" => true,
                        "off" | "false" => false,
                        _ => return Err(DiskSpecError::BadBool(s.into())),
                    };
                    if readonly.replace(b).is_some() {
                        return Err(DiskSpecError::Repeated(s.into(), "readonly"));
                    }
                }
                other => return Err(DiskSpecError::UnknownKey(s.into(), other.into())),
            }
        }
        match path {
            Some(p) if !p.is_empty() => Ok(Self {
                path: PathBuf::from(p),
                readonly: readonly.unwrap_or(false),
            }),
            _ => Err(DiskSpecError::NoPath(s.into())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot open disk {path}: {err}")]
    Open { path: PathBuf, err: std::io::Error },
    #[error("at most {} disks", SLOTS - 1)]
    TooMany,
    #[error("placing disk {index}: {err}")]
    Place { index: usize, err: PhbError },
    #[error("starting the I/O thread of disk {index}: {err}")]
    Thread { index: usize, err: std::io::Error },
}

/// The guest's PCI bus: one QEMU-like PHB (index 0) with disk `i` in slot `i + 1` (INTA#,
/// LSI `0x1200 + (i + 2) % 4`) and GET_ID serial `ppc-vmm-disk<i>`. Without disks the
/// machine needs no PHB at all (and should then not enable the PCI RTAS calls).
pub fn build_pci(
    mem: &GuestMemoryMmap,
    disks: &[DiskSpec],
    irq: Arc<dyn IrqLine>,
) -> Result<Phb, BuildError> {
    if disks.len() >= SLOTS {
        return Err(BuildError::TooMany);
    }
    let mut phb = Phb::new(PhbConfig::qemu_like(0), irq);
    for (i, spec) in disks.iter().enumerate() {
        let disk = Disk::open(&spec.path, spec.readonly).map_err(|err| BuildError::Open {
            path: spec.path.clone(),
            err,
        })?;
        let dev = VirtioBlk::new(mem.clone(), disk, &format!("ppc-vmm-disk{i}"))
            .map_err(|err| BuildError::Thread { index: i, err })?;
        // i < 31, so the slot fits.
        phb.add_device(i as u8 + 1, Box::new(dev))
            .map_err(|err| BuildError::Place { index: i, err })?;
    }
    Ok(phb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    struct NoIrq;
    impl IrqLine for NoIrq {
        fn set_level(&self, _: u32, _: bool) {}
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            DiskSpec::parse("path=/tmp/a.img").unwrap(),
            DiskSpec {
                path: "/tmp/a.img".into(),
                readonly: false
            }
        );
        assert!(DiskSpec::parse("path=a,readonly=on").unwrap().readonly);
        assert!(DiskSpec::parse("readonly=true,path=a").unwrap().readonly);
        assert!(!DiskSpec::parse("path=a,readonly=off").unwrap().readonly);
        assert_eq!(
            DiskSpec::parse("path=a=b").unwrap().path,
            PathBuf::from("a=b")
        );
    }

    #[test]
    fn refuses_everything_else() {
        for (s, want) in [
            ("/tmp/a.img", DiskSpecError::Syntax("/tmp/a.img".into())),
            ("path=", DiskSpecError::NoPath("path=".into())),
            ("readonly=on", DiskSpecError::NoPath("readonly=on".into())),
            (
                "path=a,ro=on",
                DiskSpecError::UnknownKey("path=a,ro=on".into(), "ro".into()),
            ),
            (
                "path=a,path=b",
                DiskSpecError::Repeated("path=a,path=b".into(), "path"),
            ),
            (
                "path=a,readonly=yes",
                DiskSpecError::BadBool("path=a,readonly=yes".into()),
            ),
            ("path=a,", DiskSpecError::Syntax("path=a,".into())),
        ] {
            assert_eq!(DiskSpec::parse(s), Err(want), "{s}");
        }
    }

    #[test]
    fn builds_one_function_per_disk_in_order() {
        let dir = std::env::temp_dir();
        let paths: Vec<PathBuf> = (0..2)
            .map(|i| dir.join(format!("vmm-disk-spec-{}-{i}.img", std::process::id())))
            .collect();
        for p in &paths {
            std::fs::write(p, vec![0u8; 4096]).unwrap();
        }
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let specs: Vec<DiskSpec> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| DiskSpec {
                path: p.clone(),
                readonly: i == 1,
            })
            .collect();
        let phb = build_pci(&mem, &specs, Arc::new(NoIrq)).unwrap();
        assert_eq!(phb.occupied_slots().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(phb.irq_of(1), Some(0x1201));
        assert_eq!(phb.irq_of(2), Some(0x1202));
        let d = phb.device(2).unwrap();
        assert_eq!(d.config().read(0, 4), 0x1042_1af4);
        // A missing file is reported with its path.
        let missing = DiskSpec {
            path: dir.join("vmm-disk-spec-does-not-exist.img"),
            readonly: false,
        };
        let err = build_pci(&mem, &[missing], Arc::new(NoIrq)).unwrap_err();
        assert!(err.to_string().contains("does-not-exist"), "{err}");
        for p in &paths {
            let _ = std::fs::remove_file(p);
        }
    }
}
