#![no_main]
//! Fuzz target: sequences of hcall numbers and arguments through the VMM's dispatcher.

use libfuzzer_sys::fuzz_target;

#[path = "../harness/hcall_dispatch.rs"]
mod hcall_dispatch;
#[path = "../harness/input.rs"]
mod input;
#[path = "../harness/ram.rs"]
#[allow(dead_code)]
mod ram;

fuzz_target!(|data: &[u8]| {
    hcall_dispatch::run(data);
});
