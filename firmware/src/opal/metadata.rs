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

pub const MPIPL_VERSION: u8 = 1;
pub const HEADER_SIZE: usize = 0x18;
pub const REGION_SIZE: usize = 0x18;

/// One preserved region as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpiplRegion {
    pub src: u64,
    pub dest: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpiplFadump {
    pub version: u8,
    pub crashing_pir: u32,
    pub cpu_data_version: u32,
    pub cpu_data_size: u32,
    pub regions: Vec<MpiplRegion>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MetadataError {
    #[error("metadata of {len} bytes is shorter than its {need}-byte content")]
    Short { len: usize, need: usize },
}

impl MpiplFadump {
    pub fn encoded_len(&self) -> usize {
        HEADER_SIZE + self.regions.len() * REGION_SIZE
    }

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
