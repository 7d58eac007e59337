//! Reading a finished flattened device tree back: a structure-block walker, the property
//! renaming pass that lets us use PAPR's long property names, and a lookup used by tests.
//!
//! Why renaming: `vm-fdt` refuses property names longer than 31 characters (the Devicetree
//! Specification's limit), but PAPR and Linux use longer ones, e.g.
//! `ibm,processor-radix-AP-encodings` (32), `ibm,query-interrupt-source-number` (33) and
//! `ibm,configure-kernel-dump-version` (33). Linux and `dtc` accept any length. We therefore
//! write such properties under a short alias and, once `vm-fdt` has produced the blob, rebuild
//! its strings block with the real names (`rename_properties`).
//!
//! Layout facts used (Devicetree Specification, "Flattened Devicetree (DTB) Format"): a 40-byte
//! header of big-endian u32 fields; structure tokens BEGIN_NODE (1, then the NUL-terminated
//! name padded to 4 bytes), END_NODE (2), PROP (3, then value length, name offset into the
//! strings block, value padded to 4 bytes), NOP (4), END (9). `vm-fdt` places the strings block
//! last, directly after the structure block.

use std::collections::HashMap;

use crate::error::Error;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

const HDR_TOTALSIZE: usize = 4;
const HDR_OFF_DT_STRUCT: usize = 8;
const HDR_OFF_DT_STRINGS: usize = 12;
const HDR_SIZE_DT_STRINGS: usize = 32;
const HDR_SIZE_DT_STRUCT: usize = 36;
const HDR_LEN: usize = 40;

fn be32(b: &[u8], off: usize) -> Result<u32, Error> {
    let end = off.checked_add(4).ok_or(Error::Blob("offset overflow"))?;
    let s = b.get(off..end).ok_or(Error::Blob("truncated blob"))?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn put_be32(b: &mut [u8], off: usize, v: u32) -> Result<(), Error> {
    let end = off.checked_add(4).ok_or(Error::Blob("offset overflow"))?;
    b.get_mut(off..end)
        .ok_or(Error::Blob("truncated blob"))?
        .copy_from_slice(&v.to_be_bytes());
    Ok(())
}

fn align4(v: usize) -> Result<usize, Error> {
    v.checked_add(3)
        .map(|x| x & !3)
        .ok_or(Error::Blob("offset overflow"))
}

fn cstr(b: &[u8], off: usize) -> Result<&str, Error> {
    let tail = b
        .get(off..)
        .ok_or(Error::Blob("string offset out of range"))?;
    let nul = tail
        .iter()
        .position(|&c| c == 0)
        .ok_or(Error::Blob("unterminated string"))?;
    std::str::from_utf8(&tail[..nul]).map_err(|_| Error::Blob("string is not UTF-8"))
}

/// One item of the structure block.
#[derive(Debug)]
pub(crate) enum Item<'a> {
    Begin(&'a str),
    End,
    Prop {
        name: &'a str,
        value: &'a [u8],
        /// Where the property's name offset sits in the blob.
        nameoff_at: usize,
    },
}

/// The header fields the walker and the rename pass need.
struct Header {
    totalsize: usize,
    off_struct: usize,
    size_struct: usize,
    off_strings: usize,
    size_strings: usize,
}

fn header(blob: &[u8]) -> Result<Header, Error> {
    if blob.len() < HDR_LEN || be32(blob, 0)? != FDT_MAGIC {
        return Err(Error::Blob("not a flattened device tree"));
    }
    let h = Header {
        totalsize: be32(blob, HDR_TOTALSIZE)? as usize,
        off_struct: be32(blob, HDR_OFF_DT_STRUCT)? as usize,
        size_struct: be32(blob, HDR_SIZE_DT_STRUCT)? as usize,
        off_strings: be32(blob, HDR_OFF_DT_STRINGS)? as usize,
        size_strings: be32(blob, HDR_SIZE_DT_STRINGS)? as usize,
    };
    let struct_end = h.off_struct.checked_add(h.size_struct);
    let strings_end = h.off_strings.checked_add(h.size_strings);
    if h.totalsize != blob.len()
        || struct_end.is_none_or(|e| e > blob.len())
        || strings_end.is_none_or(|e| e > blob.len())
    {
        return Err(Error::Blob("header sizes disagree with the blob"));
    }
    Ok(h)
}

/// Calls `f` for every node start, node end and property, in blob order.
pub(crate) fn walk<'a>(
    blob: &'a [u8],
    mut f: impl FnMut(Item<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    let h = header(blob)?;
    let structure = &blob[..h.off_struct + h.size_struct];
    let strings = &blob[h.off_strings..h.off_strings + h.size_strings];
    let mut pos = h.off_struct;
    loop {
        match be32(structure, pos)? {
            FDT_BEGIN_NODE => {
                let name = cstr(structure, pos + 4)?;
                f(Item::Begin(name))?;
                pos = align4(pos + 4 + name.len() + 1)?;
            }
            FDT_END_NODE => {
                f(Item::End)?;
                pos += 4;
            }
            FDT_PROP => {
                let len = be32(structure, pos + 4)? as usize;
                let nameoff = be32(structure, pos + 8)? as usize;
                let start = pos + 12;
                let end = start
                    .checked_add(len)
                    .ok_or(Error::Blob("offset overflow"))?;
                let value = structure
                    .get(start..end)
                    .ok_or(Error::Blob("property runs past the structure block"))?;
                f(Item::Prop {
                    name: cstr(strings, nameoff)?,
                    value,
                    nameoff_at: pos + 8,
                })?;
                pos = align4(end)?;
            }
            FDT_NOP => pos += 4,
            FDT_END => return Ok(()),
            _ => return Err(Error::Blob("unknown structure token")),
        }
    }
}

/// Renames nodes: every node whose name is a key of `renames` gets the value instead (names
/// longer than `vm-fdt`'s 31 characters, such as `ibm,dynamic-reconfiguration-memory`). The
/// structure block grows by the difference; the strings block after it moves along.
pub(crate) fn rename_nodes(
    blob: Vec<u8>,
    renames: &HashMap<String, String>,
) -> Result<Vec<u8>, Error> {
    if renames.is_empty() {
        return Ok(blob);
    }
    let h = header(&blob)?;
    let end = h.off_struct + h.size_struct;
    let mut out = blob[..h.off_struct].to_vec();
    let mut at = h.off_struct;
    let pad4 = |n: usize| (n + 3) & !3;
    while at < end {
        let token = be32(&blob, at)?;
        match token {
            FDT_BEGIN_NODE => {
                let name_at = at + 4;
                let len = blob
                    .get(name_at..end)
                    .and_then(|b| b.iter().position(|&c| c == 0))
                    .ok_or(Error::Blob("unterminated node name"))?;
                let name = std::str::from_utf8(&blob[name_at..name_at + len])
                    .map_err(|_| Error::Blob("node name is not UTF-8"))?;
                let real = renames.get(name).map(String::as_str).unwrap_or(name);
                out.extend_from_slice(&blob[at..name_at]);
                let mut n = real.as_bytes().to_vec();
                n.push(0);
                n.resize(pad4(n.len()), 0);
                out.extend_from_slice(&n);
                at = name_at + pad4(len + 1);
            }
            FDT_PROP => {
                let len = be32(&blob, at + 4)? as usize;
                let next = at + 12 + pad4(len);
                out.extend_from_slice(
                    blob.get(at..next)
                        .ok_or(Error::Blob("property past the end"))?,
                );
                at = next;
            }
            FDT_END_NODE | FDT_NOP | FDT_END => {
                out.extend_from_slice(&blob[at..at + 4]);
                at += 4;
            }
            _ => return Err(Error::Blob("unknown structure token")),
        }
    }
    let size_struct = out.len() - h.off_struct;
    out.extend_from_slice(&blob[end..]);
    let as_u32 = |v: usize| u32::try_from(v).map_err(|_| Error::Blob("blob too large"));
    put_be32(&mut out, HDR_SIZE_DT_STRUCT, as_u32(size_struct)?)?;
    put_be32(
        &mut out,
        HDR_OFF_DT_STRINGS,
        as_u32(h.off_struct + size_struct)?,
    )?;
    let total = as_u32(out.len())?;
    put_be32(&mut out, HDR_TOTALSIZE, total)?;
    Ok(out)
}

/// Rebuilds the strings block so that every property named `alias` in `renames` carries the
/// real name instead. Unused strings disappear; the order of first use is kept.
pub(crate) fn rename_properties(
    blob: Vec<u8>,
    renames: &HashMap<String, String>,
) -> Result<Vec<u8>, Error> {
    let h = header(&blob)?;
    if h.off_strings != h.off_struct + h.size_struct || h.off_strings + h.size_strings != blob.len()
    {
        return Err(Error::Blob("strings block is not last"));
    }
    let mut strings: Vec<u8> = Vec::new();
    let mut offsets: HashMap<String, u32> = HashMap::new();
    let mut patches: Vec<(usize, u32)> = Vec::new();
    walk(&blob, |item| {
        if let Item::Prop {
            name, nameoff_at, ..
        } = item
        {
            let real = renames.get(name).map(String::as_str).unwrap_or(name);
            let off = match offsets.get(real) {
                Some(&o) => o,
                None => {
                    let o = u32::try_from(strings.len())
                        .map_err(|_| Error::Blob("strings block too large"))?;
                    strings.extend_from_slice(real.as_bytes());
                    strings.push(0);
                    offsets.insert(real.to_string(), o);
                    o
                }
            };
            patches.push((nameoff_at, off));
        }
        Ok(())
    })?;
    let mut out = blob;
    out.truncate(h.off_strings);
    for (at, off) in patches {
        put_be32(&mut out, at, off)?;
    }
    out.extend_from_slice(&strings);
    let total = u32::try_from(out.len()).map_err(|_| Error::Blob("blob too large"))?;
    let size_strings =
        u32::try_from(strings.len()).map_err(|_| Error::Blob("strings block too large"))?;
    put_be32(&mut out, HDR_TOTALSIZE, total)?;
    put_be32(&mut out, HDR_SIZE_DT_STRINGS, size_strings)?;
    Ok(out)
}

/// The value of property `name` of the node at `path` (`/` for the root, `/cpus/...`).
/// For tests and for callers that want to check a blob.
pub fn find_property(blob: &[u8], path: &str, name: &str) -> Option<Vec<u8>> {
    let mut stack: Vec<&str> = Vec::new();
    let mut found = None;
    walk(blob, |item| {
        match item {
            Item::Begin(n) => stack.push(n),
            Item::End => {
                stack.pop();
            }
            Item::Prop { name: p, value, .. } => {
                if p == name && found.is_none() && node_path(&stack) == path {
                    found = Some(value.to_vec());
                }
            }
        }
        Ok(())
    })
    .ok()?;
    found
}

/// A copy of `blob` in which property `name` of the node at `path` has the value `value`:
/// the property keeps its place (and its name's place in the strings block), the rest of the
/// structure block moves by the change in padded length, and the header's sizes follow. The
/// result is byte for byte the blob a fresh build with that value would give. Refused (an
/// error) when the node has no such property or the strings block is not after the
/// structure block.
pub fn replace_property(
    blob: &[u8],
    path: &str,
    name: &str,
    value: &[u8],
) -> Result<Vec<u8>, Error> {
    let h = header(blob)?;
    let struct_end = h.off_struct + h.size_struct;
    if h.off_strings < struct_end {
        return Err(Error::Blob(
            "strings block is not after the structure block",
        ));
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut found: Option<(usize, usize)> = None;
    walk(blob, |item| {
        match item {
            Item::Begin(n) => stack.push(n),
            Item::End => {
                stack.pop();
            }
            Item::Prop {
                name: p,
                value: v,
                nameoff_at,
            } => {
                if p == name && found.is_none() && node_path(&stack) == path {
                    // The PROP token is 8 bytes before the name offset.
                    found = Some((nameoff_at - 8, v.len()));
                }
            }
        }
        Ok(())
    })?;
    let (at, old_len) = found.ok_or(Error::Blob("no such property"))?;
    let new_len = u32::try_from(value.len()).map_err(|_| Error::Blob("value too large"))?;
    let old_end = align4(at + 12 + old_len)?;
    let mut out = Vec::with_capacity(blob.len() + value.len() + 4);
    out.extend_from_slice(&blob[..at + 4]);
    out.extend_from_slice(&new_len.to_be_bytes());
    out.extend_from_slice(&blob[at + 8..at + 12]);
    out.extend_from_slice(value);
    out.resize(align4(out.len())?, 0);
    out.extend_from_slice(&blob[old_end..]);
    let grow = |v: usize| -> Result<u32, Error> {
        (v + out.len())
            .checked_sub(blob.len())
            .and_then(|x| u32::try_from(x).ok())
            .ok_or(Error::Blob("blob size out of range"))
    };
    let (total, size_struct, off_strings) = (
        grow(h.totalsize)?,
        grow(h.size_struct)?,
        grow(h.off_strings)?,
    );
    put_be32(&mut out, HDR_TOTALSIZE, total)?;
    put_be32(&mut out, HDR_SIZE_DT_STRUCT, size_struct)?;
    put_be32(&mut out, HDR_OFF_DT_STRINGS, off_strings)?;
    Ok(out)
}

/// Paths of every node, in blob order.
pub fn node_paths(blob: &[u8]) -> Result<Vec<String>, Error> {
    let mut stack: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    walk(blob, |item| {
        match item {
            Item::Begin(n) => {
                stack.push(n);
                out.push(node_path(&stack));
            }
            Item::End => {
                stack.pop();
            }
            Item::Prop { .. } => {}
        }
        Ok(())
    })?;
    Ok(out)
}

fn node_path(stack: &[&str]) -> String {
    // The root node's name is empty.
    let parts: Vec<&str> = stack.iter().skip(1).copied().collect();
    format!("/{}", parts.join("/"))
}

/// The header's `boot_cpuid_phys`.
pub fn boot_cpuid_phys(blob: &[u8]) -> Option<u32> {
    header(blob).ok()?;
    be32(blob, 28).ok()
}

/// The memory reservation map, as `(address, size)` pairs.
pub fn reservations(blob: &[u8]) -> Option<Vec<(u64, u64)>> {
    header(blob).ok()?;
    let mut off = be32(blob, 16).ok()? as usize;
    let mut out = Vec::new();
    loop {
        let a = blob.get(off..off.checked_add(16)?)?;
        let addr = u64::from_be_bytes(a[..8].try_into().ok()?);
        let size = u64::from_be_bytes(a[8..].try_into().ok()?);
        if addr == 0 && size == 0 {
            return Some(out);
        }
        out.push((addr, size));
        off += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    fn sample() -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("x-short", 7).unwrap();
        let n = w.begin_node("child@1").unwrap();
        w.property_string("x-short", "s").unwrap();
        w.property_null("other").unwrap();
        w.end_node(n).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// `sample` with `/child@1`'s `other` holding `value`, built from scratch.
    fn sample_with(value: &[u8]) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("x-short", 7).unwrap();
        let n = w.begin_node("child@1").unwrap();
        w.property_string("x-short", "s").unwrap();
        w.property("other", value).unwrap();
        w.end_node(n).unwrap();
        let m = w.begin_node("after").unwrap();
        w.property_u32("z", 9).unwrap();
        w.end_node(m).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn a_replaced_value_gives_the_blob_a_fresh_build_gives() {
        let template = sample_with(&[]);
        for value in [&b""[..], b"a", b"abcd", b"abcde", &[0x5a; 301]] {
            let patched = replace_property(&template, "/child@1", "other", value).unwrap();
            assert_eq!(
                patched,
                sample_with(value),
                "value of {} bytes",
                value.len()
            );
            // And back again.
            let back = replace_property(&patched, "/child@1", "other", &[]).unwrap();
            assert_eq!(back, template);
        }
        assert!(replace_property(&template, "/child@1", "missing", b"x").is_err());
        assert!(replace_property(&template, "/", "other", b"x").is_err());
        assert!(replace_property(&template[..20], "/child@1", "other", b"x").is_err());
    }

    #[test]
    fn walker_finds_properties_by_path() {
        let b = sample();
        assert_eq!(find_property(&b, "/", "x-short"), Some(vec![0, 0, 0, 7]));
        assert_eq!(
            find_property(&b, "/child@1", "x-short"),
            Some(b"s\0".to_vec())
        );
        assert_eq!(find_property(&b, "/child@1", "missing"), None);
        assert_eq!(node_paths(&b).unwrap(), vec!["/", "/child@1"]);
    }

    #[test]
    fn rename_rewrites_every_use_and_keeps_the_rest() {
        let b = sample();
        let long = "a-property-name-well-beyond-thirty-one-characters";
        let renames = HashMap::from([("x-short".to_string(), long.to_string())]);
        let out = rename_properties(b, &renames).unwrap();
        assert_eq!(find_property(&out, "/", long), Some(vec![0, 0, 0, 7]));
        assert_eq!(find_property(&out, "/child@1", long), Some(b"s\0".to_vec()));
        assert_eq!(find_property(&out, "/", "x-short"), None);
        assert_eq!(find_property(&out, "/child@1", "other"), Some(vec![]));
        assert_eq!(be32(&out, HDR_TOTALSIZE).unwrap() as usize, out.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(walk(&[0u8; 8], |_| Ok(())).is_err());
        let mut b = sample();
        b.truncate(b.len() - 4);
        assert!(walk(&b, |_| Ok(())).is_err());
        let mut b = sample();
        // Corrupt the first token after the root node's BEGIN_NODE.
        let off = be32(&b, HDR_OFF_DT_STRUCT).unwrap() as usize + 8;
        put_be32(&mut b, off, 0x77).unwrap();
        assert!(walk(&b, |_| Ok(())).is_err());
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    /// Every single-byte corruption of a real blob is read without a panic (and without an
    /// endless loop: the walker always advances).
    #[test]
    fn corrupted_blobs_never_panic() {
        let mut w =
            vm_fdt::FdtWriter::new_with_mem_reserv(&[
                vm_fdt::FdtReserveEntry::new(0x1000, 0x1000).unwrap()
            ])
            .unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("a", 1).unwrap();
        let n = w.begin_node("n@1").unwrap();
        w.property_string("b", "text").unwrap();
        w.end_node(n).unwrap();
        w.end_node(root).unwrap();
        let good = w.finish().unwrap();
        let mut errors = 0;
        for i in 0..good.len() {
            for v in [0x00, 0x01, 0x03, 0x09, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = find_property(&b, "/n@1", "b");
                let _ = reservations(&b);
                let _ = boot_cpuid_phys(&b);
                if node_paths(&b).is_err() {
                    errors += 1;
                }
                let _ = rename_properties(b, &HashMap::new());
            }
        }
        // Many corruptions (magic, sizes, tokens) must be detected, not silently accepted.
        assert!(errors > good.len(), "only {errors} corruptions detected");
    }
}
