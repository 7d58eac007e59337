//! `/ibm,dynamic-reconfiguration-memory`: the LMB list of a guest with a memory hotplug
//! window, and the root's DRC lists beside it.
//!
//! Linux reads the node at boot (prom.c `early_init_dt_scan_memory_ppc` → drmem.c
//! `walk_drmem_lmbs_early`: every ASSIGNED, non-RESERVED LMB joins memblock), again in
//! `drmem_init` and for the memory block size (init_64.c `probe_memory_block_size` returns
//! `ibm,lmb-size` as soon as the node exists). No client-architecture negotiation is needed
//! with a flat tree: drconf parsing does not look at vec5. The properties themselves are the
//! firmware's (`firmware::dlpar::tree`), so the table and the tree cannot disagree.

use crate::error::Error;
use crate::writer::TreeWriter;
use firmware::Property;

/// The node's name under `/`.
pub const DRCONF_NODE: &str = "ibm,dynamic-reconfiguration-memory";

/// What a guest with a hotplug window gets in its tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drconf {
    /// The node's properties (`ibm,lmb-size`, `ibm,dynamic-memory-v2`, ...).
    pub properties: Vec<Property>,
    /// Root properties (`ibm,drc-indexes`, `-names`, `-types`, `-power-domains`).
    pub root_properties: Vec<Property>,
}

/// The root's DRC lists (written with the root's own properties, before any child).
pub(crate) fn write_root(w: &mut TreeWriter, d: &Drconf) -> Result<(), Error> {
    for p in &d.root_properties {
        w.bytes(&p.name, &p.value.to_fdt_bytes())?;
    }
    Ok(())
}

/// The node itself.
pub(crate) fn write(w: &mut TreeWriter, d: &Drconf) -> Result<(), Error> {
    let n = w.begin(DRCONF_NODE)?;
    for p in &d.properties {
        w.bytes(&p.name, &p.value.to_fdt_bytes())?;
    }
    w.end(n)
}
