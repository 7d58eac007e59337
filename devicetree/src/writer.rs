//! A thin layer over `vm_fdt::FdtWriter` that adds what the pseries tree needs:
//! property names longer than 31 characters (see [`crate::blob`]), a check that no node gets
//! the same property twice (the firmware contributes `/rtas` properties we do not control),
//! and node paths in error messages.

use std::collections::{BTreeSet, HashMap};

use vm_fdt::{FdtReserveEntry, FdtWriter, FdtWriterNode};

use crate::blob;
use crate::error::Error;

/// `vm-fdt`'s limit for property names.
const VM_FDT_MAX_NAME: usize = 31;
/// Aliases for long names start with this; no real name may.
const ALIAS_PREFIX: &str = "x-long-name-";

/// An open node; pass it back to [`TreeWriter::end`].
pub(crate) struct Node(FdtWriterNode);

struct Open {
    path: String,
    props: BTreeSet<String>,
}

pub(crate) struct TreeWriter {
    fdt: FdtWriter,
    open: Vec<Open>,
    aliases: HashMap<String, String>,
    node_aliases: HashMap<String, String>,
}

/// The Devicetree Specification's property-name characters (what `dtc` accepts).
fn valid_property_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ",._+?#-".contains(c))
}

impl TreeWriter {
    pub(crate) fn new(reservations: &[(u64, u64)]) -> Result<Self, Error> {
        let entries = reservations
            .iter()
            .map(|&(a, s)| FdtReserveEntry::new(a, s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            fdt: FdtWriter::new_with_mem_reserv(&entries)?,
            open: Vec::new(),
            aliases: HashMap::new(),
            node_aliases: HashMap::new(),
        })
    }

    pub(crate) fn set_boot_cpuid_phys(&mut self, id: u32) {
        self.fdt.set_boot_cpuid_phys(id);
    }

    pub(crate) fn begin(&mut self, name: &str) -> Result<Node, Error> {
        let path = match self.open.last() {
            None => "/".to_string(),
            Some(p) if p.path == "/" => format!("/{name}"),
            Some(p) => format!("{}/{name}", p.path),
        };
        let base_len = name.split('@').next().map_or(0, str::len);
        let node = if base_len > VM_FDT_MAX_NAME && !name.starts_with(ALIAS_PREFIX) {
            let alias = format!("{ALIAS_PREFIX}node-{}", self.node_aliases.len());
            self.node_aliases.insert(alias.clone(), name.to_string());
            self.fdt.begin_node(&alias)?
        } else {
            self.fdt.begin_node(name)?
        };
        self.open.push(Open {
            path,
            props: BTreeSet::new(),
        });
        Ok(Node(node))
    }

    pub(crate) fn end(&mut self, node: Node) -> Result<(), Error> {
        self.fdt.end_node(node.0)?;
        self.open.pop();
        Ok(())
    }

    /// Writes a property with raw bytes; every typed helper ends here.
    pub(crate) fn bytes(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        if !valid_property_name(name) || name.starts_with(ALIAS_PREFIX) {
            return Err(Error::BadPropertyName(name.to_string()));
        }
        let open = self
            .open
            .last_mut()
            .ok_or(Error::Blob("property outside a node"))?;
        if !open.props.insert(name.to_string()) {
            return Err(Error::DuplicateProperty {
                node: open.path.clone(),
                name: name.to_string(),
            });
        }
        if name.len() <= VM_FDT_MAX_NAME {
            self.fdt.property(name, value)?;
        } else {
            let alias = match self.aliases.iter().find(|(_, real)| *real == name) {
                Some((a, _)) => a.clone(),
                None => {
                    let a = format!("{ALIAS_PREFIX}{}", self.aliases.len());
                    self.aliases.insert(a.clone(), name.to_string());
                    a
                }
            };
            self.fdt.property(&alias, value)?;
        }
        Ok(())
    }

    pub(crate) fn null(&mut self, name: &str) -> Result<(), Error> {
        self.bytes(name, &[])
    }

    pub(crate) fn u32(&mut self, name: &str, v: u32) -> Result<(), Error> {
        self.bytes(name, &v.to_be_bytes())
    }

    pub(crate) fn cells(&mut self, name: &str, cells: &[u32]) -> Result<(), Error> {
        let b: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.bytes(name, &b)
    }

    pub(crate) fn u64s(&mut self, name: &str, vals: &[u64]) -> Result<(), Error> {
        let b: Vec<u8> = vals.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.bytes(name, &b)
    }

    pub(crate) fn string(&mut self, name: &str, s: &str) -> Result<(), Error> {
        self.strings(name, &[s])
    }

    pub(crate) fn strings(&mut self, name: &str, list: &[&str]) -> Result<(), Error> {
        let mut b = Vec::new();
        for s in list {
            if s.contains('\0') {
                return Err(Error::NulInString {
                    what: "a string property",
                });
            }
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
        self.bytes(name, &b)
    }

    /// `phandle` (checked unique by `vm-fdt`) and the older `linux,phandle` with the same value.
    pub(crate) fn phandle(&mut self, v: u32) -> Result<(), Error> {
        let open = self
            .open
            .last_mut()
            .ok_or(Error::Blob("property outside a node"))?;
        if !open.props.insert("phandle".to_string()) {
            return Err(Error::DuplicateProperty {
                node: open.path.clone(),
                name: "phandle".to_string(),
            });
        }
        self.fdt.property_phandle(v)?;
        self.u32("linux,phandle", v)
    }

    pub(crate) fn finish(self) -> Result<Vec<u8>, Error> {
        let raw = self.fdt.finish()?;
        let renamed = blob::rename_properties(raw, &self.aliases)?;
        blob::rename_nodes(renamed, &self.node_aliases)
    }
}
