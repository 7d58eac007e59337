//! Device-tree properties the firmware contributes (under `/rtas`, `/ibm,opal/dump`), as data
//! the `devicetree` crate places. Values are already in device-tree (big-endian) form.

/// A property value, kept typed so the device-tree builder and tests can read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    /// A boolean property: present, no value.
    Empty,
    /// Big-endian 32-bit cells.
    U32Cells(Vec<u32>),
    /// Big-endian 64-bit values (two cells each).
    U64Cells(Vec<u64>),
    /// Raw bytes, placed verbatim.
    Bytes(Vec<u8>),
    /// A NUL-terminated string.
    Str(String),
}

impl PropValue {
    /// The bytes as they appear in a flattened device tree.
    pub fn to_fdt_bytes(&self) -> Vec<u8> {
        match self {
            PropValue::Empty => Vec::new(),
            PropValue::U32Cells(c) => c.iter().flat_map(|v| v.to_be_bytes()).collect(),
            PropValue::U64Cells(c) => c.iter().flat_map(|v| v.to_be_bytes()).collect(),
            PropValue::Bytes(b) => b.clone(),
            PropValue::Str(s) => {
                let mut b = s.as_bytes().to_vec();
                b.push(0);
                b
            }
        }
    }
}

/// One device-tree property: a name and its value. The node it goes under is the caller's
/// business (`/rtas` for [`Rtas::properties`](crate::rtas::Rtas::properties), `/ibm,opal/dump`
/// for [`MpiplEngine::dump_node_properties`](crate::opal::MpiplEngine::dump_node_properties)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The property name, e.g. `ibm,configure-kernel-dump`.
    pub name: String,
    /// The value.
    pub value: PropValue,
}

impl Property {
    /// A property named `name` with `value`.
    pub fn new(name: &str, value: PropValue) -> Self {
        Self {
            name: name.to_string(),
            value,
        }
    }

    /// A property holding one 32-bit cell, e.g. an RTAS token.
    pub fn u32(name: &str, v: u32) -> Self {
        Self::new(name, PropValue::U32Cells(vec![v]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdt_bytes_are_big_endian() {
        assert_eq!(
            PropValue::U32Cells(vec![0x202d]).to_fdt_bytes(),
            vec![0, 0, 0x20, 0x2d]
        );
        assert_eq!(
            PropValue::U64Cells(vec![0x2000_0000]).to_fdt_bytes(),
            vec![0, 0, 0, 0, 0x20, 0, 0, 0]
        );
        assert_eq!(
            PropValue::Str("ibm,opal-dump".into()).to_fdt_bytes().last(),
            Some(&0)
        );
        assert!(PropValue::Empty.to_fdt_bytes().is_empty());
    }
}
