//! The `/ibm,opal/dump` device-tree node.

use crate::properties::{PropValue, Property};
use crate::range::GuestRange;

/// Path of the node, under the OPAL node.
pub const DUMP_NODE_PATH: &str = "/ibm,opal/dump";
/// The node's `compatible`. Linux gives up on fadump without it ("Support missing for this f/w
/// version!").
pub const COMPATIBLE: &str = "ibm,opal-dump";

/// `compatible`, `fw-load-area` (BE64 base, BE64 size pairs) and, on an MPIPL boot, an empty
/// `mpipl-boot` (skiboot's form; Linux tests presence only).
pub fn dump_node_properties(fw_load_area: &[GuestRange], mpipl_boot: bool) -> Vec<Property> {
    let mut props = vec![Property::new(
        "compatible",
        PropValue::Str(COMPATIBLE.into()),
    )];
    if !fw_load_area.is_empty() {
        props.push(Property::new(
            "fw-load-area",
            PropValue::U64Cells(
                fw_load_area
                    .iter()
                    .flat_map(|r| [r.start(), r.len()])
                    .collect(),
            ),
        ));
    }
    if mpipl_boot {
        props.push(Property::new("mpipl-boot", PropValue::Empty));
    }
    props
}
