//! Properties of the root node.

use crate::error::Error;
use crate::writer::TreeWriter;

/// `compatible` of the root: QEMU's value, so guest software that recognises a QEMU pseries
/// machine treats ours the same way. Linux itself does not look at it for pseries.
pub const ROOT_COMPATIBLE: &str = "qemu,pseries";
/// `model`: printed by Linux at boot ("Machine model").
pub const ROOT_MODEL: &str = "IBM pSeries (KVM guest, rust-vmm)";

/// `device_type = "chrp"` is what `pseries_probe()` checks to pick the pseries platform;
/// `#address-cells`/`#size-cells` = 2 make `/memory` and other root children use 64-bit
/// addresses and sizes.
pub(crate) fn write(w: &mut TreeWriter) -> Result<(), Error> {
    w.string("device_type", "chrp")?;
    w.string("model", ROOT_MODEL)?;
    w.string("compatible", ROOT_COMPATIBLE)?;
    w.u32("#address-cells", 2)?;
    w.u32("#size-cells", 2)
}
