//! Adding properties to a finished flattened device tree blob.
//!
//! The machine needs properties `devicetree::build_with_pci` does not write yet; without
//! them a 6.12 pseries kernel oopses while bringing up the PHB and its virtio devices (seen
//! in the nested run, see [`pci_quirks`]). The blob is rebuilt in the standard order
//! (header, memory reservations, structure, strings) with each new property as the first
//! one of its node.

use thiserror::Error;

const MAGIC: u32 = 0xd00d_feed;
const HEADER_SIZE: usize = 40;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// The two properties a pseries Linux guest needs on a machine with PHBs `phbs`:
///
/// - `/chosen/linux,iommu-off`: our PHBs have no IOMMU (devices reach guest RAM at
///   guest-physical addresses, which is what this tells the kernel). Without it, and without
///   an `ibm,dma-window`, `pci_dma_find()` dereferences a null pointer scanning the bus.
/// - `ibm,pe-total-#msi = <0>` on each PHB: the PHB then gets its own (empty) MSI domain.
///   Without one the bus resolves its MSI domain to the XICS domain (which matches every
///   node), and virtio-pci's first MSI-X attempt oopses in `pci_msi_domain_supports()`;
///   with it the MSI-X attempt fails cleanly (our devices have no MSI-X capability) and the
///   driver falls back to INTx, i.e. the LSI in the `interrupt-map`.
pub fn pci_quirks(
    blob: &[u8],
    phbs: &[devicetree::pci::PhbDescription],
) -> Result<Vec<u8>, FdtEditError> {
    let mut out = add_property(blob, "/chosen", "linux,iommu-off", &[])?;
    for p in phbs {
        let path = format!("/{}", p.node_name());
        out = add_property(&out, &path, "ibm,pe-total-#msi", &0u32.to_be_bytes())?;
    }
    Ok(out)
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FdtEditError {
    #[error("not a flattened device tree (bad header)")]
    BadHeader,
    #[error("malformed structure block at offset {0:#x}")]
    Malformed(usize),
    #[error("no node {0}")]
    NoNode(String),
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

/// Byte range of a block given as (offset, size) header fields, checked against the blob.
fn block(
    blob: &[u8],
    off_field: usize,
    size: usize,
) -> Result<std::ops::Range<usize>, FdtEditError> {
    let off = be32(blob, off_field).ok_or(FdtEditError::BadHeader)? as usize;
    let end = off.checked_add(size).ok_or(FdtEditError::BadHeader)?;
    if end > blob.len() || off < HEADER_SIZE {
        return Err(FdtEditError::BadHeader);
    }
    Ok(off..end)
}

/// Where, in the structure block `st`, the properties of the node at `path` start (just after
/// its name). `path` is absolute (`/chosen`); `/` is the root.
fn node_body(st: &[u8], path: &str) -> Result<usize, FdtEditError> {
    let want: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    // Names of the nodes we are inside, root = "".
    let mut stack: Vec<String> = Vec::new();
    let mut at = 0;
    loop {
        let tok = be32(st, at).ok_or(FdtEditError::Malformed(at))?;
        let next = at + 4;
        match tok {
            BEGIN_NODE => {
                let name_len = st
                    .get(next..)
                    .and_then(|s| s.iter().position(|&c| c == 0))
                    .ok_or(FdtEditError::Malformed(at))?;
                let name = String::from_utf8_lossy(&st[next..next + name_len]).into_owned();
                let body = align4(next + name_len + 1).ok_or(FdtEditError::Malformed(at))?;
                stack.push(name);
                // stack[0] is the root; the path components match stack[1..].
                if stack.len() == want.len() + 1
                    && stack[1..].iter().zip(&want).all(|(a, b)| a == b)
                {
                    return Ok(body);
                }
                at = body;
            }
            END_NODE => {
                if stack.pop().is_none() {
                    return Err(FdtEditError::Malformed(at));
                }
                at = next;
            }
            PROP => {
                let len = be32(st, next).ok_or(FdtEditError::Malformed(at))? as usize;
                at = (next + 8)
                    .checked_add(len)
                    .and_then(align4)
                    .ok_or(FdtEditError::Malformed(at))?;
            }
            NOP => at = next,
            END => return Err(FdtEditError::NoNode(path.into())),
            _ => return Err(FdtEditError::Malformed(at)),
        }
    }
}

/// Returns `blob` with property `name` = `value` added to the node at `path`.
pub fn add_property(
    blob: &[u8],
    path: &str,
    name: &str,
    value: &[u8],
) -> Result<Vec<u8>, FdtEditError> {
    if blob.len() < HEADER_SIZE || be32(blob, 0) != Some(MAGIC) {
        return Err(FdtEditError::BadHeader);
    }
    let field = |i: usize| be32(blob, 4 * i).ok_or(FdtEditError::BadHeader);
    let version = field(5)?;
    if version < 17 {
        return Err(FdtEditError::BadHeader);
    }
    let strings = block(blob, 12, field(8)? as usize)?;
    let st = block(blob, 8, field(9)? as usize)?;
    let rsv_start = field(4)? as usize;
    // The reservation block ends with an all-zero entry.
    let mut rsv_end = rsv_start;
    loop {
        let e = blob
            .get(rsv_end..rsv_end + 16)
            .ok_or(FdtEditError::BadHeader)?;
        rsv_end += 16;
        if e.iter().all(|&b| b == 0) {
            break;
        }
    }
    let st_bytes = &blob[st];
    let insert_at = node_body(st_bytes, path)?;

    let mut new_strings = blob[strings].to_vec();
    let name_off = new_strings.len() as u32;
    new_strings.extend_from_slice(name.as_bytes());
    new_strings.push(0);

    let mut prop = Vec::new();
    prop.extend_from_slice(&PROP.to_be_bytes());
    prop.extend_from_slice(&(value.len() as u32).to_be_bytes());
    prop.extend_from_slice(&name_off.to_be_bytes());
    prop.extend_from_slice(value);
    prop.resize(align4(prop.len()).ok_or(FdtEditError::BadHeader)?, 0);
    let mut new_st = st_bytes[..insert_at].to_vec();
    new_st.extend_from_slice(&prop);
    new_st.extend_from_slice(&st_bytes[insert_at..]);

    let rsv = &blob[rsv_start..rsv_end];
    let off_rsv = align4(HEADER_SIZE).ok_or(FdtEditError::BadHeader)?;
    let off_st = off_rsv + rsv.len();
    let off_strings = off_st + new_st.len();
    let total = off_strings + new_strings.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&blob[..HEADER_SIZE]);
    let mut set =
        |i: usize, v: usize| out[4 * i..4 * i + 4].copy_from_slice(&(v as u32).to_be_bytes());
    set(1, total);
    set(2, off_st);
    set(3, off_strings);
    set(4, off_rsv);
    set(8, new_strings.len());
    set(9, new_st.len());
    out.extend_from_slice(rsv);
    out.extend_from_slice(&new_st);
    out.extend_from_slice(&new_strings);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicetree::blob::{find_property, node_paths, reservations};

    /// A hand-assembled blob in the order `dtc` uses: root { #address-cells; chosen {
    /// bootargs }; pci@800000020000000 { chosen {} } }, one memory reservation.
    fn sample() -> Vec<u8> {
        let mut strings = Vec::new();
        let mut st = Vec::new();
        let word = |st: &mut Vec<u8>, v: u32| st.extend_from_slice(&v.to_be_bytes());
        let begin = |st: &mut Vec<u8>, name: &str| {
            st.extend_from_slice(&BEGIN_NODE.to_be_bytes());
            st.extend_from_slice(name.as_bytes());
            st.push(0);
            st.resize(align4(st.len()).unwrap(), 0);
        };
        let mut prop = |st: &mut Vec<u8>, name: &str, val: &[u8]| {
            let off = strings.len() as u32;
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            st.extend_from_slice(&PROP.to_be_bytes());
            st.extend_from_slice(&(val.len() as u32).to_be_bytes());
            st.extend_from_slice(&off.to_be_bytes());
            st.extend_from_slice(val);
            st.resize(align4(st.len()).unwrap(), 0);
        };
        begin(&mut st, "");
        prop(&mut st, "#address-cells", &2u32.to_be_bytes());
        begin(&mut st, "chosen");
        prop(&mut st, "bootargs", b"console=hvc0\0");
        word(&mut st, END_NODE);
        begin(&mut st, "pci@800000020000000");
        word(&mut st, NOP);
        begin(&mut st, "chosen");
        word(&mut st, END_NODE);
        word(&mut st, END_NODE);
        word(&mut st, END_NODE);
        word(&mut st, END);
        let mut rsv = Vec::new();
        for v in [0x1000u64, 0x2000, 0, 0] {
            rsv.extend_from_slice(&v.to_be_bytes());
        }
        let off_rsv = HEADER_SIZE;
        let off_st = off_rsv + rsv.len();
        let off_strings = off_st + st.len();
        let total = off_strings + strings.len();
        let mut blob = Vec::new();
        for v in [
            MAGIC,
            total as u32,
            off_st as u32,
            off_strings as u32,
            off_rsv as u32,
            17,
            16,
            0,
            strings.len() as u32,
            st.len() as u32,
        ] {
            blob.extend_from_slice(&v.to_be_bytes());
        }
        blob.extend_from_slice(&rsv);
        blob.extend_from_slice(&st);
        blob.extend_from_slice(&strings);
        blob
    }

    #[test]
    fn adds_an_empty_property_and_keeps_everything_else() {
        let blob = sample();
        let out = add_property(&blob, "/chosen", "linux,iommu-off", &[]).unwrap();
        assert_eq!(
            find_property(&out, "/chosen", "linux,iommu-off"),
            Some(vec![])
        );
        assert_eq!(
            find_property(&out, "/chosen", "bootargs"),
            Some(b"console=hvc0\0".to_vec())
        );
        assert_eq!(
            find_property(&out, "/", "#address-cells"),
            Some(vec![0, 0, 0, 2])
        );
        assert_eq!(node_paths(&out).unwrap(), node_paths(&blob).unwrap());
        assert_eq!(reservations(&out), reservations(&blob));
        // Only the node named by the full path got it.
        assert_eq!(
            find_property(&out, "/pci@800000020000000/chosen", "linux,iommu-off"),
            None
        );
        assert_eq!(be32(&out, 4), Some(out.len() as u32));
    }

    #[test]
    fn values_are_padded_and_nested_paths_work() {
        let blob = sample();
        let out = add_property(&blob, "/pci@800000020000000/chosen", "x", &[1, 2, 3]).unwrap();
        assert_eq!(
            find_property(&out, "/pci@800000020000000/chosen", "x"),
            Some(vec![1, 2, 3])
        );
        let out2 = add_property(&out, "/", "y", &[9; 5]).unwrap();
        assert_eq!(find_property(&out2, "/", "y"), Some(vec![9; 5]));
        assert_eq!(
            find_property(&out2, "/pci@800000020000000/chosen", "x"),
            Some(vec![1, 2, 3])
        );
    }

    #[test]
    fn pci_quirks_mark_chosen_and_every_phb() {
        use devicetree::pci::{PciWindow, PhbDescription};
        let w = PciWindow {
            pci_addr: 0,
            cpu_addr: 0,
            size: 0,
        };
        let phb = PhbDescription {
            buid: 0x0800_0000_2000_0000,
            mem32: w,
            io: w,
            lsi_base: 0x1200,
            devices: vec![],
        };
        assert_eq!(phb.node_name(), "pci@800000020000000");
        let out = pci_quirks(&sample(), std::slice::from_ref(&phb)).unwrap();
        assert_eq!(
            find_property(&out, "/chosen", "linux,iommu-off"),
            Some(vec![])
        );
        assert_eq!(
            find_property(&out, "/pci@800000020000000", "ibm,pe-total-#msi"),
            Some(vec![0; 4])
        );
        // A PHB the tree does not have is an error, not a silent no-op.
        let other = PhbDescription {
            buid: 0x0800_0000_2000_0001,
            ..phb
        };
        assert!(matches!(
            pci_quirks(&sample(), &[other]),
            Err(FdtEditError::NoNode(_))
        ));
    }

    #[test]
    fn bad_input_is_an_error() {
        let blob = sample();
        assert_eq!(
            add_property(&blob, "/nope", "x", &[]),
            Err(FdtEditError::NoNode("/nope".into()))
        );
        assert_eq!(
            add_property(&blob[..20], "/", "x", &[]),
            Err(FdtEditError::BadHeader)
        );
        let mut bad = blob.clone();
        bad[0] = 0;
        assert_eq!(
            add_property(&bad, "/", "x", &[]),
            Err(FdtEditError::BadHeader)
        );
        // A structure block cut short.
        let mut short = blob.clone();
        let st_size = be32(&blob, 36).unwrap();
        short[36..40].copy_from_slice(&(st_size - 8).to_be_bytes());
        assert!(add_property(&short, "/nope", "x", &[]).is_err());
        // Every truncation of the blob is an error, never a panic.
        for n in 0..blob.len() {
            let _ = add_property(&blob[..n], "/chosen", "x", &[]);
        }
    }
}
