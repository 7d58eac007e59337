//! `/memory@<base>` nodes, one per RAM range, in address order.

use crate::description::MachineDescription;
use crate::error::Error;
use crate::writer::TreeWriter;

/// `device_type = "memory"` and `reg = <base size>` in the root's 2+2 cells:
/// `early_init_dt_scan_memory()` adds each range to memblock. The range at 0 also bounds the
/// real-mode area (`ppc64_rma_size`) Linux uses for early allocations.
pub(crate) fn write(w: &mut TreeWriter, d: &MachineDescription) -> Result<(), Error> {
    let mut ranges = d.memory.clone();
    ranges.sort_by_key(|r| r.start());
    for r in ranges {
        let n = w.begin(&format!("memory@{:x}", r.start()))?;
        w.string("device_type", "memory")?;
        w.u64s("reg", &[r.start(), r.len()])?;
        w.end(n)?;
    }
    Ok(())
}
