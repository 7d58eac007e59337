//! `/aliases`: short names for nodes.

use crate::error::Error;
use crate::writer::TreeWriter;

/// `serial0` names the hypervisor console, the conventional alias for the first serial port
/// (Linux's `of_alias_scan()` records it; tools and boot loaders that look for a console by
/// alias find it). `dtc` checks that the path exists.
pub(crate) fn write(w: &mut TreeWriter) -> Result<(), Error> {
    let n = w.begin("aliases")?;
    w.string("serial0", &crate::nodes::vdevice::vty_path())?;
    w.end(n)
}
