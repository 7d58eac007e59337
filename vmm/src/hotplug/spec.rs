//! `--memory` in cloud-hypervisor's syntax: `512M`, `size=1536M`, or
//! `size=1536M,hotplug_size=512M` (a memory hotplug window of 512 MiB beside boot RAM).

use firmware::dlpar::table::MAX_WINDOW_LMBS;
use firmware::dlpar::LMB_SIZE;
use firmware::GuestRange;

/// The guest's memory as `--memory` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySpec {
    /// Boot RAM from 0.
    pub size: u64,
    /// Bytes of hotplug window (0: none), a multiple of the 256 MiB LMB.
    pub hotplug_size: u64,
    /// `prefault=on`: boot RAM is made resident on the host from the start (in the
    /// background), so neither the guest nor a fadump capture kernel waits for first-touch
    /// host page faults.
    pub prefault: bool,
}

/// A bad `--memory` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A size that does not parse.
    #[error("invalid size `{0}` (try 512M or 2G)")]
    Size(String),
    /// A key other than `size`, `hotplug_size` and `prefault`.
    #[error(
        "unknown key `{0}` in --memory (expected size=..., hotplug_size=..., prefault=on|off)"
    )]
    UnknownKey(String),
    /// `prefault=` other than `on` or `off`.
    #[error("invalid prefault=`{0}` in --memory (expected on or off)")]
    Prefault(String),
    /// The same key twice.
    #[error("`{0}` given twice in --memory")]
    Repeated(String),
    /// `hotplug_size` not a multiple of the LMB size, or too large.
    #[error("hotplug_size={0:#x}: must be a multiple of 256M and at most {max} LMBs", max = MAX_WINDOW_LMBS)]
    Hotplug(u64),
}

/// `512M`, `2G`, `1048576`, `64K`.
pub fn parse_size(v: &str) -> Result<u64, SpecError> {
    let (num, shift) = match v.chars().last() {
        Some('K' | 'k') => (&v[..v.len() - 1], 10),
        Some('M' | 'm') => (&v[..v.len() - 1], 20),
        Some('G' | 'g') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n: u64 = num.parse().map_err(|_| SpecError::Size(v.to_string()))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| SpecError::Size(v.to_string()))
}

impl MemorySpec {
    /// Parses a `--memory` value; `default_size` when only `hotplug_size` is given.
    pub fn parse(s: &str, default_size: u64) -> Result<Self, SpecError> {
        let mut size = None;
        let mut hotplug = None;
        let mut prefault = None;
        for (i, part) in s.split(',').enumerate() {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k, v),
                // A bare size, as `--memory 512M`, only first.
                None if i == 0 => ("size", part),
                None => return Err(SpecError::UnknownKey(part.to_string())),
            };
            if key == "prefault" {
                if prefault.is_some() {
                    return Err(SpecError::Repeated(key.to_string()));
                }
                prefault = Some(match value {
                    "on" => true,
                    "off" => false,
                    other => return Err(SpecError::Prefault(other.to_string())),
                });
                continue;
            }
            let slot = match key {
                "size" => &mut size,
                "hotplug_size" => &mut hotplug,
                other => return Err(SpecError::UnknownKey(other.to_string())),
            };
            if slot.is_some() {
                return Err(SpecError::Repeated(key.to_string()));
            }
            *slot = Some(parse_size(value)?);
        }
        let hotplug_size = hotplug.unwrap_or(0);
        if hotplug_size % LMB_SIZE != 0 || hotplug_size / LMB_SIZE > MAX_WINDOW_LMBS {
            return Err(SpecError::Hotplug(hotplug_size));
        }
        Ok(MemorySpec {
            size: size.unwrap_or(default_size),
            hotplug_size,
            prefault: prefault.unwrap_or(false),
        })
    }

    /// The hotplug window: `hotplug_size` bytes from the first LMB boundary at or above the
    /// end of boot RAM; `None` without one (or if it would pass 2^64).
    pub fn window(&self) -> Option<GuestRange> {
        if self.hotplug_size == 0 {
            return None;
        }
        let base = self.size.checked_add(LMB_SIZE - 1)? & !(LMB_SIZE - 1);
        GuestRange::new(base, self.hotplug_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    #[test]
    fn cloud_hypervisor_syntax() {
        let p = |s| MemorySpec::parse(s, 512 * M);
        assert_eq!(
            p("1G").unwrap(),
            MemorySpec {
                size: 1 << 30,
                hotplug_size: 0,
                prefault: false
            }
        );
        assert_eq!(p("size=1G").unwrap().size, 1 << 30);
        let s = p("size=1536M,hotplug_size=512M").unwrap();
        assert_eq!(
            s,
            MemorySpec {
                size: 1536 * M,
                hotplug_size: 512 * M,
                prefault: false
            }
        );
        assert_eq!(s.window(), GuestRange::new(0x6000_0000, 512 * M));
        assert_eq!(p("hotplug_size=256M").unwrap().size, 512 * M);
        assert_eq!(p("size=1536M").unwrap().window(), None);
        // The window starts at the next LMB boundary.
        let odd = p("size=1100M,hotplug_size=256M").unwrap();
        assert_eq!(odd.window().unwrap().start(), 1280 * M);
        // cloud-hypervisor's prefault=on|off, in any position.
        assert!(p("size=1G,prefault=on").unwrap().prefault);
        assert!(!p("prefault=off,size=1G").unwrap().prefault);
        assert!(!p("1G").unwrap().prefault, "off unless asked");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let p = |s| MemorySpec::parse(s, 512 * M).unwrap_err();
        assert_eq!(p("size=1G,hotplug_size=100M"), SpecError::Hotplug(100 * M));
        assert_eq!(p("size=1G,hotplug_size=65G"), SpecError::Hotplug(65 << 30));
        assert_eq!(
            p("size=1G,shared=on"),
            SpecError::UnknownKey("shared".into())
        );
        assert_eq!(p("size=1G,2G"), SpecError::UnknownKey("2G".into()));
        assert_eq!(p("size=1G,size=2G"), SpecError::Repeated("size".into()));
        assert_eq!(p("size=lots"), SpecError::Size("lots".into()));
        assert_eq!(p("size=1G,prefault=yes"), SpecError::Prefault("yes".into()));
        assert_eq!(
            p("prefault=on,prefault=off"),
            SpecError::Repeated("prefault".into())
        );
        assert_eq!(
            p("99999999999999G"),
            SpecError::Size("99999999999999G".into())
        );
    }
}
