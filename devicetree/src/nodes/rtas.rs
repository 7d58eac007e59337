//! `/rtas`: where the RTAS blob is and what it offers.

use crate::description::MachineDescription;
use crate::error::Error;
use crate::writer::TreeWriter;

/// Default `rtas-error-log-max` (bytes), the PAPR/QEMU value; used unless the firmware
/// contributes its own.
pub const RTAS_ERROR_LOG_MAX: u32 = 2048;

/// Properties we own:
/// * `linux,rtas-base`, `rtas-size`: read by `early_init_dt_scan_rtas()` (kernel/rtas.c);
///   without a size RTAS is absent and nothing (SMP start, reboot, power-off) works.
/// * `linux,rtas-entry`: the entry point, our stub's first instruction.
/// * `rtas-error-log-max`: size of the error-log buffer Linux hands to `event-scan` /
///   `check-exception` (`rtas_get_error_log_max()`; 2048 if missing).
/// * `ibm,hypertas-functions`: see [`crate::HypertasFunction`]; its presence alone is what
///   makes Linux run as an LPAR (`FW_FEATURE_LPAR`).
///
/// Then every property the firmware gives, verbatim and in its order: one u32 token per RTAS
/// call name (Linux's `rtas_function_token()` looks tokens up by property name),
/// `ibm,extended-os-term`, the fadump properties and, after a dump, `ibm,kernel-dump`. A
/// firmware property that repeats one of ours is an error.
pub(crate) fn write(w: &mut TreeWriter, d: &MachineDescription) -> Result<(), Error> {
    let n = w.begin("rtas")?;
    // Validation guarantees the region ends at or below 4 GiB.
    let base =
        u32::try_from(d.rtas.start()).map_err(|_| Error::RtasAbove4GiB(format!("{:?}", d.rtas)))?;
    let size =
        u32::try_from(d.rtas.len()).map_err(|_| Error::RtasAbove4GiB(format!("{:?}", d.rtas)))?;
    w.u32("linux,rtas-base", base)?;
    w.u32("linux,rtas-entry", base)?;
    w.u32("rtas-size", size)?;
    if !d
        .rtas_properties
        .iter()
        .any(|p| p.name == "rtas-error-log-max")
    {
        w.u32("rtas-error-log-max", RTAS_ERROR_LOG_MAX)?;
    }
    let names: Vec<&str> = d.hypertas_functions.iter().map(|f| f.name()).collect();
    w.strings("ibm,hypertas-functions", &names)?;
    for p in &d.rtas_properties {
        w.bytes(&p.name, &p.value.to_fdt_bytes())?;
    }
    w.end(n)
}
