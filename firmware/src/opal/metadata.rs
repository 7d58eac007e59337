//! `struct opal_mpipl_fadump`: the firmware-owned metadata `QUERY_TAG(CPU)` and
//! `QUERY_TAG(OPAL)` point at. Big-endian, packed:
//!
//! | Off  | Size | Field |
//! |------|------|-------|
//! | 0x00 | 1    | version (1) |
//! | 0x01 | 7    | reserved |
//! | 0x08 | 4    | crashing PIR (filled for the OPAL tag) |
//! | 0x0C | 4    | CPU data version (CPU tag) |
//! | 0x10 | 4    | CPU data size = per-thread stride (CPU tag) |
//! | 0x14 | 4    | region count |
//! | 0x18 | 24·n | regions `{src, dest, size}`, BE64 each |

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::be::{BeReader, BeWriter};

/// The `version` byte (`OPAL_MPIPL_VERSION`): 1. Linux only warns about another value.
pub const MPIPL_VERSION: u8 = 1;
/// Bytes before the first region: 24.
pub const HEADER_SIZE: usize = 0x18;
/// Bytes of one region (`struct opal_mpipl_region`): 24.
pub const REGION_SIZE: usize = 0x18;

/// One preserved region as the kernel sees it (`struct opal_mpipl_region` in skiboot's and
/// Linux's `opal-api.h`; three big-endian u64 in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpiplRegion {
    /// Real address the data was copied from.
    pub src: u64,
    /// Real address of the copy.
    pub dest: u64,
    /// Bytes copied.
    pub size: u64,
}

/// `struct opal_mpipl_fadump` (skiboot's and Linux's `opal-api.h`), decoded. The 7 reserved bytes
/// after `version` are written as 0 and ignored when read; `region_cnt` is `regions.len()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpiplFadump {
    /// 0x00: the structure version, [`MPIPL_VERSION`].
    pub version: u8,
    /// 0x08: PIR of the thread that triggered the MPIPL. Filled for `TAG_OPAL`; 0 in the
    /// `TAG_CPU` metadata, where Linux takes the crashing CPU from its own crash-info header.
    pub crashing_pir: u32,
    /// 0x0C: format of the register data for `TAG_CPU`,
    /// [`regdata::CPU_DATA_VERSION`](crate::opal::regdata::CPU_DATA_VERSION) (1, HDAT P9); 0
    /// for `TAG_OPAL`.
    pub cpu_data_version: u32,
    /// 0x10: bytes per thread record, the stride Linux walks the register data with (Linux
    /// divides `regions[0].size` by it to count threads); 0 for `TAG_OPAL`.
    pub cpu_data_size: u32,
    /// 0x14 `region_cnt`, then the regions from 0x18. For `TAG_CPU`: one region covering every
    /// thread record, `src == dest`. For `TAG_OPAL`: OPAL's own preserved memory.
    pub regions: Vec<MpiplRegion>,
}

/// Why bytes could not be decoded as metadata.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// Fewer bytes than the header, or than the regions `region_cnt` announces.
    #[error("metadata of {len} bytes is shorter than its {need}-byte content")]
    Short {
        /// Bytes given.
        len: usize,
        /// Bytes the content needs (`usize::MAX` when `region_cnt` overflows the computation).
        need: usize,
    },
}

impl MpiplFadump {
    /// Bytes of the encoding: the header plus 24 per region.
    pub fn encoded_len(&self) -> usize {
        HEADER_SIZE + self.regions.len() * REGION_SIZE
    }

    /// The big-endian, packed encoding, exactly [`MpiplFadump::encoded_len`] bytes.
    pub fn to_be_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.encoded_len()];
        let mut w = BeWriter::new(&mut out);
        w.u8(0x00, self.version);
        w.u32(0x08, self.crashing_pir);
        w.u32(0x0c, self.cpu_data_version);
        w.u32(0x10, self.cpu_data_size);
        w.u32(0x14, self.regions.len() as u32);
        for (i, r) in self.regions.iter().enumerate() {
            let off = HEADER_SIZE + i * REGION_SIZE;
            w.u64(off, r.src);
            w.u64(off + 8, r.dest);
            w.u64(off + 16, r.size);
        }
        out
    }

    /// Decodes the metadata at the start of `bytes` (trailing bytes are ignored). The version
    /// is not checked.
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Self, MetadataError> {
        if bytes.len() < HEADER_SIZE {
            return Err(MetadataError::Short {
                len: bytes.len(),
                need: HEADER_SIZE,
            });
        }
        let r = BeReader::new(bytes);
        let count = r.u32(0x14) as usize;
        let need = count
            .checked_mul(REGION_SIZE)
            .and_then(|n| n.checked_add(HEADER_SIZE))
            .unwrap_or(usize::MAX);
        if bytes.len() < need {
            return Err(MetadataError::Short {
                len: bytes.len(),
                need,
            });
        }
        Ok(Self {
            version: bytes[0],
            crashing_pir: r.u32(0x08),
            cpu_data_version: r.u32(0x0c),
            cpu_data_size: r.u32(0x10),
            regions: (0..count)
                .map(|i| {
                    let off = HEADER_SIZE + i * REGION_SIZE;
                    MpiplRegion {
                        src: r.u64(off),
                        dest: r.u64(off + 8),
                        size: r.u64(off + 16),
                    }
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_offsets() {
        let m = MpiplFadump {
            version: MPIPL_VERSION,
            crashing_pir: 0x11,
            cpu_data_version: 1,
            cpu_data_size: 0x3d8,
            regions: vec![MpiplRegion {
                src: 0x7000_0000,
                dest: 0x7000_0000,
                size: 0x1ec0,
            }],
        };
        let b = m.to_be_bytes();
        assert_eq!(b.len(), 0x30);
        assert_eq!(b[0], 1);
        assert_eq!(&b[0x08..0x0c], &0x11u32.to_be_bytes());
        assert_eq!(&b[0x10..0x14], &0x3d8u32.to_be_bytes());
        assert_eq!(&b[0x14..0x18], &1u32.to_be_bytes());
        assert_eq!(&b[0x18..0x20], &0x7000_0000u64.to_be_bytes());
        assert_eq!(&b[0x28..0x30], &0x1ec0u64.to_be_bytes());
        assert_eq!(MpiplFadump::from_be_bytes(&b).unwrap(), m);
        assert!(MpiplFadump::from_be_bytes(&b[..0x20]).is_err());
    }
}
