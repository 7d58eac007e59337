#![no_main]
//! Fuzz target: the PCI host bridge's RTAS config/DDW calls, MMIO and TCE hcalls.

use libfuzzer_sys::fuzz_target;

#[path = "../harness/input.rs"]
mod input;
#[path = "../harness/phb_rtas_mmio.rs"]
mod phb_rtas_mmio;
#[path = "../harness/ram.rs"]
#[allow(dead_code)]
mod ram;

fuzz_target!(|data: &[u8]| {
    phb_rtas_mmio::run(data);
});
