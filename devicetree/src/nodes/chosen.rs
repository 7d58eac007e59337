//! `/chosen`: what the boot loader tells the kernel.

use crate::description::MachineDescription;
use crate::error::Error;
use crate::vec5::{architecture_vec5, set_drconf_bits};
use crate::writer::TreeWriter;

/// * `bootargs`: the command line (`early_init_dt_scan_chosen()`).
/// * `linux,initrd-start`/`-end`: read by `early_init_dt_check_for_initrd()` with
///   `of_read_number()` over the property's own length, so one cell each is fine below 4 GiB
///   (what QEMU writes) and two cells are used above.
/// * `linux,stdout-path` / `stdout-path`: the console node. Linux's early hvc console
///   (`hvc_vio_init_early()`) finds the `vty` node through `of_stdout` and uses its `reg` as
///   the terminal number of H_PUT_TERM_CHAR.
/// * `ibm,architecture-vec-5`: see [`crate::vec5`]; without it the guest turns radix off.
///
/// No `linux,iommu-off`: every PHB has a DMA window (`ibm,dma-window`, see `nodes::pci`), and
/// with that property kernels whose early scan honours it ignore RAM above 2 GiB.
pub(crate) fn write(w: &mut TreeWriter, d: &MachineDescription, drconf: bool) -> Result<(), Error> {
    let n = w.begin("chosen")?;
    w.string("bootargs", &d.cmdline)?;
    if let Some(initrd) = d.initrd {
        let (start, end) = (initrd.start(), initrd.end());
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(s), Ok(e)) => {
                w.u32("linux,initrd-start", s)?;
                w.u32("linux,initrd-end", e)?;
            }
            _ => {
                w.u64s("linux,initrd-start", &[start])?;
                w.u64s("linux,initrd-end", &[end])?;
            }
        }
    }
    let vty = crate::nodes::vdevice::vty_path();
    w.string("linux,stdout-path", &vty)?;
    w.string("stdout-path", &vty)?;
    let mut vec5 = architecture_vec5(d.mmu, d.interrupt_controller);
    if drconf {
        set_drconf_bits(&mut vec5);
    }
    w.bytes("ibm,architecture-vec-5", &vec5)?;
    w.end(n)
}
