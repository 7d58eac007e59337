#![no_main]
//! Fuzz target: OPAL call sequences with MPIPL preserve and the boots after it.

use libfuzzer_sys::fuzz_target;

#[path = "../harness/input.rs"]
mod input;
#[path = "../harness/opal_mpipl.rs"]
mod opal_mpipl;
#[path = "../harness/ram.rs"]
mod ram;

fuzz_target!(|data: &[u8]| {
    opal_mpipl::run(data);
});
